"""The status model: published messages folded into one immutable snapshot.

:class:`StatusModel` is a pure class: :meth:`StatusModel.apply` takes one
published message (ScalePlan, FleetChanged, BacklogSnapshot, GoCDUnavailable,
FrameworkRegistered/Disconnected/Error) and the clock time it arrived, and
:meth:`StatusModel.snapshot` returns a frozen :class:`Snapshot` that the HTTP
server reads from any thread. Anything that depends on the time of the read
(agent-seconds so far, the oldest job's wait) is a method of the snapshot taking
``now``, so a snapshot never goes stale between messages and readers never
write to it.

The age of a waiting job counts from when GoCD scheduled it, where the backlog
says (the dashboard source's ``scheduled_at``, wall-clock time GoCD gave, taken
against the ``wall`` time of :meth:`StatusModel.apply`; never later than the
first sight), else from when this model first saw it waiting in a
BacklogSnapshot: GoCD's scheduled-jobs feed carries no scheduled time (see
:class:`~actors.messages.ScheduledJob`), so there a job that waited before the
daemon started counts from the daemon's first read of GoCD.

The job latencies (:data:`JOB_STEPS`) count from that same start:

* ``launch``: to the LAUNCH of the agent started for the job. The judge gives a job
  the reason ``launching`` in the plan that asks an agent for it; each
  :class:`~actors.messages.TaskLaunched` of a profile is the agent of that
  profile's oldest such job still waiting for its LAUNCH (a launch for ``min``
  alone is no job's).
* ``registered``: to that agent showing up registered in GoCD (a FleetChanged
  with its task in a working state).
* ``assigned``: to the job leaving the backlog while an agent, ours or not, is
  seen building it. A job that leaves unseen (cancelled, or done within one
  poll) is not counted.

Agent-seconds integrate the fleet of every FleetChanged over clock time, per
profile and state: ``starting`` (requested to registered), ``idle``,
``building`` and ``leaving`` (draining, killing, deleting); ended agents count
for nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from typing import Any
from urllib.parse import unquote

from actors.config import Profile
from actors.fleet.states import ENDED, IN_FLIGHT, LAUNCH, LEAVING, WORKING, FleetState
from actors.messages import (
    AgentEnabled,
    BacklogSnapshot,
    FleetChanged,
    FleetView,
    FrameworkDisconnected,
    FrameworkError,
    FrameworkRegistered,
    GoCDHint,
    GoCDUnavailable,
    JobReason,
    LeadershipChanged,
    OffersHandled,
    ScalePlan,
    ScheduledJob,
    TaskLaunched,
)

__all__ = [
    "AGENT_STATES",
    "JOB_STEPS",
    "PLANS_KEPT",
    "WINDOW",
    "PlanSummary",
    "ProfileStatus",
    "Snapshot",
    "StatusModel",
]

#: States agent-seconds are counted in, in display order.
AGENT_STATES = ("starting", "idle", "building", "leaving")
#: How many of the latest plans a snapshot keeps.
PLANS_KEPT = 50
#: Seconds of the recent window ("the last hour") of agent-seconds and charts.
WINDOW = 3600.0

#: (profile, agent state) -> agents.
Counts = tuple[tuple[tuple[str, str], int], ...]


def _agent_state(state: FleetState) -> str | None:
    if state in IN_FLIGHT:
        return "starting"
    if state == FleetState.IDLE:
        return "idle"
    if state == FleetState.BUILDING:
        return "building"
    if state in LEAVING:
        return "leaving"
    return None


def _counts(fleet: FleetView) -> Counts:
    counts: dict[tuple[str, str], int] = {}
    for agent in fleet.agents:
        state = _agent_state(agent.state)
        if state is not None:
            counts[(agent.profile, state)] = counts.get((agent.profile, state), 0) + 1
    return tuple(sorted(counts.items()))


@dataclass(frozen=True)
class ProfileStatus:
    """One profile's numbers at the last message."""

    #: Profile name.
    profile: str
    #: Waiting jobs the last plan gave this profile, whatever their reason.
    waiting: int
    #: The profile's ``min`` and ``max`` agents.
    min: int
    max: int
    #: Our agents launching (requested, launching or running, not registered with GoCD yet).
    launching: int
    #: Registered agents that are idle.
    idle: int
    #: Agents building a job.
    building: int
    #: Agents leaving (draining, killing, deleting).
    draining: int
    #: Clock time before which no launch is made; None when the profile is not backing off.
    backoff_until: float | None = None


#: Upper bounds, in seconds, of the buckets of the request and decision histograms.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Upper bounds, in seconds, of the buckets of the job latency histograms: a poll interval
#: and an agent's start are seconds to minutes.
WAIT_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 1800.0)
#: The steps of a waiting job that the job latency histograms time, from its first sight.
JOB_STEPS = ("launch", "registered", "assigned")
#: Backlog reads during which a job gone from the backlog may still be seen being built.
ASSIGNED_LOOKS = 3


@dataclass(frozen=True)
class Histogram:
    """Observations of a duration in buckets; immutable, ``observe`` makes a new one."""

    #: Upper bounds of the buckets, in seconds, ascending.
    bounds: tuple[float, ...] = BUCKETS
    #: Observations per bucket (not cumulative), one more for those above the last bound;
    #: empty for none yet.
    counts: tuple[int, ...] = ()
    #: Sum of the observations, in seconds.
    total: float = 0.0

    def observe(self, seconds: float) -> Histogram:
        """This histogram with ``seconds`` observed too."""
        index = next((i for i, bound in enumerate(self.bounds) if seconds <= bound), len(self.bounds))
        counts = tuple(n + 1 if i == index else n for i, n in enumerate(self._counts()))
        return Histogram(bounds=self.bounds, counts=counts, total=self.total + seconds)

    def cumulative(self) -> list[tuple[str, float]]:
        """(``le`` bound, observations at or below it) for Prometheus, ``+Inf`` last."""
        out, running = [], 0
        for bound, n in zip((*(str(b) for b in self.bounds), "+Inf"), self._counts(), strict=True):
            running += n
            out.append((bound, float(running)))
        return out

    @property
    def count(self) -> int:
        """How many observations."""
        return sum(self.counts)

    def _counts(self) -> tuple[int, ...]:
        return self.counts or (0,) * (len(self.bounds) + 1)


@dataclass(frozen=True)
class PlanSummary:
    """One plan, shortened: what it did and why."""

    #: Clock time of the decision.
    decided_at: float
    #: (profile, count) pairs launched.
    launches: tuple[tuple[str, int], ...]
    #: Agents drained.
    drains: int
    #: Whether GoCD data was stale.
    stale: bool
    #: (reason, waiting jobs) pairs, most frequent first.
    why: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Snapshot:
    """Everything the status server shows, as of the last message; immutable."""

    #: Clock time of the message that made this snapshot (None before any).
    updated_at: float | None = None
    #: Per profile, configured ones first.
    profiles: tuple[ProfileStatus, ...] = ()
    #: The last plan's reason for every waiting job, in scheduled order.
    waiting: tuple[JobReason, ...] = ()
    #: Clock time each waiting job started waiting (GoCD's scheduled time where the backlog says,
    #: else its first sight; see the module), by locator.
    first_seen: tuple[tuple[str, float], ...] = ()
    #: The latest plans, oldest first (at most :data:`PLANS_KEPT`).
    plans: tuple[PlanSummary, ...] = ()
    #: Plans made since start.
    decisions: int = 0
    #: Clock time of the last good GoCD read; None before the first.
    gocd_read_at: float | None = None
    #: GoCD's version at the last read ("" unknown).
    gocd_version: str = ""
    #: Why GoCD cannot be read now; "" when the last read worked.
    gocd_error: str = ""
    #: Where the last read found the backlog: ``feed`` or ``dashboard`` ("" before a read).
    backlog_source: str = ""
    #: What the backlog source could not see at the last read (a missing permission, a
    #: ``#{param}`` no pipeline defines); empty when it saw everything.
    backlog_problems: tuple[str, ...] = ()
    #: Whether the framework is subscribed to a Mesos master.
    mesos_subscribed: bool = False
    #: The master subscribed to ("" unknown).
    mesos_master: str = ""
    #: The last error the master or driver reported ("" none).
    mesos_error: str = ""
    #: Framework id; "" before the first subscription.
    framework_id: str = ""
    #: Pending agents of ours approved through the API since start (AgentEnabled).
    approvals_total: int = 0
    #: Drains started since start: agents seen entering a leaving state.
    drains_total: int = 0
    #: How long the policy took over each plan.
    decision_seconds: Histogram = field(default_factory=Histogram)
    #: How long each GoCD read took, by endpoint (``scheduled_jobs`` or ``dashboard``, ``stage``,
    #: ``pipeline_config``, ``template``; ``agents``).
    gocd_seconds: tuple[tuple[str, Histogram], ...] = ()
    #: Failed GoCD polls by the endpoint that failed ("" when unknown).
    gocd_errors: tuple[tuple[str, int], ...] = ()
    #: GoCD's notifications received by the webhook since start, by hint kind.
    gocd_notifications: tuple[tuple[str, int], ...] = ()
    #: Clock time of the last of them; None before one.
    gocd_notified_at: float | None = None
    #: Mesos offers received, used for a launch, and declined since start.
    offers_received: int = 0
    offers_used: int = 0
    offers_declined: int = 0
    #: The FleetChanged counters since start.
    launched_total: int = 0
    failed_total: int = 0
    killed_total: int = 0
    #: Agents by (profile, state) now.
    agents: Counts = ()
    #: Agent-seconds by (profile, state) from start up to ``counted_at``.
    agent_seconds_counted: tuple[tuple[tuple[str, str], float], ...] = ()
    #: Clock time ``agent_seconds_counted`` runs up to (the last FleetChanged); None before one.
    counted_at: float | None = None
    #: (clock time, agents by (profile, state) from then on) for the last :data:`WINDOW` and the
    #: change before it, oldest first: the fleet's history for the recent window.
    timeline: tuple[tuple[float, Counts], ...] = ()
    #: (clock time, waiting jobs) at every plan of the last :data:`WINDOW`, oldest first.
    waiting_timeline: tuple[tuple[float, int], ...] = ()
    #: Seconds from a job's first sight to each of :data:`JOB_STEPS`, by step (see the module).
    job_seconds: tuple[tuple[str, Histogram], ...] = tuple(
        (step, Histogram(bounds=WAIT_BUCKETS)) for step in JOB_STEPS
    )
    #: With ``[ha]``: ``leader`` or ``standby`` (:class:`~actors.messages.LeadershipChanged`);
    #: "" for a daemon without ``[ha]``, which acts alone and so leads.
    role: str = ""
    #: With ``[ha]``: whether the ZooKeeper connection is up (a standby is healthy while it is).
    zookeeper_connected: bool = True

    @property
    def leading(self) -> bool:
        """Whether this daemon acts: it leads its election, or runs without ``[ha]``."""
        return self.role in ("", "leader")

    def agent_seconds(self, now: float) -> dict[tuple[str, str], float]:
        """Agent-seconds by (profile, state) since start, up to ``now``."""
        total = dict(self.agent_seconds_counted)
        if self.counted_at is not None:
            for key, n in self.agents:
                total[key] = total.get(key, 0.0) + n * max(0.0, now - self.counted_at)
        return total

    def recent_agent_seconds(self, now: float, window: float = WINDOW) -> dict[tuple[str, str], float]:
        """Agent-seconds by (profile, state) over the ``window`` seconds before ``now``."""
        total: dict[tuple[str, str], float] = {}
        start = now - window
        for i, (since, counts) in enumerate(self.timeline):
            until = self.timeline[i + 1][0] if i + 1 < len(self.timeline) else now
            seconds = max(0.0, min(until, now) - max(since, start))
            if seconds:
                for key, n in counts:
                    total[key] = total.get(key, 0.0) + n * seconds
        return total

    def oldest_wait(self, now: float) -> dict[tuple[str, str], float]:
        """Seconds the oldest waiting job has waited, by (profile or "", reason)."""
        seen = dict(self.first_seen)
        oldest: dict[tuple[str, str], float] = {}
        for job in self.waiting:
            if job.locator in seen:
                key = (job.profile or "", job.reason)
                oldest[key] = max(oldest.get(key, 0.0), max(0.0, now - seen[job.locator]))
        return oldest

    def waiting_by(self) -> dict[tuple[str, str], int]:
        """Waiting jobs by (profile or "", reason)."""
        counts: dict[tuple[str, str], int] = {}
        for job in self.waiting:
            key = (job.profile or "", job.reason)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def gocd_fresh(self, now: float, stale_after: float) -> bool:
        """Whether GoCD was read within ``stale_after`` seconds of ``now``."""
        return self.gocd_read_at is not None and now - self.gocd_read_at <= stale_after

    def to_json(self, now: float) -> dict[str, Any]:
        """The snapshot as the ``/status`` document, with the times relative to ``now``."""
        seen = dict(self.first_seen)

        def ago(t: float | None) -> float | None:
            return None if t is None else round(now - t, 3)

        return {
            "profiles": [
                {
                    "profile": p.profile,
                    "waiting": p.waiting,
                    "min": p.min,
                    "max": p.max,
                    "launching": p.launching,
                    "idle": p.idle,
                    "building": p.building,
                    "draining": p.draining,
                    "backoff_remaining_seconds": (
                        None if p.backoff_until is None else round(max(0.0, p.backoff_until - now), 3)
                    ),
                }
                for p in self.profiles
            ],
            "waiting_jobs": [
                {
                    "locator": j.locator,
                    "reason": j.reason,
                    "profile": j.profile,
                    "detail": j.detail,
                    "waiting_seconds": ago(seen.get(j.locator)),
                }
                for j in self.waiting
            ],
            "oldest_wait_seconds": [
                {"profile": profile, "reason": reason, "seconds": round(seconds, 3)}
                for (profile, reason), seconds in sorted(self.oldest_wait(now).items())
            ],
            "plans": [
                {
                    "seconds_ago": ago(p.decided_at),
                    "launches": dict(p.launches),
                    "drains": p.drains,
                    "stale": p.stale,
                    "why": dict(p.why),
                }
                for p in self.plans
            ],
            "decisions": self.decisions,
            "gocd": {
                "read_seconds_ago": ago(self.gocd_read_at),
                "version": self.gocd_version,
                "error": self.gocd_error,
                "backlog_source": self.backlog_source,
                "backlog_problems": list(self.backlog_problems),
                "notifications": dict(self.gocd_notifications),
                "notified_seconds_ago": ago(self.gocd_notified_at),
            },
            "mesos": {
                "subscribed": self.mesos_subscribed,
                "master": self.mesos_master,
                "framework_id": self.framework_id,
                "error": self.mesos_error,
            },
            "counters": {
                "launched": self.launched_total,
                "failed": self.failed_total,
                "killed": self.killed_total,
            },
            "agent_seconds": _by_profile(self.agent_seconds(now)),
            "agent_seconds_last_hour": _by_profile(self.recent_agent_seconds(now)),
            "efficiency": {
                "since_start": _efficiency(self.agent_seconds(now)),
                "last_hour": _efficiency(self.recent_agent_seconds(now)),
            },
            "job_seconds": {
                step: {"count": h.count, "sum": round(h.total, 3)} for step, h in self.job_seconds
            },
            "ha": {
                "role": self.role or "leader",
                "enabled": bool(self.role),
                "zookeeper_connected": self.zookeeper_connected,
            },
        }


def _efficiency(seconds: Mapping[tuple[str, str], float]) -> dict[str, float | None]:
    """Agent-seconds busy, idle and starting over all profiles, and busy's share of them all."""
    by_state = dict.fromkeys(AGENT_STATES, 0.0)
    for (_, state), value in seconds.items():
        by_state[state] = by_state.get(state, 0.0) + value
    spent = sum(by_state.values())
    return {
        "busy": round(by_state["building"], 3),
        "idle": round(by_state["idle"], 3),
        "starting": round(by_state["starting"], 3),
        "leaving": round(by_state["leaving"], 3),
        "utilisation": round(by_state["building"] / spent, 4) if spent else None,
    }


def _by_profile(values: Mapping[tuple[str, str], float]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for (profile, state), seconds in sorted(values.items()):
        out.setdefault(profile, {})[state] = round(seconds, 3)
    return out


@dataclass
class StatusModel:
    """Folds published messages into :class:`Snapshot` values; not thread-safe, one writer."""

    #: The configured profiles (for min and max, and their order).
    profile_settings: Iterable[Profile] = ()
    _snapshot: Snapshot = field(default_factory=Snapshot)
    _plans: deque[PlanSummary] = field(default_factory=lambda: deque(maxlen=PLANS_KEPT))
    _first_seen: dict[str, float] = field(default_factory=dict)
    _fleet: FleetView = field(default_factory=FleetView)
    _leaving: set[str] = field(default_factory=set)
    #: Per profile, the waiting jobs a plan asked an agent for whose LAUNCH is still to come.
    _awaiting_launch: dict[str, list[str]] = field(default_factory=dict)
    #: Every job ever put in ``_awaiting_launch`` while it waits (one LAUNCH per job).
    _asked_for: set[str] = field(default_factory=set)
    #: Task id -> first sight of the job it was launched for, until it registers.
    _awaiting_registration: dict[str, float] = field(default_factory=dict)
    #: Jobs gone from the backlog, awaiting sight of the agent building them:
    #: locator -> (first sight, backlog reads left to look).
    _left: dict[str, tuple[float, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.profile_settings = tuple(self.profile_settings)

    def snapshot(self) -> Snapshot:
        """The latest snapshot (the same object until the next message changes something)."""
        return self._snapshot

    def apply(self, message: Any, now: float, wall: float | None = None) -> Snapshot:
        """Fold ``message``, received at clock time ``now`` (``wall``: the wall-clock time then,
        which dates the jobs GoCD says when it scheduled), in; returns the new snapshot."""
        s = self._snapshot
        if isinstance(message, ScalePlan):
            self._ask_for_agents(message)
            self._plans.append(_summary(message))
            waiting_timeline = (*_recent(s.waiting_timeline, now), (now, len(message.reasons)))
            s = _replace(
                s,
                waiting=message.reasons,
                plans=tuple(self._plans),
                decisions=s.decisions + 1,
                waiting_timeline=waiting_timeline,
                decision_seconds=s.decision_seconds.observe(message.took),
            )
        elif isinstance(message, FleetChanged):
            s = self._fold_fleet(s, message, now)
        elif isinstance(message, BacklogSnapshot):
            job_seconds = self._assigned(message, now, wall, dict(s.job_seconds))
            s = _replace(
                s,
                job_seconds=tuple(job_seconds.items()),
                first_seen=tuple(self._first_seen.items()),
                gocd_read_at=now,
                gocd_version=message.server_version or s.gocd_version,
                gocd_error="",
                gocd_seconds=_observed(s.gocd_seconds, message.timings),
                backlog_source=message.backlog_source,
                backlog_problems=message.backlog_problems,
            )
        elif isinstance(message, GoCDHint):
            notifications = dict(s.gocd_notifications)
            notifications[message.kind] = notifications.get(message.kind, 0) + 1
            s = _replace(s, gocd_notifications=tuple(sorted(notifications.items())), gocd_notified_at=now)
        elif isinstance(message, GoCDUnavailable):
            errors = dict(s.gocd_errors)
            errors[message.endpoint] = errors.get(message.endpoint, 0) + 1
            s = _replace(s, gocd_error=message.reason, gocd_errors=tuple(sorted(errors.items())))
        elif isinstance(message, TaskLaunched):
            queue = self._awaiting_launch.get(message.profile)
            if not queue:
                return s  # a launch for min, or for a job that no longer waits
            first_seen = self._first_seen.get(queue.pop(0), now)
            self._awaiting_registration[message.task_id] = first_seen
            s = _replace(s, job_seconds=_observe(s.job_seconds, "launch", now - first_seen))
        elif isinstance(message, LeadershipChanged):
            s = _replace(
                s,
                role="leader" if message.leader else "standby",
                zookeeper_connected=message.zookeeper_connected,
            )
        elif isinstance(message, AgentEnabled):
            s = _replace(s, approvals_total=s.approvals_total + 1)
        elif isinstance(message, OffersHandled):
            s = _replace(
                s,
                offers_received=s.offers_received + message.received,
                offers_used=s.offers_used + message.used,
                offers_declined=s.offers_declined + message.declined,
            )
        elif isinstance(message, FrameworkRegistered):
            s = _replace(
                s,
                mesos_subscribed=True,
                framework_id=message.framework_id,
                mesos_master=message.master or s.mesos_master,
                mesos_error="",
            )
        elif isinstance(message, FrameworkDisconnected):
            s = _replace(s, mesos_subscribed=False)
        elif isinstance(message, FrameworkError):
            s = _replace(
                s, mesos_error=message.message, mesos_subscribed=s.mesos_subscribed and not message.fatal
            )
        else:
            return s
        s = _replace(s, updated_at=now, profiles=self._profiles(s, now))
        self._snapshot = s
        return s

    def _ask_for_agents(self, plan: ScalePlan) -> None:
        for job in plan.reasons:
            fresh = job.locator in self._first_seen and job.locator not in self._asked_for
            if job.reason == "launching" and job.profile and fresh:
                self._asked_for.add(job.locator)
                self._awaiting_launch.setdefault(job.profile, []).append(job.locator)

    def _assigned(
        self, message: BacklogSnapshot, now: float, wall: float | None, job_seconds: dict[str, Histogram]
    ) -> dict[str, Histogram]:
        """Fold a backlog read into the jobs' start times (see the module); time the jobs seen
        being built."""
        waiting = {j.locator for j in message.jobs}
        for locator in self._first_seen.keys() - waiting:
            self._left[locator] = (self._first_seen[locator], ASSIGNED_LOOKS)
        self._first_seen = {
            job.locator: self._first_seen.get(job.locator, _scheduled(job, now, wall)) for job in message.jobs
        }
        self._asked_for &= waiting
        for profile, queue in list(self._awaiting_launch.items()):
            self._awaiting_launch[profile] = [locator for locator in queue if locator in waiting]
        building = {
            unquote(a.build_details.job_url).rsplit("/tab/build/detail/", 1)[-1]
            for a in message.agents
            if a.build_details is not None and a.build_details.job_url
        }
        for locator, (first_seen, looks) in list(self._left.items()):
            if locator in building:
                job_seconds["assigned"] = job_seconds["assigned"].observe(max(0.0, now - first_seen))
                del self._left[locator]
            elif looks <= 1 or locator in waiting:
                del self._left[locator]
            else:
                self._left[locator] = (first_seen, looks - 1)
        return job_seconds

    def _fold_fleet(self, s: Snapshot, message: FleetChanged, now: float) -> Snapshot:
        for agent in message.fleet.agents:
            first_seen = self._awaiting_registration.get(agent.task_id)
            if first_seen is None:
                continue
            if agent.state in WORKING:
                s = _replace(s, job_seconds=_observe(s.job_seconds, "registered", now - first_seen))
            if agent.state in WORKING or agent.state in ENDED:
                del self._awaiting_registration[agent.task_id]
        known = {a.task_id for a in message.fleet.agents}
        for task_id in self._awaiting_registration.keys() - known:
            del self._awaiting_registration[task_id]
        counted = dict(s.agent_seconds(now)) if s.counted_at is not None else {}
        agents = _counts(message.fleet)
        self._fleet = message.fleet
        leaving = {a.task_id for a in message.fleet.agents if a.state in LEAVING}
        drains = len(leaving - self._leaving)
        self._leaving = leaving
        timeline = (*_recent_steps(s.timeline, now), (now, agents))
        return _replace(
            s,
            agents=agents,
            agent_seconds_counted=tuple(sorted(counted.items())),
            counted_at=now,
            timeline=timeline,
            launched_total=message.launched_total,
            failed_total=message.failed_total,
            killed_total=message.killed_total,
            drains_total=s.drains_total + drains,
        )

    def _profiles(self, s: Snapshot, now: float) -> tuple[ProfileStatus, ...]:
        names = [p.name for p in self.profile_settings]
        extra = {a.profile for a in self._fleet.agents} | {j.profile for j in s.waiting if j.profile}
        names += sorted(extra - set(names))
        configured = {p.name: p for p in self.profile_settings}
        backoff = {b.profile: b.until for b in self._fleet.backoff}
        out = []
        for name in names:
            states = [a.state for a in self._fleet.agents if a.profile == name]
            until = backoff.get(name)
            profile = configured.get(name)
            out.append(
                ProfileStatus(
                    profile=name,
                    waiting=sum(1 for j in s.waiting if j.profile == name),
                    min=profile.min if profile else 0,
                    max=profile.max if profile else 0,
                    launching=sum(1 for st in states if st in LAUNCH),
                    idle=sum(1 for st in states if st == FleetState.IDLE),
                    building=sum(1 for st in states if st == FleetState.BUILDING),
                    draining=sum(1 for st in states if st in LEAVING),
                    backoff_until=until if until is not None and until > now else None,
                )
            )
        return tuple(out)


def _observed(
    histograms: tuple[tuple[str, Histogram], ...], timings: tuple[tuple[str, float], ...]
) -> tuple[tuple[str, Histogram], ...]:
    by_endpoint = dict(histograms)
    for endpoint, seconds in timings:
        by_endpoint[endpoint] = by_endpoint.get(endpoint, Histogram()).observe(seconds)
    return tuple(sorted(by_endpoint.items()))


def _observe(
    histograms: tuple[tuple[str, Histogram], ...], step: str, seconds: float
) -> tuple[tuple[str, Histogram], ...]:
    return tuple((name, h.observe(max(0.0, seconds)) if name == step else h) for name, h in histograms)


def _scheduled(job: ScheduledJob, now: float, wall: float | None) -> float:
    """The clock time ``job`` was scheduled, seen first at clock time ``now`` (wall-clock time
    ``wall``): GoCD's time where it says, never later than now; else now."""
    if job.scheduled_at is None or wall is None:
        return now
    return now - max(0.0, wall - job.scheduled_at)


def _summary(plan: ScalePlan) -> PlanSummary:
    why: dict[str, int] = {}
    for job in plan.reasons:
        why[job.reason] = why.get(job.reason, 0) + 1
    return PlanSummary(
        decided_at=plan.decided_at,
        launches=plan.launches,
        drains=len(plan.drains),
        stale=plan.stale,
        why=tuple(sorted(why.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


def _recent(points: tuple[tuple[float, int], ...], now: float) -> tuple[tuple[float, int], ...]:
    return tuple(p for p in points if p[0] >= now - WINDOW)


def _recent_steps(steps: tuple[tuple[float, Counts], ...], now: float) -> tuple[tuple[float, Counts], ...]:
    # Keep the last step that began before the window too: it covers the window's start.
    keep = [i for i, (since, _) in enumerate(steps) if since >= now - WINDOW]
    first = max(0, (keep[0] if keep else len(steps)) - 1)
    return steps[first:]
