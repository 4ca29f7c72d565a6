"""End to end, issue 8's hostile cases: the daemon's real actors against both simulators.

Each test replays one defect found by adversarial testing (the fleet file lost
while agents build, a GoCD outage longer than ``register_timeout``, a wrong
auto-register key, a crash-looping image) and checks what the operator would
see in Mesos and GoCD. Simulated time runs 20x faster; every wait is on the
GoCD simulator's change notifications or on messages the daemon publishes.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from actors.config import JudgeSettings, Secret
from actors.messages import BacklogSnapshot, FleetChanged, ScalePlan, TaskLaunched
from tests.e2e_support import IMAGE, completed, linux


def building(state):
    return [j for j in state["jobs"] if j["state"] in ("assigned", "building")]


def test_survivors_of_a_lost_fleet_file_keep_their_profile_and_count_toward_max(system, caplog):
    s = system(profiles=(linux(max=5, idle_timeout=600),))
    s.gocd.schedule_jobs("app", count=3, resources=["linux"], duration_s=600)
    s.start_daemon()
    s.wait_gocd(lambda st: len(building(st)) == 3, timeout=60, what="three jobs building")
    s.stop_daemon()
    fleet = s.settings.state.dir + "/fleet.json"
    with open(fleet, "w", encoding="utf-8") as f:
        f.write('{"version": 1, "recor')
    s.events = type(s.events)()
    s.start_daemon()
    s.gocd.schedule_jobs("more", count=4, resources=["linux"], duration_s=30)
    # The new jobs are decided on with the three survivors counted: two launches, two capped.
    plan = s.events.wait_until(
        lambda ms: any(isinstance(m, ScalePlan) and m.launches for m in ms), what="a launch"
    )
    (first,) = [m for m in plan if isinstance(m, ScalePlan) and m.launches][:1]
    assert first.launches == (("linux", 2),)
    assert sorted(r.reason for r in first.reasons) == ["capped-at-max"] * 2 + ["launching"] * 2
    s.events.wait_for(TaskLaunched, count=2, timeout=30)
    assert len(s.running_tasks()) == 5
    assert "unknown profile" not in caplog.text
    assert s.wait_gocd(lambda st: len(completed(st)) >= 2, timeout=60, what="new jobs completed")
    assert len(s.running_tasks()) <= 5


def test_a_gocd_outage_longer_than_register_timeout_kills_nothing(system, caplog):
    s = system(register_timeout=60.0, poll_interval=2.0, judge=JudgeSettings(stale_after=20))
    s.mesos.inject_fault("slow_launch", delay=3.0)
    s.gocd.schedule_jobs("app", count=3, resources=["linux"], duration_s=10)
    s.start_daemon()
    launched = s.events.wait_for(TaskLaunched, count=3, timeout=30)
    # GoCD answers 503 to everyone, agents included, for longer than register_timeout.
    s.gocd.inject_fault("status", status=503, seconds=70, path_prefix="/go/")
    s.wait_gocd(lambda st: len(completed(st)) == 3, timeout=90, what="all jobs completed")
    # The three agents launched before the outage all live on (one more may have been
    # launched after it, for a job GoCD had not yet given to an agent it saw Idle again).
    states = {t["id"]: t["state"] for t in s.all_tasks()}
    assert all(states[m.task_id] == "TASK_RUNNING" for m in launched[:3]), states
    assert "did not register" not in caplog.text
    assert all(m.failed_total == 0 for m in s.events.of(FleetChanged))


def test_a_wrong_auto_register_key_is_diagnosed_and_the_pending_agent_approved(system, caplog):
    s = system()
    s.settings = replace(s.settings, agents=replace(s.settings.agents, auto_register_key=Secret("other-key")))
    (locator,) = s.gocd.schedule_jobs("app", count=1, resources=["linux"], duration_s=5)
    with caplog.at_level(logging.ERROR):
        s.start_daemon()
        state = s.wait_gocd(
            lambda st: any(j["locator"] == locator and j["state"] == "completed" for j in st["jobs"]),
            timeout=60,
            what="the job completed on the approved agent",
        )
    (task,) = s.all_tasks()
    (ours,) = [a for a in state["agents"] if a["hostname"] == task["id"]]
    assert ours["config_state"] == "Enabled"
    assert [a for a in state["agents"] if a["config_state"] == "Pending"] == []
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "auto_register_key does not match" in errors[0]


def test_a_crash_looping_image_probes_with_one_agent_and_recovers_once_fixed(system):
    s = system(
        profiles=(linux(max=100),),
        judge=JudgeSettings(stale_after=15, backoff_initial=5, backoff_max=40),
    )
    s.mesos.inject_fault("fail_image", image=IMAGE)
    s.gocd.schedule_jobs("app", count=5, resources=["linux"], duration_s=5)
    s.start_daemon()
    s.events.wait_until(
        lambda ms: any(
            isinstance(m, FleetChanged) and any(b.failures >= 3 for b in m.fleet.backoff) for m in ms
        ),
        timeout=60,
        what="three failed waves",
    )
    # The first wave is the whole demand; each one after a backoff is one probe.
    assert len(s.all_tasks()) == 5 + 1 + 1
    s.mesos.inject_fault("fail_image", count=0)
    s.wait_gocd(lambda st: len(completed(st)) == 5, timeout=60, what="all jobs completed once fixed")
    assert s.events.of(FleetChanged)[-1].fleet.backoff == ()


def test_max_jobs_counts_short_jobs_and_retires_the_agent_at_the_next_poll(system):
    """What max_jobs guarantees without push: GoCD's job history counts every job, however
    short, and the poll after an agent's last job disables it (the poll before may not have
    seen it building). Jobs it takes between those two polls are the window that remains."""
    s = system(profiles=(linux(max=2, max_jobs=1, idle_timeout=600),))
    locators = s.gocd.schedule_jobs("app", count=6, resources=["linux"], duration_s=0.3)
    s.start_daemon()
    state = s.wait_gocd(lambda st: len(completed(st)) == 6, timeout=90, what="all jobs completed")
    assert {j["locator"] for j in completed(state)} == set(locators)
    last = max(j["completed_at"] for j in completed(state))
    s.events.wait_until(
        lambda ms: sum(1 for m in ms if isinstance(m, BacklogSnapshot) and m.fetched_at >= last) >= 2,
        what="two polls after the last job",
    )
    snapshots = s.events.of(BacklogSnapshot)
    for uuid in {j["agent_uuid"] for j in completed(state)}:
        first = min(j["completed_at"] for j in completed(state) if j["agent_uuid"] == uuid)
        after = [snap for snap in snapshots if snap.fetched_at >= first]
        # The first poll after its first job may still see it Enabled; by the next one it is
        # disabled (or already gone), and it took no job after that.
        assert len(after) >= 2, "the daemon kept polling"
        seen = {a.uuid: a for a in after[1].agents}
        assert uuid not in seen or seen[uuid].config_state == "Disabled", f"agent {uuid} still enabled"
        assert all(j["assigned_at"] <= after[1].fetched_at for j in state["jobs"] if j["agent_uuid"] == uuid)
    # Every agent it counted ran exactly the jobs GoCD says, short ones included.
    counted: dict[str, int] = {}
    for change in s.events.of(FleetChanged):
        for a in change.fleet.agents:
            if a.agent_uuid:
                counted[a.agent_uuid] = max(counted.get(a.agent_uuid, 0), a.jobs_done)
    for uuid, jobs in counted.items():
        assert jobs <= sum(1 for j in state["jobs"] if j["agent_uuid"] == uuid)
        assert jobs >= 1 or not any(j["agent_uuid"] == uuid for j in state["jobs"])


def test_a_wrong_key_with_launches_that_share_a_node_leaves_no_pending_pile_up(system, caplog):
    """Host networking, one node: three Pending agents under one hostname cannot be told apart.
    Their launches time out and their Pending agents are removed; probes, one at a time, are
    told apart and approved, so every job runs and no Pending agent is left behind."""
    s = system(
        nodes=1,
        register_timeout=30.0,
        judge=JudgeSettings(stale_after=15, backoff_initial=5, backoff_max=20),
    )
    s.settings = replace(s.settings, agents=replace(s.settings.agents, auto_register_key=Secret("other-key")))
    locators = s.gocd.schedule_jobs("app", count=3, resources=["linux"], duration_s=5)
    with caplog.at_level(logging.ERROR):
        s.start_daemon()
        s.wait_gocd(
            lambda st: sum(1 for j in completed(st) if j["locator"] in locators) == 3,
            timeout=120,
            what="all three jobs completed",
        )
        # The Pending agents of the launches given up are disabled, then deleted.
        s.wait_gocd(
            lambda st: all(a["hostname"].startswith("gocd-mesos-") for a in st["agents"]),
            timeout=60,
            what="no agent left but ours, renamed to their task ids",
        )
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "auto_register_key does not match" in errors[0]
