"""Every message the actors pass to each other: the public API of gocd-mesos.

Messages are frozen dataclasses whose contents are immutable too (tuples,
frozensets, other frozen dataclasses), because pykka hands the receiver the
very object that was sent. Names say what happened (``TaskUpdate``,
``AgentDisabled``) or what to do (``LaunchAgents``, ``DisableAgent``). Times
are seconds of the injected :class:`~actors.clock.Clock` (monotonic) unless a
field says otherwise.

Ops tooling that embeds the actors subscribes to these messages; keep them
backwards compatible (add fields with defaults, never rename).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from actors.fleet.states import FleetState

if TYPE_CHECKING:
    from actors.config import JudgeSettings, Profile

__all__ = [
    "AgentChangeFailed",
    "AgentDeleteRefused",
    "AgentDeleted",
    "AgentDisabled",
    "AgentEnabled",
    "AgentJobHistory",
    "AgentNotFound",
    "AgentRead",
    "BacklogSnapshot",
    "BuildDetails",
    "Decide",
    "DeleteAgent",
    "DisableAgent",
    "EnableAgent",
    "FleetAgent",
    "FleetChanged",
    "FleetView",
    "FrameworkDisconnected",
    "FrameworkError",
    "FrameworkRegistered",
    "GoAgent",
    "GoCDHint",
    "GoCDUnavailable",
    "HintedPoll",
    "JobReason",
    "KillAgent",
    "LaunchAgents",
    "LeadershipChanged",
    "OffersHandled",
    "Peers",
    "Poll",
    "ProfileBackoff",
    "ProfileDecision",
    "ReadAgent",
    "ReadJobHistory",
    "ReconcileTasks",
    "ScalePlan",
    "ScheduledJob",
    "SettingsChanged",
    "Subscribe",
    "TaskLaunched",
    "TaskUpdate",
]


# --- common -----------------------------------------------------------------


@dataclass(frozen=True)
class Poll:
    """Time to do the periodic work (fetch, decide, reconcile): a Ticker sends it."""


@dataclass(frozen=True)
class Subscribe:
    """Add ``subscriber`` to the actor's listeners of published messages."""

    #: pykka.ActorRef (or any object with ``tell``) that receives the messages.
    subscriber: object


# --- GoCD values --------------------------------------------------------------


@dataclass(frozen=True)
class ScheduledJob:
    """One job waiting for an agent, as the backlog source lists it (``[gocd] backlog``: the
    scheduled-jobs feed, or the dashboard with the stage and pipeline config APIs)."""

    #: ``pipeline/pipelineCounter/stage/stageCounter/job``; unique per job run.
    locator: str
    #: Pipeline name.
    pipeline: str
    #: Pipeline run counter.
    pipeline_counter: int
    #: Stage name.
    stage: str
    #: Stage run counter.
    stage_counter: int
    #: Job name (``<job>-runOnAll-<n>`` / ``<job>-runInstance-<n>`` for those kinds).
    name: str
    #: Environment of the pipeline; None when it is in none.
    environment: str | None = None
    #: Resources the job needs, as configured (case preserved).
    resources: frozenset[str] = frozenset()
    #: Environment variables as (name, value) pairs; secure values are ``****``.
    variables: tuple[tuple[str, str], ...] = ()
    #: Link to the job's page in the GoCD UI.
    url: str = ""
    #: Numeric job instance id (only the old pre-20.9 endpoint has it).
    job_id: int | None = None
    #: Elastic agent profile the job needs, from the pipeline's config (the feed
    #: does not say); None for a normal job, or when the config could not be read.
    elastic_profile_id: str | None = None
    #: UUID of the one agent GoCD will give the job, for a "run on all agents" job
    #: (``<job>-runOnAll-<n>``); None for other jobs, and always None from the feed, which
    #: does not say (only the dashboard source sees it).
    pinned_agent: str | None = None
    #: When GoCD scheduled the job (or re-scheduled it), wall-clock epoch seconds; None from
    #: the feed, which does not say (only the dashboard source sees it).
    scheduled_at: float | None = None
    #: Why the job's resources and elastic profile are unknown (the dashboard source could not
    #: read its pipeline's config or template: no permission, a ``#{param}`` the pipeline does
    #: not define); None when they are known. Nothing is launched for such a job
    #: (``resources-unknown``).
    resources_unknown: str | None = None


@dataclass(frozen=True)
class BuildDetails:
    """What a building agent is building."""

    #: Pipeline name.
    pipeline: str
    #: Stage name.
    stage: str
    #: Job name.
    job: str
    #: Link to the job's page.
    job_url: str = ""


@dataclass(frozen=True)
class GoAgent:
    """One agent as GoCD's agents API reports it."""

    #: Agent UUID.
    uuid: str
    #: Registered hostname (``AGENT_AUTO_REGISTER_HOSTNAME`` for our agents).
    hostname: str
    #: ``Pending``, ``Enabled`` or ``Disabled`` (unknown values kept as sent).
    config_state: str
    #: ``Idle``, ``Building``, ``LostContact``, ``Missing`` or ``Unknown``.
    agent_state: str
    #: ``Idle``, ``Building``, ``Cancelled`` or ``Unknown``.
    build_state: str = "Unknown"
    #: IP address the server saw.
    ip_address: str = ""
    #: Resources the agent advertises (empty for elastic agents).
    resources: tuple[str, ...] = ()
    #: Environments the agent belongs to: those GoCD's config defines.
    environments: tuple[str, ...] = ()
    #: Environment names stored on the agent that no environment defines (origin ``unknown``
    #: in the agents API): GoCD ignores them, so the agent takes jobs as if not in them.
    undefined_environments: tuple[str, ...] = ()
    #: Elastic agent id; None for normal agents.
    elastic_agent_id: str | None = None
    #: Elastic plugin id; None for normal agents.
    elastic_plugin_id: str | None = None
    #: Free disk space in bytes; None when GoCD says ``unknown``.
    free_space: int | None = None
    #: Working directory of the agent.
    sandbox: str = ""
    #: Operating system of the agent.
    operating_system: str = ""
    #: Agent version (``UNKNOWN`` until it reported; absent before API v7).
    agent_version: str = ""
    #: The job being built, only while building.
    build_details: BuildDetails | None = None

    @property
    def is_elastic(self) -> bool:
        """Whether an elastic agent plugin owns this agent: both elastic ids are set and not blank.

        GoCD's own test (``Agent.isElastic`` in gocd's
        ``config/config-api/src/main/java/com/thoughtworks/go/config/Agent.java``); the agents
        API sends both ids or neither (``AgentRepresenter``), so one id alone is no elastic agent.
        """
        return bool(
            self.elastic_agent_id
            and self.elastic_agent_id.strip()
            and self.elastic_plugin_id
            and self.elastic_plugin_id.strip()
        )


@dataclass(frozen=True)
class BacklogSnapshot:
    """A view of GoCD: waiting jobs and all agents.

    The jobs are read for every snapshot; the agents list may be one read earlier
    (``[gocd] agents_interval``), never later than the jobs. Whoever decides from agent
    states takes :attr:`agents_as_of` for the agents and :attr:`as_of` for the snapshot
    as a whole, never ``fetched_at`` alone.
    """

    #: Jobs waiting for an agent, in scheduled order.
    jobs: tuple[ScheduledJob, ...]
    #: Every agent GoCD knows, in the order it listed them.
    agents: tuple[GoAgent, ...]
    #: Clock time at which the fetch finished.
    fetched_at: float
    #: GoCD server version, e.g. ``25.1.0`` ("" if unknown).
    server_version: str = ""
    #: (endpoint, seconds) of the GoCD reads this snapshot took, wall-clock time for metrics:
    #: ``scheduled_jobs`` (the feed, with the pipeline configs it needed), or ``dashboard``,
    #: ``stage``, ``pipeline_config`` and ``template`` (one per request of the dashboard source),
    #: then ``agents`` (absent when the agents list was not read again). Measurements, not
    #: content: two snapshots of the same GoCD state compare equal whatever their timings.
    timings: tuple[tuple[str, float], ...] = field(default=(), compare=False)
    #: Clock time at which ``agents`` was read, when that was before this snapshot's fetch (the
    #: list of an earlier read, reused); None when the agents were read with the jobs, at
    #: ``fetched_at``.
    agents_fetched_at: float | None = None
    #: Where the jobs were read: ``feed`` or ``dashboard`` ("" if unknown).
    backlog_source: str = ""
    #: What the backlog source could not see, for operators (a missing permission, a
    #: ``#{param}`` no pipeline defines), one line each; empty when it saw everything.
    backlog_problems: tuple[str, ...] = ()

    @property
    def agents_as_of(self) -> float:
        """Clock time of the agents list: ``agents_fetched_at``, or ``fetched_at`` when None."""
        return self.fetched_at if self.agents_fetched_at is None else self.agents_fetched_at

    @property
    def as_of(self) -> float:
        """The snapshot's freshness: the older of its two reads, the one to judge staleness by."""
        return min(self.fetched_at, self.agents_as_of)


@dataclass(frozen=True)
class GoCDUnavailable:
    """GoCD could not be read; published instead of a snapshot."""

    #: What failed, for operators (never holds a credential).
    reason: str
    #: Clock time of the first failure in this run of failures.
    since: float
    #: Consecutive failed polls so far.
    attempts: int = 1
    #: Seconds until the next attempt.
    retry_in: float = 0.0
    #: The read that failed: ``scheduled_jobs``, ``dashboard``, ``stage``, ``pipeline_config``,
    #: ``template`` or ``agents``; "" if unknown.
    endpoint: str = ""


@dataclass(frozen=True)
class GoCDHint:
    """GoCD says something changed (a notification plugin posted to the webhook): read it soon.

    A hint, never the truth: it only makes the poller read GoCD sooner than its next poll
    (debounced and rate limited). GoCD neither retries a notification nor keeps it longer
    than 2 minutes, and sends none when a job is rescheduled, so the regular poll stays.
    """

    #: ``backlog``: a stage was scheduled, re-run or completed (``stage-status``); ``agents``: an
    #: agent changed state, e.g. took a job off the queue (``agent-status``).
    kind: str
    #: Clock time at which the webhook received it.
    received_at: float
    #: What GoCD said, for log lines: ``app/42/build/1 scheduled``, ``agent node-7 Building``.
    detail: str = ""


@dataclass(frozen=True)
class HintedPoll:
    """Read GoCD now, between two polls: the poller tells it to itself once a burst of
    :class:`GoCDHint` has settled."""

    #: Clock time the read was due: tells the read the poller waits for from one it cancelled
    #: when the timer had fired already.
    due: float


# --- GoCD agent changes: requests to the poller and their outcomes ------------


@dataclass(frozen=True)
class EnableAgent:
    """Set an agent's config state to Enabled (approves a Pending agent)."""

    #: Agent UUID.
    uuid: str
    #: New hostname for the agent in the same change; None keeps it (a Pending agent of ours
    #: that GoCD knows by its container's hostname is renamed to its task id).
    hostname: str | None = None
    #: Resources to give it in the same change (GoCD stores none for an agent it did not
    #: auto-register); None keeps them.
    resources: tuple[str, ...] | None = None
    #: Environments to put it in, likewise; None keeps them.
    environments: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DisableAgent:
    """Set an agent's config state to Disabled: it finishes its job, takes no new one."""

    #: Agent UUID.
    uuid: str


@dataclass(frozen=True)
class ReadAgent:
    """Read one agent again (the drain's confirmation step)."""

    #: Agent UUID.
    uuid: str


@dataclass(frozen=True)
class ReadJobHistory:
    """Read how many jobs an agent has finished, from GoCD's agent job run history
    (GoCD 19.11.0 and later; admin rights needed)."""

    #: Agent UUID.
    uuid: str


@dataclass(frozen=True)
class DeleteAgent:
    """Delete an agent from GoCD; GoCD refuses unless it is Disabled and not building."""

    #: Agent UUID.
    uuid: str


@dataclass(frozen=True)
class AgentEnabled:
    """An EnableAgent succeeded."""

    #: The agent as GoCD returned it after the change.
    agent: GoAgent


@dataclass(frozen=True)
class AgentDisabled:
    """A DisableAgent succeeded."""

    #: The agent as GoCD returned it after the change.
    agent: GoAgent


@dataclass(frozen=True)
class AgentRead:
    """A ReadAgent succeeded."""

    #: The agent as GoCD reports it now.
    agent: GoAgent


@dataclass(frozen=True)
class AgentJobHistory:
    """A ReadJobHistory succeeded: how many jobs GoCD has finished on the agent."""

    #: Agent UUID.
    uuid: str
    #: Jobs finished on the agent, a count: GoCD's ``pagination.total`` of its job run
    #: history, i.e. its Completed jobs of any result plus jobs rescheduled away from it;
    #: never the job it is building now.
    completed: int
    #: Clock time (seconds) at which the read finished.
    fetched_at: float


@dataclass(frozen=True)
class AgentNotFound:
    """GoCD does not know this agent (404): already deleted, or never registered."""

    #: Agent UUID.
    uuid: str
    #: The request that found it missing: ``enable``, ``disable``, ``read``, ``history`` or ``delete``.
    action: str


@dataclass(frozen=True)
class AgentDeleted:
    """A DeleteAgent succeeded."""

    #: Agent UUID.
    uuid: str


@dataclass(frozen=True)
class AgentDeleteRefused:
    """GoCD refused to delete the agent (422, or 406 before 19.9): not disabled, or building."""

    #: Agent UUID.
    uuid: str
    #: GoCD's message.
    reason: str


@dataclass(frozen=True)
class AgentChangeFailed:
    """An agent change or read failed for another reason (network, auth, 5xx, ...)."""

    #: Agent UUID.
    uuid: str
    #: ``enable``, ``disable``, ``read``, ``history`` or ``delete``.
    action: str
    #: What went wrong (never holds a credential).
    reason: str
    #: HTTP status, or None when no answer came (or no call was made).
    status: int | None = None


# --- Mesos: requests to the bridge and what it reports -------------------------


@dataclass(frozen=True)
class LaunchAgents:
    """Launch one Mesos task per id, each running a GoCD agent of ``profile``.

    The task id is also the agent's ``AGENT_AUTO_REGISTER_HOSTNAME``, which is
    how a GoCD agent is tied back to its task.
    """

    #: Profile name (a subsection of ``[profiles]``).
    profile: str
    #: Task ids to launch, chosen by the caller; unique, prefixed with ``hostname_prefix``.
    task_ids: tuple[str, ...]

    @property
    def count(self) -> int:
        """How many agents are asked for."""
        return len(self.task_ids)


@dataclass(frozen=True)
class KillAgent:
    """Kill the Mesos task of an agent (or drop it from the launch queue)."""

    #: Task id.
    task_id: str


@dataclass(frozen=True)
class TaskUpdate:
    """A Mesos task changed state (or a reconciliation confirmed its state)."""

    #: Task id.
    task_id: str
    #: ``TASK_STAGING``, ``TASK_STARTING``, ``TASK_RUNNING``, ``TASK_FINISHED``,
    #: ``TASK_FAILED``, ``TASK_KILLED``, ``TASK_ERROR``, ``TASK_LOST``, ...
    state: str
    #: Clock time at which the bridge received it.
    received_at: float
    #: Mesos reason enum name, e.g. ``REASON_RECONCILIATION``; "" if none.
    reason: str = ""
    #: Human-readable message from Mesos; "" if none.
    message: str = ""
    #: ``SOURCE_MASTER``, ``SOURCE_AGENT`` or ``SOURCE_EXECUTOR``; "" if none.
    source: str = ""
    #: Mesos agent (node) id the task runs on; "" if unknown.
    agent_id: str = ""
    #: Profile from the task's labels; "" if unknown.
    profile: str = ""

    #: States after which the task no longer runs.
    TERMINAL = frozenset(
        {
            "TASK_FINISHED",
            "TASK_FAILED",
            "TASK_KILLED",
            "TASK_ERROR",
            "TASK_LOST",
            "TASK_DROPPED",
            "TASK_GONE",
            "TASK_GONE_BY_OPERATOR",
        }
    )

    @property
    def is_terminal(self) -> bool:
        """Whether the task has stopped for good."""
        return self.state in self.TERMINAL


@dataclass(frozen=True)
class ReconcileTasks:
    """Tasks the sender knows of (e.g. the registry's persisted fleet): reconcile them now and
    after every (re)subscription, and attribute their updates to these profiles."""

    #: (task id, profile name) pairs; the profile may be "" when unknown.
    tasks: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TaskLaunched:
    """The bridge sent a LAUNCH for a queued task (its TaskUpdates follow)."""

    #: Task id (also the agent's ``AGENT_AUTO_REGISTER_HOSTNAME``).
    task_id: str
    #: Profile name.
    profile: str
    #: Mesos agent (node) id the task was launched on.
    agent_id: str
    #: Hostname of that Mesos agent.
    hostname: str


@dataclass(frozen=True)
class FrameworkRegistered:
    """The framework is subscribed to the Mesos master (again)."""

    #: Framework id assigned (or confirmed) by the master.
    framework_id: str
    #: True when an already known framework id was resubscribed (failover, reconnect).
    reregistered: bool
    #: ``host:port`` of the master we are subscribed to; "" if unknown.
    master: str = ""


@dataclass(frozen=True)
class FrameworkDisconnected:
    """The subscription stream to the master ended; the driver is resubscribing."""

    #: Clock time at which the bridge learnt of it.
    since: float


@dataclass(frozen=True)
class LeadershipChanged:
    """With ``[ha]``: where this daemon stands in its ZooKeeper election.

    Told by :class:`actors.ha.Leadership` to its listeners when the daemon joins
    the election as a standby, when it becomes the leader, when it stops
    leading, and while a standby when its ZooKeeper connection breaks or comes
    back. A daemon that stops leading stops its system at once and exits
    (non-zero) to queue again.
    """

    #: True when this daemon now leads (and starts acting), False while it does not.
    leader: bool
    #: Clock time of the change.
    since: float
    #: Whether the ZooKeeper connection is up; a standby without it could not take over.
    zookeeper_connected: bool = True


@dataclass(frozen=True)
class FrameworkError:
    """The master or the driver reported an error."""

    #: The error text (never holds a credential).
    message: str
    #: True when the driver has given up (e.g. refused credentials): the daemon must stop.
    fatal: bool = False


# --- The brain: registry <-> judge ------------------------------------------------


@dataclass(frozen=True)
class FleetAgent:
    """One agent of ours as the registry knows it (a read-only view)."""

    #: Mesos task id, also the agent's GoCD hostname.
    task_id: str
    #: Profile it was launched for.
    profile: str
    #: Registry state (a ``str`` enum: its value is ``requested``, ``launching``, ``running``,
    #: ``registered``, ``idle``, ``building``, ``draining``, ``killing``, ``deleting``, ``gone``,
    #: ``failed`` or ``lost``; :mod:`actors.fleet.states` groups them).
    state: FleetState
    #: GoCD agent UUID once it registered; None before.
    agent_uuid: str | None = None
    #: Clock time since which it is idle; None unless idle.
    idle_since: float | None = None
    #: Jobs it has started so far.
    jobs_done: int = 0
    #: Clock time the launch was requested.
    requested_at: float = 0.0
    #: Whether it was chosen to leave and its drain has not started yet (an agent of a profile
    #: that is not configured). False once the drain is under way: ``state`` is then
    #: ``draining``, ``killing`` or ``deleting``. Leaving means either.
    retiring: bool = False


@dataclass(frozen=True)
class ProfileBackoff:
    """Crash-loop backoff of one profile's launches."""

    #: Profile name.
    profile: str
    #: Failed launches in a row.
    failures: int
    #: Clock time before which no launch is made; in the past when not backing off.
    until: float
    #: Whether an agent launched since the last failure has registered. Until one has, launches
    #: after the backoff are limited to one probe agent at a time.
    probe_registered: bool = False


@dataclass(frozen=True)
class FleetView:
    """Everything the judge needs to know about our agents."""

    #: Our agents, ended ones included until forgotten.
    agents: tuple[FleetAgent, ...] = ()
    #: Backoff state of profiles that have failed launches.
    backoff: tuple[ProfileBackoff, ...] = ()


@dataclass(frozen=True)
class Decide:
    """Registry to judge: make a plan from this backlog and fleet."""

    #: The latest GoCD snapshot; None before the first one.
    backlog: BacklogSnapshot | None
    #: Our agents.
    fleet: FleetView
    #: Set while GoCD cannot be read (the backlog is then the last good one).
    gocd_unavailable: GoCDUnavailable | None = None


@dataclass(frozen=True)
class JobReason:
    """Why a waiting job is (or is not) getting an agent."""

    #: The job's locator.
    locator: str
    #: One of ``launching``, ``agent-starting``, ``idle-agent-available``,
    #: ``capped-at-max``, ``backoff-after-failures``, ``no-matching-profile``,
    #: ``not-ours``, ``pinned-to-agent`` (a "run on all agents" job only the agent it is
    #: pinned to can take), ``resources-unknown`` (its resources could not be read, see
    #: :attr:`ScheduledJob.resources_unknown`), ``gocd-data-stale``, ``held-by-policy`` (the
    #: ``[judge] policy`` launches no agent for it now: the ancestor's waiting for its looks, a
    #: static fleet's job beyond ``min``).
    reason: str
    #: Profile chosen for the job; None when none applies.
    profile: str | None = None
    #: A few words for operators; "" when the reason says it all.
    detail: str = ""


@dataclass(frozen=True)
class ProfileDecision:
    """One profile's numbers in a plan (what to launch and drain is the plan's
    ``launches`` and ``drains``: see :meth:`ScalePlan.launch_for`)."""

    #: Profile name.
    profile: str
    #: Waiting jobs that chose this profile (not counting those an idle agent takes).
    waiting: int = 0
    #: Our agents of this profile that occupy a slot (launching to leaving).
    active: int = 0
    #: Launches in flight (no GoCD agent yet).
    in_flight: int = 0
    #: Agents wanted but not launched because of max or the cycle budget.
    capped: int = 0
    #: Clock time launches resume, when backing off; None otherwise.
    backoff_until: float | None = None


@dataclass(frozen=True)
class ScalePlan:
    """The judge's decision: launches, drains and a reason for every waiting job.

    ``launches`` and ``drains`` are the one record of what to launch and drain;
    the per-profile numbers do not repeat them.
    """

    #: Clock time of the decision.
    decided_at: float
    #: (profile, count) pairs to launch, smallest profile first, each profile once, counts above 0.
    launches: tuple[tuple[str, int], ...] = ()
    #: Task ids of idle agents to drain (or retire).
    drains: tuple[str, ...] = ()
    #: One reason per waiting job, in scheduled order.
    reasons: tuple[JobReason, ...] = ()
    #: Per-profile numbers.
    profiles: tuple[ProfileDecision, ...] = ()
    #: Whether GoCD data was stale or missing (nothing drained, nothing launched for jobs).
    stale: bool = False
    #: Wall-clock seconds the policy took to make this plan (set by the judge, for metrics); a
    #: measurement, left out of comparisons.
    took: float = field(default=0.0, compare=False)

    def launch_for(self, profile: str) -> int:
        """Agents of ``profile`` to launch now (0 when the plan launches none)."""
        return sum(n for name, n in self.launches if name == profile)


@dataclass(frozen=True)
class Peers:
    """The actors the registry sends its requests to; told once, after they started."""

    #: The Judge's ref (receives Decide).
    judge: object
    #: The MesosBridge's ref (receives LaunchAgents, KillAgent, ReconcileTasks).
    bridge: object
    #: The GoCDPoller's ref (receives EnableAgent, DisableAgent, ReadAgent, ReadJobHistory, DeleteAgent).
    poller: object


@dataclass(frozen=True)
class OffersHandled:
    """The bridge took or declined the offers of one RESOURCE_OFFERS event (for metrics)."""

    #: Offers in the event, a count.
    received: int
    #: Offers accepted with at least one agent task.
    used: int
    #: Offers declined (nothing queued fitted them).
    declined: int


@dataclass(frozen=True)
class FleetChanged:
    """The registry's fleet changed: published to its subscribers (status, metrics, reports)."""

    #: Our agents and the profiles' backoff.
    fleet: FleetView
    #: Agents launched since the daemon started.
    launched_total: int = 0
    #: Launches that failed (task failed, lost, or agent never registered) since start.
    failed_total: int = 0
    #: Kill requests sent since start.
    killed_total: int = 0


@dataclass(frozen=True)
class SettingsChanged:
    """The configuration was reloaded (SIGHUP, or ``System.reload``): the live settings to use
    from now on. Told to the AgentRegistry, the Judge and the MesosBridge.

    The judge decides with the new profiles and settings; the bridge launches queued and new
    tasks with the new profiles and drops the queued tasks of a removed profile
    (``TASK_DROPPED``); the registry retires the agents of a removed profile, which then leave
    through the safe drain (never killed while building).
    """

    #: Agent profiles in file order, replacing the ones before.
    profiles: tuple[Profile, ...]
    #: The judge's settings, replacing the ones before.
    judge: JudgeSettings
