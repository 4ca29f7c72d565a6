"""The GoCD client against the simulator over real HTTP: every endpoint, every error."""

from __future__ import annotations

import logging
import socket

import pytest
import requests
import requests.adapters

from actors import __version__
from actors.clock import ManualClock
from actors.exceptions import (
    GoCDAuthError,
    GoCDBadResponse,
    GoCDConnectionError,
    GoCDError,
    GoCDNotFound,
    GoCDServerError,
    GoCDUnprocessable,
)
from actors.gocd.client import ELASTIC_CACHE_SECONDS, GoCDClient, make_session
from actors.messages import GoAgent, ScheduledJob
from actors.sim.gocd import GoCDSimulator
from tests.gocd_support import (  # noqa: F401 (autouse fixture)
    PASSWORD,
    TOKEN,
    no_secrets_in_logs,
    remoting,
    settings,
)


@pytest.fixture
def make_sim(clock: ManualClock):
    sims: list[GoCDSimulator] = []

    def make(**kw) -> GoCDSimulator:
        kw.setdefault("username", "admin")
        kw.setdefault("password", PASSWORD)
        sim = GoCDSimulator(clock=clock, **kw)
        sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


@pytest.fixture
def sim(make_sim) -> GoCDSimulator:
    return make_sim()


def client_for(sim: GoCDSimulator, clock: ManualClock, **kw) -> GoCDClient:
    kw.setdefault("username", "admin")
    kw.setdefault("password", PASSWORD)
    return GoCDClient(settings(sim.url, **kw), clock=clock)


@pytest.fixture
def client(sim, clock) -> GoCDClient:
    c = client_for(sim, clock)
    yield c
    c.close()


# --- session ---------------------------------------------------------------------


def test_session_factory_sets_auth_accept_user_agent_and_tls():
    basic = make_session(settings("https://gocd.example.com/go", username="bob", password=PASSWORD))
    assert basic.headers["User-Agent"] == f"gocd-mesos/{__version__}"
    assert basic.headers["Accept"] == "application/vnd.go.cd.v7+json"
    assert basic.verify is True
    prepared = basic.prepare_request(requests.Request("GET", "https://gocd.example.com/go/api/agents"))
    assert prepared.headers["Authorization"].startswith("Basic ")
    assert PASSWORD not in repr(basic.auth)

    bearer = make_session(settings("https://gocd.example.com/go", token=TOKEN))
    prepared = bearer.prepare_request(requests.Request("GET", "https://gocd.example.com/go/api/agents"))
    assert prepared.headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in repr(bearer.auth)

    anonymous = make_session(settings("https://gocd.example.com/go"))
    prepared = anonymous.prepare_request(requests.Request("GET", "https://gocd.example.com/go/api/agents"))
    assert "Authorization" not in prepared.headers

    from actors.config import GoCDSettings

    custom = make_session(GoCDSettings(url="https://g/go", ca_bundle="/etc/ssl/gocd.pem"))
    assert custom.verify == "/etc/ssl/gocd.pem"
    assert make_session(GoCDSettings(url="https://g/go", verify_tls=False)).verify is False


def test_credentials_in_the_url_are_dropped(clock, caplog):
    c = GoCDClient(settings(f"http://bob:{PASSWORD}@127.0.0.1:1/go"), clock=clock)
    assert c.base_url == "http://127.0.0.1:1/go"
    assert PASSWORD not in caplog.text


# --- reading ---------------------------------------------------------------------


def test_version_and_health(client):
    assert client.server_version() == "25.1.0"
    assert client.health() == "OK"


def test_scheduled_jobs_from_the_feed(sim, client):
    sim.schedule_jobs(
        "app",
        job="unit",
        resources=["docker", "Linux"],
        environment="staging",
        variables={"MAVEN_OPTS": "-Xmx1g"},
        secure_variables={"DEPLOY_TOKEN": "hunter2"},
    )
    sim.schedule_jobs("app", job="lint", count=2)
    jobs = client.scheduled_jobs()
    assert [j.locator for j in jobs] == [
        "app/1/build/1/unit",
        "app/2/build/1/lint-runInstance-1",
        "app/2/build/1/lint-runInstance-2",
    ]
    unit = jobs[0]
    assert unit == ScheduledJob(
        locator="app/1/build/1/unit",
        pipeline="app",
        pipeline_counter=1,
        stage="build",
        stage_counter=1,
        name="unit",
        environment="staging",
        resources=frozenset({"docker", "Linux"}),
        variables=(("MAVEN_OPTS", "-Xmx1g"), ("DEPLOY_TOKEN", "****")),
        url=f"{sim.url}/tab/build/detail/app/1/build/1/unit",
        job_id=None,
    )
    assert all(p == "/go/api/feed/jobs/scheduled.xml" for _, p, _ in sim.requests)


def test_scheduled_jobs_fall_back_to_the_old_endpoint_and_remember(make_sim, clock):
    sim = make_sim(version="20.5.0")
    sim.schedule_jobs("app", job="unit", resources=["docker"])
    client = client_for(sim, clock)
    (job,) = client.scheduled_jobs()
    assert job.job_id is not None
    assert job.url == f"{sim.url}/tab/build/detail/app/1/build/1/unit"
    assert [(p, s) for _, p, s in sim.requests] == [
        ("/go/api/feed/jobs/scheduled.xml", 404),
        ("/go/api/jobs/scheduled.xml", 200),
    ]
    client.scheduled_jobs()
    assert sim.requests[-1][1:] == ("/go/api/jobs/scheduled.xml", 200)
    assert len(sim.requests) == 3


@pytest.mark.parametrize(("version", "path"), [("20.7.0", "feed"), ("20.9.0", "feed"), ("26.1.0", "feed")])
def test_scheduled_jobs_prefer_the_feed(make_sim, clock, version, path):
    sim = make_sim(version=version)
    client_for(sim, clock).scheduled_jobs()
    assert [p for _, p, _ in sim.requests] == ["/go/api/feed/jobs/scheduled.xml"]


def test_old_endpoint_is_for_admins_only(make_sim, clock):
    sim = make_sim(version="20.5.0", admin=False)
    with pytest.raises(GoCDAuthError, match="only admins") as info:
        client_for(sim, clock).scheduled_jobs()
    assert info.value.status == 403


def test_deprecation_headers_are_warned_about_once(make_sim, clock, caplog):
    sim = make_sim(version="25.4.0")
    client = client_for(sim, clock)
    with caplog.at_level(logging.WARNING, logger="actors.gocd.client"):
        client.scheduled_jobs()
        client.scheduled_jobs()
    warnings = [r for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(warnings) == 1
    assert "v25.4.0" in warnings[0].getMessage()
    assert (
        warnings[0]
        .getMessage()
        .endswith(
            "gocd-mesos reads the backlog from the dashboard once the feed is gone ([gocd] backlog = auto)"
        )
    )


def test_elastic_profiles_are_read_from_pipeline_configs_and_cached(sim, client, clock):
    sim.schedule_jobs("k8s", job="pod", elastic_profile_id="small-pod")
    sim.schedule_jobs("app", job="unit", count=2)
    sim.schedule_jobs("app", job="lint", resources=["linux"])
    jobs = client.with_elastic_profiles(client.scheduled_jobs())
    assert [(j.locator, j.elastic_profile_id) for j in jobs] == [
        ("k8s/1/build/1/pod", "small-pod"),
        ("app/1/build/1/unit-runInstance-1", None),
        ("app/1/build/1/unit-runInstance-2", None),
        ("app/2/build/1/lint", None),
    ]
    config_reads = [p for _, p, _ in sim.requests if p.startswith("/go/api/admin/pipelines/")]
    assert config_reads == ["/go/api/admin/pipelines/k8s", "/go/api/admin/pipelines/app"]

    client.with_elastic_profiles(client.scheduled_jobs())
    assert len([p for _, p, _ in sim.requests if "/admin/pipelines/" in p]) == 2
    clock.advance(ELASTIC_CACHE_SECONDS + 1)
    client.with_elastic_profiles(client.scheduled_jobs())
    assert len([p for _, p, _ in sim.requests if "/admin/pipelines/" in p]) == 4


def test_elastic_profiles_of_a_templated_pipeline_come_from_its_template(sim, client, caplog):
    """A templated pipeline's config has "stages": null (gocd-api.md 10.1): its jobs are the template's."""
    sim.define_template(
        "pods", [{"name": "build", "jobs": [{"name": "pod", "elastic_profile_id": "small-pod"}]}]
    )
    sim.define_pipeline("svc", template="pods")
    sim.trigger_pipeline("svc")
    with caplog.at_level(logging.WARNING, logger="actors.gocd.client"):
        (job,) = client.with_elastic_profiles(client.scheduled_jobs())
    assert (job.locator, job.elastic_profile_id) == ("svc/1/build/1/pod", "small-pod")
    assert [r for r in caplog.records if "elastic" in r.getMessage()] == []
    reads = [p for _, p, _ in sim.requests if p.startswith("/go/api/admin/")]
    assert reads == ["/go/api/admin/pipelines/svc", "/go/api/admin/templates/pods"]


def test_elastic_profiles_forbidden_leave_none_and_log_once(make_sim, clock, caplog):
    sim = make_sim(admin=False)
    sim.schedule_jobs("k8s", elastic_profile_id="small-pod")
    sim.schedule_jobs("other", elastic_profile_id="small-pod")
    client = client_for(sim, clock)
    with caplog.at_level(logging.WARNING, logger="actors.gocd.client"):
        jobs = client.with_elastic_profiles(client.scheduled_jobs())
        clock.advance(ELASTIC_CACHE_SECONDS + 1)
        jobs = client.with_elastic_profiles(client.scheduled_jobs())
    assert [j.elastic_profile_id for j in jobs] == [None, None]
    assert len([r for r in caplog.records if "elastic" in r.getMessage()]) == 1


def test_elastic_profiles_survive_a_failing_server(sim, client):
    sim.schedule_jobs("k8s", elastic_profile_id="small-pod")
    jobs = client.scheduled_jobs()
    sim.inject_fault("status", status=500, path_prefix="/go/api/admin/")
    assert client.with_elastic_profiles(jobs) == jobs


def test_agents_v7(make_sim, clock):
    sim = make_sim(environments=["prod"])
    client = client_for(sim, clock)
    sim.add_agent("a1", uuid="u1", resources=["linux", "docker"], environments=["prod", "ghost"])
    sim.add_agent("k8s", uuid="u2", elastic_agent_id="ea-1", elastic_plugin_id="cd.go.k8s", free_space=None)
    agents = {a.uuid: a for a in client.agents()}
    assert agents["u1"] == GoAgent(
        uuid="u1",
        hostname="a1",
        config_state="Enabled",
        agent_state="Idle",
        build_state="Idle",
        ip_address="127.0.0.1",
        resources=("docker", "linux"),
        environments=("prod",),
        # GoCD defines no "ghost": origin unknown, ignored on the agent.
        undefined_environments=("ghost",),
        free_space=10 * 1024**3,
        sandbox="/go-working-dir",
        operating_system="Linux",
        agent_version="25.1.0",
    )
    assert agents["u2"].is_elastic
    assert agents["u2"].resources == ()
    assert agents["u2"].free_space is None
    assert client.agent("u1") == agents["u1"]


@pytest.mark.parametrize(
    ("version", "accepts"),
    [
        ("25.1.0", [7]),
        ("20.6.0", [7]),
        ("20.1.0", [7, 6]),
        ("19.9.0", [7, 6]),
        ("19.5.0", [7, 6, 5]),
        ("19.1.0", [7, 6, 5, 4]),
    ],
)
def test_agents_api_version_fallback_is_remembered(make_sim, clock, version, accepts):
    sim = make_sim(version=version, environments=["prod"])
    sim.add_agent("a1", uuid="u1", environments=["prod"])
    client = client_for(sim, clock)
    (agent,) = client.agents()
    assert agent.environments == ("prod",)
    assert len(sim.requests) == len(accepts)
    assert [s for _, _, s in sim.requests] == [404] * (len(accepts) - 1) + [200]
    client.agents()
    client.disable_agent("u1")
    assert [s for _, _, s in list(sim.requests)[len(accepts) :]] == [200, 200]


def test_no_agents_api_at_all_is_not_found(make_sim, clock):
    sim = make_sim(version="16.4.0")
    with pytest.raises(GoCDNotFound, match="none of the agents API versions") as info:
        client_for(sim, clock).agents()
    assert info.value.status == 404


def _finish(sim: GoCDSimulator, uuid: str, result: str = "Passed") -> None:
    """Agent ``uuid`` takes its next job and reports it done, as a real agent does."""
    locator = remoting(sim, uuid, "get_work").json()["work"]["locator"]
    remoting(sim, uuid, "report_completed", {"locator": locator, "result": result})


def test_completed_job_count(sim, client):
    sim.schedule_jobs("app", count=3)
    uuid = sim.add_agent("a1")
    assert client.completed_job_count(uuid) == 0
    _finish(sim, uuid)
    _finish(sim, uuid, result="Failed")
    remoting(sim, uuid, "get_work")  # the third job: building, not counted
    assert client.completed_job_count(uuid) == 2
    assert list(sim.requests)[-1] == ("GET", f"/go/api/agents/{uuid}/job_run_history", 200)


def test_completed_job_count_of_an_unknown_agent_is_not_found(sim, client):
    with pytest.raises(GoCDNotFound, match="Agent with uuid 'nope' was not found!") as info:
        client.completed_job_count("nope")
    assert (info.value.status, info.value.url) == (404, f"{sim.url}/api/agents/nope/job_run_history")


def test_completed_job_count_before_19_11_is_no_api_not_an_unknown_agent(make_sim, clock):
    sim = make_sim(version="19.10.0")
    uuid = sim.add_agent("a1")
    with pytest.raises(GoCDBadResponse, match=r"came in GoCD 19\.11\.0") as info:
        client_for(sim, clock).completed_job_count(uuid)
    assert info.value.status == 404


def test_completed_job_count_is_for_admins(make_sim, clock):
    sim = make_sim(admin=False)
    uuid = sim.add_agent("a1")
    with pytest.raises(GoCDAuthError, match="may not do this") as info:
        client_for(sim, clock).completed_job_count(uuid)
    assert info.value.status == 403


# --- changing ---------------------------------------------------------------------


def test_enable_disable_and_bulk(sim, client):
    sim.add_agent("a1", uuid="u1")
    sim.add_agent("a2", uuid="u2", config_state="Pending")
    assert client.disable_agent("u1").config_state == "Disabled"
    approved = client.enable_agent("u2")
    assert (approved.config_state, approved.agent_state) == ("Enabled", "Idle")
    assert (
        client.set_agents_config_state(["u1", "u2"], "Disabled") == "Updated agent(s) with uuid(s): [u1, u2]."
    )
    assert {a.config_state for a in client.agents()} == {"Disabled"}
    with pytest.raises(GoCDNotFound):
        client.set_agents_config_state(["u1", "nope"], "Enabled")
    with pytest.raises(ValueError):
        client.set_agents_config_state([], "Enabled")


def test_approving_a_pending_agent_can_rename_it(make_sim, clock):
    sim = make_sim(environments=["ci"])
    client = client_for(sim, clock)
    sim.add_agent("node-7", uuid="u3", config_state="Pending")
    approved = client.enable_agent(
        "u3", hostname="gocd-mesos-linux-0123abcd", resources=("linux", "docker"), environments=("ci",)
    )
    assert (approved.config_state, approved.hostname) == ("Enabled", "gocd-mesos-linux-0123abcd")
    assert (sorted(approved.resources), approved.environments) == (["docker", "linux"], ("ci",))
    assert [a.hostname for a in client.agents() if a.uuid == "u3"] == ["gocd-mesos-linux-0123abcd"]


def test_delete_rules(sim, client):
    (locator,) = sim.schedule_jobs("app")
    sim.add_agent("idle", uuid="u1")
    sim.add_agent("busy", uuid="u2", building=locator)
    with pytest.raises(GoCDUnprocessable, match="not in a disabled state") as info:
        client.delete_agent("u1")
    assert info.value.status == 422
    client.disable_agent("u1")
    client.disable_agent("u2")
    assert client.agent("u2").agent_state == "Building"
    with pytest.raises(GoCDUnprocessable) as info:
        client.delete_agent("u2")
    assert info.value.status == 422
    assert client.delete_agent("u1") == "Deleted 1 agent(s)."
    with pytest.raises(GoCDNotFound) as info:
        client.delete_agent("u1")
    assert (info.value.status, info.value.method) == (404, "DELETE")
    with pytest.raises(GoCDNotFound):
        client.agent("u1")
    with pytest.raises(GoCDNotFound):
        client.enable_agent("u1")


def test_delete_refused_is_406_before_19_9(make_sim, clock):
    sim = make_sim(version="19.8.0")
    sim.add_agent("a1", uuid="u1")
    with pytest.raises(GoCDUnprocessable, match="might not be disabled") as info:
        client_for(sim, clock).delete_agent("u1")
    assert info.value.status == 406


def test_bulk_delete(sim, client):
    sim.add_agent("a1", uuid="u1", config_state="Disabled")
    sim.add_agent("a2", uuid="u2")
    with pytest.raises(GoCDUnprocessable, match="Could not delete any agents"):
        client.delete_agents(["u1", "u2"])
    assert len(client.agents()) == 2
    client.disable_agent("u2")
    assert client.delete_agents(["u1", "u2"]) == "Deleted 2 agent(s)."
    assert client.agents() == ()


# --- errors ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused(clock):
    client = GoCDClient(settings(f"http://127.0.0.1:{_free_port()}/go"), clock=clock)
    with pytest.raises(GoCDConnectionError, match="connection refused") as info:
        client.agents()
    assert (info.value.method, info.value.status) == ("GET", None)
    assert info.value.url.endswith("/go/api/agents")


def test_timeout(sim, clock):
    client = client_for(sim, clock, timeout=0.2)
    sim.inject_fault("latency", delay_s=60)
    with pytest.raises(GoCDConnectionError, match=r"no answer within 0\.2s"):
        client.agents()


def test_connection_reset(sim, client):
    sim.inject_fault("reset")
    with pytest.raises(GoCDConnectionError):
        client.scheduled_jobs()


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors(sim, client, status):
    sim.inject_fault("status", status=status)
    with pytest.raises(GoCDServerError) as info:
        client.agents()
    assert info.value.status == status
    assert "Simulated fault" in str(info.value)


def test_maintenance_mode_refuses_changes(sim, client):
    sim.add_agent("a1", uuid="u1")
    sim.set_maintenance_mode(True)
    assert client.agents()
    with pytest.raises(GoCDServerError, match="maintenance mode") as info:
        client.disable_agent("u1")
    assert (info.value.status, info.value.method) == (503, "PATCH")


@pytest.mark.parametrize(
    ("call", "prefix"),
    [
        (lambda c: c.scheduled_jobs(), "/go/api/feed/"),
        (lambda c: c.agents(), "/go/api/agents"),
        (lambda c: c.server_version(), "/go/api/version"),
        (lambda c: c.health(), "/go/api/v1/health"),
    ],
)
def test_malformed_answers(sim, client, call, prefix):
    sim.schedule_jobs("app")
    sim.add_agent("a1")
    sim.inject_fault("malformed", path_prefix=prefix)
    with pytest.raises(GoCDBadResponse, match="malformed") as info:
        call(client)
    assert info.value.status == 200


def test_redirect_is_a_misconfiguration(sim, client):
    sim.inject_fault("status", status=302)
    with pytest.raises(GoCDBadResponse, match=r"redirected \(302\) to /go/auth/login") as info:
        client.agents()
    assert info.value.status == 302


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"username": "", "password": ""}, "anonymous request"),
        ({"password": "wrong"}, "user 'admin'"),
        ({"username": "", "password": "", "token": "nope"}, "access token"),
    ],
)
def test_unauthenticated(sim, clock, kw, expected):
    with pytest.raises(GoCDAuthError, match=expected) as info:
        client_for(sim, clock, **kw).agents()
    assert info.value.status == 401


def test_credentials_sent_while_security_is_off(make_sim, clock):
    sim = make_sim(username="", password="")
    with pytest.raises(GoCDAuthError, match="not required") as info:
        client_for(sim, clock).agents()
    assert info.value.status == 401
    assert client_for(sim, clock, username="", password="").agents() == ()


def test_bearer_token(make_sim, clock):
    sim = make_sim(username="", password="", token=TOKEN)
    client = client_for(sim, clock, username="", password="", token=TOKEN)
    assert client.agents() == ()


def test_non_admin_may_read_but_not_change(make_sim, clock):
    sim = make_sim(admin=False)
    sim.add_agent("a1", uuid="u1")
    client = client_for(sim, clock)
    assert client.agent("u1").uuid == "u1"
    with pytest.raises(GoCDAuthError, match="user 'admin' may not do this") as info:
        client.disable_agent("u1")
    assert info.value.status == 403


# --- answers no simulator gives: canned responses ------------------------------------


class _Canned(requests.adapters.BaseAdapter):
    def __init__(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        super().__init__()
        self.answer = (status, body, content_type)
        self.headers = headers or {}
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request, **kw):
        self.sent.append(request)
        self.kw = kw
        response = requests.Response()
        response.status_code, response._content, ctype = self.answer
        response.headers["Content-Type"] = ctype
        response.headers.update(self.headers)
        response.url = request.url
        response.request = request
        return response

    def close(self):
        pass


def _canned_client(clock, status, body, content_type, headers=None):
    adapter = _Canned(status, body, content_type, headers)
    session = requests.Session()
    session.mount("http://", adapter)
    return GoCDClient(settings("http://gocd.test/go"), clock=clock, session=session), adapter


def test_an_html_page_is_a_misconfiguration(clock):
    client, _ = _canned_client(clock, 200, b"<html><body>Sign in</body></html>", "text/html; charset=utf-8")
    with pytest.raises(GoCDBadResponse, match="HTML page"):
        client.agents()


def test_every_call_has_a_timeout_and_no_redirects(clock):
    client, adapter = _canned_client(clock, 200, b'{"_embedded": {"agents": []}}', "application/json")
    client.agents()
    assert adapter.kw["timeout"] == 5.0
    assert adapter.sent[0].headers["Accept"] == "application/vnd.go.cd.v7+json"


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, GoCDUnprocessable), (409, GoCDUnprocessable), (418, GoCDUnprocessable), (504, GoCDServerError)],
)
def test_other_statuses(clock, status, kind):
    client, _ = _canned_client(clock, status, b'{"message": "nope"}', "application/json")
    with pytest.raises(kind, match="nope"):
        client.server_version()


def test_completed_job_count_asks_for_the_smallest_page_in_v1(clock):
    client, adapter = _canned_client(
        clock,
        200,
        b'{"uuid": "u1", "jobs": [], "pagination": {"page_size": 10, "offset": 0, "total": 7}}',
        "application/vnd.go.cd.v1+json;charset=utf-8",
    )
    assert client.completed_job_count("u 1") == 7
    (sent,) = adapter.sent
    assert sent.url == "http://gocd.test/go/api/agents/u%201/job_run_history?page_size=10"
    assert sent.headers["Accept"] == "application/vnd.go.cd.v1+json"
    assert adapter.kw["timeout"] == 5.0


@pytest.mark.parametrize(
    ("status", "body", "kind", "match"),
    [
        (200, b'{"pagination": {"offset": 0}}', GoCDBadResponse, "no pagination.total"),
        (200, b'{"pagination": {"total": "7"}}', GoCDBadResponse, "no pagination.total"),
        (200, b'{"pagination": {"tot', GoCDBadResponse, "malformed JSON"),
        (400, b'{"message": "The query parameter `page_size` ..."}', GoCDUnprocessable, "page_size"),
        (500, b'{"error": "boom"}', GoCDServerError, "boom"),
    ],
)
def test_completed_job_count_bad_answers(clock, status, body, kind, match):
    client, _ = _canned_client(clock, status, body, "application/vnd.go.cd.v1+json;charset=utf-8")
    with pytest.raises(kind, match=match) as info:
        client.completed_job_count("u1")
    assert info.value.status == status


#: A JSON body nested deeper than json's C decoder recurses (found by bench/faults: it raised
#: RecursionError through the client, which the poller does not catch, and the daemon exited 1).
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("status", [200, 500])
@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.agents(),
        lambda c: c.agent("u1"),
        lambda c: c.disable_agent("u1"),
        lambda c: c.delete_agent("u1"),
        lambda c: c.completed_job_count("u1"),
        lambda c: c.server_version(),
    ],
)
def test_json_nested_too_deep_is_a_bad_answer_not_a_crash(clock, status, call):
    client, _ = _canned_client(clock, status, DEEP_JSON, "application/vnd.go.cd.v7+json;charset=utf-8")
    with pytest.raises(GoCDError) as info:
        call(client)
    assert info.value.status == status
    if status == 200:
        assert isinstance(info.value, GoCDBadResponse) and "nested too deep" in str(info.value)


def test_errors_are_one_family():
    for kind in (
        GoCDAuthError,
        GoCDBadResponse,
        GoCDConnectionError,
        GoCDNotFound,
        GoCDServerError,
        GoCDUnprocessable,
    ):
        assert issubclass(kind, GoCDError)


# --- the dashboard backlog's reads (canned: the simulator's are tested with the source) ------

V4 = "application/vnd.go.cd.v4+json;charset=utf-8"


def test_dashboard_sends_the_etag_back_exactly_and_304_is_not_modified(clock):
    client, adapter = _canned_client(clock, 304, b"", V4, {"ETag": '"abc--gzip"'})
    answer = client.dashboard('"abc--gzip"')
    assert (answer.status, answer.value, answer.etag) == (304, None, '"abc--gzip"')
    (sent,) = adapter.sent
    assert sent.url == "http://gocd.test/go/api/dashboard"
    assert sent.headers["Accept"] == "application/vnd.go.cd.v4+json"
    assert sent.headers["If-None-Match"] == '"abc--gzip"'


def test_dashboard_warming_up_is_202_without_data(clock):
    body = (
        b'{"message": "Dashboard is being processed, this may take a few seconds. Please check back later."}'
    )
    client, adapter = _canned_client(clock, 202, body, V4)
    answer = client.dashboard()
    assert (answer.status, answer.value) == (202, None)
    assert "If-None-Match" not in adapter.sent[0].headers


def test_dashboard_200_is_parsed_with_its_etag(clock):
    body = b'{"_embedded": {"pipeline_groups": [], "environments": [], "pipelines": [{"name": "app", "last_updated_timestamp": 5, "_embedded": {"instances": []}}]}}'
    client, _ = _canned_client(clock, 200, body, V4, {"ETag": '"e1"'})
    answer = client.dashboard()
    assert answer.status == 200 and answer.etag == '"e1"'
    assert [p.name for p in answer.value.pipelines] == ["app"]


def test_stage_jobs_quotes_the_path_and_asks_for_v3(clock):
    body = b'{"name": "b 1", "counter": 2, "jobs": [{"name": "unit", "state": "Scheduled", "scheduled_date": 7}]}'
    client, adapter = _canned_client(clock, 200, body, "application/vnd.go.cd.v3+json;charset=utf-8")
    (job,) = client.stage_jobs("my app", 12, "b 1", 2)
    assert (job.name, job.state, job.scheduled_date) == ("unit", "Scheduled", 7)
    (sent,) = adapter.sent
    assert sent.url == "http://gocd.test/go/api/stages/my%20app/12/b%201/2"
    assert sent.headers["Accept"] == "application/vnd.go.cd.v3+json"


def test_no_stage_api_is_not_a_missing_stage(clock):
    text = b"The url you are trying to reach appears to be incorrect."
    client, _ = _canned_client(clock, 404, text, "text/plain;charset=utf-8")
    with pytest.raises(GoCDBadResponse, match="no v3 stage instance API here"):
        client.stage_jobs("app", 1, "build", 1)


def test_stage_jobs_500_is_a_server_error(clock):
    client, _ = _canned_client(clock, 500, b'{"message": "Internal server error"}', "application/json")
    with pytest.raises(GoCDServerError) as info:
        client.stage_jobs("app", 1, "build", 1)
    assert info.value.status == 500


@pytest.mark.parametrize(
    ("call", "accept", "path"),
    [
        ("pipeline_config", "application/vnd.go.cd.v11+json", "/go/api/admin/pipelines/my%20app"),
        ("template_config", "application/vnd.go.cd.v7+json", "/go/api/admin/templates/my%20app"),
    ],
)
def test_configs_are_conditional(clock, call, accept, path):
    client, adapter = _canned_client(clock, 304, b"", "application/json", {"ETag": '"h1"'})
    answer = getattr(client, call)("my app", '"h1"')
    assert (answer.status, answer.value, answer.etag) == (304, None, '"h1"')
    (sent,) = adapter.sent
    assert sent.url == "http://gocd.test" + path
    assert (sent.headers["Accept"], sent.headers["If-None-Match"]) == (accept, '"h1"')


def test_a_config_forbidden_is_an_auth_error(clock):
    body = b'{"message": "You are not authorized to perform this action."}'
    client, _ = _canned_client(clock, 403, body, "application/vnd.go.cd.v11+json;charset=utf-8")
    with pytest.raises(GoCDAuthError, match="may not do this") as info:
        client.pipeline_config("app")
    assert info.value.status == 403


def test_no_config_api_at_all_is_not_a_missing_pipeline(clock):
    text = b"The url you are trying to reach appears to be incorrect."
    client, _ = _canned_client(clock, 404, text, "text/plain;charset=utf-8")
    with pytest.raises(GoCDBadResponse, match=r"serves no v11 of this API here \(it came in GoCD 20\.8\.0"):
        client.pipeline_config("app")
    missing = b'{"message": "Pipeline with name \'app\' was not found!"}'
    client, _ = _canned_client(clock, 404, missing, "application/vnd.go.cd.v11+json;charset=utf-8")
    with pytest.raises(GoCDNotFound, match="was not found"):
        client.pipeline_config("app")
