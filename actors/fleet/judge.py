"""The backlog judge: how many agents of which profile to launch or drain, and why.

:func:`decide` is a pure function of the GoCD backlog, the fleet the registry
owns, the profiles and ``now``; tests and benchmarks call it directly, and an
embedding may replace it with another policy of the same signature. The
:class:`Judge` actor is a thin shell: it receives :class:`~actors.messages.Decide`
from the registry, calls the policy, tells the resulting
:class:`~actors.messages.ScalePlan` back to the registry and publishes it to its
other subscribers (status page, metrics).

How a decision is made (each waiting job gets exactly one reason):

1. A job that needs an elastic profile, or is pinned to one agent (GoCD's
   ``runOnAll`` jobs), is ``not-ours``.
2. Jobs take idle, enabled agents that GoCD would give them (any agent, ours or
   not, by GoCD's rules), oldest job first: ``idle-agent-available``.
3. A job no profile can serve is ``no-matching-profile``: backlog that is not
   agent demand. Otherwise it goes to the smallest profile that fits (fewest
   cpus, then mem, then disk), the most generic of equals (fewest resources and
   environments), then the first in the configuration.
4. Jobs covered by that profile's launches in flight are ``agent-starting``.
5. The rest is demand: launched at once unless the profile is in crash-loop
   backoff (``backoff-after-failures``), at ``max`` or beyond
   ``max_launch_per_cycle`` (``capped-at-max``); else ``launching``.
6. With stale or missing GoCD data every job is ``gocd-data-stale``: nothing is
   launched for jobs and nothing is drained; only ``min`` is kept.

Scale-down: idle agents of ours above ``min``, idle longer than
``idle_timeout``, longest idle first, never one a waiting job could take; and
agents that reached ``max_jobs`` are retired whatever ``min`` says (``min`` is
refilled with fresh agents).

The work is linear in jobs and agents: jobs and agents are grouped by their
(resources, environments) signature and fitting is computed once per pair of
signatures, so 10,000 jobs x 5,000 agents x 20 profiles stays well under the
200 ms budget.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from actors.base import BaseActor, Publisher
from actors.config import JudgeSettings, Profile
from actors.fleet.matching import environment_matches, fold
from actors.messages import (
    Decide,
    FleetAgent,
    JobReason,
    ProfileDecision,
    ScalePlan,
    ScheduledJob,
    Subscribe,
)

__all__ = ["REASONS", "Judge", "Policy", "decide"]

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
    "gocd-data-stale",
)

#: Fleet states that count as a launch in flight (no usable GoCD agent yet).
IN_FLIGHT = frozenset({"requested", "launching", "running", "registered"})
#: Fleet states that no longer occupy a slot.
ENDED = frozenset({"gone", "failed", "lost"})
#: Fleet states of an agent on its way out.
LEAVING = frozenset({"draining", "killing", "deleting"})

_RUN_ON_ALL = re.compile(r"-runOnAll-\d+$")

Signature = tuple[frozenset[str], frozenset[str]]

#: What a scaling policy is: the same inputs as :func:`decide`, a ScalePlan out.
Policy = Callable[[Decide, tuple[Profile, ...], JudgeSettings, float], ScalePlan]


def _choice_order(profiles: tuple[Profile, ...]) -> list[Profile]:
    """Profiles in the order a job picks them: smallest first (cpus, mem, disk), then the
    most generic (fewest resources and environments), then the order of the config file."""
    index = {p.name: i for i, p in enumerate(profiles)}
    return sorted(
        profiles,
        key=lambda p: (p.cpus, p.mem, p.disk, len(p.resources) + len(p.environments), index[p.name]),
    )


def _job_signature(job: ScheduledJob) -> tuple[frozenset[str], str | None]:
    env = job.environment.strip().casefold() if job.environment and job.environment.strip() else None
    return fold(job.resources), env


def _fits(
    job_sig: tuple[frozenset[str], str | None], resources: frozenset[str], envs: frozenset[str]
) -> bool:
    job_resources, job_env = job_sig
    return job_resources <= resources and environment_matches(job_env, envs)


def decide(request: Decide, profiles: tuple[Profile, ...], settings: JudgeSettings, now: float) -> ScalePlan:
    """The scale plan for one view of the backlog and the fleet at ``now``."""
    backlog = request.backlog
    fleet = request.fleet
    stale = (
        backlog is None
        or request.gocd_unavailable is not None
        or now - backlog.fetched_at > settings.stale_after
    )
    by_name = {p.name: p for p in profiles}
    ordered = _choice_order(profiles)
    profile_sigs = {p.name: (fold(p.resources), fold(p.environments)) for p in profiles}

    # The fleet, per profile, in one pass.
    active: Counter[str] = Counter()
    in_flight: Counter[str] = Counter()
    leaving: Counter[str] = Counter()
    leaving_hosts: set[str] = set()
    mine: dict[str, list[FleetAgent]] = {}
    for agent in fleet.agents:
        if agent.state in ENDED:
            continue
        active[agent.profile] += 1
        mine.setdefault(agent.profile, []).append(agent)
        if agent.state in IN_FLIGHT:
            in_flight[agent.profile] += 1
        if agent.state in LEAVING or agent.retiring:
            leaving[agent.profile] += 1
            leaving_hosts.add(agent.task_id)
    backoff_until = {b.profile: b.until for b in fleet.backoff if b.until > now}
    # After a backoff, one probe agent at a time until one registers.
    probe_left = {
        b.profile: max(0, 1 - in_flight[b.profile])
        for b in fleet.backoff
        if b.failures and b.until <= now and not b.probe_registered
    }

    jobs = backlog.jobs if backlog is not None else ()
    reasons: list[JobReason] = []
    waiting: Counter[str] = Counter()
    launch_wanted: Counter[str] = Counter()
    capped: Counter[str] = Counter()
    reserved_idle: Counter[Signature] = Counter()

    if stale:
        if request.gocd_unavailable is not None:
            detail = request.gocd_unavailable.reason
        elif backlog is None:
            detail = "no GoCD data yet"
        else:
            detail = f"GoCD data is {now - backlog.fetched_at:.0f}s old"
        reasons.extend(JobReason(job.locator, "gocd-data-stale", None, detail) for job in jobs)
    else:
        assert backlog is not None
        # Idle, enabled, non-elastic agents GoCD could hand a job to, by signature.
        idle: Counter[Signature] = Counter()
        for go_agent in backlog.agents:
            if (
                go_agent.config_state == "Enabled"
                and go_agent.agent_state == "Idle"
                and not go_agent.is_elastic
                and go_agent.hostname not in leaving_hosts
            ):
                idle[(fold(go_agent.resources), fold(go_agent.environments))] += 1
        idle_sigs = sorted(idle, key=lambda s: (sorted(s[0]), sorted(s[1])))
        fitting_idle: dict[tuple[frozenset[str], str | None], list[Signature]] = {}
        chosen: dict[tuple[frozenset[str], str | None], Profile | None] = {}
        starting = Counter(in_flight)
        for job in jobs:
            if job.elastic_profile_id:
                reasons.append(
                    JobReason(job.locator, "not-ours", None, f"elastic profile {job.elastic_profile_id}")
                )
                continue
            if _RUN_ON_ALL.search(job.name):
                reasons.append(
                    JobReason(job.locator, "not-ours", None, "pinned to one agent (run on all agents)")
                )
                continue
            sig = _job_signature(job)
            sigs = fitting_idle.get(sig)
            if sigs is None:
                sigs = fitting_idle[sig] = [s for s in idle_sigs if _fits(sig, s[0], s[1])]
            taken = next((s for s in sigs if idle[s] > 0), None)
            if taken is not None:
                idle[taken] -= 1
                reserved_idle[taken] += 1
                reasons.append(JobReason(job.locator, "idle-agent-available", None, ""))
                continue
            if sig not in chosen:
                chosen[sig] = next((p for p in ordered if _fits(sig, *profile_sigs[p.name])), None)
            profile = chosen[sig]
            if profile is None:
                wanted = ", ".join(sorted(job.resources)) or "no resources"
                env = f"environment {job.environment}" if job.environment else "no environment"
                reasons.append(
                    JobReason(job.locator, "no-matching-profile", None, f"needs {wanted} in {env}")
                )
                continue
            waiting[profile.name] += 1
            if starting[profile.name] > 0:
                starting[profile.name] -= 1
                reasons.append(JobReason(job.locator, "agent-starting", profile.name, ""))
                continue
            if profile.name in backoff_until:
                reasons.append(
                    JobReason(
                        job.locator,
                        "backoff-after-failures",
                        profile.name,
                        f"launches paused for {backoff_until[profile.name] - now:.0f}s",
                    )
                )
                continue
            if profile.name in probe_left:
                if probe_left[profile.name] == 0:
                    reasons.append(
                        JobReason(
                            job.locator,
                            "backoff-after-failures",
                            profile.name,
                            "one probe agent must register before the rest is launched",
                        )
                    )
                    continue
                probe_left[profile.name] -= 1
            launch_wanted[profile.name] += 1
            reasons.append(JobReason(job.locator, "launching", profile.name, ""))

    # Launches: demand, then min; bounded by max, backoff (or its probe) and the cycle budget.
    budget = settings.max_launch_per_cycle
    launches: dict[str, int] = {}
    over_budget: Counter[str] = Counter()
    for profile in ordered:
        name = profile.name
        keep_min = max(0, profile.min - (active[name] - leaving[name]))
        want = launch_wanted[name] if not stale else 0
        room = max(0, profile.max - active[name])
        allowed = min(max(want, keep_min), room)
        if name in backoff_until:
            allowed = 0
        elif name in probe_left:
            allowed = min(allowed, max(0, 1 - in_flight[name]))
        count = min(allowed, budget)
        budget -= count
        launches[name] = count
        # Jobs left without a launch: first those beyond max, then those beyond the budget.
        capped[name] = max(0, want - allowed)
        over_budget[name] = max(0, min(want, allowed) - count)
    if any(capped.values()) or any(over_budget.values()):
        reasons = _cap_reasons(reasons, capped, over_budget, by_name, settings.max_launch_per_cycle)
        capped = capped + over_budget

    # Scale-down.
    drains: dict[str, list[str]] = {p.name: [] for p in profiles}
    if not stale:
        for profile in profiles:
            agents = mine.get(profile.name, [])
            if profile.max_jobs:
                drains[profile.name].extend(
                    a.task_id
                    for a in agents
                    if a.state == "idle" and not a.retiring and a.jobs_done >= profile.max_jobs
                )
            if settings.scale_down:
                drains[profile.name].extend(
                    _idle_drains(profile, agents, reserved_idle, profile_sigs, drains[profile.name], now)
                )

    decisions = tuple(
        ProfileDecision(
            profile=p.name,
            waiting=waiting[p.name],
            active=active[p.name],
            in_flight=in_flight[p.name],
            capped=capped[p.name],
            backoff_until=backoff_until.get(p.name),
        )
        for p in profiles
    )
    return ScalePlan(
        decided_at=now,
        launches=tuple((name, n) for name, n in launches.items() if n > 0),
        drains=tuple(task for p in profiles for task in drains[p.name]),
        reasons=tuple(reasons),
        profiles=decisions,
        stale=stale,
    )


def _cap_reasons(
    reasons: list[JobReason],
    over_max: Counter[str],
    over_budget: Counter[str],
    by_name: dict[str, Profile],
    budget: int,
) -> list[JobReason]:
    """Turn the newest ``launching`` reasons of each capped profile into ``capped-at-max``:
    the newest ones for the profile's ``max``, the ones before them for the cycle's budget."""
    out = list(reasons)
    left_max, left_budget = Counter(over_max), Counter(over_budget)
    for i in range(len(out) - 1, -1, -1):
        r = out[i]
        if r.reason != "launching" or not r.profile:
            continue
        if left_max[r.profile] > 0:
            left_max[r.profile] -= 1
            detail = f"max {by_name[r.profile].max} agents reached"
        elif left_budget[r.profile] > 0:
            left_budget[r.profile] -= 1
            detail = f"max_launch_per_cycle ({budget}) used up; launched in a later cycle"
        else:
            continue
        out[i] = JobReason(r.locator, "capped-at-max", r.profile, detail)
    return out


def _idle_drains(
    profile: Profile,
    mine: list[FleetAgent],
    reserved_idle: Counter[Signature],
    profile_sigs: dict[str, tuple[frozenset[str], frozenset[str]]],
    already: list[str],
    now: float,
) -> list[str]:
    """Idle agents of ``profile`` (``mine``, none ended) to drain: above min, idle too long,
    longest idle first."""
    staying = [a for a in mine if not (a.retiring or a.state in LEAVING) and a.task_id not in already]
    idle = sorted(
        (a for a in staying if a.state == "idle" and a.idle_since is not None),
        key=lambda a: (a.idle_since, a.task_id),
    )
    # Waiting jobs will take some idle agents of this signature: keep the most
    # recently idle ones for them.
    keep_for_jobs = reserved_idle.get(profile_sigs[profile.name], 0)
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


class Judge(BaseActor):
    """Decides scale plans; the thin shell around a policy such as :func:`decide`.

    Accepts: :class:`~actors.messages.Decide` (from the registry),
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
        policy: Policy | None = None,
        dry_run: bool = False,
        stop_hook: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(stop_hook=stop_hook)
        self._dry_run = dry_run
        self._profiles = profiles
        self._settings = settings
        self._clock = clock
        self._registry = registry
        self._policy: Policy = policy or decide
        self._publisher = Publisher(list(subscribers))
        self._last_summary: tuple[Any, ...] = ()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Decide):
            plan = self._policy(message, self._profiles, self._settings, self._clock.now())
            self._log(plan)
            if self._registry is not None:
                self._registry.tell(plan)
            self._publisher.publish(plan)
            return None
        if isinstance(message, Subscribe):
            self._publisher.add(message.subscriber)
            return None
        return super().on_receive(message)

    def _log(self, plan: ScalePlan) -> None:
        would = "Dry run: would " if self._dry_run else ""
        for name, count in plan.launches:
            logger.info(
                "%s%s %d agent(s) for profile %s", would, "launch" if would else "Launching", count, name
            )
        if plan.drains:
            logger.info(
                "%s%s %d idle agent(s): %s",
                would,
                "drain" if would else "Draining",
                len(plan.drains),
                ", ".join(plan.drains),
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
