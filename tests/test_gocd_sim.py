"""The GoCD simulator's quirks, matching, registration, life cycle and controls, over HTTP."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest
import requests

from actors.clock import ManualClock
from actors.sim.gocd import (
    BAD_CREDENTIALS,
    BAD_OFFSET,
    BAD_PAGE_SIZE,
    BAD_SORT_COLUMN,
    BAD_SORT_ORDER,
    DELETE_REFUSED_MANY,
    DELETE_REFUSED_ONE,
    NOT_FOUND_TEXT,
    GoCDSimulator,
)
from actors.sim.gocd_agent import SimAgent, work_delays
from tests.conftest import join_request_handlers, reset_mid_request
from tests.gocd_support import PASSWORD, V7, advance_until, job_states, no_secrets_in_logs, raw, remoting  # noqa: F401 (autouse fixture)

KEY = "the-auto-register-key"
AUTH = ("admin", PASSWORD)


@pytest.fixture
def make_sim(clock: ManualClock):
    sims: list[GoCDSimulator] = []

    def make(**kw) -> GoCDSimulator:
        kw.setdefault("auto_register_key", KEY)
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


@pytest.fixture
def agents(clock):
    started: list[SimAgent] = []

    def make(sim: GoCDSimulator, hostname: str, **kw) -> SimAgent:
        agent = SimAgent(sim.url, clock=clock, hostname=hostname, **kw)
        agent.start()
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.stop()
    for agent in started:
        agent.join(5)


# --- the Accept rule, auth, maintenance -----------------------------------------------


@pytest.mark.parametrize(
    ("accept", "status", "ctype"),
    [
        (V7, 200, "application/vnd.go.cd.v7+json;charset=utf-8"),
        ("application/vnd.go.cd+json", 200, "application/vnd.go.cd.v7+json;charset=utf-8"),
        ("*/*", 404, "text/plain;charset=utf-8"),
        (None, 404, "text/plain;charset=utf-8"),
        ("application/vnd.go.cd.v7+json, */*", 404, "text/plain;charset=utf-8"),
        ("application/vnd.go.cd.v7+json; charset=utf-8", 404, "text/plain;charset=utf-8"),
        ("application/json", 404, "text/plain;charset=utf-8"),
        ("application/vnd.go.cd.v4+json", 404, "text/html;charset=utf-8"),
    ],
)
def test_agents_need_the_exact_accept_header(sim, accept, status, ctype):
    response = raw("GET", f"{sim.url}/api/agents", accept=accept)
    assert response.status_code == status
    assert response.headers["Content-Type"] == ctype
    if status == 200:
        assert response.json()["_embedded"] == {"agents": []}
    elif ctype.startswith("text/plain"):
        assert response.text == NOT_FOUND_TEXT


@pytest.mark.parametrize(
    ("version", "served"),
    [
        ("19.1.0", {4}),
        ("19.5.0", {4, 5}),
        ("19.9.0", {6}),
        ("20.5.0", {6, 7}),
        ("20.8.0", {7}),
        ("26.1.0", {7}),
    ],
)
def test_agents_api_versions_per_gocd_version(make_sim, version, served):
    sim = make_sim(version=version)
    sim.add_agent("a1", environments=["prod"])
    for n in (4, 5, 6, 7):
        response = raw("GET", f"{sim.url}/api/agents", accept=f"application/vnd.go.cd.v{n}+json")
        assert (response.status_code == 200) == (n in served), n
        if response.status_code == 200:
            (agent,) = response.json()["_embedded"]["agents"]
            assert ("agent_version" in agent) == (n == 7)
            assert agent["environments"] == (
                ["prod"] if n == 4 else [{"name": "prod", "origin": {"type": "unknown"}}]
            )


@pytest.mark.parametrize(
    ("version", "feed", "old"),
    [
        ("20.5.0", 404, 200),
        ("20.6.0", 200, 200),
        ("20.8.0", 200, 200),
        ("20.9.0", 200, 404),
        ("25.1.0", 200, 404),
    ],
)
def test_scheduled_jobs_endpoints_per_version(make_sim, version, feed, old):
    sim = make_sim(version=version)
    assert raw("GET", f"{sim.url}/api/feed/jobs/scheduled.xml", accept="application/xml").status_code == feed
    assert raw("GET", f"{sim.url}/api/jobs/scheduled.xml", accept="application/xml").status_code == old


def test_feed_shape_and_deprecation_headers(make_sim):
    sim = make_sim(version="25.4.0")
    empty = raw("GET", f"{sim.url}/api/feed/jobs/scheduled.xml", accept=None)
    assert empty.text == '<?xml version="1.0" encoding="UTF-8"?>\n<scheduledJobs/>\n'
    assert empty.headers["X-GoCD-API-Deprecated-In"] == "v25.4.0"
    assert empty.headers["X-GoCD-API-Removal-In"] == "v25.1.0"
    assert empty.headers["Warning"].startswith("299 GoCD/v25.4.0 ")
    sim.schedule_jobs("app", job="unit", resources=["docker"], environment="staging")
    text = raw("GET", f"{sim.url}/api/feed/jobs/scheduled.xml", accept="application/xml").text
    assert (
        f'<link rel="alternate" href="{sim.url}/tab/build/detail/app/1/build/1/unit" title="unit Job Detail"'
        in text
    )
    assert "<resource><![CDATA[docker]]></resource>" in text
    assert ' id="' not in text
    assert raw("GET", f"{sim.url}/api/feed/jobs/scheduled.xml", accept=V7).status_code == 404
    assert (
        "X-GoCD-API-Deprecated-In" not in raw("GET", f"{make_sim().url}/api/feed/jobs/scheduled.xml").headers
    )


def test_unauthenticated_answers(make_sim):
    sim = make_sim(username="admin", password=PASSWORD)
    response = raw("GET", f"{sim.url}/api/agents")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="GoCD"'
    assert response.json() == {"message": "You are not authenticated!"}
    assert response.headers["Content-Type"] == "application/vnd.go.cd.v7+json;charset=utf-8"
    ajax = raw("GET", f"{sim.url}/api/agents", headers={"X-Requested-With": "XMLHttpRequest"})
    assert "WWW-Authenticate" not in ajax.headers
    wrong = raw("GET", f"{sim.url}/api/agents", auth=("admin", "nope"))
    assert (wrong.status_code, wrong.json()["message"]) == (401, BAD_CREDENTIALS)
    xml = raw("GET", f"{sim.url}/api/feed/jobs/scheduled.xml", accept="application/xml")
    assert xml.status_code == 401
    assert xml.text == "<access-denied>\n  <message>You are not authenticated!</message>\n</access-denied>\n"
    # Public endpoints need no credentials.
    assert raw("GET", f"{sim.url}/api/v1/health", accept=None).json() == {"health": "OK"}
    assert (
        raw("GET", f"{sim.url}/api/version", accept="application/vnd.go.cd.v1+json").json()["version"]
        == "25.1.0"
    )
    assert raw("GET", f"{sim.url}/api/version", accept=V7).status_code == 404


def test_credentials_while_security_is_off(sim):
    response = raw("GET", f"{sim.url}/api/agents", auth=("admin", PASSWORD))
    assert response.status_code == 401
    assert "since security has been disabled" in response.json()["message"]


def test_non_admin_gets_403_on_changes(make_sim):
    sim = make_sim(username="viewer", password=PASSWORD, admin=False)
    uuid = sim.add_agent("a1")
    auth = ("viewer", PASSWORD)
    assert raw("GET", f"{sim.url}/api/agents/{uuid}", auth=auth).status_code == 200
    for method in ("PATCH", "DELETE"):
        response = raw(
            method, f"{sim.url}/api/agents/{uuid}", auth=auth, json={"agent_config_state": "Disabled"}
        )
        assert response.status_code == 403
        assert response.json() == {"message": "You are not authorized to perform this action."}


def test_maintenance_mode(sim):
    uuid = sim.add_agent("a1")
    sim.set_maintenance_mode(True)
    assert raw("GET", f"{sim.url}/api/agents").status_code == 200
    response = raw("PATCH", f"{sim.url}/api/agents/{uuid}", json={"agent_config_state": "Disabled"})
    assert response.status_code == 503
    assert response.text == '{"message":"Server is in maintenance mode, please try later."}'
    sim.schedule_jobs("app")
    assert remoting(sim, uuid, "get_work").json() == {"work": None}
    sim.set_maintenance_mode(False)
    assert remoting(sim, uuid, "get_work").json()["work"]["locator"] == "app/1/build/1/job"


# --- PATCH and DELETE rules ---------------------------------------------------------------


def test_patch_rules(sim):
    uuid = sim.add_agent("a1")
    pending = sim.add_agent("p1", config_state="Pending")
    url = f"{sim.url}/api/agents"

    def patch(target, body=None, data=None):
        return raw("PATCH", f"{url}/{target}", json=body, data=data)

    assert patch(uuid, {}).json()["message"].startswith("Bad Request. No operation is specified")
    bad = patch(uuid, {"agent_config_state": "Sleeping"})
    assert (bad.status_code, bad.json()["message"]) == (
        422,
        "The value of `agent_config_state` can be one of `Enabled`, `Disabled` or null.",
    )
    assert patch(pending, {"resources": ["x"]}).json() == {
        "message": f"Pending agent [{pending}] must be explicitly enabled or disabled when performing any operation on it."
    }
    invalid = patch(uuid, data=b"{nope")
    assert invalid.status_code == 400
    assert invalid.json()["error"].startswith("Payload data is not valid JSON")
    missing = patch("nope", {"agent_config_state": "Enabled"})
    assert (missing.status_code, missing.json()) == (
        404,
        {"message": "Agent with uuid 'nope' was not found!"},
    )
    ok = patch(uuid, {"agent_config_state": "disabled", "resources": "linux, docker"})
    assert ok.status_code == 200
    assert (ok.json()["agent_config_state"], ok.json()["resources"]) == ("Disabled", ["docker", "linux"])
    approved = patch(pending, {"agent_config_state": "Enabled"}).json()
    assert (approved["agent_config_state"], approved["agent_state"]) == ("Enabled", "Idle")


def test_bulk_patch_rules(sim):
    a = sim.add_agent("a1")
    p = sim.add_agent("p1", config_state="Pending")
    url = f"{sim.url}/api/agents"
    assert raw("PATCH", url, json={"agent_config_state": "Disabled"}).status_code == 422
    missing = raw("PATCH", url, json={"uuids": [a, "x", "y"], "agent_config_state": "Disabled"})
    assert (missing.status_code, missing.json()["message"]) == (
        404,
        "Agents with uuids [x, y] were not found!",
    )
    ops = {"environments": {"add": ["prod"]}}
    assert raw("PATCH", url, json={"uuids": [a, p], "operations": ops}).status_code == 400
    done = raw("PATCH", url, json={"uuids": [a, p], "operations": ops, "agent_config_state": "Disabled"})
    assert done.json() == {"message": f"Updated agent(s) with uuid(s): [{a}, {p}]."}
    assert {(x["config_state"], tuple(x["environments"])) for x in sim.state()["agents"]} == {
        ("Disabled", ("prod",))
    }


def test_delete_rules(sim):
    (locator,) = sim.schedule_jobs("app")
    enabled = sim.add_agent("enabled")
    building = sim.add_agent("building", config_state="Disabled", building=locator)
    pending = sim.add_agent("pending", config_state="Pending")
    idle = sim.add_agent("idle", config_state="Disabled")
    url = f"{sim.url}/api/agents"
    for uuid in (enabled, building, pending):
        response = raw("DELETE", f"{url}/{uuid}")
        assert (response.status_code, response.json()["message"]) == (422, DELETE_REFUSED_ONE)
    bulk = raw("DELETE", url, json={"uuids": [idle, building]})
    assert (bulk.status_code, bulk.json()["message"]) == (422, DELETE_REFUSED_MANY)
    assert raw("DELETE", url, json={"uuids": []}).json() == {
        "message": "Bad Request. No agent UUIDs were supplied to delete."
    }
    assert raw("DELETE", f"{url}/{idle}").json() == {"message": "Deleted 1 agent(s)."}
    assert raw("DELETE", f"{url}/{idle}").status_code == 404
    # A disabled agent that lost contact may go, even mid-build.
    sim.clock.advance(sim.agent_timeout + 1)
    assert raw("DELETE", f"{url}/{building}").status_code == 200


def test_delete_refused_with_406_before_19_9(make_sim):
    sim = make_sim(version="19.8.0")
    uuid = sim.add_agent("a1")
    response = raw("DELETE", f"{sim.url}/api/agents/{uuid}", accept="application/vnd.go.cd.v5+json")
    assert response.status_code == 406
    assert response.json() == {
        "message": "Failed to delete 1 agent(s), as agent(s) might not be disabled or are still building."
    }


# --- registration handshake ------------------------------------------------------------


def _form(sim, uuid, token, **over):
    form = {
        "hostname": "box",
        "uuid": uuid,
        "location": "/go",
        "usablespace": "1000",
        "operatingSystem": "Linux",
        "agentAutoRegisterKey": "",
        "agentAutoRegisterResources": "",
        "agentAutoRegisterEnvironments": "",
        "agentAutoRegisterHostname": "",
        "elasticAgentId": "",
        "elasticPluginId": "",
        "token": token,
    }
    form.update(over)
    return raw("POST", f"{sim.url}/admin/agent", accept=None, data=form)


def test_token_endpoint(sim):
    url = f"{sim.url}/admin/agent/token"
    token = raw("GET", url, accept=None, params={"uuid": "u1"})
    assert (token.status_code, token.text) == (200, sim.agent_token("u1"))
    assert raw("GET", url, accept=None, params={"uuid": "u1"}).text == token.text  # deterministic
    assert raw("GET", url, accept=None, params={"uuid": " "}).text == "UUID cannot be blank."
    assert raw("GET", url, accept=None).status_code == 400
    sim.add_agent("a", uuid="u2")
    issued = raw("GET", url, accept=None, params={"uuid": "u2"})
    assert (issued.status_code, issued.text) == (409, "A token has already been issued for this agent.")


def test_registration_post_rules(sim):
    token = sim.agent_token("u1")
    assert _form(sim, "u1", "forged").text == "Not a valid token."
    assert _form(sim, "u1", "forged").status_code == 403
    elastic = _form(sim, "u1", token, elasticAgentId="e1", elasticPluginId="p1", agentAutoRegisterKey=KEY)
    assert elastic.status_code == 422 and elastic.text.startswith("Elastic agent registration requires")
    half = _form(sim, "u1", token, elasticAgentId="e1")
    assert (half.status_code, half.text) == (
        422,
        "Elastic agents must submit both elasticAgentId and elasticPluginId.",
    )
    space = _form(sim, "u1", token, usablespace="lots")
    assert space.status_code == 422 and space.text.startswith(
        "Error occurred during agent registration process: "
    )
    missing = raw("POST", f"{sim.url}/admin/agent", accept=None, data={"uuid": "u1", "token": token})
    assert missing.status_code == 400

    pending = _form(sim, "u1", token, agentAutoRegisterKey="wrong", agentAutoRegisterHostname="task-1")
    assert (pending.status_code, pending.text, pending.headers["Content-Type"]) == (
        202,
        "",
        "application/json",
    )
    (agent,) = sim.state()["agents"]
    assert (agent["hostname"], agent["config_state"], agent["agent_state"], agent["build_state"]) == (
        "box",
        "Pending",
        "Unknown",
        "Unknown",
    )
    registered = _form(
        sim,
        "u2",
        sim.agent_token("u2"),
        agentAutoRegisterKey=KEY,
        agentAutoRegisterHostname="task-2",
        agentAutoRegisterResources="linux, java",
        agentAutoRegisterEnvironments="uat",
    )
    assert registered.status_code == 200
    agent = next(a for a in sim.state()["agents"] if a["uuid"] == "u2")
    assert agent == {
        "uuid": "u2",
        "hostname": "task-2",
        "config_state": "Enabled",
        "agent_state": "Idle",
        "build_state": "Idle",
        "resources": ["java", "linux"],
        "environments": ["uat"],
        "registered_at": 1000.0,
    }
    # Registered is registered, whatever key comes next.
    assert _form(sim, "u2", sim.agent_token("u2")).status_code == 200


def test_sim_agent_registers_with_the_right_key(sim, agents):
    agent = agents(sim, "host-1", auto_register_key=KEY, resources="linux", auto_register_hostname="task-1")
    assert agent.registered.wait(10)
    assert agent.state == "registered"
    assert sim.wait_for(
        lambda s: (
            [(a["hostname"], a["config_state"], a["agent_state"]) for a in s["agents"]]
            == [("task-1", "Enabled", "Idle")]
        )
    )
    response = raw("GET", f"{sim.url}/api/agents/{agent.uuid}").json()
    assert response["resources"] == ["linux"]
    assert response["sandbox"] == "/go-working-dir"


def test_sim_agent_without_the_key_stays_pending_until_approved(sim, agents, clock):
    agent = agents(sim, "host-1", auto_register_key="wrong")
    assert sim.wait_for(lambda s: [a["config_state"] for a in s["agents"]] == ["Pending"])
    assert sim.state()["agents"][0]["registered_at"] is None  # not registered while Pending
    assert remoting(sim, agent.uuid, "get_work").status_code == 403
    clock.advance(7)
    raw("PATCH", f"{sim.url}/api/agents/{agent.uuid}", json={"agent_config_state": "Enabled"})
    # Registered when approved (the benchmark times agents to registration by this).
    assert sim.state()["agents"][0]["registered_at"] == clock.now()
    while not agent.registered.is_set():  # its next POST, 5 s on, gets 200
        clock.advance(5)
        agent.registered.wait(1)
    assert agent.state == "registered"


def test_pending_agents_are_dropped_after_silence(sim, agents, clock):
    agent = agents(sim, "host-1")
    assert sim.wait_for(lambda s: len(s["agents"]) == 1)
    agent.stop()
    agent.join(5)
    clock.advance(sim.agent_timeout - 1)
    assert len(sim.state()["agents"]) == 1
    clock.advance(2)
    assert sim.state()["agents"] == []


def test_lost_contact_after_silence(sim, agents, clock):
    agent = agents(sim, "host-1", auto_register_key=KEY)
    assert agent.registered.wait(10)
    agent.stop()
    agent.join(5)
    assert agent.state == "stopped"
    clock.advance(sim.agent_timeout + 1)
    listed = raw("GET", f"{sim.url}/api/agents/{agent.uuid}").json()
    assert (listed["agent_state"], listed["build_state"]) == ("LostContact", "Unknown")


def test_remoting_auth_rules(sim):
    uuid = sim.add_agent("a1", config_state="Disabled")
    pending = sim.add_agent("p1", config_state="Pending")
    url = f"{sim.url}/remoting/api/agent/ping"
    for headers in (
        {},
        {"X-Agent-GUID": uuid},
        {"Authorization": sim.agent_token(uuid)},
        {"X-Agent-GUID": uuid, "Authorization": "wrong"},
        {"X-Agent-GUID": pending, "Authorization": sim.agent_token(pending)},
    ):
        response = raw("POST", url, accept="application/vnd.go.cd+json", headers=headers, json={})
        assert (response.status_code, response.content) == (403, b""), headers
    assert remoting(sim, uuid, "ping").status_code == 200
    raw("DELETE", f"{sim.url}/api/agents/{uuid}")
    assert remoting(sim, uuid, "ping").status_code == 403


# --- matching and the job life cycle -------------------------------------------------------


def test_assignment_follows_gocds_rules(sim):
    sim.schedule_jobs("elastic", elastic_profile_id="k8s")
    sim.schedule_jobs("prod-deploy", environment="Prod")
    sim.schedule_jobs("docker-build", resources=["Docker"])
    sim.schedule_jobs("plain")
    plain = sim.add_agent("plain")
    docker = sim.add_agent("docker", resources=["docker", "linux"])
    prod = sim.add_agent("prod", environments=["prod"])
    elastic = sim.add_agent("ea", elastic_agent_id="e1", elastic_plugin_id="p1")
    disabled = sim.add_agent("disabled", config_state="Disabled", resources=["docker"])

    def work(uuid):
        return (remoting(sim, uuid, "get_work").json()["work"] or {}).get("locator")

    assert work(disabled) is None
    assert work(elastic) is None
    assert work(prod) == "prod-deploy/1/build/1/job"
    assert work(docker) == "docker-build/1/build/1/job"  # resources are a superset, case-insensitively
    assert work(plain) == "plain/1/build/1/job"
    assert job_states(sim.state())["elastic/1/build/1/job"] == "scheduled"
    assert work(plain) is None  # already building
    remoting(sim, plain, "report_completed", {"locator": "plain/1/build/1/job", "result": "Passed"})
    assert job_states(sim.state())["plain/1/build/1/job"] == "completed"


@pytest.mark.parametrize(("defined", "gets_work"), [((), True), (("qa",), False)])
def test_an_environment_no_one_defined_does_not_hold_an_agent_back(make_sim, defined, gets_work):
    # GoCD joins an agent only to environments that exist (EnvironmentConfigService); the
    # agents API shows the other names with origin "unknown".
    sim = make_sim(environments=defined)
    (locator,) = sim.schedule_jobs("plain")
    uuid = sim.add_agent("qa-box", environments=["QA"])
    work = remoting(sim, uuid, "get_work").json()["work"]
    assert (work is not None and work["locator"] == locator) is gets_work


def test_a_disabled_agent_finishes_its_job_and_takes_no_new_one(sim):
    first, second = sim.schedule_jobs("app", count=2)
    uuid = sim.add_agent("a1")
    assert remoting(sim, uuid, "get_work").json()["work"]["locator"] == first
    raw("PATCH", f"{sim.url}/api/agents/{uuid}", json={"agent_config_state": "Disabled"})
    listed = raw("GET", f"{sim.url}/api/agents/{uuid}").json()
    assert (listed["agent_config_state"], listed["agent_state"]) == ("Disabled", "Building")
    assert listed["build_details"]["job_name"] == "job-runInstance-1"
    remoting(sim, uuid, "report_completed", {"locator": first, "result": "Passed"})
    assert remoting(sim, uuid, "get_work").json() == {"work": None}
    assert job_states(sim.state()) == {first: "completed", second: "scheduled"}


def test_sim_agent_runs_jobs_for_their_duration(sim, agents, clock):
    sim.schedule_jobs("app", resources=["linux"], duration_s=30)
    agent = agents(sim, "host-1", auto_register_key=KEY, resources="linux")
    assert agent.registered.wait(10)
    assert sim.wait_for(lambda s: any(p.endswith("/ping") for _, p, _ in sim.requests))  # its loop has begun
    advance_until(clock, sim, lambda s: job_states(s)["app/1/build/1/job"] == "building", step=1)
    (job,) = sim.state()["jobs"]
    assert job["agent_uuid"] == agent.uuid
    clock.advance(29)
    assert job_states(sim.state())["app/1/build/1/job"] == "building"
    advance_until(clock, sim, lambda s: job_states(s)["app/1/build/1/job"] == "completed", step=1)
    (job,) = sim.state()["jobs"]
    assert job["completed_at"] - job["assigned_at"] >= 30
    assert agent.completed == ["app/1/build/1/job"]


def test_sim_agent_backs_off_like_the_real_agent():
    assert list(itertools.islice(work_delays(), 8)) == [1.0, 1.5, 2.25, 3.375, 5.0625, 7.59375, 10.0, 10.0]


def test_sim_agent_polls_for_work_and_pings(sim, agents, clock):
    agent = agents(sim, "host-1", auto_register_key=KEY, ping_interval=5.0)

    def calls(op):
        return sum(1 for _, p, _ in sim.requests if p.endswith(f"/{op}"))

    assert agent.registered.wait(10)
    assert sim.wait_for(lambda s: calls("ping") == 1)
    advance_until(clock, sim, lambda s: calls("get_work") >= 1, step=1)
    advance_until(clock, sim, lambda s: calls("ping") >= 2, step=5)


def test_sim_agent_stops_promptly(sim, agents):
    agent = agents(sim, "host-1", auto_register_key=KEY)
    assert agent.registered.wait(10)
    agent.stop()
    agent.join(5)
    assert agent.state == "stopped"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://gocd:8153/go", True),
        ("https://gocd:8154/go/", True),
        ("http://gocd:8153", False),
        ("http://gocd:8153/gocd", False),
        ("ftp://gocd/go", False),
        ("gocd:8153/go", False),
        ("", False),
    ],
)
def test_sim_agent_from_environment(clock, url, ok):
    env = {
        "GO_SERVER_URL": url,
        "AGENT_AUTO_REGISTER_KEY": KEY,
        "AGENT_AUTO_REGISTER_RESOURCES": "linux,docker",
        "AGENT_AUTO_REGISTER_ENVIRONMENTS": "prod",
        "AGENT_AUTO_REGISTER_HOSTNAME": "task-7",
    }
    if not ok:
        with pytest.raises(ValueError, match="GO_SERVER_URL"):
            SimAgent.from_environment(env, clock=clock, hostname="h")
        return
    agent = SimAgent.from_environment(env, clock=clock, hostname="h", ping_interval=2.0)
    assert (agent.state, agent.ping_interval) == ("starting", 2.0)
    assert agent._autoregister == {
        "agentAutoRegisterKey": KEY,
        "agentAutoRegisterResources": "linux,docker",
        "agentAutoRegisterEnvironments": "prod",
        "agentAutoRegisterHostname": "task-7",
    }


# --- the agent job run history -------------------------------------------------------------

V1 = "application/vnd.go.cd.v1+json"


def history(sim: GoCDSimulator, uuid: str, query: str = "", **kw) -> requests.Response:
    kw.setdefault("accept", V1)
    return raw("GET", f"{sim.url}/api/agents/{uuid}/job_run_history{query}", **kw)


def run_job(sim, clock, uuid: str, locator: str, seconds: float, result: str = "Passed") -> None:
    """Agent ``uuid`` takes ``locator`` (its first job), builds it for ``seconds`` and reports the result."""
    assert remoting(sim, uuid, "get_work").json()["work"]["locator"] == locator
    clock.advance(1)
    remoting(sim, uuid, "report_current_status", {"locator": locator, "job_state": "Building"})
    clock.advance(seconds - 1)
    remoting(sim, uuid, "report_completing", {"locator": locator, "job_state": "Completing"})
    remoting(sim, uuid, "report_completed", {"locator": locator, "result": result})


def test_job_run_history_lists_the_completed_jobs_of_the_agent(sim, clock):
    uuid = sim.add_agent("a1", uuid="u1")
    other = sim.add_agent("a2", uuid="u2")
    (unit,) = sim.schedule_jobs("app", job="unit")
    clock.advance(4)
    run_job(sim, clock, uuid, unit, 30, result="Failed")
    (theirs,) = sim.schedule_jobs("app", job="lint")
    run_job(sim, clock, other, theirs, 10)
    (running,) = sim.schedule_jobs("app", job="deploy")
    assert remoting(sim, uuid, "get_work").json()["work"]["locator"] == running

    response = history(sim, uuid)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/vnd.go.cd.v1+json;charset=utf-8"
    # ManualClock's wall time starts at 1_700_000_000 (2023-11-14T22:13:20Z) for clock time 1000.
    assert response.json() == {
        "_links": {
            "doc": {"href": "https://api.gocd.org/25.1.0/#agent-job-run-history"},
            "self": {"href": f"{sim.url}/api/agents/u1/job_run_history"},
            "find": {"href": f"{sim.url}/api/agents/:uuid"},
        },
        "uuid": "u1",
        "jobs": [
            {
                "job_state_transitions": [
                    {"state_change_time": "2023-11-14T22:13:20Z", "state": "Scheduled"},
                    {"state_change_time": "2023-11-14T22:13:24Z", "state": "Assigned"},
                    {"state_change_time": "2023-11-14T22:13:25Z", "state": "Building"},
                    {"state_change_time": "2023-11-14T22:13:54Z", "state": "Completing"},
                    {"state_change_time": "2023-11-14T22:13:54Z", "state": "Completed"},
                ],
                "job_name": "unit",
                "stage_name": "build",
                "stage_counter": "1",
                "pipeline_name": "app",
                "pipeline_counter": 1,
                "result": "Failed",
                "rerun": False,
            }
        ],
        "pagination": {"page_size": 50, "offset": 0, "total": 1},
    }
    assert history(sim, other).json()["pagination"]["total"] == 1
    assert history(sim, sim.add_agent("a3")).json()["jobs"] == []


def test_job_run_history_pages_and_sorts(sim, clock):
    uuid = sim.add_agent("a1")
    for n in range(12):
        (locator,) = sim.schedule_jobs(f"p{n:02d}")
        run_job(sim, clock, uuid, locator, seconds=100 - n, result="Failed" if n % 3 else "Passed")

    def names(query: str) -> list[str]:
        answer = history(sim, uuid, query).json()
        assert answer["pagination"]["total"] == 12
        return [job["pipeline_name"] for job in answer["jobs"]]

    newest_first = [f"p{n:02d}" for n in reversed(range(12))]
    assert names("") == newest_first
    assert names("?page_size=10") == newest_first[:10]
    assert names("?page_size=10&offset=10") == newest_first[10:]
    assert names("?offset=3&page_size=10&sort_order=ASC") == list(reversed(newest_first))[3:]
    assert names("?sort_column=duration&sort_order=ASC")[:2] == ["p11", "p10"]
    assert names("?sort_column=pipeline&sort_order=ASC") == sorted(newest_first)
    by_result = names("?sort_column=result&sort_order=ASC")
    assert by_result[:8] == ["p01", "p02", "p04", "p05", "p07", "p08", "p10", "p11"]  # then by build id
    past_the_end = history(sim, uuid, "?offset=40&page_size=%2B10").json()
    assert (past_the_end["jobs"], past_the_end["pagination"]) == (
        [],
        {"page_size": 10, "offset": 40, "total": 12},
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?page_size=9", BAD_PAGE_SIZE),
        ("?page_size=101", BAD_PAGE_SIZE),
        ("?page_size=", BAD_PAGE_SIZE),
        ("?page_size=ten", BAD_PAGE_SIZE),
        ("?page_size=99999999999", BAD_PAGE_SIZE),
        ("?page_size=+10", BAD_PAGE_SIZE),  # "+" is a space in a query, and parseInt takes no spaces
        ("?offset=-1", BAD_OFFSET),
        ("?offset=1.5&page_size=5", BAD_OFFSET),  # offset is read first
        ("?sort_column=Completed", BAD_SORT_COLUMN),
        ("?sort_column=", BAD_SORT_COLUMN),
        ("?sort_order=desc", BAD_SORT_ORDER),
    ],
)
def test_job_run_history_refuses_bad_parameters_before_looking_up_the_agent(sim, query, message):
    for uuid in (sim.add_agent("a1"), "no-such-agent"):
        response = history(sim, uuid, query)
        assert response.status_code == 400
        assert response.json() == {"message": message}


def test_job_run_history_of_an_unknown_or_deleted_agent_is_404(sim):
    uuid = sim.add_agent("a1", config_state="Disabled")
    assert history(sim, uuid).status_code == 200
    assert raw("DELETE", f"{sim.url}/api/agents/{uuid}").status_code == 200
    response = history(sim, uuid)
    assert response.status_code == 404
    assert response.json() == {"message": f"Agent with uuid '{uuid}' was not found!"}
    assert response.headers["Content-Type"] == "application/vnd.go.cd.v1+json;charset=utf-8"


@pytest.mark.parametrize(
    ("accept", "status", "ctype"),
    [
        (V1, 200, "application/vnd.go.cd.v1+json;charset=utf-8"),
        ("application/vnd.go.cd+json", 200, "application/vnd.go.cd.v1+json;charset=utf-8"),
        (V7, 404, "text/html;charset=utf-8"),
        ("*/*", 404, "text/plain;charset=utf-8"),
        (None, 404, "text/plain;charset=utf-8"),
        ("application/vnd.go.cd.v1+json; charset=utf-8", 404, "text/plain;charset=utf-8"),
    ],
)
def test_job_run_history_needs_the_exact_accept_header(sim, accept, status, ctype):
    response = history(sim, sim.add_agent("a1"), accept=accept)
    assert (response.status_code, response.headers["Content-Type"]) == (status, ctype)
    if ctype.startswith("text/plain"):
        assert response.text == NOT_FOUND_TEXT


@pytest.mark.parametrize(("version", "status"), [("19.10.0", 404), ("19.11.0", 200), ("26.1.0", 200)])
def test_job_run_history_came_in_19_11(make_sim, version, status):
    sim = make_sim(version=version)
    response = history(sim, sim.add_agent("a1"))
    assert response.status_code == status
    if status == 404:
        assert response.headers["Content-Type"] == "text/html;charset=utf-8"


def test_job_run_history_is_for_admins(make_sim):
    sim = make_sim(username="viewer", password=PASSWORD, admin=False)
    uuid = sim.add_agent("a1")
    anonymous = history(sim, uuid)
    assert (anonymous.status_code, anonymous.json()) == (401, {"message": "You are not authenticated!"})
    for target, query in ((uuid, ""), ("no-such-agent", "?page_size=1")):
        response = history(sim, target, query, auth=("viewer", PASSWORD))
        assert response.status_code == 403
        assert response.json() == {"message": "You are not authorized to perform this action."}
    admin = make_sim(username="admin", password=PASSWORD)
    assert history(admin, admin.add_agent("a1"), auth=("admin", PASSWORD)).status_code == 200


# --- controls and faults -----------------------------------------------------------------


def test_control_endpoints(sim, clock):
    posted = requests.post(
        f"{sim.url[:-3]}/_sim/jobs",
        json={"pipeline": "app", "job": "unit", "count": 2, "resources": ["linux"], "duration_s": 5},
        timeout=5,
    )
    assert posted.json() == {
        "locators": ["app/1/build/1/unit-runInstance-1", "app/1/build/1/unit-runInstance-2"]
    }
    feed = raw("GET", f"{sim.url}/api/feed/jobs/scheduled.xml", accept="application/xml").text
    assert "app/1/build/1/unit-runInstance-2" in feed
    sim.add_agent("a1", uuid="u1", resources=["linux"])
    state = requests.get(f"{sim.url[:-3]}/_sim/state", timeout=5).json()
    assert state["jobs"][0] == {
        "locator": "app/1/build/1/unit-runInstance-1",
        "state": "scheduled",
        "scheduled_at": clock.now(),
        "assigned_at": None,
        "completed_at": None,
        "agent_uuid": None,
    }
    assert state["agents"] == [
        {
            "uuid": "u1",
            "hostname": "a1",
            "config_state": "Enabled",
            "agent_state": "Idle",
            "build_state": "Idle",
            "resources": ["linux"],
            "environments": [],
            "registered_at": 1000.0,
        }
    ]
    bad = requests.post(f"{sim.url[:-3]}/_sim/jobs", json={"job": "no pipeline"}, timeout=5)
    assert bad.status_code == 400


def test_faults_by_count_seconds_and_path(sim, clock):
    base = sim.url[:-3]
    requests.post(f"{base}/_sim/faults", json={"kind": "status", "status": 500, "count": 2}, timeout=5)
    assert requests.get(f"{base}/_sim/state", timeout=5).status_code == 200  # never faulted
    statuses = [raw("GET", f"{sim.url}/api/agents").status_code for _ in range(3)]
    assert statuses == [500, 500, 200]

    sim.inject_fault("status", status=503, seconds=10, path_prefix="/go/api/agents")
    assert raw("GET", f"{sim.url}/api/agents").status_code == 503
    assert raw("GET", f"{sim.url}/api/v1/health", accept=None).status_code == 200
    clock.advance(11)
    assert raw("GET", f"{sim.url}/api/agents").status_code == 200

    sim.inject_fault("malformed")
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw("GET", f"{sim.url}/api/agents").text)
    sim.inject_fault("reset")
    with pytest.raises(requests.ConnectionError):
        raw("GET", f"{sim.url}/api/agents")
    assert requests.post(f"{base}/_sim/faults", json={"kind": "flood"}, timeout=5).status_code == 400


def test_a_client_that_gives_up_before_a_late_answer_is_no_traceback(clock, capfd):
    """Seen in the fault campaign: under a latency fault the daemon's timeout came first, and
    writing the answer to the closed connection printed socketserver's BrokenPipeError."""
    with GoCDSimulator(clock=clock) as late:
        late.schedule_jobs("app", count=200, resources=["linux"])  # an answer of several writes
        late.inject_fault("latency", delay_s=10, count=3)
        for _ in range(3):
            with pytest.raises(requests.Timeout):
                requests.get(late.url + "/api/feed/jobs/scheduled.xml", timeout=0.1)
        clock.advance(10)  # the answers go out, to connections the client has closed
        join_request_handlers()
        assert raw("GET", late.url + "/api/v1/health", accept=None).status_code == 200
    assert "Traceback" not in capfd.readouterr().err


def test_a_client_that_dies_with_its_connection_open_is_no_traceback(sim, capfd):
    """Seen in the fault campaign: a SIGKILLed daemon's keep-alive connections are reset."""
    host, port = sim.url.split("//")[1].split("/")[0].split(":")
    reset_mid_request(host, int(port), b"GET /go/api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert "Traceback" not in capfd.readouterr().err


def test_standalone_module_serves(tmp_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "actors.sim.gocd",
            "--port",
            "0",
            "--auto-register-key",
            KEY,
            "--time-scale",
            "10",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/go")
        agents = raw("GET", f"{url}/api/agents")
        assert agents.status_code == 200
        assert agents.json()["_embedded"]["agents"] == []
        assert raw("GET", f"{url}/api/agents", accept="*/*").status_code == 404
        posted = requests.post(
            f"{url[:-3]}/_sim/jobs", json={"pipeline": "app", "resources": ["linux"]}, timeout=5
        )
        assert posted.status_code == 200
        feed = raw("GET", f"{url}/api/feed/jobs/scheduled.xml", accept="application/xml")
        assert "<buildLocator>app/1/build/1/job</buildLocator>" in feed.text
    finally:
        process.terminate()
        assert process.wait(10) == 0
