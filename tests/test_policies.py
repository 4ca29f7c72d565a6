"""The scaling policies (default, the ancestor's, a static fleet), their registry and
``[judge] policy``, table by table with ``now`` injected."""

from __future__ import annotations

import pytest

from actors import config
from actors.config import JudgeSettings, Profile
from actors.exceptions import ConfigError
from actors.fleet.judge import (
    ANCESTOR_LOOK_INTERVAL,
    POLICIES,
    REASONS,
    AncestorLooks,
    AncestorPolicy,
    DefaultPolicy,
    FunctionPolicy,
    Judge,
    StaticPolicy,
    ancestor_decide,
    as_policy,
    decide,
    policy_named,
)
from actors.messages import (
    BacklogSnapshot,
    Decide,
    FleetView,
    GoCDUnavailable,
    ProfileBackoff,
    ScalePlan,
)
from tests.test_config import MINIMAL, load_text, problems_of, with_key
from tests.test_judge import BIG, NOW, PROFILES, SETTINGS, SMALL, go_agent, job, ours, reasons

LOOK = ANCESTOR_LOOK_INTERVAL


def request_for(jobs=(), agents=(), fleet=(), backoff=(), fetched_at=NOW, unavailable=None, backlog=True):
    snapshot = (
        BacklogSnapshot(jobs=tuple(jobs), agents=tuple(agents), fetched_at=fetched_at) if backlog else None
    )
    return Decide(
        backlog=snapshot,
        fleet=FleetView(agents=tuple(fleet), backoff=tuple(backoff)),
        gocd_unavailable=unavailable,
    )


def checked(plan: ScalePlan, request: Decide) -> ScalePlan:
    """``plan``, after checking every waiting job has exactly one known reason, in order."""
    jobs = request.backlog.jobs if request.backlog else ()
    assert [r.locator for r in plan.reasons] == [j.locator for j in jobs]
    assert set(reasons(plan)) <= set(REASONS)
    return plan


# --- the default policy, its object and the plain-function adapter ---------------

MIXED = request_for(
    jobs=[job(1), job(2, ("docker", "linux")), job(3, ("windows",)), job(4, elastic="k8s"), job(5), job(6)],
    agents=[go_agent("static-1")],
    fleet=[ours("t1", state="running"), ours("t2", idle_since=NOW - 3600)],
    backoff=[ProfileBackoff("big", 2, NOW + 30)],
)


@pytest.mark.parametrize(
    "request_",
    [
        MIXED,
        request_for(jobs=[job(i) for i in range(30)]),
        request_for(jobs=[job(1)], fetched_at=NOW - 600),
        request_for(backlog=False),
    ],
    ids=["mixed", "capped", "stale", "no-backlog"],
)
def test_the_default_policy_object_gives_the_plan_of_decide(request_):
    expected = decide(request_, PROFILES, SETTINGS, NOW)
    assert DefaultPolicy().decide(request_, PROFILES, SETTINGS, NOW) == expected
    assert policy_named("default").decide(request_, PROFILES, SETTINGS, NOW) == expected
    assert as_policy(decide).decide(request_, PROFILES, SETTINGS, NOW) == expected


def test_a_plain_function_is_adapted_and_a_policy_is_kept():
    def never(request, profiles, settings, now):
        return ScalePlan(decided_at=now)

    assert as_policy(never) == FunctionPolicy(never)
    static = StaticPolicy()
    assert as_policy(static) is static
    with pytest.raises(TypeError, match="instance, not the class StaticPolicy"):
        as_policy(StaticPolicy)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a scaling policy"):
        as_policy(42)  # type: ignore[arg-type]


# --- the ancestor's policy ----------------------------------------------------------


def replay(policy, timeline, profiles=PROFILES, settings=SETTINGS):
    """Decide at each ``(seconds after NOW, request)``; the plans, checked."""
    return [checked(policy.decide(r, profiles, settings, NOW + t), r) for t, r in timeline]


def every_10s(until, request_at):
    return [(t, request_at(t)) for t in range(0, until + 1, 10)]


@pytest.mark.parametrize(
    ("name", "waiting_at", "launches_at"),
    [
        # Looks at 0, 120, ..., the sixth with waiting jobs launches one agent.
        ("steady backlog", lambda t: True, [5 * LOOK]),
        # ... and then the count starts again: the next launch six looks later.
        ("still waiting", lambda t: True, [5 * LOOK, 11 * LOOK]),
        # An empty look (at 600) starts the count again: launches at 720 + 600.
        ("one empty look", lambda t: t != 5 * LOOK, [11 * LOOK]),
        # Empty between looks changes nothing: only looks count.
        ("empty between looks", lambda t: t % LOOK == 0, [5 * LOOK]),
        ("no backlog", lambda t: False, []),
    ],
)
def test_the_ancestor_looks_every_2_minutes_and_launches_one_after_more_than_5_busy_looks(
    name, waiting_at, launches_at
):
    until = int(max([*launches_at, 10 * LOOK]))

    def request_at(t):
        return request_for(jobs=[job(1), job(2)] if waiting_at(t) else [], fetched_at=NOW + t)

    plans = replay(AncestorPolicy(), every_10s(until, request_at))
    assert [p.decided_at - NOW for p in plans if p.launches] == launches_at
    assert all(p.launches == (("small", 1),) for p in plans if p.launches)
    assert all(p.drains == () for p in plans)


def test_the_ancestors_jobs_say_they_wait_for_its_looks():
    def at(t):
        return (t, request_for(jobs=[job(1), job(2)], fetched_at=NOW + t))

    policy = AncestorPolicy()
    first, between = replay(policy, [at(0), at(30)])
    assert reasons(first) == ["held-by-policy"] * 2
    assert first.reasons[0].profile == "small"
    assert first.reasons[0].detail == "ancestor policy: 1 of 6 looks with waiting jobs, next look in 120s"
    assert between.reasons[0].detail == "ancestor policy: 1 of 6 looks with waiting jobs, next look in 90s"
    assert policy.looks == AncestorLooks(next_look=NOW + LOOK, busy_looks=1)
    # Four more looks: the sixth launches one agent, for the oldest job; the count starts again.
    *_, sixth = replay(policy, [at(t) for t in (120, 240, 360, 480, 600)])
    assert sixth.launches == (("small", 1),)
    assert reasons(sixth) == ["launching", "held-by-policy"]
    assert sixth.reasons[1].detail == "ancestor policy: 0 of 6 looks with waiting jobs, next look in 120s"
    assert policy.looks == AncestorLooks(next_look=NOW + 720, busy_looks=0)


@pytest.mark.parametrize(
    ("case", "jobs", "fleet", "backoff", "agents", "launches", "expected"),
    [
        (
            "the profile decide chooses for the oldest waiting job",
            [job(1, ("docker", "linux")), job(2)],
            [],
            [],
            [],
            (("big", 1),),
            ["launching", "held-by-policy"],
        ),
        (
            "a profile at max: the next job's profile",
            [job(1, ("docker", "linux")), job(2)],
            [ours(f"b{i}", profile="big", state="building") for i in range(10)],
            [],
            [],
            (("small", 1),),
            ["capped-at-max", "launching"],
        ),
        (
            "a profile in backoff: the next job's profile",
            [job(1, environment="staging"), job(2, ("docker", "linux"))],
            [],
            [ProfileBackoff("staging", 2, NOW + 30)],
            [],
            (("big", 1),),
            ["backoff-after-failures", "launching"],
        ),
        (
            "after a backoff, no launch beside the probe in flight",
            [job(1), job(2)],
            [ours("t1", state="running")],
            [ProfileBackoff("small", 2, NOW - 1)],
            [],
            (),
            ["agent-starting", "backoff-after-failures"],
        ),
        (
            "jobs an idle agent or a starting one takes, others' jobs, jobs no profile fits",
            [job(1), job(2), job(3, elastic="k8s"), job(4, ("windows",)), job(5)],
            [ours("t1", state="launching")],
            [],
            [go_agent("static-1")],
            (("small", 1),),
            ["idle-agent-available", "agent-starting", "not-ours", "no-matching-profile", "launching"],
        ),
    ],
)
def test_the_ancestors_one_launch_at_its_sixth_busy_look(
    case, jobs, fleet, backoff, agents, launches, expected
):
    request = request_for(jobs=jobs, fleet=fleet, backoff=backoff, agents=agents)
    plan, looks = ancestor_decide(
        request, PROFILES, SETTINGS, NOW, AncestorLooks(next_look=NOW, busy_looks=5)
    )
    checked(plan, request)
    assert plan.launches == launches
    assert reasons(plan) == expected
    assert looks.busy_looks == (0 if launches else 6)


@pytest.mark.parametrize(
    ("case", "jobs", "agents", "fleet", "busy_looks"),
    [
        ("no job", [], [], [], 0),
        ("an idle agent takes it", [job(1)], [go_agent("static-1")], [], 0),
        ("an agent is starting for it", [job(1)], [], [ours("t1", state="requested")], 0),
        ("not ours", [job(1, elastic="k8s")], [], [], 0),
        ("no profile fits", [job(1, ("windows",))], [], [], 0),
        ("a job needs an agent", [job(1)], [], [], 4),
    ],
)
def test_a_look_counts_only_jobs_that_need_an_agent_launched(case, jobs, agents, fleet, busy_looks):
    request = request_for(jobs=jobs, agents=agents, fleet=fleet)
    _, looks = ancestor_decide(request, PROFILES, SETTINGS, NOW, AncestorLooks(next_look=NOW, busy_looks=3))
    assert looks == AncestorLooks(next_look=NOW + LOOK, busy_looks=busy_looks)


def test_the_ancestor_never_drains_and_keeps_no_min():
    keep = Profile(name="small", image="i", resources=("linux",), min=1, max=5, idle_timeout=60, max_jobs=1)
    fleet = [
        ours("a", idle_since=NOW - 5000, jobs=1),
        ours("b", idle_since=NOW - 4000),
        ours("c", idle_since=NOW - 3000),
    ]
    plan, _ = ancestor_decide(request_for(fleet=fleet), (keep,), SETTINGS, NOW, AncestorLooks())
    assert decide(request_for(fleet=fleet), (keep,), SETTINGS, NOW).drains == ("a", "b")
    assert plan.drains == () and plan.launches == ()
    lacking = Profile(name="small", image="i", resources=("linux",), min=3, max=5)
    plan, _ = ancestor_decide(request_for(), (lacking,), SETTINGS, NOW, AncestorLooks())
    assert plan.launches == ()


def test_a_look_that_cannot_read_gocd_neither_counts_nor_starts_again():
    down = request_for(jobs=[job(1)], unavailable=GoCDUnavailable("connection refused", since=NOW))
    plan, looks = ancestor_decide(down, PROFILES, SETTINGS, NOW, AncestorLooks(next_look=NOW, busy_looks=5))
    assert reasons(plan) == ["gocd-data-stale"] and plan.launches == () and plan.stale
    assert looks == AncestorLooks(next_look=NOW + LOOK, busy_looks=5)


# --- a static fleet --------------------------------------------------------------------

KEEP2 = Profile(name="small", image="i", resources=("linux",), min=2, max=10, idle_timeout=60, max_jobs=1)


@pytest.mark.parametrize(
    ("case", "jobs", "fleet", "backoff", "launches", "expected"),
    [
        ("min is filled", [], [], [], (("small", 2),), []),
        (
            "min is there: nothing for demand",
            [job(i) for i in range(3)],
            [ours("a", state="building"), ours("b", state="building")],
            [],
            (),
            ["held-by-policy"] * 3,
        ),
        (
            "refills of min take the oldest jobs",
            [job(i) for i in range(3)],
            [ours("a", state="building"), ours("b", state="running")],
            [],
            (),
            ["agent-starting", "held-by-policy", "held-by-policy"],
        ),
        (
            "a leaving agent is refilled",
            [],
            [ours("a", state="building"), ours("b", state="draining")],
            [],
            (("small", 1),),
            [],
        ),
        (
            "backoff holds the refill",
            [job(1)],
            [],
            [ProfileBackoff("small", 2, NOW + 30)],
            (),
            ["held-by-policy"],
        ),
        ("one probe after a backoff", [], [], [ProfileBackoff("small", 2, NOW - 1)], (("small", 1),), []),
        (
            "more than min: nothing drained",
            [],
            [ours(t, idle_since=NOW - 5000, jobs=3) for t in "abcd"],
            [],
            (),
            [],
        ),
    ],
)
def test_a_static_fleet_keeps_exactly_min_and_launches_nothing_for_demand(
    case, jobs, fleet, backoff, launches, expected
):
    request = request_for(jobs=jobs, fleet=fleet, backoff=backoff)
    plan = checked(StaticPolicy().decide(request, (KEEP2,), SETTINGS, NOW), request)
    assert plan.launches == launches
    assert plan.drains == ()
    assert reasons(plan) == expected


def test_a_static_fleets_jobs_say_why_and_idle_agents_still_take_jobs():
    request = request_for(jobs=[job(1), job(2), job(3, elastic="k8s")], agents=[go_agent("static-1")])
    plan = checked(StaticPolicy().decide(request, (KEEP2,), SETTINGS, NOW), request)
    assert reasons(plan) == ["idle-agent-available", "held-by-policy", "not-ours"]
    assert plan.reasons[1].profile == "small"
    assert plan.reasons[1].detail == "static fleet: 2 agent(s), none launched for jobs"
    (numbers,) = plan.profiles
    assert (numbers.waiting, numbers.capped) == (1, 0)


# --- all three --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_policy_launches_nothing_for_jobs_and_drains_nothing_on_stale_data(name):
    small = Profile(name="small", image="i", resources=("linux",), min=1, max=5, idle_timeout=60)
    fleet = [ours("a", state="draining"), ours("b", idle_since=NOW - 5000), ours("c", idle_since=NOW - 5000)]
    for request in (
        request_for(jobs=[job(1), job(2)], fleet=fleet, fetched_at=NOW - 61),
        request_for(jobs=[job(1)], fleet=fleet, unavailable=GoCDUnavailable("connection refused", since=NOW)),
        request_for(fleet=fleet, backlog=False),
    ):
        policy = policy_named(name)
        plans = [
            checked(policy.decide(request, (small,), SETTINGS, NOW + t), request) for t in (0, 600, 1200)
        ]
        for plan in plans:
            assert plan.stale and plan.drains == ()
            assert set(reasons(plan)) <= {"gocd-data-stale"}
            # Only min is kept (the ancestor keeps none): here it lacks nothing.
            assert plan.launches == ()


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_policy_stays_within_max_and_gives_each_job_one_reason(name):
    tiny = Profile(name="small", image="i", resources=("linux",), max=2)
    request = request_for(jobs=[job(i) for i in range(20)], fleet=[ours("a", state="building")])
    policy = policy_named(name)
    for t in range(0, 1300, 10):
        plan = checked(policy.decide(request, (tiny, BIG), SETTINGS, NOW + t), request)
        assert plan.launch_for("small") <= 1


# --- the registry and [judge] policy ------------------------------------------------------


def test_the_registry_names_three_policies_and_builds_a_fresh_one_each_time():
    assert list(POLICIES) == ["default", "ancestor", "static"]
    assert isinstance(policy_named("default"), DefaultPolicy)
    assert isinstance(policy_named("static"), StaticPolicy)
    first, second = policy_named("ancestor"), policy_named("ancestor")
    assert isinstance(first, AncestorPolicy) and first is not second
    with pytest.raises(ConfigError) as info:
        policy_named("fastest")
    assert info.value.problems == ('[judge] policy: "fastest" is not one of: default, ancestor, static',)


def test_the_spec_allows_exactly_the_registered_policies():
    (line,) = [line for line in config.spec_lines() if line.startswith("policy =")]
    assert line.strip() == "policy = option('default', 'ancestor', 'static', default='default')"
    assert line.count("'") == 2 * (len(POLICIES) + 1)


@pytest.mark.parametrize("name", list(POLICIES))
def test_judge_policy_is_read_from_the_ini(name):
    assert load_text(with_key("judge", f"policy = {name}")).judge.policy == name


def test_judge_policy_defaults_to_default_and_is_shown():
    settings = load_text(MINIMAL)
    assert settings.judge.policy == "default" == JudgeSettings().policy
    assert "\npolicy = default\n" in config.render(settings)


@pytest.mark.parametrize("value", ["fastest", "Default", ""])
def test_an_unknown_judge_policy_lists_the_valid_ones(value):
    assert problems_of(with_key("judge", f"policy = {value}")) == [
        f'test.ini: [judge] policy: "{value}" is not one of: default, ancestor, static'
    ]


# --- the judge actor -----------------------------------------------------------------------


def test_the_judge_builds_its_policy_from_settings(clock, recorder):
    judge = Judge(profiles=(SMALL,), settings=JudgeSettings(policy="static"), clock=clock, registry=recorder)
    backlog = BacklogSnapshot(jobs=(job(1),), agents=(), fetched_at=clock.now())
    judge.on_receive(Decide(backlog=backlog, fleet=FleetView()))
    (plan,) = recorder.of(ScalePlan)
    assert plan.launches == () and reasons(plan) == ["held-by-policy"]


def test_the_judge_keeps_its_ancestor_policy_between_decisions(clock, recorder):
    judge = Judge(
        profiles=(SMALL,), settings=JudgeSettings(policy="ancestor"), clock=clock, registry=recorder
    )
    for _ in range(6):
        backlog = BacklogSnapshot(jobs=(job(1),), agents=(), fetched_at=clock.now())
        judge.on_receive(Decide(backlog=backlog, fleet=FleetView()))
        clock.advance(LOOK)
    assert [p.launches for p in recorder.of(ScalePlan)] == [()] * 5 + [(("small", 1),)]


def test_a_policy_or_a_plain_function_passed_in_code_wins_over_settings(clock, recorder):
    def never(request, profiles, settings, now):
        return ScalePlan(decided_at=now)

    backlog = BacklogSnapshot(jobs=(job(1),), agents=(), fetched_at=clock.now())
    for policy, launches in ((never, ()), (DefaultPolicy(), (("small", 1),)), (decide, (("small", 1),))):
        judge = Judge(
            profiles=(SMALL,),
            settings=JudgeSettings(policy="static"),
            clock=clock,
            registry=recorder,
            policy=policy,
        )
        judge.on_receive(Decide(backlog=backlog, fleet=FleetView()))
        assert recorder.of(ScalePlan)[-1].launches == launches


def test_a_judge_with_an_unknown_policy_fails_at_once(clock):
    with pytest.raises(ConfigError, match='"fastest" is not one of'):
        Judge(profiles=(SMALL,), settings=JudgeSettings(policy="fastest"), clock=clock)
