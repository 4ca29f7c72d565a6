"""The status model: published messages folded into one immutable snapshot.

:class:`StatusModel` is a pure class: :meth:`StatusModel.apply` takes one
published message (ScalePlan, FleetChanged, BacklogSnapshot, GoCDUnavailable,
FrameworkRegistered/Disconnected/Error) and the clock time it arrived, and
:meth:`StatusModel.snapshot` returns a frozen :class:`Snapshot` that the HTTP
server reads from any thread. Anything that depends on the time of the read
(agent-seconds so far, the oldest job's wait) is a method of the snapshot taking
``now``, so a snapshot never goes stale between messages and readers never
write to it.

The age of a waiting job counts from when this model first saw it waiting in a
BacklogSnapshot: GoCD's scheduled-jobs feed carries no scheduled time (see
:class:`~actors.messages.ScheduledJob`), so a job that waited before the daemon
started counts from the daemon's first read of GoCD.

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

from actors.config import Profile
from actors.fleet.states import IN_FLIGHT, LAUNCH, LEAVING, FleetState
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
    OffersHandled,
    ScalePlan,
)

__all__ = ["AGENT_STATES", "PLANS_KEPT", "WINDOW", "PlanSummary", "ProfileStatus", "Snapshot", "StatusModel"]

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


#: Upper bounds, in seconds, of the buckets of the timing histograms.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class Histogram:
    """Observations of a duration in :data:`BUCKETS`; immutable, ``observe`` makes a new one."""

    #: Observations per bucket (not cumulative), one more for those above the last bound.
    counts: tuple[int, ...] = (0,) * (len(BUCKETS) + 1)
    #: Sum of the observations, in seconds.
    total: float = 0.0

    def observe(self, seconds: float) -> Histogram:
        """This histogram with ``seconds`` observed too."""
        index = next((i for i, bound in enumerate(BUCKETS) if seconds <= bound), len(BUCKETS))
        counts = tuple(n + 1 if i == index else n for i, n in enumerate(self.counts))
        return Histogram(counts=counts, total=self.total + seconds)

    def cumulative(self) -> list[tuple[str, float]]:
        """(``le`` bound, observations at or below it) for Prometheus, ``+Inf`` last."""
        out, running = [], 0
        for bound, n in zip((*(str(b) for b in BUCKETS), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, float(running)))
        return out


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
    #: Clock time each waiting job was first seen waiting, by locator.
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
    #: How long each GoCD read took, by endpoint (``scheduled_jobs``, ``agents``).
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

    def __post_init__(self) -> None:
        self.profile_settings = tuple(self.profile_settings)

    def snapshot(self) -> Snapshot:
        """The latest snapshot (the same object until the next message changes something)."""
        return self._snapshot

    def apply(self, message: Any, now: float) -> Snapshot:
        """Fold ``message``, received at clock time ``now``, in; returns the new snapshot."""
        s = self._snapshot
        if isinstance(message, ScalePlan):
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
            self._first_seen = {
                locator: self._first_seen.get(locator, now) for locator in (j.locator for j in message.jobs)
            }
            s = _replace(
                s,
                first_seen=tuple(self._first_seen.items()),
                gocd_read_at=now,
                gocd_version=message.server_version or s.gocd_version,
                gocd_error="",
                gocd_seconds=_observed(s.gocd_seconds, message.timings),
            )
        elif isinstance(message, GoCDHint):
            notifications = dict(s.gocd_notifications)
            notifications[message.kind] = notifications.get(message.kind, 0) + 1
            s = _replace(s, gocd_notifications=tuple(sorted(notifications.items())), gocd_notified_at=now)
        elif isinstance(message, GoCDUnavailable):
            errors = dict(s.gocd_errors)
            errors[message.endpoint] = errors.get(message.endpoint, 0) + 1
            s = _replace(s, gocd_error=message.reason, gocd_errors=tuple(sorted(errors.items())))
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

    def _fold_fleet(self, s: Snapshot, message: FleetChanged, now: float) -> Snapshot:
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
