"""The status model as pure tables: messages and clock times in, snapshot values out."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import quote

import pytest

from actors.config import Profile
from actors.fleet.states import FleetState
from actors.http.model import PLANS_KEPT, WINDOW, StatusModel
from actors.messages import (
    BacklogSnapshot,
    BuildDetails,
    FleetAgent,
    FleetChanged,
    FleetView,
    FrameworkDisconnected,
    FrameworkRegistered,
    GoAgent,
    GoCDUnavailable,
    JobReason,
    LeadershipChanged,
    ProfileBackoff,
    ScalePlan,
    ScheduledJob,
    TaskLaunched,
)

LINUX = Profile(name="linux", image="img", min=1, max=5)


def fleet(
    *states: tuple[str, FleetState], backoff: tuple[ProfileBackoff, ...] = (), launched: int = 0
) -> FleetChanged:
    agents = tuple(FleetAgent(task_id=f"t{i}", profile=p, state=s) for i, (p, s) in enumerate(states))
    return FleetChanged(fleet=FleetView(agents=agents, backoff=backoff), launched_total=launched)


def job(locator: str) -> ScheduledJob:
    pipeline, counter, stage, stage_counter, name = locator.split("/")
    return ScheduledJob(locator, pipeline, int(counter), stage, int(stage_counter), name)


def backlog(*locators: str) -> BacklogSnapshot:
    return BacklogSnapshot(jobs=tuple(job(x) for x in locators), agents=(), fetched_at=0.0)


def plan(at: float, *reasons: tuple[str, str, str | None]) -> ScalePlan:
    return ScalePlan(decided_at=at, reasons=tuple(JobReason(loc, why, prof) for loc, why, prof in reasons))


IDLE, B, L, D = FleetState.IDLE, FleetState.BUILDING, FleetState.LAUNCHING, FleetState.DRAINING


@pytest.mark.parametrize(
    ("steps", "now", "since_start", "last_hour"),
    [
        # One idle agent for 100 s.
        ([(0, fleet(("linux", IDLE)))], 100, {("linux", "idle"): 100}, {("linux", "idle"): 100}),
        # Launching 10 s, then building 30 s, then idle 60 s; nothing counted after it is gone.
        (
            [
                (0, fleet(("linux", L))),
                (10, fleet(("linux", B))),
                (40, fleet(("linux", IDLE))),
                (100, fleet()),
            ],
            500,
            {("linux", "starting"): 10, ("linux", "building"): 30, ("linux", "idle"): 60},
            {("linux", "starting"): 10, ("linux", "building"): 30, ("linux", "idle"): 60},
        ),
        # Two building agents for two hours: the last hour holds one hour of each.
        (
            [(0, fleet(("linux", B), ("linux", B)))],
            2 * WINDOW,
            {("linux", "building"): 4 * WINDOW},
            {("linux", "building"): 2 * WINDOW},
        ),
        # Draining for half an hour, then gone for an hour: the last hour holds nothing.
        ([(0, fleet(("linux", D))), (1800, fleet())], 1800 + WINDOW, {("linux", "leaving"): 1800}, {}),
        # A change within the last hour splits it between the states.
        (
            [(0, fleet(("a", IDLE))), (2 * WINDOW - 600, fleet(("a", B)))],
            2 * WINDOW,
            {("a", "idle"): 2 * WINDOW - 600, ("a", "building"): 600},
            {("a", "idle"): WINDOW - 600, ("a", "building"): 600},
        ),
    ],
)
def test_agent_seconds_integrate_the_fleet_over_clock_time(steps, now, since_start, last_hour):
    model = StatusModel([LINUX])
    for at, message in steps:
        model.apply(message, 1000.0 + at)
    s = model.snapshot()
    got = {k: v for k, v in s.agent_seconds(1000.0 + now).items() if v}
    assert got == pytest.approx(since_start)
    recent = {k: v for k, v in s.recent_agent_seconds(1000.0 + now).items() if v}
    assert recent == pytest.approx(last_hour)


def test_the_oldest_wait_counts_from_when_a_job_was_first_seen_waiting():
    model = StatusModel([LINUX])
    model.apply(backlog("p/1/s/1/a"), 100.0)
    model.apply(backlog("p/1/s/1/a", "p/2/s/1/a"), 130.0)
    model.apply(plan(130.0, ("p/1/s/1/a", "launching", "linux"), ("p/2/s/1/a", "launching", "linux")), 130.0)
    assert model.snapshot().oldest_wait(160.0) == {("linux", "launching"): 60.0}
    # The first job leaves the backlog: the oldest is now the second one.
    model.apply(backlog("p/2/s/1/a"), 170.0)
    model.apply(plan(170.0, ("p/2/s/1/a", "capped-at-max", "linux")), 170.0)
    assert model.snapshot().oldest_wait(190.0) == {("linux", "capped-at-max"): 60.0}
    # A job that comes back later counts from its return.
    model.apply(backlog("p/1/s/1/a", "p/2/s/1/a"), 200.0)
    model.apply(plan(200.0, ("p/1/s/1/a", "no-matching-profile", None)), 200.0)
    assert model.snapshot().oldest_wait(210.0) == {("", "no-matching-profile"): 10.0}


def test_plans_are_kept_to_the_last_fifty_with_why():
    model = StatusModel([LINUX])
    for i in range(PLANS_KEPT + 7):
        model.apply(
            plan(float(i), ("p/1/s/1/a", "capped-at-max", "linux"), ("p/2/s/1/a", "capped-at-max", "linux")),
            float(i),
        )
    s = model.snapshot()
    assert len(s.plans) == PLANS_KEPT and s.decisions == PLANS_KEPT + 7
    assert s.plans[0].decided_at == 7.0 and s.plans[-1].why == (("capped-at-max", 2),)


def test_profiles_show_waiting_min_max_agents_and_backoff():
    model = StatusModel([LINUX])
    model.apply(
        fleet(
            ("linux", L),
            ("linux", IDLE),
            ("linux", B),
            ("linux", D),
            backoff=(ProfileBackoff("linux", 2, 300.0),),
        ),
        100.0,
    )
    model.apply(plan(100.0, ("p/1/s/1/a", "backoff-after-failures", "linux")), 100.0)
    (p,) = model.snapshot().profiles
    assert (p.profile, p.waiting, p.min, p.max) == ("linux", 1, 1, 5)
    assert (p.launching, p.idle, p.building, p.draining, p.backoff_until) == (1, 1, 1, 1, 300.0)
    # Past the backoff, no backoff is shown.
    model.apply(plan(400.0), 400.0)
    assert model.snapshot().profiles[0].backoff_until is None


def test_connections_and_framework_id():
    model = StatusModel()
    s = model.snapshot()
    assert not s.mesos_subscribed and not s.gocd_fresh(0.0, 60.0)
    model.apply(FrameworkRegistered("fw-1", reregistered=False, master="m:5050"), 10.0)
    model.apply(backlog(), 10.0)
    s = model.snapshot()
    assert (s.mesos_subscribed, s.framework_id, s.mesos_master) == (True, "fw-1", "m:5050")
    assert s.gocd_fresh(70.0, 60.0) and not s.gocd_fresh(71.0, 60.0)
    model.apply(GoCDUnavailable("connection refused", since=20.0), 20.0)
    model.apply(FrameworkDisconnected(since=20.0), 20.0)
    s = model.snapshot()
    assert s.gocd_error == "connection refused" and not s.mesos_subscribed and s.framework_id == "fw-1"


def test_a_snapshot_is_never_changed_by_later_messages():
    model = StatusModel([LINUX])
    before = model.apply(fleet(("linux", IDLE), launched=1), 0.0)
    model.apply(fleet(("linux", B), launched=2), 10.0)
    assert before.agents == ((("linux", "idle"), 1),) and before.launched_total == 1
    assert model.snapshot().launched_total == 2


def test_drains_and_approvals_are_counted_once_each():
    from actors.messages import AgentEnabled, GoAgent

    model = StatusModel([LINUX])
    model.apply(fleet(("linux", IDLE), ("linux", IDLE)), 1.0)
    model.apply(fleet(("linux", D), ("linux", IDLE)), 2.0)
    model.apply(fleet(("linux", FleetState.KILLING), ("linux", D)), 3.0)  # t0 still leaving, t1 starts
    model.apply(
        AgentEnabled(GoAgent(uuid="u", hostname="h", config_state="Enabled", agent_state="Idle")), 4.0
    )
    s = model.snapshot()
    assert (s.drains_total, s.approvals_total) == (2, 1)


def test_offers_are_summed():
    from actors.messages import OffersHandled

    model = StatusModel([LINUX])
    model.apply(OffersHandled(received=3, used=2, declined=1), 1.0)
    model.apply(OffersHandled(received=1, used=0, declined=1), 2.0)
    s = model.snapshot()
    assert (s.offers_received, s.offers_used, s.offers_declined) == (4, 2, 2)


def test_a_histogram_counts_each_observation_in_its_bucket():
    from actors.http.model import BUCKETS, Histogram

    h = Histogram().observe(0.004).observe(0.3).observe(60.0)
    cumulative = dict(h.cumulative())
    assert cumulative["0.005"] == 1 and cumulative["0.25"] == 1 and cumulative["0.5"] == 2
    assert cumulative[str(BUCKETS[-1])] == 2 and cumulative["+Inf"] == 3
    assert h.total == 60.304


def building(locator: str) -> GoAgent:
    url = f"http://gocd/go/tab/build/detail/{quote(locator)}"
    pipeline, _, stage, _, name = locator.split("/")
    return GoAgent(
        uuid=f"u-{locator}",
        hostname="h",
        config_state="Enabled",
        agent_state="Building",
        build_state="Building",
        build_details=BuildDetails(pipeline=pipeline, stage=stage, job=name, job_url=url),
    )


def waits(model: StatusModel) -> dict[str, tuple[int, float]]:
    return {step: (h.count, h.total) for step, h in model.snapshot().job_seconds}


def test_job_waits_are_timed_from_first_sight_to_launch_registration_and_assignment():
    model = StatusModel([LINUX])
    j1, j2 = "app/1/build/1/a", "app/1/build/1/b"
    model.apply(backlog(j1, j2), 0.0)
    model.apply(plan(1.0, (j1, "launching", "linux"), (j2, "launching", "linux")), 1.0)
    # The same job asked for again in a later plan is still one launch.
    model.apply(plan(2.0, (j1, "launching", "linux"), (j2, "agent-starting", "linux")), 2.0)
    model.apply(TaskLaunched("t0", "linux", "node", "host"), 3.0)
    model.apply(TaskLaunched("t1", "linux", "node", "host"), 5.0)
    # A third LAUNCH (for min) is no job's.
    model.apply(TaskLaunched("t9", "linux", "node", "host"), 6.0)
    assert waits(model)["launch"] == (2, 3.0 + 5.0)
    model.apply(fleet(("linux", FleetState.REGISTERED), ("linux", L)), 40.0)
    assert waits(model)["registered"] == (1, 40.0)  # t0 only: t1 still launching
    model.apply(fleet(("linux", FleetState.IDLE), ("linux", FleetState.IDLE)), 45.0)
    assert waits(model)["registered"] == (2, 85.0)  # t1 now; t0 not twice
    # j1 leaves the backlog while an agent is seen building it; j2 is still waiting.
    model.apply(BacklogSnapshot(jobs=(job(j2),), agents=(building(j1),), fetched_at=50.0), 50.0)
    assert waits(model)["assigned"] == (1, 50.0)
    # j2 leaves and is seen building one read later.
    model.apply(backlog(), 60.0)
    model.apply(BacklogSnapshot(jobs=(), agents=(building(j2),), fetched_at=70.0), 70.0)
    assert waits(model)["assigned"] == (2, 120.0)


def test_a_job_gocd_dates_counts_from_its_scheduling_and_never_from_the_future():
    model = StatusModel([LINUX])
    wall = 1_700_000_000.0
    dated = replace(job("app/1/build/1/a"), scheduled_at=wall - 7.0)  # the dashboard source
    ahead = replace(job("app/1/build/1/b"), scheduled_at=wall + 30.0)  # GoCD's clock runs ahead
    undated = job("app/1/build/1/c")  # the feed says no time
    model.apply(BacklogSnapshot(jobs=(dated, ahead, undated), agents=(), fetched_at=100.0), 100.0, wall)
    assert dict(model.snapshot().first_seen) == {
        dated.locator: 93.0,
        ahead.locator: 100.0,
        undated.locator: 100.0,
    }
    model.apply(plan(101.0, (dated.locator, "launching", "linux")), 101.0, wall + 1)
    assert model.snapshot().oldest_wait(110.0) == {("linux", "launching"): 17.0}
    model.apply(TaskLaunched("t0", "linux", "node", "host"), 104.0, wall + 4)
    assert waits(model)["launch"] == (1, 11.0)
    # A later read keeps the start it had, whatever GoCD says then.
    model.apply(
        BacklogSnapshot(jobs=(replace(dated, scheduled_at=wall),), agents=(), fetched_at=110.0),
        110.0,
        wall + 10,
    )
    assert dict(model.snapshot().first_seen)[dated.locator] == 93.0
    # Without the wall time (an embedding's own model), every job counts from its first sight.
    other = StatusModel([LINUX])
    other.apply(BacklogSnapshot(jobs=(dated,), agents=(), fetched_at=100.0), 100.0)
    assert dict(other.snapshot().first_seen) == {dated.locator: 100.0}


def test_a_job_that_leaves_unseen_is_not_timed_and_a_launch_after_it_left_is_no_ones():
    model = StatusModel([LINUX])
    gone = "app/1/build/1/gone"
    model.apply(backlog(gone), 0.0)
    model.apply(plan(1.0, (gone, "launching", "linux")), 1.0)
    for t in (10.0, 20.0, 30.0, 40.0):
        model.apply(backlog(), t)  # cancelled: never seen building
    model.apply(TaskLaunched("t0", "linux", "node", "host"), 41.0)
    model.apply(BacklogSnapshot(jobs=(), agents=(building(gone),), fetched_at=50.0), 50.0)
    assert waits(model) == {"launch": (0, 0.0), "registered": (0, 0.0), "assigned": (0, 0.0)}


def test_leadership_sets_the_role_and_a_daemon_without_ha_leads():
    model = StatusModel([LINUX])
    assert model.snapshot().leading and model.snapshot().role == ""
    model.apply(LeadershipChanged(leader=False, since=1.0), 1.0)
    assert not model.snapshot().leading and model.snapshot().role == "standby"
    model.apply(LeadershipChanged(leader=False, since=2.0, zookeeper_connected=False), 2.0)
    assert not model.snapshot().zookeeper_connected
    model.apply(LeadershipChanged(leader=True, since=3.0), 3.0)
    assert model.snapshot().leading and model.snapshot().role == "leader"
    assert model.snapshot().to_json(3.0)["ha"] == {
        "role": "leader",
        "enabled": True,
        "zookeeper_connected": True,
    }


def test_the_efficiency_summary_adds_up_busy_idle_and_starting():
    model = StatusModel([LINUX])
    model.apply(fleet(("linux", L), ("linux", IDLE)), 0.0)
    model.apply(fleet(("linux", B), ("linux", IDLE)), 10.0)
    summary = model.snapshot().to_json(30.0)["efficiency"]["since_start"]
    assert summary == {"busy": 20.0, "idle": 30.0, "starting": 10.0, "leaving": 0.0, "utilisation": 0.3333}
