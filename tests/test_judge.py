"""The judge's pure decision, table by table, and its thin actor."""

from __future__ import annotations

import itertools
import logging
from dataclasses import replace

from actors.config import JudgeSettings, Profile
from actors.fleet.judge import Judge, decide
from actors.messages import (
    BacklogSnapshot,
    Decide,
    FleetAgent,
    FleetView,
    GoAgent,
    GoCDUnavailable,
    ProfileBackoff,
    ScalePlan,
    ScheduledJob,
    Subscribe,
)

NOW = 10_000.0
SMALL = Profile(name="small", image="i", cpus=1, mem=1024, resources=("linux",), max=10)
BIG = Profile(name="big", image="i", cpus=4, mem=8192, resources=("linux", "docker"), max=10)
STAGING = Profile(
    name="staging", image="i", cpus=1, mem=1024, resources=("linux",), environments=("staging",), max=5
)
PROFILES = (BIG, SMALL, STAGING)
SETTINGS = JudgeSettings(max_launch_per_cycle=100, stale_after=60)


def job(n: int, resources=("linux",), environment=None, name=None, elastic=None) -> ScheduledJob:
    return ScheduledJob(
        locator=f"p/{n}/build/1/{name or 'job'}",
        pipeline="p",
        pipeline_counter=n,
        stage="build",
        stage_counter=1,
        name=name or "job",
        environment=environment,
        resources=frozenset(resources),
        elastic_profile_id=elastic,
    )


def go_agent(
    host: str, state="Idle", config="Enabled", resources=("linux",), envs=(), elastic=None
) -> GoAgent:
    return GoAgent(
        uuid=f"uuid-{host}",
        hostname=host,
        config_state=config,
        agent_state=state,
        resources=resources,
        environments=envs,
        elastic_agent_id=elastic,
        elastic_plugin_id="plugin" if elastic else None,
    )


def ours(task: str, profile="small", state="idle", idle_since=None, jobs=0, retiring=False) -> FleetAgent:
    return FleetAgent(
        task_id=task, profile=profile, state=state, idle_since=idle_since, jobs_done=jobs, retiring=retiring
    )


def plan_for(
    jobs=(),
    agents=(),
    fleet=(),
    backoff=(),
    profiles=PROFILES,
    settings=SETTINGS,
    fetched_at=NOW,
    unavailable=None,
    agents_fetched_at=None,
):
    backlog = BacklogSnapshot(
        jobs=tuple(jobs), agents=tuple(agents), fetched_at=fetched_at, agents_fetched_at=agents_fetched_at
    )
    request = Decide(
        backlog=backlog,
        fleet=FleetView(agents=tuple(fleet), backoff=tuple(backoff)),
        gocd_unavailable=unavailable,
    )
    return decide(request, profiles, settings, NOW)


def reasons(plan: ScalePlan) -> list[str]:
    return [r.reason for r in plan.reasons]


def test_every_waiting_job_launches_at_once_on_the_smallest_fitting_profile():
    plan = plan_for(jobs=[job(i) for i in range(200)])
    assert plan.launches == (("small", 10),)
    assert reasons(plan) == ["launching"] * 10 + ["capped-at-max"] * 190


def test_demand_is_launched_in_one_decision():
    wide = Profile(name="small", image="i", cpus=1, mem=1024, resources=("linux",), max=500)
    plan = plan_for(
        jobs=[job(i) for i in range(200)], profiles=(wide,), settings=JudgeSettings(max_launch_per_cycle=500)
    )
    assert plan.launches == (("small", 200),)
    assert reasons(plan) == ["launching"] * 200


def test_profile_choice_by_resources_and_size():
    plan = plan_for(jobs=[job(1, ("docker", "LINUX")), job(2, ("linux",)), job(3, ())])
    assert dict(plan.launches) == {"big": 1, "small": 2}
    assert [r.profile for r in plan.reasons] == ["big", "small", "small"]


def test_the_plan_is_the_one_record_of_launches_per_profile():
    plan = plan_for(jobs=[job(1, ("docker", "linux")), job(2), job(3)])
    assert plan.launches == (("small", 2), ("big", 1))
    assert [plan.launch_for(p.name) for p in PROFILES] == [1, 2, 0]
    assert [p.waiting for p in plan.profiles] == [1, 2, 0]


def test_environment_rule_picks_the_environment_profile():
    plan = plan_for(jobs=[job(1, environment="staging"), job(2, environment="prod")])
    assert [(r.reason, r.profile) for r in plan.reasons] == [
        ("launching", "staging"),
        ("no-matching-profile", None),
    ]
    assert "environment prod" in plan.reasons[1].detail
    assert dict(plan.launches) == {"staging": 1}


def test_environment_names_gocd_defines_nowhere_are_ignored_as_gocd_ignores_them():
    # A profile whose only environment GoCD does not define: GoCD puts its agents in none.
    ghost = Profile(name="ghost", image="i", cpus=1, mem=512, resources=("linux",), environments=("ghost",))
    profiles = (SMALL, ghost)
    nowhere = replace(go_agent("g1", state="Building"), environments=(), undefined_environments=("Ghost",))
    # Until an agent shows the name undefined, the profile is taken at its word.
    assert [r.profile for r in plan_for(jobs=[job(1)], profiles=profiles).reasons] == ["small"]
    # Then the smaller ghost profile is the one that fits a job of no environment...
    plan = plan_for(jobs=[job(1)], agents=[nowhere], profiles=profiles)
    assert [(r.reason, r.profile) for r in plan.reasons] == [("launching", "ghost")]
    # ...and its idle agent takes such a job, as GoCD would give it.
    idle = replace(nowhere, agent_state="Idle")
    plan = plan_for(jobs=[job(1)], agents=[idle], profiles=profiles)
    assert reasons(plan) == ["idle-agent-available"] and plan.launches == ()
    # Nor is that agent drained while a waiting job will take it.
    keep = replace(ghost, idle_timeout=0)
    fleet = [ours("g1", profile="ghost", idle_since=NOW - 100)]
    plan = plan_for(jobs=[job(1)], agents=[replace(idle, hostname="g1")], fleet=fleet, profiles=(SMALL, keep))
    assert plan.drains == ()


def test_backlog_that_is_not_agent_demand():
    plan = plan_for(jobs=[job(1, ("windows",)), job(2, (), elastic="k8s"), job(3, name="test-runOnAll-1")])
    assert reasons(plan) == ["no-matching-profile", "not-ours", "pinned-to-agent"]
    assert plan.reasons[2].detail == "run on all agents: only the agent it is pinned to can take it"
    assert plan.launches == ()


def test_a_job_pinned_to_an_agent_that_is_not_ours_is_no_demand_and_names_the_agent():
    """The dashboard source knows the agent a run-on-all job is pinned to: whatever its
    resources, and with every profile below max, nothing is launched for it."""
    other = go_agent("static-9", state="Building")
    pinned = replace(job(1, ("linux",), name="smoke-runOnAll-2"), pinned_agent=other.uuid)
    plan = plan_for(jobs=[pinned, job(2)], agents=[other])
    assert reasons(plan) == ["pinned-to-agent", "launching"]
    assert plan.reasons[0].profile is None
    assert (
        plan.reasons[0].detail
        == "run on all agents: pinned to agent static-9 (uuid-static-9), not one of ours"
    )
    assert plan.launches == (("small", 1),)
    assert [p.waiting for p in plan.profiles] == [0, 1, 0]


def test_a_job_pinned_to_one_of_our_agents_keeps_it_from_draining():
    mine = replace(ours("t1", idle_since=NOW - 3600), agent_uuid="uuid-t1")
    other = replace(ours("t2", idle_since=NOW - 3600), agent_uuid="uuid-t2")
    pinned = replace(job(1, name="smoke-runOnAll-1"), pinned_agent="uuid-t1")
    plan = plan_for(jobs=[pinned], fleet=[mine, other], agents=[go_agent("t1", state="Building")])
    assert reasons(plan) == ["pinned-to-agent"]
    assert plan.reasons[0].detail == "run on all agents: pinned to agent t1 (uuid-t1), ours (idle)"
    assert plan.drains == ("t2",)
    assert plan.launches == ()


def test_jobs_whose_resources_are_unknown_launch_nothing_not_even_a_catch_all_profile():
    """A job without resources fits every profile: with its resources unknown it must not
    launch the smallest one, nor take an idle agent that may not fit it."""
    catch_all = Profile(name="any", image="i", cpus=0.5, mem=512, max=10)
    unknown = replace(job(1, ()), resources_unknown="user 'svc' may not read the pipeline config of p (403)")
    plan = plan_for(jobs=[unknown, job(2, ())], profiles=(catch_all, *PROFILES), agents=[])
    assert reasons(plan) == ["resources-unknown", "launching"]
    assert plan.reasons[0].detail == "user 'svc' may not read the pipeline config of p (403)"
    assert plan.reasons[0].profile is None
    assert plan.launches == (("any", 1),)
    idle = plan_for(jobs=[unknown], agents=[go_agent("static-1", resources=())])
    assert reasons(idle) == ["resources-unknown"]


def test_idle_agents_take_jobs_first_oldest_job_first():
    agents = [
        go_agent("static-1"),
        go_agent("static-2", state="Building"),
        go_agent("gone", config="Disabled"),
    ]
    plan = plan_for(jobs=[job(1), job(2), job(3)], agents=agents)
    assert reasons(plan) == ["idle-agent-available", "launching", "launching"]
    assert plan.launches == (("small", 2),)


def test_idle_agent_must_fit_the_job():
    agents = [
        go_agent("win", resources=("windows",)),
        go_agent("envd", envs=("staging",)),
        go_agent("elastic", elastic="e1"),
    ]
    plan = plan_for(jobs=[job(1)], agents=agents)
    assert reasons(plan) == ["launching"]


def test_launches_in_flight_cover_jobs():
    fleet = [ours("t1", state="requested"), ours("t2", state="running")]
    plan = plan_for(jobs=[job(i) for i in range(3)], fleet=fleet)
    assert reasons(plan) == ["agent-starting", "agent-starting", "launching"]
    assert plan.launches == (("small", 1),)


def test_an_older_job_that_fits_a_younger_jobs_profile_gets_that_profile():
    # GoCD hands the big agent to the older linux job when it registers first: a small agent
    # launched for that job could never run the docker job, which would wait a second start.
    plan = plan_for(jobs=[job(1), job(2, ("docker", "linux")), job(3)])
    assert [(r.reason, r.profile) for r in plan.reasons] == [
        ("launching", "big"),
        ("launching", "big"),
        ("launching", "small"),
    ]
    assert plan.launches == (("small", 1), ("big", 2))
    assert [(p.profile, p.waiting) for p in plan.profiles if p.waiting] == [("big", 2), ("small", 1)]


def test_an_older_job_keeps_its_profile_when_the_other_is_backing_off_or_full():
    jobs = [job(1), job(2, ("docker", "linux"))]
    plan = plan_for(jobs=jobs, backoff=[ProfileBackoff("big", 3, NOW + 120)])
    assert [(r.reason, r.profile) for r in plan.reasons] == [
        ("launching", "small"),
        ("backoff-after-failures", "big"),
    ]
    full = replace(BIG, max=2)
    plan = plan_for(jobs=jobs, fleet=[ours("t1", profile="big", state="building")], profiles=(full, SMALL))
    assert plan.launches == (("small", 1), ("big", 1))
    # An agent of it in flight is room for a job.
    plan = plan_for(jobs=jobs, fleet=[ours("t1", profile="big", state="running")], profiles=(full, SMALL))
    assert [(r.reason, r.profile) for r in plan.reasons] == [
        ("agent-starting", "big"),
        ("launching", "big"),
    ]


def test_an_agent_in_flight_that_its_profile_no_longer_needs_covers_a_job_it_fits():
    # The docker job took an idle agent: the big agent on its way will take the linux job.
    plan = plan_for(jobs=[job(1), job(2)], fleet=[ours("t1", profile="big", state="running")])
    assert [(r.reason, r.profile) for r in plan.reasons] == [
        ("agent-starting", "big"),
        ("launching", "small"),
    ]
    assert plan.launches == (("small", 1),)
    # It never covers a job it cannot run.
    plan = plan_for(jobs=[job(1, ("windows",))], fleet=[ours("t1", profile="big", state="running")])
    assert reasons(plan) == ["no-matching-profile"]


def test_every_order_of_registration_gives_every_job_an_agent():
    # GoCD's hand-out, as its simulator runs it: each agent that asks takes the oldest waiting
    # job whose resources it has. Whatever order the launched agents register in, no job of
    # any mix of linux and docker jobs is left without an agent.
    kinds = {"small": frozenset({"linux"}), "big": frozenset({"linux", "docker"})}
    for mix in itertools.product(("linux", "docker"), repeat=5):
        jobs = [job(n, ("linux",) if kind == "linux" else ("docker", "linux")) for n, kind in enumerate(mix)]
        plan = plan_for(jobs=jobs)
        agents = [name for name, count in plan.launches for _ in range(count)]
        assert len(agents) == len(jobs)
        for order in set(itertools.permutations(agents)):
            waiting = [j.resources for j in jobs]
            for agent in order:
                taken = next((w for w in waiting if w <= kinds[agent]), None)
                assert taken is not None, f"{mix}: agents registering as {order} strand a job"
                waiting.remove(taken)


def test_capped_at_max_marks_the_newest_jobs():
    tiny = Profile(name="small", image="i", resources=("linux",), max=2)
    plan = plan_for(jobs=[job(i) for i in range(4)], fleet=[ours("t1", state="building")], profiles=(tiny,))
    assert plan.launches == (("small", 1),)
    assert reasons(plan).count("launching") == 1 and reasons(plan).count("capped-at-max") == 3
    assert reasons(plan)[0] == "launching"
    assert plan.profiles[0].capped == 3


def test_cycle_budget_is_shared_between_profiles():
    plan = plan_for(
        jobs=[job(1, ("docker", "linux")), job(2), job(3)], settings=JudgeSettings(max_launch_per_cycle=2)
    )
    assert sum(n for _, n in plan.launches) == 2
    assert reasons(plan).count("capped-at-max") == 1
    (held,) = [r for r in plan.reasons if r.reason == "capped-at-max"]
    assert held.detail == "max_launch_per_cycle (2) used up; launched in a later cycle"


def test_jobs_beyond_max_and_beyond_the_budget_say_which_held_them():
    tiny = Profile(name="small", image="i", resources=("linux",), max=3)
    plan = plan_for(
        jobs=[job(i) for i in range(5)], profiles=(tiny,), settings=JudgeSettings(max_launch_per_cycle=2)
    )
    assert plan.launches == (("small", 2),)
    assert [r.detail for r in plan.reasons] == [
        "",
        "",
        "max_launch_per_cycle (2) used up; launched in a later cycle",
        "max 3 agents reached",
        "max 3 agents reached",
    ]
    assert plan.profiles[0].capped == 3


def test_after_a_backoff_one_probe_is_launched_until_it_registers():
    backoff = ProfileBackoff(profile="small", failures=3, until=NOW - 1)
    plan = plan_for(jobs=[job(i) for i in range(5)], backoff=[backoff])
    assert plan.launches == (("small", 1),)
    assert reasons(plan) == ["launching"] + ["backoff-after-failures"] * 4
    assert "probe" in plan.reasons[1].detail
    # The probe is in flight: nothing more until it registers.
    plan = plan_for(jobs=[job(i) for i in range(5)], backoff=[backoff], fleet=[ours("t1", state="running")])
    assert plan.launches == ()
    assert reasons(plan) == ["agent-starting"] + ["backoff-after-failures"] * 4
    # It registered: the rest of the demand goes out at once.
    registered = ProfileBackoff(profile="small", failures=3, until=NOW, probe_registered=True)
    plan = plan_for(
        jobs=[job(i) for i in range(5)], backoff=[registered], fleet=[ours("t1", state="registered")]
    )
    assert plan.launches == (("small", 4),)


def test_a_probe_also_limits_min():
    keep = Profile(name="small", image="i", resources=("linux",), min=3, max=10)
    backoff = ProfileBackoff(profile="small", failures=1, until=NOW - 1)
    assert plan_for(profiles=(keep,), backoff=[backoff]).launches == (("small", 1),)


def test_backoff_pauses_a_profile():
    plan = plan_for(
        jobs=[job(2, ("docker", "linux")), job(1)], backoff=[ProfileBackoff("small", 3, NOW + 120)]
    )
    assert reasons(plan) == ["launching", "backoff-after-failures"]
    assert "120s" in plan.reasons[1].detail
    assert plan.launches == (("big", 1),)
    plan = plan_for(jobs=[job(1)], backoff=[ProfileBackoff("small", 3, NOW - 1)])
    assert reasons(plan) == ["launching"]


def test_stale_data_launches_nothing_for_jobs_and_drains_nothing():
    fleet = [ours("t1", idle_since=NOW - 3600)]
    plan = plan_for(jobs=[job(1)], fleet=fleet, fetched_at=NOW - 61)
    assert plan.stale and reasons(plan) == ["gocd-data-stale"] and "61s old" in plan.reasons[0].detail
    assert plan.launches == () and plan.drains == ()
    plan = plan_for(
        jobs=[job(1)], fleet=fleet, unavailable=GoCDUnavailable("connection refused", since=NOW - 5)
    )
    assert plan.stale and plan.reasons[0].detail == "connection refused" and plan.drains == ()
    empty = decide(Decide(backlog=None, fleet=FleetView()), PROFILES, SETTINGS, NOW)
    assert empty.stale and empty.reasons == ()


def test_an_old_agents_list_makes_the_data_stale_though_the_jobs_are_fresh():
    # [gocd] agents_interval: the jobs were read now, the agents list long ago. The idle agent
    # may be building by now: nothing is drained (nor launched) on the strength of that list.
    fleet = [ours("t1", idle_since=NOW - 3600)]
    plan = plan_for(jobs=[job(1)], fleet=fleet, agents_fetched_at=NOW - 61)
    assert plan.stale and reasons(plan) == ["gocd-data-stale"]
    assert plan.reasons[0].detail == "GoCD's agents list is 61s old"
    assert plan.launches == () and plan.drains == ()
    fresh_enough = plan_for(jobs=[], fleet=fleet, agents_fetched_at=NOW - 59)
    assert not fresh_enough.stale and fresh_enough.drains == ("t1",)


def test_min_is_kept_even_when_stale():
    keep = Profile(name="small", image="i", resources=("linux",), min=2, max=5)
    plan = plan_for(profiles=(keep,), fetched_at=NOW - 1000)
    assert plan.launches == (("small", 2),)
    plan = plan_for(profiles=(keep,), fleet=[ours("t1"), ours("t2", retiring=True)])
    assert plan.launches == (("small", 1),)


def test_idle_agents_above_min_drain_longest_idle_first():
    keep = Profile(name="small", image="i", resources=("linux",), min=1, max=5, idle_timeout=300)
    fleet = [
        ours("a", idle_since=NOW - 400),
        ours("b", idle_since=NOW - 1000),
        ours("c", idle_since=NOW - 100),
        ours("d", state="building"),
    ]
    plan = plan_for(fleet=fleet, profiles=(keep,))
    assert plan.drains == ("b", "a")
    keep2 = Profile(name="small", image="i", resources=("linux",), min=3, max=5, idle_timeout=300)
    assert plan_for(fleet=fleet, profiles=(keep2,)).drains == ("b",)


def test_idle_agents_a_waiting_job_could_take_are_kept():
    keep = Profile(name="small", image="i", resources=("linux",), max=5, idle_timeout=300)
    fleet = [ours("a", idle_since=NOW - 1000), ours("b", idle_since=NOW - 900)]
    agents = [go_agent("a"), go_agent("b")]
    plan = plan_for(jobs=[job(1)], agents=agents, fleet=fleet, profiles=(keep,))
    assert reasons(plan) == ["idle-agent-available"]
    assert plan.drains == ("a",)


def test_scale_down_off_still_retires_max_jobs():
    once = Profile(name="small", image="i", resources=("linux",), max=5, max_jobs=1, min=1)
    fleet = [
        ours("a", idle_since=NOW - 5, jobs=1),
        ours("b", idle_since=NOW - 5000, jobs=0),
        ours("c", state="building", jobs=1),
    ]
    plan = plan_for(fleet=fleet, profiles=(once,), settings=JudgeSettings(scale_down=False))
    assert plan.drains == ("a",)
    # Retiring does not count toward min: a fresh agent replaces it.
    assert plan.launches == ()


def test_leaving_agents_are_not_idle_capacity():
    fleet = [ours("a", state="draining")]
    plan = plan_for(jobs=[job(1)], agents=[go_agent("a")], fleet=fleet)
    assert reasons(plan) == ["launching"]


def test_judge_actor_tells_the_plan_to_registry_and_subscribers(clock, recorder):
    from tests.conftest import RecordingRef

    registry = RecordingRef()
    judge = Judge(profiles=PROFILES, settings=SETTINGS, clock=clock, registry=registry)
    judge.on_receive(Subscribe(recorder))
    backlog = BacklogSnapshot(jobs=(job(1),), agents=(), fetched_at=clock.now())
    judge.on_receive(Decide(backlog=backlog, fleet=FleetView()))
    (plan,) = registry.of(ScalePlan)
    assert plan.launches == (("small", 1),)
    assert recorder.of(ScalePlan) == [plan]


def test_judge_actor_uses_the_policy_it_is_given(clock, recorder):
    def never(request, profiles, settings, now):
        return ScalePlan(decided_at=now)

    judge = Judge(profiles=PROFILES, settings=SETTINGS, clock=clock, registry=recorder, policy=never)
    judge.on_receive(Decide(backlog=None, fleet=FleetView()))
    assert recorder.of(ScalePlan) == [ScalePlan(decided_at=clock.now())]


def test_equal_sized_profiles_prefer_the_most_generic_then_config_order():
    generic = Profile(name="zeta", image="i", resources=("linux",))
    special = Profile(name="alpha", image="i", resources=("linux", "clean"))
    twin = Profile(name="beta", image="i", resources=("linux",))
    plan = plan_for(jobs=[job(2, ("linux", "clean")), job(1)], profiles=(special, generic, twin))
    assert [r.profile for r in plan.reasons] == ["alpha", "zeta"]


def test_judge_actor_in_dry_run_says_it_would_launch(clock, recorder, caplog):
    judge = Judge(profiles=PROFILES, settings=SETTINGS, clock=clock, registry=recorder, dry_run=True)
    backlog = BacklogSnapshot(jobs=(job(1),), agents=(), fetched_at=clock.now())
    with caplog.at_level("INFO"):
        judge.on_receive(Decide(backlog=backlog, fleet=FleetView()))
    assert "Dry run: would launch 1 agent(s) for profile small" in caplog.text
    assert "Launching" not in caplog.text


def test_the_debug_line_of_a_plan_is_a_summary(clock, recorder, caplog):
    judge = Judge(profiles=(SMALL,), settings=SETTINGS, clock=clock, registry=recorder)
    backlog = BacklogSnapshot(jobs=tuple(job(i) for i in range(10_000)), agents=(), fetched_at=clock.now())
    with caplog.at_level(logging.DEBUG, logger="actors.fleet.judge"):
        judge.on_receive(Decide(backlog=backlog, fleet=FleetView()))
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Plan at")]
    assert len(line) < 300 and "10000 job reason(s)" in line
