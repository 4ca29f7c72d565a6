"""The status server over real HTTP on port 0: endpoints, metrics, and whole systems serving it."""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import actors
from actors.config import Profile
from actors.exceptions import GocdMesosError
from actors.fleet.states import FleetState
from actors.http.metrics import METRIC_NAMES
from actors.http.server import StatusServer
from actors.messages import (
    BacklogSnapshot,
    FleetAgent,
    FleetChanged,
    FleetView,
    FrameworkRegistered,
    GoCDHint,
    GoCDUnavailable,
    JobReason,
    LeadershipChanged,
    ScalePlan,
    ScheduledJob,
    TaskLaunched,
)

LINUX = Profile(name="linux", image="img", max=5)


@pytest.fixture
def server(clock):
    alive = {"AgentRegistry": True}
    made = StatusServer(
        host="127.0.0.1", port=0, clock=clock, profiles=(LINUX,), stale_after=60.0, alive=lambda: alive
    )
    made.alive = alive  # type: ignore[attr-defined]
    made.start()
    yield made
    made.stop()


def get(server: StatusServer, path: str) -> requests.Response:
    return requests.get(server.url.rstrip("/") + path, timeout=10)


def feed(server: StatusServer, clock) -> None:
    job = ScheduledJob("p/1/s/1/j", "p", 1, "s", 1, "j")
    server.on_message(FrameworkRegistered("fw-1", reregistered=False))
    server.on_message(GoCDUnavailable(reason="GoCD failed (503)", since=clock.now(), endpoint="agents"))
    server.on_message(
        BacklogSnapshot(
            jobs=(job,),
            agents=(),
            fetched_at=clock.now(),
            timings=(("scheduled_jobs", 0.02), ("agents", 0.3)),
        )
    )
    server.on_message(
        ScalePlan(decided_at=clock.now(), reasons=(JobReason(job.locator, "launching", "linux"),))
    )
    agents = (FleetAgent("t1", "linux", FleetState.BUILDING),)
    server.on_message(
        FleetChanged(FleetView(agents=agents), launched_total=3, failed_total=1, killed_total=2)
    )
    for kind in ("backlog", "agents", "agents"):
        server.on_message(GoCDHint(kind, clock.now(), "from the webhook"))


def test_each_endpoint_answers_with_its_status_and_content_type(server, clock):
    assert server.port != 0
    health = get(server, "/healthz")
    assert health.status_code == 200 and health.headers["Content-Type"].startswith("application/json")
    assert health.json()["actors"] == {"AgentRegistry": True}
    # Not subscribed to Mesos, GoCD never read: alive but not ready.
    ready = get(server, "/readyz")
    assert ready.status_code == 503 and ready.json() == {
        "ok": False,
        "mesos_subscribed": False,
        "gocd_fresh": False,
        "backlog_complete": True,
        "backlog_problems": [],
    }
    feed(server, clock)
    assert get(server, "/readyz").status_code == 200
    clock.advance(61)
    assert get(server, "/readyz").json()["gocd_fresh"] is False
    server.alive["AgentRegistry"] = False  # type: ignore[attr-defined]
    assert get(server, "/healthz").status_code == 503
    metrics = get(server, "/metrics")
    assert metrics.status_code == 200 and metrics.headers["Content-Type"].startswith("text/plain")
    status = get(server, "/status")
    assert status.status_code == 200 and status.headers["Content-Type"].startswith("application/json")
    assert status.json()["mesos"]["framework_id"] == "fw-1"
    gocd = status.json()["gocd"]
    assert gocd["notifications"] == {"agents": 2, "backlog": 1} and gocd["notified_seconds_ago"] == 61
    assert get(server, "/nothing-here").status_code == 404


def test_readyz_fails_naming_what_the_backlog_source_cannot_see(server, clock):
    feed(server, clock)
    assert get(server, "/readyz").status_code == 200
    problem = (
        "user 'svc' may not read the config of pipeline app (403): the resources and elastic profiles of its "
        "jobs are unknown; the dashboard backlog needs a super-admin, or an admin of the pipeline's group"
    )
    snapshot = BacklogSnapshot(
        jobs=(), agents=(), fetched_at=clock.now(), backlog_source="dashboard", backlog_problems=(problem,)
    )
    server.on_message(snapshot)
    ready = get(server, "/readyz")
    assert ready.status_code == 503
    assert ready.json() == {
        "ok": False,
        "mesos_subscribed": True,
        "gocd_fresh": True,
        "backlog_complete": False,
        "backlog_problems": [problem],
    }
    gocd = get(server, "/status").json()["gocd"]
    assert (gocd["backlog_source"], gocd["backlog_problems"]) == ("dashboard", [problem])
    page = get(server, "/").text
    assert "backlog from the dashboard" in page
    assert '<li class="bad">user &#x27;svc&#x27; may not read the config of pipeline app (403)' in page
    server.on_message(replace(snapshot, backlog_problems=()))
    assert get(server, "/readyz").status_code == 200


def test_metrics_carry_every_name_with_the_prefix_and_the_values(server, clock):
    feed(server, clock)
    clock.advance(10)
    text = get(server, "/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    names = {name for name, _ in samples}
    for name in METRIC_NAMES:
        assert name in names, name
    assert all(name.startswith("gocd_mesos_") for name in names)
    assert samples[("gocd_mesos_waiting_jobs", (("profile", "linux"), ("reason", "launching")))] == 1
    assert (
        samples[("gocd_mesos_oldest_waiting_job_seconds", (("profile", "linux"), ("reason", "launching")))]
        == 10
    )
    assert samples[("gocd_mesos_agents", (("profile", "linux"), ("state", "building")))] == 1
    assert samples[("gocd_mesos_agent_seconds_total", (("profile", "linux"), ("state", "building")))] == 10
    assert samples[("gocd_mesos_launches_total", ())] == 3
    assert samples[("gocd_mesos_failed_launches_total", ())] == 1
    assert samples[("gocd_mesos_kills_total", ())] == 2
    assert samples[("gocd_mesos_decisions_total", ())] == 1
    assert samples[("gocd_mesos_leader", ())] == 1
    assert samples[("gocd_mesos_gocd_errors_total", (("endpoint", "agents"),))] == 1
    assert samples[("gocd_mesos_gocd_notifications_total", (("kind", "backlog"),))] == 1
    assert samples[("gocd_mesos_gocd_notifications_total", (("kind", "agents"),))] == 2
    agents_read = (("endpoint", "agents"), ("le", "0.25"))
    assert samples[("gocd_mesos_gocd_request_seconds_bucket", agents_read)] == 0
    assert samples[("gocd_mesos_gocd_request_seconds_bucket", (("endpoint", "agents"), ("le", "0.5")))] == 1
    assert samples[("gocd_mesos_decision_seconds_count", ())] == 1
    assert ("gocd_mesos_drains_total", ()) in samples and ("gocd_mesos_approvals_total", ()) in samples
    backoff = {k: v for k, v in samples.items() if k[0] == "gocd_mesos_backoff_active"}
    assert backoff and all(v in (0, 1) for v in backoff.values())
    for step in ("launch", "registered", "assigned"):
        assert samples[("gocd_mesos_job_wait_seconds_count", (("step", step),))] == 0
    server.on_message(TaskLaunched("t1", "linux", "node", "host"))
    text = get(server, "/metrics").text
    launched = (("le", "10.0"), ("step", "launch"))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("gocd_mesos_job_wait_seconds_bucket", launched)] == 1
    assert samples[("gocd_mesos_job_wait_seconds_sum", (("step", "launch"),))] == 10


def test_a_standby_is_healthy_and_ready_while_zookeeper_is_up_and_says_it_does_not_lead(server, clock):
    server.alive.clear()  # type: ignore[attr-defined]  # a standby runs no actors
    server.on_message(LeadershipChanged(leader=False, since=clock.now()))
    assert get(server, "/healthz").status_code == 200
    ready = get(server, "/readyz")
    assert ready.status_code == 200 and ready.json() == {
        "ok": True,
        "standby": True,
        "zookeeper_connected": True,
    }
    assert "gocd_mesos_leader 0.0" in get(server, "/metrics").text
    assert get(server, "/status").json()["ha"]["role"] == "standby"
    page = get(server, "/").text
    # A healthy standby is how HA should look: nothing on its page is shown as a fault.
    assert "Standby" in page and "not subscribed (the leader is)" in page
    assert 'class="bad"' not in page
    server.on_message(LeadershipChanged(leader=False, since=clock.now(), zookeeper_connected=False))
    assert get(server, "/readyz").status_code == 503
    assert '<span class="bad">ZooKeeper unreachable</span>' in get(server, "/").text
    # Leading: the usual checks, and the gauge says so.
    server.on_message(LeadershipChanged(leader=True, since=clock.now()))
    server.alive["AgentRegistry"] = True  # type: ignore[attr-defined]
    feed(server, clock)
    ready = get(server, "/readyz")
    assert ready.status_code == 200 and ready.json()["leader"] is True
    assert "gocd_mesos_leader 1.0" in get(server, "/metrics").text


def test_two_servers_keep_their_registries_apart(server, clock):
    other = StatusServer(host="127.0.0.1", port=0, clock=clock)
    other.start()
    try:
        feed(server, clock)
        assert other.registry is not server.registry
        assert "gocd_mesos_launches_total 3.0" in get(server, "/metrics").text
        assert "gocd_mesos_launches_total 0.0" in get(other, "/metrics").text
    finally:
        other.stop()


def test_a_taken_port_says_so():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(GocdMesosError, match=f"127.0.0.1:{port}: the port is already in use"):
            StatusServer(host="127.0.0.1", port=port, clock=actors.ManualClock())


def test_a_system_serves_status_with_a_reason_for_every_waiting_job(system):
    s = system()
    s.gocd.schedule_jobs("served", count=3, resources=["linux"], duration_s=600)
    s.gocd.schedule_jobs("nobody", resources=["windows"], duration_s=60)
    s.start_daemon()
    url = s.daemon.http_url
    assert url is not None and not url.endswith(":0/")

    def listed(messages: list) -> bool:
        return any(isinstance(m, ScalePlan) and len(m.reasons) == 4 for m in messages)

    s.events.wait_until(listed, what="a plan with the four jobs")
    # The server's listener runs on its own thread: wait until it has the plan too.
    s.events.wait_until(
        lambda _: len(requests.get(url + "status", timeout=10).json()["waiting_jobs"]) == 4,
        what="/status listing the four jobs",
    )
    status = requests.get(url + "status", timeout=10).json()
    jobs = {j["locator"].split("/")[0]: j for j in status["waiting_jobs"]}
    assert jobs["nobody"]["reason"] == "no-matching-profile"
    assert all(j["reason"] for j in status["waiting_jobs"])
    assert requests.get(url + "healthz", timeout=10).status_code == 200
    # Each served job is timed to its agent's LAUNCH, its registration and its assignment.
    s.wait_gocd(lambda st: sum(j["state"] == "building" for j in st["jobs"]) == 3, what="three building")
    s.events.wait_until(
        lambda _: all(
            step["count"] == 3
            for step in requests.get(url + "status", timeout=10).json()["job_seconds"].values()
        ),
        what="/status timing the three jobs at every step",
    )
    s.stop_daemon()
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "healthz", timeout=10)


def test_two_systems_in_one_process_serve_apart_and_http_can_be_off(system):
    a, b = system(), system()
    a.start_daemon()
    b.start_daemon()
    assert a.daemon.http_url != b.daemon.http_url
    for s in (a, b):
        assert requests.get(s.daemon.http_url + "metrics", timeout=10).status_code == 200
    off = actors.start(system().settings, clock=a.clock, http=False)
    try:
        assert off.http_url is None
    finally:
        off.stop()


def test_the_example_alerting_rules_use_only_metrics_the_daemon_serves():
    import re

    import yaml

    from tests.conftest import ROOT

    rules = yaml.safe_load((ROOT / "etc" / "prometheus-rules.yml").read_text())
    (group,) = rules["groups"]
    exprs = [rule["expr"] for rule in group["rules"]]
    used = {name for expr in exprs for name in re.findall(r"\bgocd_mesos_\w+", expr)}
    assert used and used <= set(METRIC_NAMES), used - set(METRIC_NAMES)
    assert {rule["alert"] for rule in group["rules"]} >= {
        "GocdMesosJobsWaitTooLong",
        "GocdMesosCrashLoopBackoff",
        "GocdMesosGoCDDataStale",
        "GocdMesosNoLeader",
    }
