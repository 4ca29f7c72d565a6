"""The backlog judge: how many agents of which profile to launch or drain, and why.

A scaling :class:`Policy` turns one :class:`~actors.messages.Decide` (the GoCD
backlog and the fleet the registry owns), the profiles and ``now`` into a
:class:`~actors.messages.ScalePlan`. Three ship, named in :data:`POLICIES` and
chosen by ``[judge] policy``: ``default`` (:func:`decide`), ``ancestor``
(:class:`AncestorPolicy`) and ``static`` (:class:`StaticPolicy`); an embedding
may pass its own, or a plain function of :func:`decide`'s signature. The
:class:`Judge` actor is a thin shell: it receives Decide from the registry,
asks its policy, tells the plan back to the registry and publishes it to its
other subscribers (status page, metrics).

How the default decides, one named pure step after another (each waiting job
gets exactly one reason):

1. ``_not_ours``: jobs no launch of ours can serve are set aside: a job GoCD
   pins to one agent (its ``runOnAll`` jobs) is ``pinned-to-agent``, a job
   that needs an elastic profile is ``not-ours``, and a job whose resources
   could not be read (the dashboard backlog without the rights to read its
   pipeline's config) is ``resources-unknown``: launching for it would guess.
2. ``_take_idle_agents``: jobs take idle, enabled agents that GoCD would give
   them (any agent, ours or not, by GoCD's rules), oldest job first:
   ``idle-agent-available``.
3. ``_choose_profile``: a job no profile can serve is ``no-matching-profile``:
   backlog that is not agent demand. Otherwise it goes to the smallest profile
   that fits (fewest cpus, then mem, then disk), the most generic of equals
   (fewest resources and environments), then the first in the configuration.
   A profile fits as GoCD will match its agents: without the environment names
   the agents API shows GoCD defines nowhere (GoCD ignores them on an agent).
   ``_as_gocd_hands_out``: GoCD hands a registering agent the oldest job it may
   run, so a job that fits the profile a younger job was given gets that profile
   too (else it could take that agent and strand the younger job).
4. ``_cover_with_in_flight``: jobs covered by that profile's launches in flight
   are ``agent-starting``; launches in flight their profile no longer needs
   cover the oldest other jobs their agents fit.
5. ``_hold_for_backoff``, ``_launches``: the rest is demand, launched at once
   unless the profile is in crash-loop backoff (``backoff-after-failures``), at
   ``max`` or beyond ``max_launch_per_cycle`` (``capped-at-max``); else
   ``launching``. ``min`` is kept.
6. ``_drains``: idle agents of ours above ``min``, idle longer than
   ``idle_timeout``, longest idle first, never one a waiting job could take
   or is pinned to;
   and agents that reached ``max_jobs`` are retired whatever ``min`` says
   (``min`` is refilled with fresh agents).

With stale or missing GoCD data (``_stale``: the older of the snapshot's jobs and agents
reads is older than ``stale_after``) every job is ``gocd-data-stale``:
nothing is launched for jobs and nothing is drained; only ``min`` is kept.

The other two policies reuse steps 1 to 4 and differ in what they launch and
drain; the jobs they hold back are ``held-by-policy``. The ancestor's
(``indix/gocd-mesos``) looks every 2 minutes and launches one agent after more
than 5 looks in a row with jobs waiting for one, and never drains. A static
fleet keeps ``min`` agents of each profile, launches nothing for demand and
drains nothing. Both respect ``max``, the backoff and stale data as the
default does.

The work is linear in jobs and agents: jobs and agents are grouped by their
(resources, environments) signature and fitting is computed once per pair of
signatures, so 10,000 jobs x 5,000 agents x 20 profiles stays well under the
200 ms budget.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from actors.base import BaseActor, Publisher
from actors.config import JudgeSettings, Profile
from actors.exceptions import ConfigError
from actors.fleet.matching import environment_matches, fold
from actors.fleet.states import ENDED, IN_FLIGHT, LEAVING, FleetState
from actors.messages import (
    BacklogSnapshot,
    Decide,
    FleetAgent,
    FleetView,
    GoAgent,
    JobReason,
    ProfileDecision,
    ScalePlan,
    ScheduledJob,
    SettingsChanged,
    Subscribe,
)

__all__ = [
    "ANCESTOR_LOOKS",
    "ANCESTOR_LOOK_INTERVAL",
    "POLICIES",
    "REASONS",
    "AncestorLooks",
    "AncestorPolicy",
    "DefaultPolicy",
    "FunctionPolicy",
    "Judge",
    "Policy",
    "PolicyFunction",
    "StaticPolicy",
    "ancestor_decide",
    "as_policy",
    "decide",
    "policy_named",
]

logger = logging.getLogger(__name__)

#: Every reason a waiting job can be given.
REASONS = (
    "launching",
    "agent-starting",
    "idle-agent-available",
    "capped-at-max",
    "backoff-after-failures",
    "no-matching-profile",
    "not-ours",
    "pinned-to-agent",
    "resources-unknown",
    "gocd-data-stale",
    "held-by-policy",
)

#: Seconds between two looks of the ancestor's policy at the backlog (its poll interval).
ANCESTOR_LOOK_INTERVAL = 120.0
#: The ancestor launches one agent after more than this many looks in a row with waiting jobs.
ANCESTOR_LOOKS = 5

_RUN_ON_ALL = re.compile(r"-runOnAll-\d+$")

Signature = tuple[frozenset[str], frozenset[str]]
#: A job's (folded resources, folded environment or None).
_JobSig = tuple[frozenset[str], str | None]
#: A job's index in the backlog, and its reason.
_Said = tuple[int, JobReason]
#: A waiting job and its index in the backlog, as the steps pass it on.
_Waiting = tuple[int, ScheduledJob]
_Signed = tuple[int, ScheduledJob, _JobSig]
_Demand = tuple[int, ScheduledJob, Profile]


# --- What a policy is ---------------------------------------------------------


#: A plain function of :func:`decide`'s signature; :func:`as_policy` makes it a Policy.
PolicyFunction = Callable[[Decide, tuple[Profile, ...], JudgeSettings, float], ScalePlan]


@runtime_checkable
class Policy(Protocol):
    """A scaling policy: the plan for one view of the backlog and the fleet at ``now``.

    A policy gives every waiting job exactly one reason from :data:`REASONS`,
    launches nothing for jobs and drains nothing when GoCD's data is stale, and
    stays within each profile's ``max`` and its crash-loop backoff. It may keep
    state of its own between decisions (the judge actor owns one instance per
    system and calls it from its one thread); it touches nothing else.
    """

    def decide(
        self, request: Decide, profiles: tuple[Profile, ...], settings: JudgeSettings, now: float
    ) -> ScalePlan:
        """The plan for ``request`` at ``now`` (seconds of the injected clock)."""
        ...


@dataclass(frozen=True)
class FunctionPolicy:
    """A plain function of :func:`decide`'s signature, as a :class:`Policy`."""

    #: The function; called with the policy's arguments, its plan returned as is.
    function: PolicyFunction

    def decide(
        self, request: Decide, profiles: tuple[Profile, ...], settings: JudgeSettings, now: float
    ) -> ScalePlan:
        """The function's plan."""
        return self.function(request, profiles, settings, now)


def as_policy(policy: Policy | PolicyFunction) -> Policy:
    """``policy`` itself when it is a :class:`Policy`, else the function wrapped in one."""
    if isinstance(policy, type):
        raise TypeError(f"a scaling policy is an instance, not the class {policy.__name__}")
    if isinstance(policy, Policy):
        return policy
    if callable(policy):
        return FunctionPolicy(policy)
    raise TypeError(f"not a scaling policy: {policy!r}")


# --- The steps ------------------------------------------------------------------


@dataclass(frozen=True)
class _Fleet:
    """Our agents counted per profile, and the profiles' backoff at ``now``."""

    #: Agents that occupy a slot (all but ended ones), per profile.
    active: Counter[str]
    #: Launches in flight (no usable GoCD agent yet), per profile.
    in_flight: Counter[str]
    #: Agents on their way out (leaving states, or chosen to retire), per profile.
    leaving: Counter[str]
    #: Task ids (also GoCD hostnames) of the agents on their way out.
    leaving_hosts: frozenset[str]
    #: The agents that occupy a slot, per profile.
    mine: Mapping[str, list[FleetAgent]]
    #: Clock time launches resume, for the profiles backing off now.
    backoff_until: Mapping[str, float]
    #: Probe launches still allowed, for profiles past a backoff whose probe has not registered.
    probe_left: Mapping[str, int]
    #: The agents that occupy a slot and have registered, by GoCD agent UUID.
    by_uuid: Mapping[str, FleetAgent]


def _count_fleet(fleet: FleetView, now: float) -> _Fleet:
    """The fleet per profile, in one pass over our agents, and the backoff at ``now``."""
    active: Counter[str] = Counter()
    in_flight: Counter[str] = Counter()
    leaving: Counter[str] = Counter()
    leaving_hosts: set[str] = set()
    mine: dict[str, list[FleetAgent]] = {}
    by_uuid: dict[str, FleetAgent] = {}
    for agent in fleet.agents:
        if agent.state in ENDED:
            continue
        active[agent.profile] += 1
        mine.setdefault(agent.profile, []).append(agent)
        if agent.agent_uuid:
            by_uuid[agent.agent_uuid] = agent
        if agent.state in IN_FLIGHT:
            in_flight[agent.profile] += 1
        if agent.state in LEAVING or agent.retiring:
            leaving[agent.profile] += 1
            leaving_hosts.add(agent.task_id)
    return _Fleet(
        active=active,
        in_flight=in_flight,
        leaving=leaving,
        leaving_hosts=frozenset(leaving_hosts),
        mine=mine,
        backoff_until={b.profile: b.until for b in fleet.backoff if b.until > now},
        # After a backoff, one probe agent at a time until one registers.
        probe_left={
            b.profile: max(0, 1 - in_flight[b.profile])
            for b in fleet.backoff
            if b.failures and b.until <= now and not b.probe_registered
        },
        by_uuid=by_uuid,
    )


def _stale(request: Decide, settings: JudgeSettings, now: float) -> str | None:
    """Why GoCD's data cannot be trusted at ``now`` (the ``gocd-data-stale`` detail); None
    when it can."""
    backlog = request.backlog
    if request.gocd_unavailable is not None:
        return request.gocd_unavailable.reason
    if backlog is None:
        return "no GoCD data yet"
    # The older of the snapshot's two reads: an agents list reused from an earlier read
    # ([gocd] agents_interval) ages the whole view, drains included.
    if now - backlog.as_of > settings.stale_after:
        what = "GoCD data" if backlog.as_of == backlog.fetched_at else "GoCD's agents list"
        return f"{what} is {now - backlog.as_of:.0f}s old"
    return None


def _pinned(job: ScheduledJob) -> bool:
    """Whether GoCD gives the job to one agent only: a "run on all agents" job, known by its
    pinned agent (the dashboard source) or by its name (the feed)."""
    return job.pinned_agent is not None or bool(_RUN_ON_ALL.search(job.name))


def _pinned_detail(
    job: ScheduledJob, go_agents: Mapping[str, GoAgent], mine: Mapping[str, FleetAgent]
) -> str:
    if job.pinned_agent is None:
        return "run on all agents: only the agent it is pinned to can take it"
    agent = go_agents.get(job.pinned_agent)
    name = f"{agent.hostname} ({job.pinned_agent})" if agent is not None else job.pinned_agent
    ours = mine.get(job.pinned_agent)
    whose = f"ours ({FleetState(ours.state).value})" if ours is not None else "not one of ours"
    return f"run on all agents: pinned to agent {name}, {whose}"


def _not_ours(
    waiting: list[_Waiting],
    go_agents: tuple[GoAgent, ...] = (),
    mine: Mapping[str, FleetAgent] = MappingProxyType({}),
) -> tuple[list[_Said], list[_Waiting]]:
    """Step 1: jobs no launch of ours can serve: those GoCD pins to one agent (``runOnAll``)
    are ``pinned-to-agent``, those that need an elastic agent profile ``not-ours``, those
    whose resources are unknown ``resources-unknown``. Returns their reasons and the jobs
    left. ``go_agents`` and ``mine`` (our agents by UUID) only name a pinned job's agent in
    its detail."""
    said: list[_Said] = []
    left: list[_Waiting] = []
    agents_by_uuid = {a.uuid: a for a in go_agents} if any(j.pinned_agent for _, j in waiting) else {}
    for i, job in waiting:
        if _pinned(job):
            detail = _pinned_detail(job, agents_by_uuid, mine)
            said.append((i, JobReason(job.locator, "pinned-to-agent", None, detail)))
        elif job.elastic_profile_id:
            said.append(
                (i, JobReason(job.locator, "not-ours", None, f"elastic profile {job.elastic_profile_id}"))
            )
        elif job.resources_unknown is not None:
            said.append((i, JobReason(job.locator, "resources-unknown", None, job.resources_unknown)))
        else:
            left.append((i, job))
    return said, left


def _job_signature(job: ScheduledJob) -> _JobSig:
    env = job.environment.strip().casefold() if job.environment and job.environment.strip() else None
    return fold(job.resources), env


def _fits(job_sig: _JobSig, resources: frozenset[str], envs: frozenset[str]) -> bool:
    job_resources, job_env = job_sig
    return job_resources <= resources and environment_matches(job_env, envs)


def _undefined_environments(go_agents: tuple[GoAgent, ...]) -> frozenset[str]:
    """The environment names the agents API shows on some agent that GoCD's config defines
    nowhere (origin ``unknown``): GoCD ignores them on every agent."""
    return fold(name for agent in go_agents for name in agent.undefined_environments)


def _profile_signatures(profiles: tuple[Profile, ...], undefined: frozenset[str]) -> dict[str, Signature]:
    """Each profile's (resources, environments) as GoCD will match its agents: without the
    environment names it defines nowhere (``undefined``), which it ignores on an agent."""
    return {p.name: (fold(p.resources), fold(p.environments) - undefined) for p in profiles}


def _take_idle_agents(
    waiting: list[_Waiting], go_agents: tuple[GoAgent, ...], leaving_hosts: frozenset[str]
) -> tuple[list[_Said], list[_Signed], Counter[Signature]]:
    """Step 2: jobs take the idle, enabled, non-elastic agents GoCD would give them (ours or
    not, by GoCD's rules; none of ours on its way out), oldest job first:
    ``idle-agent-available``. Returns their reasons, the jobs left with their signature,
    and how many idle agents of each signature the jobs took (scale-down keeps those)."""
    idle: Counter[Signature] = Counter()
    for go_agent in go_agents:
        if (
            go_agent.config_state == "Enabled"
            and go_agent.agent_state == "Idle"
            and not go_agent.is_elastic
            and go_agent.hostname not in leaving_hosts
        ):
            idle[(fold(go_agent.resources), fold(go_agent.environments))] += 1
    idle_sigs = sorted(idle, key=lambda s: (sorted(s[0]), sorted(s[1])))
    fitting_idle: dict[_JobSig, list[Signature]] = {}
    taken_idle: Counter[Signature] = Counter()
    said: list[_Said] = []
    left: list[_Signed] = []
    for i, job in waiting:
        sig = _job_signature(job)
        sigs = fitting_idle.get(sig)
        if sigs is None:
            sigs = fitting_idle[sig] = [s for s in idle_sigs if _fits(sig, s[0], s[1])]
        taken = next((s for s in sigs if idle[s] > 0), None)
        if taken is None:
            left.append((i, job, sig))
            continue
        idle[taken] -= 1
        taken_idle[taken] += 1
        said.append((i, JobReason(job.locator, "idle-agent-available", None, "")))
    return said, left, taken_idle


def _choice_order(profiles: tuple[Profile, ...]) -> list[Profile]:
    """Profiles in the order a job picks them: smallest first (cpus, mem, disk), then the
    most generic (fewest resources and environments), then the order of the config file."""
    index = {p.name: i for i, p in enumerate(profiles)}
    return sorted(
        profiles,
        key=lambda p: (p.cpus, p.mem, p.disk, len(p.resources) + len(p.environments), index[p.name]),
    )


def _fitting_profiles(
    signed: list[_Signed], ordered: list[Profile], profile_sigs: Mapping[str, Signature]
) -> dict[_JobSig, list[Profile]]:
    """Per job signature of ``signed``, the profiles of ``ordered`` (:func:`_choice_order`) that
    fit it, in that order, as GoCD will match their agents (``profile_sigs``:
    :func:`_profile_signatures`). Steps 3 and 4 read it; each signature is fitted once."""
    fitting: dict[_JobSig, list[Profile]] = {}
    for _, _, sig in signed:
        if sig not in fitting:
            fitting[sig] = [p for p in ordered if _fits(sig, *profile_sigs[p.name])]
    return fitting


def _choose_profile(
    signed: list[_Signed], fitting: Mapping[_JobSig, list[Profile]]
) -> tuple[list[_Said], list[_Demand]]:
    """Step 3: each job goes to the first profile that fits it (:func:`_fitting_profiles`); a
    job no profile fits is ``no-matching-profile`` (backlog that is not agent demand). Returns
    their reasons and the jobs with their profile."""
    said: list[_Said] = []
    demand: list[_Demand] = []
    for i, job, sig in signed:
        if fitting[sig]:
            demand.append((i, job, fitting[sig][0]))
            continue
        wanted = ", ".join(sorted(job.resources)) or "no resources"
        env = f"environment {job.environment}" if job.environment else "no environment"
        said.append((i, JobReason(job.locator, "no-matching-profile", None, f"needs {wanted} in {env}")))
    return said, demand


def _as_gocd_hands_out(
    demand: list[_Demand],
    sig_of: Mapping[int, _JobSig],
    fitting: Mapping[_JobSig, list[Profile]],
    fleet: _Fleet,
) -> list[_Demand]:
    """Step 3, second half: the profiles chosen so that GoCD's hand-out cannot strand a job.

    GoCD hands an agent that asks for work the oldest waiting job it may run, whatever
    profile the agent was launched for. A job that also fits the agents of a profile a
    younger job needs takes one of them whenever it registers first, and the younger job
    then waits for a second start (a ``linux`` job older than a ``docker`` + ``linux`` one
    takes the agent launched for the latter). Such a job gets that profile too: of the
    profiles younger jobs were given that fit it, the last in :func:`_choice_order`, its own
    included, leaving out profiles backing off and those without room under ``max`` for
    it. In a chain of profiles each of which runs every job the one before runs, every
    order of registration then gives each job an agent. ``sig_of`` is each job's signature
    by its index in the backlog."""
    # Jobs a profile can still be given: agents in flight plus room under max.
    room = {
        p.name: p.max - (fleet.active[p.name] - fleet.in_flight[p.name])
        for ps in fitting.values()
        for p in ps
    }
    closed = set(fleet.backoff_until) | set(fleet.probe_left)
    # Per job signature: the profiles after its first choice that fit it, last first.
    later: dict[_JobSig, list[Profile]] = {}
    given: Counter[str] = Counter()  # jobs given each profile, the younger ones so far
    out: list[_Demand] = []
    for i, job, profile in reversed(demand):
        sig = sig_of[i]
        if sig not in later:
            later[sig] = [p for p in reversed(fitting[sig][1:]) if p.name not in closed]
        candidates = later[sig]
        best = (
            next((p for p in candidates if 0 < given[p.name] < room[p.name]), profile)
            if candidates
            else profile
        )
        given[best.name] += 1
        out.append((i, job, best))
    out.reverse()
    return out


def _cover_with_in_flight(
    demand: list[_Demand],
    sig_of: Mapping[int, _JobSig],
    fitting: Mapping[_JobSig, list[Profile]],
    in_flight: Counter[str],
) -> tuple[list[_Said], list[_Demand]]:
    """Step 4: each profile's launches in flight will take its oldest jobs: ``agent-starting``.
    Launches in flight that none of their profile's jobs needs any more (a job took an idle
    agent instead) take the oldest jobs left that their agents fit, as GoCD will hand them
    out. Returns their reasons and the jobs left, which need an agent launched."""
    starting = Counter(in_flight)
    said: list[_Said] = []
    left: list[_Demand] = []
    for i, job, profile in demand:
        if starting[profile.name] > 0:
            starting[profile.name] -= 1
            said.append((i, JobReason(job.locator, "agent-starting", profile.name, "")))
        else:
            left.append((i, job, profile))
    spare = sum(starting.values())
    needing: list[_Demand] = []
    for i, job, profile in left:
        taker = next((p for p in fitting[sig_of[i]] if starting[p.name] > 0), None) if spare else None
        if taker is None:
            needing.append((i, job, profile))
            continue
        starting[taker.name] -= 1
        spare -= 1
        said.append((i, JobReason(job.locator, "agent-starting", taker.name, "")))
    return said, needing


def _hold_for_backoff(demand: list[_Demand], fleet: _Fleet, now: float) -> tuple[list[_Said], list[_Demand]]:
    """Step 5, first half: jobs of a profile in crash-loop backoff wait, and after a backoff
    only one probe agent at a time is launched until one registers:
    ``backoff-after-failures``. Returns their reasons and the jobs left, those an agent may be
    launched for."""
    probe_left = dict(fleet.probe_left)
    said: list[_Said] = []
    left: list[_Demand] = []
    for i, job, profile in demand:
        name = profile.name
        if name in fleet.backoff_until:
            detail = f"launches paused for {fleet.backoff_until[name] - now:.0f}s"
        elif probe_left.get(name) == 0:
            detail = "one probe agent must register before the rest is launched"
        else:
            if name in probe_left:
                probe_left[name] -= 1
            left.append((i, job, profile))
            continue
        said.append((i, JobReason(job.locator, "backoff-after-failures", name, detail)))
    return said, left


def _launches(
    profiles: tuple[Profile, ...], wanted: Counter[str], fleet: _Fleet, settings: JudgeSettings
) -> tuple[dict[str, int], Counter[str], Counter[str]]:
    """Step 5, second half: agents to launch per profile, smallest profile first: the
    ``wanted`` ones or what ``min`` lacks, if more, within ``max``, the backoff (or its
    probe) and ``max_launch_per_cycle`` shared by all. Also returns, per profile, how many
    wanted agents ``max`` held back and how many the cycle's budget held back."""
    budget = settings.max_launch_per_cycle
    launches: dict[str, int] = {}
    over_max: Counter[str] = Counter()
    over_budget: Counter[str] = Counter()
    for profile in _choice_order(profiles):
        name = profile.name
        keep_min = max(0, profile.min - (fleet.active[name] - fleet.leaving[name]))
        want = wanted[name]
        room = max(0, profile.max - fleet.active[name])
        allowed = min(max(want, keep_min), room)
        if name in fleet.backoff_until:
            allowed = 0
        elif name in fleet.probe_left:
            allowed = min(allowed, max(0, 1 - fleet.in_flight[name]))
        count = min(allowed, budget)
        budget -= count
        launches[name] = count
        # Jobs left without a launch: first those beyond max, then those beyond the budget.
        over_max[name] = max(0, want - allowed)
        over_budget[name] = max(0, min(want, allowed) - count)
    return launches, over_max, over_budget


def _launching_or_capped(
    wanted: list[_Demand], over_max: Counter[str], over_budget: Counter[str], settings: JudgeSettings
) -> list[_Said]:
    """Step 5, reasons: of each profile's ``wanted`` jobs the oldest are ``launching``; the
    newest are ``capped-at-max``, the very newest for the profile's ``max`` and those
    before them for the cycle's budget."""
    left = Counter(p.name for _, _, p in wanted)
    said: list[_Said] = []
    for i, job, profile in wanted:
        name = profile.name
        left[name] -= 1  # wanted jobs of this profile newer than this one
        if left[name] < over_max[name]:
            reason, detail = "capped-at-max", f"max {profile.max} agents reached"
        elif left[name] < over_max[name] + over_budget[name]:
            reason = "capped-at-max"
            detail = (
                f"max_launch_per_cycle ({settings.max_launch_per_cycle}) used up; launched in a later cycle"
            )
        else:
            reason, detail = "launching", ""
        said.append((i, JobReason(job.locator, reason, name, detail)))
    return said


def _drains(
    profiles: tuple[Profile, ...],
    fleet: _Fleet,
    taken_idle: Counter[Signature],
    settings: JudgeSettings,
    now: float,
    pinned: frozenset[str] = frozenset(),
    undefined: frozenset[str] = frozenset(),
) -> dict[str, list[str]]:
    """Step 6: task ids to drain per profile: idle agents that reached ``max_jobs`` (whatever
    ``min`` says), then, with ``scale_down``, idle agents above ``min`` idle longer than
    ``idle_timeout``, longest idle first, keeping those waiting jobs take (``taken_idle``)
    and those a waiting job is pinned to (agent UUIDs in ``pinned``: disabled, the agent
    would leave the job waiting for good). Profiles match as GoCD sees their agents, without
    the environment names in ``undefined``."""
    profile_sigs = _profile_signatures(profiles, undefined)
    drains: dict[str, list[str]] = {p.name: [] for p in profiles}
    for profile in profiles:
        agents = fleet.mine.get(profile.name, [])
        if profile.max_jobs:
            drains[profile.name].extend(
                a.task_id
                for a in agents
                if a.state == FleetState.IDLE and not a.retiring and a.jobs_done >= profile.max_jobs
            )
        if settings.scale_down:
            drains[profile.name].extend(
                _idle_drains(profile, agents, taken_idle, profile_sigs, drains[profile.name], now, pinned)
            )
    return drains


def _idle_drains(
    profile: Profile,
    mine: list[FleetAgent],
    taken_idle: Counter[Signature],
    profile_sigs: dict[str, Signature],
    already: list[str],
    now: float,
    pinned: frozenset[str] = frozenset(),
) -> list[str]:
    """Idle agents of ``profile`` (``mine``, none ended) to drain: above min, idle too long,
    longest idle first, none a waiting job is pinned to (``pinned`` agent UUIDs)."""
    staying = [a for a in mine if not (a.retiring or a.state in LEAVING) and a.task_id not in already]
    idle = sorted(
        (
            a
            for a in staying
            if a.state == FleetState.IDLE and a.idle_since is not None and a.agent_uuid not in pinned
        ),
        key=lambda a: (a.idle_since, a.task_id),
    )
    # Waiting jobs will take some idle agents of this signature: keep the most
    # recently idle ones for them.
    keep_for_jobs = taken_idle.get(profile_sigs[profile.name], 0)
    candidates = idle[: max(0, len(idle) - keep_for_jobs)]
    room = len(staying) - profile.min
    out = []
    for agent in candidates:
        if room <= 0:
            break
        assert agent.idle_since is not None
        if now - agent.idle_since >= profile.idle_timeout:
            out.append(agent.task_id)
            room -= 1
    return out


def _in_order(count: int, *said: list[_Said]) -> tuple[JobReason, ...]:
    """The reasons the steps gave, in scheduled order: exactly one per waiting job."""
    slots: list[JobReason | None] = [None] * count
    for part in said:
        for i, reason in part:
            slots[i] = reason
    reasons = tuple(r for r in slots if r is not None)
    assert len(reasons) == count, "every waiting job gets exactly one reason"
    return reasons


def _plan(
    now: float,
    profiles: tuple[Profile, ...],
    fleet: _Fleet,
    reasons: tuple[JobReason, ...],
    *,
    waiting: Counter[str],
    launches: Mapping[str, int],
    capped: Counter[str],
    drains: Mapping[str, list[str]],
    stale: bool,
) -> ScalePlan:
    """The plan and its per-profile numbers; ``launches`` in the order they were decided."""
    return ScalePlan(
        decided_at=now,
        launches=tuple((name, n) for name, n in launches.items() if n > 0),
        drains=tuple(task for p in profiles for task in drains.get(p.name, ())),
        reasons=reasons,
        profiles=tuple(
            ProfileDecision(
                profile=p.name,
                waiting=waiting[p.name],
                active=fleet.active[p.name],
                in_flight=fleet.in_flight[p.name],
                capped=capped[p.name],
                backoff_until=fleet.backoff_until.get(p.name),
            )
            for p in profiles
        ),
        stale=stale,
    )


def _stale_plan(
    now: float,
    profiles: tuple[Profile, ...],
    fleet: _Fleet,
    request: Decide,
    detail: str,
    launches: Mapping[str, int],
) -> ScalePlan:
    """The plan while GoCD's data is stale: every job of the last known backlog is
    ``gocd-data-stale``, nothing is drained, and only ``launches`` (for ``min``, if the
    policy keeps one) are made."""
    jobs = request.backlog.jobs if request.backlog is not None else ()
    reasons = tuple(JobReason(job.locator, "gocd-data-stale", None, detail) for job in jobs)
    return _plan(
        now,
        profiles,
        fleet,
        reasons,
        waiting=Counter(),
        launches=launches,
        capped=Counter(),
        drains={},
        stale=True,
    )


# --- The default policy -----------------------------------------------------------


def _steps_1_to_4(
    backlog: BacklogSnapshot, profiles: tuple[Profile, ...], fleet: _Fleet, undefined: frozenset[str]
) -> tuple[
    list[_Said], list[_Said], Counter[Signature], list[_Said], list[_Demand], list[_Said], list[_Demand]
]:
    """The steps every policy takes first: jobs not ours, jobs idle agents take, the profile
    of the rest (environment names in ``undefined``, :func:`_undefined_environments`, ignored),
    jobs agents in flight cover. Returns the reasons said by each step, the idle agents taken
    by signature, the demand by profile and what is left of it."""
    not_ours, waiting = _not_ours(list(enumerate(backlog.jobs)), backlog.agents, fleet.by_uuid)
    idle, signed, taken_idle = _take_idle_agents(waiting, backlog.agents, fleet.leaving_hosts)
    fitting = _fitting_profiles(signed, _choice_order(profiles), _profile_signatures(profiles, undefined))
    sig_of = {i: sig for i, _, sig in signed}
    unmatched, chosen = _choose_profile(signed, fitting)
    demand = _as_gocd_hands_out(chosen, sig_of, fitting, fleet)
    starting, needing = _cover_with_in_flight(demand, sig_of, fitting, fleet.in_flight)
    return not_ours, idle, taken_idle, unmatched, demand, starting, needing


def decide(request: Decide, profiles: tuple[Profile, ...], settings: JudgeSettings, now: float) -> ScalePlan:
    """The default policy's plan for one view of the backlog and the fleet at ``now``: the
    module's steps, in order."""
    fleet = _count_fleet(request.fleet, now)
    stale = _stale(request, settings, now)
    if stale is not None:
        launches, _, _ = _launches(profiles, Counter(), fleet, settings)
        return _stale_plan(now, profiles, fleet, request, stale, launches)
    backlog = request.backlog
    assert backlog is not None  # else it would be stale
    undefined = _undefined_environments(backlog.agents)
    not_ours, idle, taken_idle, unmatched, demand, starting, needing = _steps_1_to_4(
        backlog, profiles, fleet, undefined
    )
    backing_off, wanted = _hold_for_backoff(needing, fleet, now)
    launches, over_max, over_budget = _launches(
        profiles, Counter(p.name for _, _, p in wanted), fleet, settings
    )
    launching = _launching_or_capped(wanted, over_max, over_budget, settings)
    pinned = frozenset(job.pinned_agent for job in backlog.jobs if job.pinned_agent)
    drains = _drains(profiles, fleet, taken_idle, settings, now, pinned, undefined)
    reasons = _in_order(len(backlog.jobs), not_ours, idle, unmatched, starting, backing_off, launching)
    return _plan(
        now,
        profiles,
        fleet,
        reasons,
        waiting=Counter(p.name for _, _, p in demand),
        launches=launches,
        capped=over_max + over_budget,
        drains=drains,
        stale=False,
    )


class DefaultPolicy:
    """The default policy: all demand at once, ``min`` kept, idle agents drained
    (:func:`decide`). Keeps no state."""

    def decide(
        self, request: Decide, profiles: tuple[Profile, ...], settings: JudgeSettings, now: float
    ) -> ScalePlan:
        """The plan of the module's :func:`decide`."""
        return decide(request, profiles, settings, now)


# --- The ancestor's policy ------------------------------------------------------


@dataclass(frozen=True)
class AncestorLooks:
    """What the ancestor's policy remembers from one decision to the next."""

    #: Clock time of its next look at the backlog; None before the first.
    next_look: float | None = None
    #: Looks in a row that saw jobs waiting for an agent to be launched.
    busy_looks: int = 0


def ancestor_decide(
    request: Decide,
    profiles: tuple[Profile, ...],
    settings: JudgeSettings,
    now: float,
    looks: AncestorLooks,
) -> tuple[ScalePlan, AncestorLooks]:
    """The ancestor's plan at ``now``, and what it remembers for the next decision.

    The ancestor (``indix/gocd-mesos``, 2016) polled GoCD every 2 minutes and
    launched one agent after more than 5 polls with scheduled jobs. Here it
    looks at the first decision and then at the first decision
    :data:`ANCESTOR_LOOK_INTERVAL` seconds after its last look (it slept 2
    minutes after each poll). A look counts when jobs wait for an agent to be
    launched (after steps 1 to 4: not other agents' jobs, not ones an idle
    agent takes or a starting agent will take, and a profile fits). A look
    without such jobs starts the count again, as the ancestor's README says
    ("continuous"; its code only ever cleared the count after a launch); a
    look that cannot read GoCD neither counts nor starts it again. At the look
    after which more than :data:`ANCESTOR_LOOKS` looks counted, it launches one
    agent, of the profile chosen for the oldest such job whose profile is not
    backing off and below ``max``, and the count starts again (with no such
    job, it tries at the next look). It never drains and keeps no ``min``: the
    ancestor had neither.
    """
    fleet = _count_fleet(request.fleet, now)
    if looks.next_look is None or now >= looks.next_look:
        look, next_look = True, now + ANCESTOR_LOOK_INTERVAL
    else:
        look, next_look = False, looks.next_look
    stale = _stale(request, settings, now)
    if stale is not None:
        plan = _stale_plan(now, profiles, fleet, request, stale, {})
        return plan, AncestorLooks(next_look, looks.busy_looks)
    backlog = request.backlog
    assert backlog is not None  # else it would be stale
    not_ours, idle, _, unmatched, demand, starting, needing = _steps_1_to_4(
        backlog, profiles, fleet, _undefined_environments(backlog.agents)
    )
    backing_off, wanted = _hold_for_backoff(needing, fleet, now)

    busy_looks = looks.busy_looks
    if look:
        busy_looks = busy_looks + 1 if needing else 0
    launch_at = None
    if look and busy_looks > ANCESTOR_LOOKS:
        launch_at = next(
            (k for k, (_, _, p) in enumerate(wanted) if fleet.active[p.name] < p.max),
            None,
        )
    launches: dict[str, int] = {}
    if launch_at is not None:
        launches[wanted[launch_at][2].name] = 1
        busy_looks = 0
    held_detail = (
        f"ancestor policy: {min(busy_looks, ANCESTOR_LOOKS + 1)} of {ANCESTOR_LOOKS + 1} looks with "
        f"waiting jobs, next look in {next_look - now:.0f}s"
    )
    capped: Counter[str] = Counter()
    held: list[_Said] = []
    for k, (i, job, profile) in enumerate(wanted):
        if k == launch_at:
            reason = JobReason(job.locator, "launching", profile.name, "")
        elif fleet.active[profile.name] >= profile.max:
            capped[profile.name] += 1
            detail = f"max {profile.max} agents reached"
            reason = JobReason(job.locator, "capped-at-max", profile.name, detail)
        else:
            reason = JobReason(job.locator, "held-by-policy", profile.name, held_detail)
        held.append((i, reason))
    reasons = _in_order(len(backlog.jobs), not_ours, idle, unmatched, starting, backing_off, held)
    plan = _plan(
        now,
        profiles,
        fleet,
        reasons,
        waiting=Counter(p.name for _, _, p in demand),
        launches=launches,
        capped=capped,
        drains={},
        stale=False,
    )
    return plan, AncestorLooks(next_look, busy_looks)


class AncestorPolicy:
    """The ancestor's policy (:func:`ancestor_decide`), remembering its looks between
    decisions: one instance per system."""

    def __init__(self, looks: AncestorLooks | None = None) -> None:
        self._looks = looks or AncestorLooks()

    @property
    def looks(self) -> AncestorLooks:
        """What it remembers now."""
        return self._looks

    def decide(
        self, request: Decide, profiles: tuple[Profile, ...], settings: JudgeSettings, now: float
    ) -> ScalePlan:
        """The plan of :func:`ancestor_decide`; its looks are remembered for the next call."""
        plan, self._looks = ancestor_decide(request, profiles, settings, now, self._looks)
        return plan


# --- A static fleet ---------------------------------------------------------------


class StaticPolicy:
    """A static fleet: ``min`` agents of each profile are kept (refilled within ``max``, the
    backoff and ``max_launch_per_cycle``, stale data or not), nothing is launched for
    waiting jobs (``held-by-policy``) and nothing is drained, not even at ``max_jobs``.
    Keeps no state."""

    def decide(
        self, request: Decide, profiles: tuple[Profile, ...], settings: JudgeSettings, now: float
    ) -> ScalePlan:
        """Steps 1 to 4 for the reasons, ``min`` for the launches, no drains."""
        fleet = _count_fleet(request.fleet, now)
        launches, _, _ = _launches(profiles, Counter(), fleet, settings)
        stale = _stale(request, settings, now)
        if stale is not None:
            return _stale_plan(now, profiles, fleet, request, stale, launches)
        backlog = request.backlog
        assert backlog is not None  # else it would be stale
        not_ours, idle, _, unmatched, demand, starting, needing = _steps_1_to_4(
            backlog, profiles, fleet, _undefined_environments(backlog.agents)
        )
        held: list[_Said] = []
        for i, job, profile in needing:
            detail = f"static fleet: {profile.min} agent(s), none launched for jobs"
            held.append((i, JobReason(job.locator, "held-by-policy", profile.name, detail)))
        reasons = _in_order(len(backlog.jobs), not_ours, idle, unmatched, starting, held)
        return _plan(
            now,
            profiles,
            fleet,
            reasons,
            waiting=Counter(p.name for _, _, p in demand),
            launches=launches,
            capped=Counter(),
            drains={},
            stale=False,
        )


# --- Policies by name --------------------------------------------------------------


#: The policies ``[judge] policy`` names, each a factory of a fresh instance.
POLICIES: Mapping[str, Callable[[], Policy]] = MappingProxyType(
    {"default": DefaultPolicy, "ancestor": AncestorPolicy, "static": StaticPolicy}
)


def policy_named(name: str) -> Policy:
    """A fresh instance of the policy ``name`` (a key of :data:`POLICIES`).

    Raises :class:`~actors.exceptions.ConfigError` for an unknown name, with the known ones.
    """
    factory = POLICIES.get(name)
    if factory is None:
        raise ConfigError(f'[judge] policy: "{name}" is not one of: {", ".join(POLICIES)}')
    return factory()


# --- The actor ------------------------------------------------------------------------


class Judge(BaseActor):
    """Decides scale plans; the thin shell around a :class:`Policy`.

    The policy is the one passed in code (a Policy, or a plain function of
    :func:`decide`'s signature), else the one ``settings.policy`` names.

    Accepts: :class:`~actors.messages.Decide` (from the registry),
    :class:`~actors.messages.SettingsChanged` (the next decision uses the new profiles and
    settings; a policy named by ``settings.policy`` is replaced when the name changes),
    :class:`~actors.messages.Subscribe`.
    Sends: :class:`~actors.messages.ScalePlan` to ``registry`` and to every
    subscriber.
    """

    def __init__(
        self,
        *,
        profiles: tuple[Profile, ...],
        settings: JudgeSettings,
        clock: Any,
        registry: Any = None,
        subscribers: Iterable[Any] = (),
        policy: Policy | PolicyFunction | None = None,
        dry_run: bool = False,
        stop_hook: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(stop_hook=stop_hook)
        self._dry_run = dry_run
        self._profiles = profiles
        self._settings = settings
        self._clock = clock
        self._registry = registry
        #: Whether the policy is the one ``settings.policy`` names (not one passed in code).
        self._policy_by_name = policy is None
        self._policy = as_policy(policy) if policy is not None else policy_named(settings.policy)
        self._publisher = Publisher(list(subscribers))
        self._last_summary: tuple[Any, ...] = ()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Decide):
            started = time.perf_counter()
            plan = self._policy.decide(message, self._profiles, self._settings, self._clock.now())
            plan = dataclasses.replace(plan, took=time.perf_counter() - started)
            self._log(plan)
            if self._registry is not None:
                self._registry.tell(plan)
            self._publisher.publish(plan)
            return None
        if isinstance(message, SettingsChanged):
            if self._policy_by_name and message.judge.policy != self._settings.policy:
                logger.info("Scaling policy is now %s (was %s)", message.judge.policy, self._settings.policy)
                self._policy = policy_named(message.judge.policy)
            self._profiles = message.profiles
            self._settings = message.judge
            return None
        if isinstance(message, Subscribe):
            self._publisher.add(message.subscriber)
            return None
        return super().on_receive(message)

    def _log(self, plan: ScalePlan) -> None:
        would = "Dry run: would " if self._dry_run else ""
        for name, count in plan.launches:
            logger.info(
                "%s%s %d agent(s) for profile %s",
                would,
                "launch" if would else "Launching",
                count,
                name,
                extra={"event": "launch_decided", "profile": name},
            )
        if plan.drains:
            logger.info(
                "%s%s %d idle agent(s): %s",
                would,
                "drain" if would else "Draining",
                len(plan.drains),
                ", ".join(plan.drains),
                extra={"event": "drain_decided"},
            )
        summary = tuple(sorted(Counter(r.reason for r in plan.reasons).items()))
        if summary != self._last_summary:
            self._last_summary = summary
            if summary:
                logger.info("Waiting jobs: %s", ", ".join(f"{n} {reason}" for reason, n in summary))
        if logger.isEnabledFor(logging.DEBUG):
            # A summary, not the plan: with 10,000 jobs the plan's repr is a megabyte.
            logger.debug(
                "Plan at %.1f: launch %s, drain %d, %d job reason(s) %s%s",
                plan.decided_at,
                dict(plan.launches) or "nothing",
                len(plan.drains),
                len(plan.reasons),
                dict(summary),
                " (GoCD data stale)" if plan.stale else "",
            )
