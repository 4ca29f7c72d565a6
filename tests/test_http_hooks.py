"""The GoCD webhook: the bodies GoCD's notification plugins send, and the endpoint over real HTTP."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import socket

import pytest
import requests

from actors.config import Secret
from actors.http.hooks import MAX_BODY, mask_path, parse_notification, signature_matches
from actors.http.server import StatusServer
from actors.messages import GoCDHint
from tests.conftest import WATCHED_SECRETS

SECRET = WATCHED_SECRETS[3]
USER, PASSWORD, TOKEN = "ops", WATCHED_SECRETS[0], WATCHED_SECRETS[1]

#: GoCD 26.1.0's v4 stage-status body for a freshly scheduled first stage (reference 12.1).
V4_STAGE = {
    "pipeline": {
        "name": "app",
        "counter": "42",
        "label": "42",
        "group": "backend",
        "build-cause": [
            {
                "material": {
                    "git-configuration": {
                        "shallow-clone": False,
                        "branch": "main",
                        "url": "https://git.example.com/app.git",
                    },
                    "type": "git",
                    "fingerprint": "3f1b…",
                },
                "changed": True,
                "modifications": [
                    {"revision": "9f2c…", "modified-time": "2026-07-10T08:59:30.000+0000", "data": {}}
                ],
            }
        ],
        "stage": {
            "name": "build",
            "counter": "1",
            "approval-type": "success",
            "approved-by": "changes",
            "previous-stage-name": None,
            "previous-stage-counter": 0,
            "state": "Building",
            "result": "Unknown",
            "create-time": "2026-07-10T09:00:00.100+0000",
            "last-transition-time": "",
            "jobs": [
                {
                    "name": "unit",
                    "schedule-time": "2026-07-10T09:00:00.102+0000",
                    "assign-time": "",
                    "complete-time": "",
                    "state": "Scheduled",
                    "result": "Unknown",
                    "agent-uuid": None,
                }
            ],
        },
    }
}


def _v3(v4: dict) -> dict:
    """v3 is v4 without previous-stage-name/-counter and without the material's fingerprint."""
    body = copy.deepcopy(v4)
    del body["pipeline"]["stage"]["previous-stage-name"], body["pipeline"]["stage"]["previous-stage-counter"]
    for cause in body["pipeline"]["build-cause"]:
        del cause["material"]["fingerprint"]
    return body


#: What the DigitalOcean plugin (notification API 3.0) forwards verbatim.
DO_STAGE = _v3(V4_STAGE)

#: The same stage as kzrbill/gocd-plugin-webhooker re-serialises it: v1 fields only, nulls
#: dropped, dates in 'Z' form (reference 12.3).
WEBHOOKER_STAGE = {
    "pipeline": {
        "name": "app",
        "counter": "42",
        "group": "backend",
        "build-cause": [
            {
                "material": {
                    "git-configuration": {
                        "shallow-clone": False,
                        "branch": "main",
                        "url": "https://git.example.com/app.git",
                    },
                    "type": "git",
                },
                "changed": True,
                "modifications": [
                    {"revision": "9f2c…", "modified-time": "2026-07-10T08:59:30.000Z", "data": {}}
                ],
            }
        ],
        "stage": {
            "name": "build",
            "counter": "1",
            "approval-type": "success",
            "approved-by": "changes",
            "state": "Building",
            "result": "Unknown",
            "create-time": "2026-07-10T09:00:00.100Z",
            "last-transition-time": "",
            "jobs": [
                {
                    "name": "unit",
                    "schedule-time": "2026-07-10T09:00:00.102Z",
                    "complete-time": "",
                    "state": "Scheduled",
                    "result": "Unknown",
                }
            ],
        },
    }
}

#: GoCD's agent-status body, the same in v3 and v4 (reference 12.1).
AGENT = {
    "uuid": "5a1c…",
    "host_name": "mesos-agent-17",
    "is_elastic": False,
    "ip_address": "10.0.3.7",
    "operating_system": "Linux",
    "free_space": "12.3 GB",
    "agent_config_state": "Enabled",
    "agent_state": "Building",
    "build_state": "Building",
    "transition_time": "2026-07-10T09:00:03.512+0000",
}


def body(document) -> bytes:
    return json.dumps(document).encode()


def sign(data: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def with_stage(**changes) -> dict:
    document = copy.deepcopy(DO_STAGE)
    document["pipeline"]["stage"].update(changes)
    return document


# --- the bodies (pure) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "kind", "detail"),
    [
        (V4_STAGE, "backlog", "app/42/build/1 scheduled"),
        (DO_STAGE, "backlog", "app/42/build/1 scheduled"),
        (WEBHOOKER_STAGE, "backlog", "app/42/build/1 scheduled"),
        (with_stage(state="Passed", result="Passed"), "backlog", "app/42/build/1 passed"),
        (with_stage(state="Cancelled", result="Cancelled"), "backlog", "app/42/build/1 cancelled"),
        (with_stage(counter="2"), "backlog", "app/42/build/2 scheduled"),
        (with_stage(counter=3), "backlog", "app/42/build/3 scheduled"),  # a counter as a number
        (AGENT, "agents", "agent mesos-agent-17 Building"),
        ({"uuid": "u-1", "agent_state": "Idle"}, "agents", "agent u-1 Idle"),
        (
            {**AGENT, "agent_state": "Building", "build_state": "Cancelled"},
            "agents",
            "agent mesos-agent-17 Building/Cancelled",
        ),
    ],
)
def test_notifications_become_hints(document, kind, detail):
    assert parse_notification(body(document), 12.5) == GoCDHint(kind=kind, received_at=12.5, detail=detail)


def _without(document: dict, *path: str) -> dict:
    document = copy.deepcopy(document)
    target = document
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return document


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "not JSON"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        (b"[]", "not a notification: a JSON array, not an object"),
        (b'"stage"', "not a notification: a JSON string, not an object"),
        (b"{}", "neither stage-status (pipeline) nor agent-status (uuid)"),
        (body({"event": "push"}), "neither stage-status (pipeline) nor agent-status (uuid)"),
        (body({"pipeline": "app"}), "pipeline: the string 'app', not an object"),
        (body(_without(DO_STAGE, "pipeline", "name")), "pipeline.name: missing or null"),
        (body(_without(DO_STAGE, "pipeline", "stage")), "pipeline.stage: missing or null, not an object"),
        (body(with_stage(counter="4x2")), "pipeline.stage.counter: the string '4x2', not a counter"),
        (body(with_stage(counter=True)), "pipeline.stage.counter: a boolean, not a counter"),
        (body(with_stage(counter=-1)), "pipeline.stage.counter: a number, not a counter"),
        (body(with_stage(state=7)), "pipeline.stage.state: a number, not a non-empty string"),
        (body(with_stage(jobs={"name": "unit"})), "pipeline.stage.jobs: an object, not a list"),
        (body(with_stage(jobs=["unit"])), "pipeline.stage.jobs[0]: the string 'unit', not an object"),
        (body(with_stage(jobs=[{"name": "unit"}])), "pipeline.stage.jobs[0].state: missing or null"),
        (body({**AGENT, "uuid": 17}), "uuid: a number, not a non-empty string"),
        (body(_without(AGENT, "agent_state")), "agent_state: missing or null"),
        (body({**AGENT, "build_state": None}), "build_state: missing or null, not a string"),
    ],
)
def test_what_is_not_a_notification_says_why(data, problem):
    with pytest.raises(ValueError) as info:
        parse_notification(data, 0.0)
    assert problem in str(info.value)


def test_log_unsafe_text_in_a_body_is_made_printable():
    hint = parse_notification(body({"uuid": "u", "agent_state": "Idle\nFAKE LOG LINE", "host_name": "h"}), 0)
    assert "\n" not in hint.detail and hint.detail == "agent h Idle?FAKE LOG LINE"


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (sign(b"{}"), True),
        (sign(b"{}").upper().replace("SHA256=", "sha256="), True),  # hex case does not matter
        ("SHA256=" + sign(b"{}")[7:], True),
        (sign(b"{ }"), False),
        (sign(b"{}", "another-secret-0123"), False),
        ("sha1=" + hmac.new(SECRET.encode(), b"{}", hashlib.sha1).hexdigest(), False),
        ("sha256=", False),
        ("sha256=é", False),
        ("", False),
        (None, False),
    ],
)
def test_signature_matches(header, ok):
    assert signature_matches(Secret(SECRET), b"{}", header) is ok


def test_no_secret_matches_no_signature():
    assert not signature_matches(
        Secret(""), b"{}", "sha256=" + hmac.new(b"", b"{}", hashlib.sha256).hexdigest()
    )


def test_mask_path():
    assert mask_path(f"/hooks/gocd/{SECRET}") == "/hooks/gocd/****"
    assert mask_path(f"/hooks/gocd/{SECRET}/x") == "/hooks/gocd/****"
    assert mask_path("/hooks/gocd") == "/hooks/gocd"
    assert mask_path("/status") == "/status"


# --- the endpoint over real HTTP -----------------------------------------------------------


@pytest.fixture(autouse=True)
def quiet_client():
    """urllib3 logs each URL it requests at DEBUG: the secret of the test client's hook URLs, which
    the session's watch for secrets in log lines would rightly flag. The daemon's lines stay."""
    client = logging.getLogger("urllib3.connectionpool")
    level = client.level
    client.setLevel(logging.INFO)
    yield
    client.setLevel(level)


class Hints:
    """Where the server tells its hints; ``fail`` makes telling raise (a stopped poller)."""

    def __init__(self) -> None:
        self.told: list[GoCDHint] = []
        self.fail = False

    def __call__(self, hint: GoCDHint) -> None:
        if self.fail:
            raise RuntimeError("the GoCDPoller is not running")
        self.told.append(hint)


def make(clock, hints, **kw) -> StatusServer:
    server = StatusServer(host="127.0.0.1", port=0, clock=clock, on_hint=hints, **kw)
    server.start()
    return server


@pytest.fixture
def hints() -> Hints:
    return Hints()


@pytest.fixture
def hook(clock, hints):
    server = make(clock, hints, webhook_secret=Secret(SECRET))
    yield server
    server.stop()


def post(server: StatusServer, path: str, data: bytes, **kw) -> requests.Response:
    headers = {"Content-Type": "application/json", "Accept": "application/json", **kw.pop("headers", {})}
    return requests.post(server.url.rstrip("/") + path, data=data, headers=headers, timeout=10, **kw)


def test_the_do_plugin_posts_to_the_secret_path(hook, hints, clock):
    answer = post(hook, f"/hooks/gocd/{SECRET}", body(DO_STAGE))
    assert answer.status_code == 200 and answer.json() == {}
    assert answer.headers["Content-Type"].startswith("application/json")
    answer = post(hook, f"/hooks/gocd/{SECRET}", body(AGENT))
    assert answer.status_code == 200
    assert hints.told == [
        GoCDHint("backlog", clock.now(), "app/42/build/1 scheduled"),
        GoCDHint("agents", clock.now(), "agent mesos-agent-17 Building"),
    ]


def test_webhooker_signs_its_v1_bodies(hook, hints):
    data = body(WEBHOOKER_STAGE)
    answer = post(hook, "/hooks/gocd", data, headers={"X-Hub-Signature": sign(data)})
    assert answer.status_code == 200 and answer.json() == {}
    assert [h.detail for h in hints.told] == ["app/42/build/1 scheduled"]


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/hooks/gocd/not-the-secret-at-all", {}),
        (f"/hooks/gocd/{SECRET}x", {}),
        (f"/hooks/gocd/{SECRET[:-1]}", {}),
        ("/hooks/gocd/%FF%FE", {}),
        ("/hooks/gocd", {}),
        ("/hooks/gocd", {"X-Hub-Signature": sign(b"something else")}),
        ("/hooks/gocd", {"X-Hub-Signature": "sha256=" + "0" * 64}),
        ("/hooks/gocd", {"Authorization": f"Bearer {SECRET}"}),
    ],
)
def test_a_wrong_secret_or_signature_is_401_and_tells_nothing(hook, hints, path, headers, caplog):
    with caplog.at_level(logging.DEBUG):
        answer = post(hook, path, body(DO_STAGE), headers=headers)
    assert answer.status_code == 401 and "error" in answer.json()
    assert hints.told == []
    assert SECRET not in answer.text + caplog.text


def test_what_is_not_a_notification_is_400_with_a_short_reason(hook, hints):
    for data, problem in (
        (b"{not json", "not JSON"),
        (body({"event": "push"}), "neither stage-status"),
        (body(with_stage(counter=True)), "pipeline.stage.counter"),
    ):
        answer = post(hook, f"/hooks/gocd/{SECRET}", data)
        assert answer.status_code == 400 and problem in answer.json()["error"]
        signed = post(hook, "/hooks/gocd", data, headers={"X-Hub-Signature": sign(data)})
        assert signed.status_code == 400
    assert hints.told == []


def raw_request(server: StatusServer, head: bytes, data: bytes = b"") -> bytes:
    """Send ``head`` (and ``data``) on a socket of its own; the whole answer, up to the close."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_body_announced_over_1_mib_is_413_before_it_is_read(hook, hints):
    for length in (MAX_BODY + 1, 200 * MAX_BODY):
        head = (
            f"POST /hooks/gocd/{SECRET} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n"
        ).encode()
        answer = raw_request(hook, head)  # no body sent: the answer must not wait for it
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert answer.count(b"HTTP/1.1") == 1  # one answer, then the connection is closed
        assert b'"error"' in answer
    assert hints.told == []


def test_a_chunked_body_over_1_mib_is_413(hook, hints):
    def chunked(size: int) -> requests.Response:
        notification = body(AGENT)
        data = b" " * (size - len(notification)) + notification  # JSON allows the blanks
        # A generator: sent chunked, with no Content-Length to check beforehand.
        return post(hook, f"/hooks/gocd/{SECRET}", (data[i : i + 65536] for i in range(0, size, 65536)))

    exactly = chunked(MAX_BODY)
    assert exactly.status_code == 200 and exactly.json() == {}
    over = chunked(MAX_BODY + 1)
    assert over.status_code == 413 and over.json() == {"error": f"body over {MAX_BODY} bytes"}
    assert len(hints.told) == 1


def test_get_is_405(hook):
    answer = requests.get(hook.url + f"hooks/gocd/{SECRET}", timeout=10)
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST"
    assert answer.json() == {"error": "Method Not Allowed"}
    assert requests.get(hook.url + "hooks/gocd", timeout=10).status_code == 405


def test_push_is_off_without_a_secret(clock, hints):
    server = make(clock, hints)
    try:
        for path in (f"/hooks/gocd/{SECRET}", "/hooks/gocd"):
            data = body(DO_STAGE)
            assert post(server, path, data, headers={"X-Hub-Signature": sign(data)}).status_code == 404
    finally:
        server.stop()
    assert hints.told == []


def test_a_stopped_poller_is_503(hook, hints):
    hints.fail = True
    answer = post(hook, f"/hooks/gocd/{SECRET}", body(AGENT))
    assert answer.status_code == 503 and answer.json() == {"error": "no GoCD poller is running to take it"}


def test_hints_go_where_the_server_is_told_and_503_until_then(clock):
    server = StatusServer(host="127.0.0.1", port=0, clock=clock, webhook_secret=Secret(SECRET))
    server.start()
    try:
        # Served from the start (an [ha] standby's server is made before its system) ...
        assert post(server, f"/hooks/gocd/{SECRET}", body(AGENT)).status_code == 503
        later = Hints()
        server.hints_to(later)  # ... its poller known once the system runs
        assert post(server, f"/hooks/gocd/{SECRET}", body(AGENT)).status_code == 200
        server.hints_to(None)
        assert post(server, f"/hooks/gocd/{SECRET}", body(AGENT)).status_code == 503
    finally:
        server.stop()
    assert len(later.told) == 1


def test_the_status_servers_auth_guards_everything_but_the_hook(clock, hints):
    server = make(
        clock,
        hints,
        webhook_secret=Secret(SECRET),
        username=USER,
        password=Secret(PASSWORD),
        token=Secret(TOKEN),
    )
    try:
        # GoCD's plugins send no credentials: the hook's own secret is its authentication.
        assert post(server, f"/hooks/gocd/{SECRET}", body(AGENT)).status_code == 200
        data = body(WEBHOOKER_STAGE)
        assert post(server, "/hooks/gocd", data, headers={"X-Hub-Signature": sign(data)}).status_code == 200
        # The status server's credentials do not open the hook ...
        answer = post(server, "/hooks/gocd/wrong-secret-0123456", body(AGENT), auth=(USER, PASSWORD))
        assert answer.status_code == 401
        # ... and the hook's secret opens nothing else.
        for path in ("/", "/status", "/metrics", "/readyz"):
            assert requests.get(server.url.rstrip("/") + path, timeout=10).status_code == 401, path
            bearer = {"Authorization": f"Bearer {SECRET}"}
            assert requests.get(server.url.rstrip("/") + path, headers=bearer, timeout=10).status_code == 401
            answer = requests.get(server.url.rstrip("/") + path, auth=(USER, PASSWORD), timeout=10)
            assert answer.status_code in (200, 503), path
    finally:
        server.stop()
    assert len(hints.told) == 2


def test_the_secret_is_never_logged(hook, caplog):
    with caplog.at_level(logging.DEBUG):
        post(hook, f"/hooks/gocd/{SECRET}", body(AGENT))
        post(hook, f"/hooks/gocd/{SECRET}", b"{not json")
        requests.get(hook.url + f"hooks/gocd/{SECRET}", timeout=10)
    assert "/hooks/gocd/****" in caplog.text
    assert SECRET not in caplog.text
