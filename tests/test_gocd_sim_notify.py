"""The GoCD simulator's notification plugin: what it POSTs, when, and how delivery fails.

A loopback receiver captures every request (path, headers, body); tests wait on
its condition, never sleep (``gocd-api.md`` 12.1-12.3).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from actors.clock import ManualClock
from actors.sim.gocd import GoCDSimulator, JobConfig, StageConfig
from tests.gocd_support import no_secrets_in_logs, raw, remoting  # noqa: F401 (autouse fixture)

V3_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")
V1_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@dataclass
class Receiver:
    """A webhook endpoint on loopback that records what it gets."""

    status: int = 200
    answer: bytes = b"{}"
    #: While cleared, each request waits (the sender's one thread is then stuck).
    gate: threading.Event = field(default_factory=threading.Event)
    got: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        self.gate.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.cond:
                    receiver.got.append((self.path, dict(self.headers), body))
                    receiver.cond.notify_all()
                receiver.gate.wait(10)
                self.send_response(receiver.status)
                self.send_header("Content-Length", str(len(receiver.answer)))
                self.end_headers()
                self.wfile.write(receiver.answer)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def url(self, path: str) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def wait(self, count: int, timeout: float = 5.0) -> list[tuple[str, dict[str, str], bytes]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.got) >= count, timeout), f"got {len(self.got)}"
            return list(self.got)

    def bodies(self, path: str) -> list[dict]:
        with self.cond:
            return [json.loads(body) for p, _, body in self.got if p == path]

    def close(self) -> None:
        self.gate.set()
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def sim(clock: ManualClock):
    s = GoCDSimulator(clock=clock)
    s.start()
    yield s
    s.stop()


def settle(sim: GoCDSimulator, deliveries: int) -> None:
    """Wait until the plugin has dealt with ``deliveries`` messages-at-endpoints in all."""
    assert sim.notifier.wait_for(lambda d: len(d) >= deliveries, 5), list(sim.notifier.deliveries)


def build(sim: GoCDSimulator, uuid: str, result: str = "Passed") -> str:
    locator = remoting(sim, uuid, "get_work").json()["work"]["locator"]
    remoting(sim, uuid, "report_current_status", {"locator": locator, "job_state": "Building"})
    remoting(sim, uuid, "report_completed", {"locator": locator, "result": result})
    return locator


TWO_STAGES = [
    StageConfig("build", (JobConfig("unit"), JobConfig("lint"))),
    StageConfig("deploy", (JobConfig("ship"),)),
]


def test_do_style_sends_the_v3_stage_body_when_a_stage_is_scheduled_or_completed(sim, receiver, clock):
    uuid = sim.add_agent("a1", uuid="u1")
    sim.define_pipeline("app", group="backend", stages=TWO_STAGES)
    sim.notify(stage_urls=[receiver.url("/stage")])
    sim.trigger_pipeline("app")
    (path, headers, body), *_ = receiver.wait(1)
    assert path == "/stage"
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"].startswith("Java/")
    assert "Authorization" not in headers and "X-Hub-Signature" not in headers
    assert body.startswith(b'{"pipeline":{"name":"app","counter":"1","label":"1","group":"backend",')
    scheduled = json.loads(body)["pipeline"]
    (cause,) = scheduled.pop("build-cause")
    assert cause["material"] == {
        "git-configuration": {
            "shallow-clone": False,
            "branch": "master",
            "url": "https://git.example.com/app.git",
        },
        "type": "git",
    }
    assert "fingerprint" not in cause["material"] and cause["changed"] is True
    assert V3_DATE.match(cause["modifications"][0]["modified-time"])
    assert scheduled == {
        "name": "app",
        "counter": "1",
        "label": "1",
        "group": "backend",
        "stage": {
            "name": "build",
            "counter": "1",
            "approval-type": "success",
            "approved-by": "changes",
            "state": "Building",
            "result": "Unknown",
            "create-time": "2023-11-14T22:13:20.000+0000",
            "last-transition-time": "",
            "jobs": [
                {
                    "name": "unit",
                    "schedule-time": "2023-11-14T22:13:20.000+0000",
                    "assign-time": "",
                    "complete-time": "",
                    "state": "Scheduled",
                    "result": "Unknown",
                    "agent-uuid": None,
                },
                {
                    "name": "lint",
                    "schedule-time": "2023-11-14T22:13:20.001+0000",
                    "assign-time": "",
                    "complete-time": "",
                    "state": "Scheduled",
                    "result": "Unknown",
                    "agent-uuid": None,
                },
            ],
        },
    }
    # Assignment, building and a job completing while its stage goes on: no stage-status.
    clock.advance(2)
    build(sim, uuid)
    assert len(receiver.got) == 1
    clock.advance(3)
    build(sim, uuid)  # the stage completes, and the next one is scheduled
    settle(sim, 3)
    completed, deploy = receiver.bodies("/stage")[1:]
    stage = completed["pipeline"]["stage"]
    assert (stage["state"], stage["result"]) == ("Passed", "Passed")
    assert stage["last-transition-time"] == "2023-11-14T22:13:25.000+0000"
    assert [(j["state"], j["result"], j["agent-uuid"]) for j in stage["jobs"]] == [
        ("Completed", "Passed", "u1")
    ] * 2
    assert stage["jobs"][0]["assign-time"] == "2023-11-14T22:13:22.000+0000"
    assert all(V3_DATE.match(j["complete-time"]) for j in stage["jobs"])
    assert (deploy["pipeline"]["stage"]["name"], deploy["pipeline"]["stage"]["state"]) == (
        "deploy",
        "Building",
    )
    assert "previous-stage-name" not in deploy["pipeline"]["stage"]
    # A re-scheduled job sends nothing either.
    remoting(sim, uuid, "get_work")
    sim.reschedule_job("app/1/deploy/1/ship")
    sim.trigger_pipeline("app")
    settle(sim, 4)
    assert [b["pipeline"]["counter"] for b in receiver.bodies("/stage")] == ["1", "1", "1", "2"]


def test_cancelled_and_rerun_stages_are_sent(sim, receiver):
    sim.define_pipeline("app", stages=TWO_STAGES[1:])
    sim.notify(stage_urls=[receiver.url("/s")])
    sim.trigger_pipeline("app")
    sim.cancel_stage("app", 1, "deploy", by="carol")
    sim.run_stage("app", 1, "deploy", by="dave")
    settle(sim, 3)
    stages = [b["pipeline"]["stage"] for b in receiver.bodies("/s")]
    assert [(s["counter"], s["state"], s["result"], s["approved-by"]) for s in stages] == [
        ("1", "Building", "Unknown", "changes"),
        ("1", "Cancelled", "Cancelled", "changes"),
        ("2", "Building", "Unknown", "dave"),
    ]


def test_agent_status_on_registered_agents_changes(sim, receiver, clock):
    sim.notify(agent_urls=[receiver.url("/agent")])
    sim.schedule_jobs("app")
    uuid = sim.add_agent("a1", uuid="u1", free_space=10 * 1024**3)  # a setup control: no notification
    sim.add_agent("p1", uuid="p1", config_state="Pending")
    remoting(sim, uuid, "get_work")
    (_, headers, body), *_ = receiver.wait(1)
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "uuid": "u1",
        "host_name": "a1",
        "is_elastic": False,
        "ip_address": "127.0.0.1",
        "operating_system": "Linux",
        "free_space": "10.0 GB",
        "agent_config_state": "Enabled",
        "agent_state": "Building",
        "build_state": "Building",
        "transition_time": "2023-11-14T22:13:20.000+0000",
    }
    remoting(sim, uuid, "report_completed", {"locator": "app/1/build/1/job", "result": "Passed"})
    raw("PATCH", f"{sim.url}/api/agents/u1", json={"agent_config_state": "Disabled"})
    # Approved: registered now.
    raw("PATCH", f"{sim.url}/api/agents/p1", json={"agent_config_state": "Enabled"})
    settle(sim, 4)  # before the clock jumps: a message still queued then would expire (the 2-min TTL)
    clock.advance(sim.agent_timeout + 1)
    raw("GET", f"{sim.url}/api/agents")  # silence is noticed at the next request
    settle(sim, 6)
    states = [
        (b["uuid"], b["agent_config_state"], b["agent_state"], b["build_state"])
        for b in receiver.bodies("/agent")
    ]
    assert states == [
        ("u1", "Enabled", "Building", "Building"),
        ("u1", "Enabled", "Idle", "Idle"),
        ("u1", "Disabled", "Idle", "Idle"),
        ("p1", "Enabled", "Idle", "Idle"),  # never while Pending
        ("u1", "Disabled", "LostContact", "Unknown"),
        ("p1", "Enabled", "LostContact", "Unknown"),
    ]


def test_webhooker_style_resends_the_v1_body_signed(sim, receiver):
    sim.define_pipeline("app", group="backend", stages=TWO_STAGES[1:])
    sim.notify(stage_urls=[receiver.url("/hook")], style="webhooker", secret="s3cret")
    uuid = sim.add_agent("a1", uuid="u1")
    sim.trigger_pipeline("app")
    build(sim, uuid)
    _, headers, body = receiver.wait(2)[1]
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature"] == f"sha256={expected}"
    assert headers["Content-Type"] == "application/json" and headers["Accept"] == "application/json"
    pipeline = json.loads(body)["pipeline"]
    assert list(pipeline) == ["name", "counter", "group", "build-cause", "stage"]
    stage = pipeline["stage"]
    assert list(stage) == [
        "name",
        "counter",
        "approval-type",
        "approved-by",
        "state",
        "result",
        "create-time",
        "last-transition-time",
        "jobs",
    ]
    assert V1_DATE.match(stage["create-time"]) and V1_DATE.match(stage["last-transition-time"])
    (job,) = stage["jobs"]
    assert list(job) == ["name", "schedule-time", "complete-time", "state", "result", "agent-uuid"]
    assert V1_DATE.match(job["complete-time"])
    scheduled = json.loads(receiver.got[0][2])["pipeline"]["stage"]
    # Nulls and empty dates are gone (no agent-uuid, no complete-time, no last-transition-time).
    assert "last-transition-time" not in scheduled
    assert list(scheduled["jobs"][0]) == ["name", "schedule-time", "state", "result"]
    with pytest.raises(ValueError, match="stage-status only"):
        sim.notify(stage_urls=[receiver.url("/hook")], agent_urls=[receiver.url("/a")], style="webhooker")


def test_endpoints_get_each_message_in_turn(sim, receiver):
    sim.define_pipeline("app", stages=TWO_STAGES[1:])
    sim.notify(stage_urls=[receiver.url("/one"), receiver.url("/two")])
    sim.trigger_pipeline("app")
    sim.trigger_pipeline("app")
    got = receiver.wait(4)
    assert [p for p, _, _ in got] == ["/one", "/two", "/one", "/two"]
    assert [json.loads(b)["pipeline"]["counter"] for _, _, b in got] == ["1", "1", "2", "2"]


def test_failures_are_counted_never_raised(sim, receiver):
    receiver.status = 500
    sim.define_pipeline("app", stages=TWO_STAGES[1:])
    closed = Receiver()
    dead = closed.url("/gone")
    closed.close()
    sim.notify(stage_urls=[receiver.url("/a"), dead])
    assert sim.trigger_pipeline("app") == ["app/1/deploy/1/ship"]
    settle(sim, 2)
    first, second = sim.notifier.deliveries
    assert (first.status, first.ok) == (500, False)
    assert (second.status, second.ok) == (None, False) and "Error" in second.error
    assert (sim.notifier.sent, sim.notifier.failed) == (0, 2)
    state = requests.get(f"{sim.url[:-3]}/_sim/notifications", timeout=5).json()
    assert (state["failed"], [d["status"] for d in state["deliveries"]]) == (2, [500, None])


def test_the_webhooker_only_fails_on_an_answer_that_is_not_json(sim, receiver):
    receiver.status, receiver.answer = 500, b"{}"
    sim.define_pipeline("app", stages=TWO_STAGES[1:])
    sim.notify(stage_urls=[receiver.url("/h")], style="webhooker")
    sim.trigger_pipeline("app")
    settle(sim, 1)
    receiver.answer = b"<html>oops</html>"
    sim.trigger_pipeline("app")
    settle(sim, 2)
    assert [(d.status, d.ok) for d in sim.notifier.deliveries] == [(500, True), (500, False)]


def test_messages_older_than_the_ttl_are_dropped(sim, receiver, clock):
    receiver.gate.clear()  # the plugin's one thread blocks on the first POST
    sim.define_pipeline("app", stages=TWO_STAGES[1:])
    sim.notify(stage_urls=[receiver.url("/s")])
    sim.trigger_pipeline("app")
    receiver.wait(1)
    sim.trigger_pipeline("app")  # queued behind the stuck one
    clock.advance(121)
    sim.trigger_pipeline("app")  # fresh
    receiver.gate.set()
    settle(sim, 3)
    kinds = [(d.url.rsplit("/", 1)[-1] if d.url else "", d.error) for d in sim.notifier.deliveries]
    assert kinds == [("s", None), ("", "expired"), ("s", None)]
    assert sim.notifier.expired == 1
    assert [json.loads(b)["pipeline"]["counter"] for _, _, b in receiver.got] == ["1", "3"]


def test_stop_ends_the_delivery_thread_promptly(clock, receiver):
    sim = GoCDSimulator(clock=clock)
    sim.start()
    receiver.gate.clear()
    sim.define_pipeline("app", stages=TWO_STAGES[1:])
    sim.notify(stage_urls=[receiver.url("/s")])
    sim.trigger_pipeline("app")
    receiver.wait(1)
    thread = sim.notifier._thread
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 3
    assert thread is not None and not thread.is_alive()


def test_notify_over_http(sim, receiver):
    base = sim.url[:-3]
    answer = requests.post(f"{base}/_sim/notify", json={"stage_urls": [receiver.url("/s")]}, timeout=5)
    assert answer.json() == {"ok": True}
    sim.schedule_jobs("app")
    receiver.wait(1)
    settle(sim, 1)
    (delivery,) = requests.get(f"{base}/_sim/notifications", timeout=5).json()["deliveries"]
    assert (delivery["kind"], delivery["url"], delivery["status"], delivery["ok"]) == (
        "stage-status",
        receiver.url("/s"),
        200,
        True,
    )
    assert json.loads(delivery["body"])["pipeline"]["name"] == "app"
    bad = requests.post(f"{base}/_sim/notify", json={"stage_urls": ["ftp://x"]}, timeout=5)
    assert bad.status_code == 400


def test_gson_escapes_html_characters(sim, receiver):
    sim.define_pipeline("a=b", stages=TWO_STAGES[1:])
    sim.notify(stage_urls=[receiver.url("/s")])
    sim.trigger_pipeline("a=b")
    (_, _, body), *_ = receiver.wait(1)
    assert b'"name":"a\\u003db"' in body
    assert json.loads(body)["pipeline"]["name"] == "a=b"
