"""The AgentRegistry: sole owner of the fleet of agents gocd-mesos launched.

Each agent is one record, keyed by its Mesos task id (which is also its GoCD
hostname), moving through a state machine::

    requested -> launching -> running -> registered -> idle <-> building
                                                     \\-> draining -> killing -> deleting -> gone
    (any launch state) -> failed        (a working agent whose task died) -> lost

The registry correlates Mesos tasks (``TaskUpdate`` from the bridge) with GoCD
agents (``BacklogSnapshot`` from the poller) by that hostname, asks the judge
for a plan after every snapshot and carries the plan out: new records and
``LaunchAgents`` to the bridge, and the safe drain (disable, read the agent
again, kill the task only if it is still idle, then delete the GoCD agent).
It approves our agents that came up Pending (and says loudly why that
happened), kills tasks whose agent never registers, counts failed launches
into a per-profile crash-loop backoff, and persists everything under
``[state] dir`` so that a restarted daemon adopts its survivors, kills what it
cannot account for and launches nothing twice.

Accepts: ``Peers``, ``BacklogSnapshot``, ``GoCDUnavailable``, ``ScalePlan``,
``TaskLaunched``, ``TaskUpdate``, ``FrameworkRegistered``, ``FrameworkDisconnected``,
``FrameworkError``, the poller's agent outcomes (``AgentEnabled``, ``AgentDisabled``,
``AgentRead``, ``AgentJobHistory``, ``AgentDeleted``, ``AgentDeleteRefused``,
``AgentNotFound``, ``AgentChangeFailed``), ``SettingsChanged`` (a reload: the agents of a
removed profile retire and leave through the safe drain; its launches not yet placed are
forgotten once the bridge drops them, not counted as failures), ``Subscribe``.
Sends: ``Decide`` to the judge; ``LaunchAgents``, ``KillAgent``,
``ReconcileTasks`` to the bridge; ``EnableAgent``, ``DisableAgent``,
``ReadAgent``, ``ReadJobHistory``, ``DeleteAgent`` to the poller; ``FleetChanged``
to subscribers.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any

from actors import state
from actors.backoff import retry_delay
from actors.base import BaseActor, Publisher
from actors.clock import Clock
from actors.config import AgentSettings, JudgeSettings, Profile, profile_for_task
from actors.fleet.states import ENDED, LAUNCH, LEAVING, WORKING, FleetState
from actors.messages import (
    AgentChangeFailed,
    AgentDeleted,
    AgentDeleteRefused,
    AgentDisabled,
    AgentEnabled,
    AgentJobHistory,
    AgentNotFound,
    AgentRead,
    BacklogSnapshot,
    Decide,
    DeleteAgent,
    DisableAgent,
    EnableAgent,
    FleetAgent,
    FleetChanged,
    FleetView,
    FrameworkDisconnected,
    FrameworkError,
    FrameworkRegistered,
    GoAgent,
    GoCDHint,
    GoCDUnavailable,
    KillAgent,
    LaunchAgents,
    OffersHandled,
    Peers,
    ProfileBackoff,
    ReadAgent,
    ReadJobHistory,
    ReconcileTasks,
    ScalePlan,
    SettingsChanged,
    Subscribe,
    TaskLaunched,
    TaskUpdate,
)

__all__ = ["AgentRegistry", "Record"]

logger = logging.getLogger(__name__)

#: Name of the fleet file in the state directory.
FLEET_FILE = "fleet.json"
#: Version of the fleet file's layout.
FLEET_VERSION = 1

#: Longest wait before a failed GoCD change of an agent is tried again (seconds).
MAX_CHANGE_RETRY = 300.0
#: Mesos states of a task that ended without anyone killing it or losing its node.
ENDED_ON_ITS_OWN = frozenset({"TASK_FINISHED", "TASK_FAILED", "TASK_ERROR"})
#: GoCD runtime states in which an agent may be killed (not running a job).
NOT_BUILDING = frozenset({"Idle", "Missing", "LostContact", "Unknown"})


def _building(agent: GoAgent) -> bool:
    """Whether GoCD says the agent is running a job (any state we do not know counts as yes)."""
    return agent.agent_state not in NOT_BUILDING or agent.build_state in ("Building", "Cancelled")


@dataclass
class Record:
    """What the registry knows of one agent (mutable, private to the registry)."""

    #: Mesos task id and GoCD hostname.
    task_id: str
    #: Profile name.
    profile: str
    #: State in the machine above.
    state: FleetState
    #: Clock time the launch was requested (or the task adopted).
    requested_at: float
    #: Clock time of the last state change.
    state_since: float
    #: GoCD agent UUID once seen.
    agent_uuid: str | None = None
    #: Clock time since which the agent is idle.
    idle_since: float | None = None
    #: Jobs started.
    jobs_done: int = 0
    #: The job it was last seen building (to count jobs once).
    last_job: str = ""
    #: Chosen to leave, its drain not started yet: an agent of a profile that is not configured
    #: (drained once its agent works or is lost). Never set in a leaving state: those are the
    #: drain under way.
    retiring: bool = False
    #: Last Mesos state seen.
    mesos_state: str = ""
    #: Clock time the current drain step was asked for (for retries).
    step_at: float = 0.0
    #: Whether we already asked GoCD to approve it (it came up Pending).
    enable_sent: bool = False
    #: Why it failed or was lost.
    failure: str = ""
    #: A drain found it building and waits for its job to end.
    drain_waits: bool = False
    #: Clock time by which its agent must have registered with GoCD (pushed back while GoCD
    #: cannot be read: an outage is not the agent's fault).
    register_by: float = 0.0
    #: Clock time its agent registered in this process; None before (or when adopted).
    registered_at: float | None = None
    #: Hostname of the Mesos agent node its task was launched on; "" if unknown.
    node: str = ""
    #: Number of its launch among the launches of this process (0: loaded or adopted).
    launch_no: int = 0
    #: GoCD changes of this agent that failed in a row (approval or a drain step).
    change_failures: int = 0
    #: Clock time before which a failed change is not retried.
    retry_at: float = 0.0
    #: Clock time its GoCD job history was last asked for (``max_jobs`` profiles); 0 if never.
    history_asked_at: float = 0.0

    def view(self) -> FleetAgent:
        return FleetAgent(
            task_id=self.task_id,
            profile=self.profile,
            state=self.state,
            agent_uuid=self.agent_uuid,
            idle_since=self.idle_since,
            jobs_done=self.jobs_done,
            requested_at=self.requested_at,
            retiring=self.retiring,
        )


@dataclass
class _Backoff:
    """Crash-loop backoff of one profile's launches."""

    #: Failed waves of launches in a row (a wave: the launches made before a failure).
    failures: int = 0
    #: Clock time before which nothing is launched.
    until: float = 0.0
    #: Number of the last launch requested before the last counted failure: launches up to it
    #: belong to that failure's wave.
    wave_end: int = 0
    #: An agent launched since the last failure registered: launch the whole demand again.
    probe_registered: bool = False


#: What ``state.read_json`` answers for a fleet file that does not exist.
_MISSING = object()

#: How a persisted Record field's JSON value is checked, by the field's annotation.
_JSON_CHECKS: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "FleetState": lambda v: isinstance(v, str),
    "str | None": lambda v: v is None or isinstance(v, str),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "float | None": lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
}
_RECORD_FIELDS = {f.name: _JSON_CHECKS[str(f.type)] for f in fields(Record)}
_REQUIRED_FIELDS = ("task_id", "profile", "state")
#: The states a fleet file may name: the values of FleetState.
_STATE_VALUES = frozenset(s.value for s in FleetState)


def _parse_fleet(data: Any) -> tuple[list[Record], dict[str, _Backoff]]:
    """The records and backoff of a fleet file's JSON; ValueError says what is wrong with it."""
    if not isinstance(data, dict):
        raise ValueError(f"the top level is {type(data).__name__}, not an object")
    if data.get("version") != FLEET_VERSION:
        raise ValueError(f"version {data.get('version')!r}, not {FLEET_VERSION}")
    raw_records = data.get("records", [])
    if not isinstance(raw_records, list):
        raise ValueError('"records" is not a list')
    records = [_parse_record(i, raw) for i, raw in enumerate(raw_records)]
    raw_backoff = data.get("backoff", {})
    if not isinstance(raw_backoff, dict):
        raise ValueError('"backoff" is not an object')
    backoff = {}
    for name, raw in raw_backoff.items():
        failures = raw.get("failures") if isinstance(raw, dict) else None
        if not isinstance(failures, int) or isinstance(failures, bool) or failures < 0:
            raise ValueError(f'backoff of profile {name!r} is not {{"failures": <count>}}')
        backoff[name] = _Backoff(failures=failures)
    return records, backoff


def _parse_record(index: int, raw: Any) -> Record:
    if not isinstance(raw, dict):
        raise ValueError(f"record {index} is {type(raw).__name__}, not an object")
    missing = [name for name in _REQUIRED_FIELDS if name not in raw]
    if missing:
        raise ValueError(f"record {index} has no {', '.join(missing)}")
    values = {}
    for name, check in _RECORD_FIELDS.items():
        if name in raw:
            if not check(raw[name]):
                raise ValueError(f"record {index} has a bad {name}: {raw[name]!r}")
            values[name] = raw[name]
    if not values["task_id"] or values["state"] not in _STATE_VALUES:
        raise ValueError(f"record {index} has a bad task_id or state")
    values["state"] = FleetState(values["state"])
    # Clock values are restarted at load: a record without them is as good as one with them.
    values.setdefault("requested_at", 0.0)
    values.setdefault("state_since", 0.0)
    return Record(**values)


#: A dotted IPv4 address.
_IP_RE = re.compile(r"\d{1,3}(\.\d{1,3}){3}")


def _host_key(hostname: str) -> str:
    """What a machine's hostname and the name Mesos offers it under have in common: the
    first label of a name, lower-cased (``node7`` and ``Node7.example.com`` are one host),
    or the whole of an IP address."""
    name = hostname.strip().lower().rstrip(".")
    if _IP_RE.fullmatch(name) or ":" in name:
        return name
    return name.split(".", 1)[0]


def _fields(record: Record, event: str, reason: str = "", job: str = "") -> dict[str, str]:
    """The structured fields of a log line about ``record`` (see ``actors.cli.LOG_FIELDS``)."""
    fields_ = {"event": event, "task_id": record.task_id, "profile": record.profile}
    if record.agent_uuid:
        fields_["agent_uuid"] = record.agent_uuid
    if reason:
        fields_["reason"] = reason
    if job:
        fields_["job"] = job
    return fields_


class AgentRegistry(BaseActor):
    """Owns the fleet: see the module docstring for what it accepts and sends."""

    def __init__(
        self,
        *,
        agents: AgentSettings,
        profiles: tuple[Profile, ...],
        judge_settings: JudgeSettings,
        state_dir: str,
        clock: Clock,
        poll_interval: float = 10.0,
        subscribers: Iterable[Any] = (),
        dry_run: bool = False,
        stop_hook: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(stop_hook=stop_hook)
        self._agents = agents
        self._profiles = {p.name: p for p in profiles}
        self._judge_settings = judge_settings
        self._path = os.path.join(state_dir, FLEET_FILE)
        self._clock = clock
        self._retry_after = max(2 * poll_interval, 5.0)
        self._publisher = Publisher(list(subscribers))
        self._dry_run = dry_run
        self._records: dict[str, Record] = {}
        self._backoff: dict[str, _Backoff] = {}
        self._judge: Any = None
        self._bridge: Any = None
        self._poller: Any = None
        self._backlog: BacklogSnapshot | None = None
        self._unavailable: GoCDUnavailable | None = None
        self._awaiting_plan = False
        self._decide_again = False
        self._registered_at: float | None = None
        self._key_mismatch_told = False
        #: (profile, environment name) pairs already said to be defined nowhere in GoCD.
        self._undefined_told: set[tuple[str, str]] = set()
        #: Per node, the (Pending agents, waiting launches) last said to be ambiguous there.
        self._ambiguous_told: dict[str, tuple[int, int]] = {}
        #: Pending GoCD agents of our launches that died unregistered: never tied, removed.
        self._dead_pending: set[str] = set()
        #: Nodes where a launch of ours was given up unregistered during this snapshot.
        self._given_up_on: set[str] = set()
        #: Launches requested by this process (numbers them for the backoff's waves).
        self._launches = 0
        self._dirty = False
        self._changed = False
        #: Counters for status and reports.
        self.launched_total = 0
        self.failed_total = 0
        self.killed_total = 0

    # --- lifecycle ----------------------------------------------------------

    def on_start(self) -> None:
        self._load()

    def on_stop(self) -> None:
        # Also run by BaseActor.on_failure after a crash, once the death is reported.
        self._save()

    def _load(self) -> None:
        try:
            data = state.read_json(self._path, default=_MISSING)
            if data is _MISSING:
                return
            records, backoff = _parse_fleet(data)
        except ValueError as e:
            # Keep the unusable file for a human and start empty rather than guess:
            # reconciliation with Mesos and GoCD's agent list bring the survivors back.
            if self._dry_run:
                logger.error("Fleet state %s is unusable (%s); a dry run leaves it in place", self._path, e)
                return
            broken = f"{self._path}.broken"
            os.replace(self._path, broken)
            logger.error(
                "Fleet state %s is unusable (%s); moved it to %s and starting empty", self._path, e, broken
            )
            return
        now = self._clock.now()
        for record in records:
            # Clock values of a previous process mean nothing now: restart the timers.
            record.requested_at = record.state_since = now
            record.step_at = record.retry_at = record.history_asked_at = 0.0
            record.change_failures = 0
            record.register_by = now + self._agents.register_timeout
            record.registered_at = None
            record.launch_no = 0
            if record.idle_since is not None:
                record.idle_since = now
            # Files written before "retiring" meant only "not started yet" set it during a drain too.
            if record.state in LEAVING:
                record.retiring = False
            self._records[record.task_id] = record
            self._check_profile(record)
        self._backoff.update(backoff)
        logger.info("Loaded %d agent record(s) from %s", len(self._records), self._path)

    def _save(self) -> None:
        # A dry run reads the fleet but never writes it: a daemon may run on this state dir.
        if self._dry_run or not self._dirty:
            return
        data = {
            "version": FLEET_VERSION,
            "records": [asdict(r) for r in self._records.values()],
            "backoff": {name: {"failures": b.failures} for name, b in self._backoff.items() if b.failures},
        }
        try:
            state.write_json(self._path, data)
        except OSError as e:
            directory = os.path.dirname(self._path)
            why = (
                "it is not a directory"
                if os.path.lexists(directory) and not os.path.isdir(directory)
                else None
            )
            raise OSError(
                f"[state] dir {directory} is not writable: {why or e.strerror or e} ({FLEET_FILE})"
            ) from e
        self._dirty = False

    # --- dispatch -----------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, BacklogSnapshot):
            self._on_backlog(message)
        elif isinstance(message, GoCDUnavailable):
            self._unavailable = message
            self._decide()
        elif isinstance(message, ScalePlan):
            self._on_plan(message)
        elif isinstance(message, TaskLaunched):
            self._on_launched(message)
        elif isinstance(message, TaskUpdate):
            self._on_task_update(message)
        elif isinstance(message, FrameworkRegistered):
            self._registered_at = self._clock.now()
        elif isinstance(message, FrameworkDisconnected):
            # Until the next subscription has reconciled, Mesos' silence proves nothing.
            self._registered_at = None
        elif isinstance(message, FrameworkError):
            pass  # the bridge logs it and acts; tasks it cost arrive as TaskUpdates
        elif isinstance(message, OffersHandled):
            pass  # for the status server's metrics: what became of offers is the bridge's
        elif isinstance(message, GoCDHint):
            pass  # for the status server's metrics: the snapshot the hint brings is what counts
        elif isinstance(message, (AgentEnabled, AgentDisabled, AgentRead)):
            self._on_agent_outcome(message)
        elif isinstance(message, AgentDeleted):
            self._on_deleted(message.uuid)
        elif isinstance(message, AgentDeleteRefused):
            self._on_delete_refused(message)
        elif isinstance(message, AgentNotFound):
            self._on_not_found(message)
        elif isinstance(message, AgentJobHistory):
            self._on_job_history(message)
        elif isinstance(message, AgentChangeFailed):
            self._on_change_failed(message)
        elif isinstance(message, SettingsChanged):
            self._on_settings(message)
        elif isinstance(message, Peers):
            self._judge, self._bridge, self._poller = message.judge, message.bridge, message.poller
            self._reconcile()
            self._decide()
        elif isinstance(message, Subscribe):
            self._publisher.add(message.subscriber)
            self._publisher.publish(self._fleet_changed())
        else:
            return super().on_receive(message)
        self._after_message()
        return None

    def _mark(self) -> None:
        """The fleet changed: persist it and tell subscribers once this message is handled."""
        self._dirty = True
        self._changed = True

    def _after_message(self) -> None:
        self._save()
        if self._changed:
            self._changed = False
            self._publisher.publish(self._fleet_changed())

    # --- views --------------------------------------------------------------

    def fleet(self) -> FleetView:
        """The fleet as the judge sees it."""
        return FleetView(
            agents=tuple(r.view() for r in self._records.values()),
            backoff=tuple(
                ProfileBackoff(
                    profile=name, failures=b.failures, until=b.until, probe_registered=b.probe_registered
                )
                for name, b in sorted(self._backoff.items())
                if b.failures
            ),
        )

    def _fleet_changed(self) -> FleetChanged:
        return FleetChanged(
            fleet=self.fleet(),
            launched_total=self.launched_total,
            failed_total=self.failed_total,
            killed_total=self.killed_total,
        )

    # --- deciding -----------------------------------------------------------

    def _decide(self) -> None:
        if self._judge is None:
            return
        if self._awaiting_plan:
            self._decide_again = True
            return
        self._awaiting_plan = True
        self._decide_again = False
        self._judge.tell(
            Decide(backlog=self._backlog, fleet=self.fleet(), gocd_unavailable=self._unavailable)
        )

    def _on_plan(self, plan: ScalePlan) -> None:
        self._awaiting_plan = False
        for profile, count in plan.launches:
            self._launch(profile, count)
        for task_id in plan.drains:
            record = self._records.get(task_id)
            # The plan was decided on an older view: drain only an agent that is still idle
            # and has been since before the decision (it may have taken a job meanwhile).
            if (
                record is not None
                and record.state == FleetState.IDLE
                and not record.retiring
                and record.idle_since is not None
                and record.idle_since <= plan.decided_at
            ):
                self._start_drain(record, "retired" if self._used_up(record) else "idle")
        if self._decide_again:
            self._decide()

    def _on_settings(self, message: SettingsChanged) -> None:
        """A reload: use the new profiles; the agents of a removed profile retire (drained once
        their agent works, never killed while building); those of a profile configured again stay."""
        removed = self._profiles.keys() - {p.name for p in message.profiles}
        self._profiles = {p.name: p for p in message.profiles}
        self._judge_settings = message.judge
        for name in removed:
            if self._backoff.pop(name, None) is not None:
                self._mark()
        for record in self._records.values():
            if record.state in ENDED or record.state in LEAVING:
                continue
            if record.profile in self._profiles and record.retiring:
                logger.info("Profile %s is configured again: agent %s stays", record.profile, record.task_id)
                record.retiring = False
                self._mark()
            elif record.profile not in self._profiles and not record.retiring:
                logger.info(
                    "Profile %s was removed from the configuration: agent %s retires (drained when idle)",
                    record.profile,
                    record.task_id,
                )
                record.retiring = True
                self._mark()
        self._decide()

    def _used_up(self, record: Record) -> bool:
        """Whether the agent has started the last job its profile's ``max_jobs`` allows."""
        profile = self._profiles.get(record.profile)
        return profile is not None and profile.max_jobs > 0 and record.jobs_done >= profile.max_jobs

    def _launch(self, profile: str, count: int) -> None:
        if count <= 0:
            return
        if self._dry_run:
            # The judge has logged "Dry run: would launch ..." with the whole plan.
            logger.debug("Dry run: no records for %d agent(s) of profile %s", count, profile)
            return
        profile_obj = self._profiles.get(profile)
        if profile_obj is None:
            logger.error("Cannot launch %d agent(s): no profile %r", count, profile)
            return
        now = self._clock.now()
        task_ids = tuple(self._new_task_id(profile_obj) for _ in range(count))
        for task_id in task_ids:
            self._launches += 1
            self._records[task_id] = Record(
                task_id=task_id,
                profile=profile,
                state=FleetState.REQUESTED,
                requested_at=now,
                state_since=now,
                register_by=now + self._agents.register_timeout,
                launch_no=self._launches,
            )
        self._mark()
        # Persist before the bridge hears of it: a crash now leaves records that
        # reconciliation resolves, never a task nobody knows.
        self._save()
        self.launched_total += count
        self._bridge.tell(LaunchAgents(profile=profile, task_ids=task_ids))

    def _new_task_id(self, profile: Profile) -> str:
        while True:
            # The 8 hex digits are what config.profile_for_task expects after the slug.
            task_id = f"{self._agents.hostname_prefix}{profile.slug}-{secrets.token_hex(4)}"
            if task_id not in self._records:
                return task_id

    # --- Mesos --------------------------------------------------------------

    def _reconcile(self) -> None:
        if self._bridge is None:
            return
        tasks = tuple((r.task_id, r.profile) for r in self._records.values() if r.state not in ENDED)
        self._bridge.tell(ReconcileTasks(tasks=tasks))

    def _set(self, record: Record, new_state: FleetState) -> None:
        if record.state != new_state:
            logger.debug("Agent %s: %s -> %s", record.task_id, record.state, new_state)
            record.state = new_state
            record.state_since = self._clock.now()
            self._mark()

    def _on_launched(self, message: TaskLaunched) -> None:
        record = self._records.get(message.task_id)
        if record is not None:
            record.node = message.hostname
            self._mark()
            if record.state == FleetState.REQUESTED:
                self._set(record, FleetState.LAUNCHING)

    def _on_task_update(self, update: TaskUpdate) -> None:
        record = self._records.get(update.task_id)
        if record is None:
            self._on_unknown_task(update)
            return
        if record.mesos_state != update.state:
            record.mesos_state = update.state
            self._mark()
        if not update.is_terminal:
            if update.state == "TASK_RUNNING" and record.state in LAUNCH:
                self._set(record, FleetState.RUNNING)
            elif record.state == FleetState.REQUESTED:
                self._set(record, FleetState.LAUNCHING)
            return
        # The task is gone.
        if record.state in ENDED:
            return
        why = f"{update.state} {update.reason} {update.message}".strip()
        if record.state == FleetState.KILLING or (
            record.state == FleetState.DRAINING and update.state == "TASK_KILLED"
        ):
            self._after_kill(record)
        elif record.state == FleetState.DELETING:
            pass  # the GoCD delete is under way
        elif record.state == FleetState.REQUESTED and update.reason == "REASON_RECONCILIATION":
            # Reconciliation says Mesos never saw it: the launch died with a previous process.
            logger.info("Agent %s was never launched; forgetting it", record.task_id)
            self._bridge.tell(KillAgent(task_id=record.task_id))
            self._forget(record)
        elif record.state in LAUNCH and update.reason == "REASON_INVALID_OFFERS":
            # The master refused the launch because its offer was gone (rescinded, or taken by
            # another accept): nothing is wrong with the profile, so no backoff; the judge
            # launches for the jobs again on the next plan.
            logger.info("Launch of agent %s lost its offer (%s); launching again", record.task_id, why)
            self._forget(record)
        elif record.retiring and record.state in LAUNCH:
            # Its profile was removed before it ran (the bridge dropped it from its queue, say):
            # not a failure of any profile's launches.
            logger.info(
                "Launch of agent %s of removed profile %s ended: %s", record.task_id, record.profile, why
            )
            self._forget(record)
        elif record.state in LAUNCH:
            self._launch_failed(record, why)
        else:
            # A working agent's task died under it.
            record.failure = why
            logger.warning(
                "Agent %s lost its task: %s",
                record.task_id,
                record.failure,
                extra=_fields(record, "agent_lost", why),
            )
            if self._died_young(record, update):
                self._count_failure(record, f"its agent registered, then the task ended ({why})")
            self._set(record, FleetState.LOST)
            if record.agent_uuid:
                self._start_drain(record, "lost")
            else:
                self._forget(record)

    def _on_unknown_task(self, update: TaskUpdate) -> None:
        if update.is_terminal or not update.task_id.startswith(self._agents.hostname_prefix):
            return
        # A task of ours we have no record of (state lost, or launched just before a
        # crash): adopt it; if its agent never registers it is killed like any other.
        record = self._adopt(update.task_id, update.profile, FleetState.RUNNING, "task")
        record.mesos_state = update.state

    def _adopt(self, task_id: str, profile: str, state: FleetState, what: str) -> Record:
        """A record for an agent of ours found in Mesos or GoCD; its profile is the one its
        task id names when the finder does not know it (Mesos' status updates carry no labels)."""
        if not profile:
            found = profile_for_task(task_id, self._agents.hostname_prefix, tuple(self._profiles.values()))
            profile = found.name if found is not None else ""
        now = self._clock.now()
        record = Record(
            task_id=task_id,
            profile=profile,
            state=state,
            requested_at=now,
            state_since=now,
            register_by=now + self._agents.register_timeout,
        )
        self._records[task_id] = record
        self._mark()
        if self._check_profile(record):
            logger.info("Adopting %s %s of profile %s", what, task_id, profile)
        return record

    def _check_profile(self, record: Record) -> bool:
        """Whether the record's profile is configured; if not, the agent is retired."""
        if record.profile in self._profiles:
            return True
        logger.warning("Agent %s belongs to unknown profile %r; retiring it", record.task_id, record.profile)
        if record.state not in LEAVING:
            record.retiring = True
        self._mark()
        return False

    def _launch_failed(self, record: Record, why: str) -> None:
        self._count_failure(record, why)
        self._set(record, FleetState.FAILED)
        self._forget(record)

    def _count_failure(self, record: Record, why: str) -> None:
        """A launch of the record's profile failed: back off, once per wave of launches.

        Launches requested before the last counted failure belong to its wave, so a
        burst of failing tasks is one failure, not one per task (loaded and adopted
        agents count as launched before any failure of this process).
        """
        record.failure = why
        self.failed_total += 1
        self._mark()
        backoff = self._backoff.setdefault(record.profile, _Backoff())
        if backoff.failures and record.launch_no <= backoff.wave_end:
            logger.warning(
                "Launch of agent %s (profile %s) failed: %s; same wave as the last failure",
                record.task_id,
                record.profile,
                why,
                extra=_fields(record, "launch_failed", why),
            )
            return
        backoff.failures += 1
        delay = retry_delay(
            backoff.failures, self._judge_settings.backoff_initial, self._judge_settings.backoff_max
        )
        now = self._clock.now()
        backoff.until = now + delay
        backoff.wave_end = self._launches
        backoff.probe_registered = False
        logger.warning(
            "Launch of agent %s (profile %s) failed: %s; %d failure(s) in a row, "
            "next launch (one probe agent) in %.0fs",
            record.task_id,
            record.profile,
            why,
            backoff.failures,
            delay,
            extra=_fields(record, "launch_failed", why),
        )

    def _died_young(self, record: Record, update: TaskUpdate) -> bool:
        """Whether a working agent's task ended on its own soon after registering, before it
        started a job: the image or its setup is broken, as much as a failed launch."""
        return (
            update.state in ENDED_ON_ITS_OWN
            and record.jobs_done == 0
            and record.registered_at is not None
            and self._clock.now() - record.registered_at < self._agents.register_timeout
        )

    def _healthy(self, record: Record, why: str) -> None:
        """The record's agent works: its profile's launches work again, and its failures are
        forgotten, if the agent was launched after the last of them. One launched before (or
        adopted) says nothing about launches now: the image may have broken since."""
        backoff = self._backoff.get(record.profile)
        if backoff is None or (backoff.failures and record.launch_no <= backoff.wave_end):
            return
        del self._backoff[record.profile]
        if backoff.failures:
            logger.info("Profile %s works again (%s); its launch backoff is over", record.profile, why)
            self._mark()

    def _forget(self, record: Record) -> None:
        self._records.pop(record.task_id, None)
        self._mark()

    # --- GoCD ---------------------------------------------------------------

    def _on_backlog(self, backlog: BacklogSnapshot) -> None:
        if self._unavailable is not None:
            # Time GoCD could not be read does not count toward register_timeout: the
            # agents may have been unable to register, and we could not see them if they did.
            outage = max(0.0, backlog.fetched_at - self._unavailable.since)
            for record in self._records.values():
                if record.state in LAUNCH:
                    record.register_by += outage
        self._backlog = backlog
        self._unavailable = None
        now = self._clock.now()
        by_host: dict[str, GoAgent] = {agent.hostname: agent for agent in backlog.agents}
        by_uuid: dict[str, GoAgent] = {agent.uuid: agent for agent in backlog.agents}
        # What the agents list says held when it was read, which may be before the jobs were
        # (``[gocd] agents_interval``): every conclusion from it is dated by its own read.
        agents_at = backlog.agents_as_of
        self._adopt_gocd_agents(by_host)
        self._tie_pending_agents(backlog)
        for record in list(self._records.values()):
            seen = by_host.get(record.task_id)
            if seen is None and record.agent_uuid is not None:
                # Approved from Pending under its container's hostname, then renamed; or not yet renamed.
                seen = by_uuid.get(record.agent_uuid)
            if seen is not None:
                self._observe(record, seen, agents_at)
                self._ask_job_history(record, now)
            self._check_timers(record, seen, agents_at, now)
        self._clean_orphan_agents(backlog, by_host, now)
        self._remove_dead_pending(backlog)
        self._decide()

    def _adopt_gocd_agents(self, by_host: dict[str, GoAgent]) -> None:
        """GoCD agents named like ours, of a configured profile, without a record (the fleet file
        was lost): adopt them before deciding, so that they count toward ``max``, and ask Mesos
        about their tasks (a task Mesos does not know makes the record lost, and its agent is
        drained and deleted)."""
        adopted = []
        for host, agent in by_host.items():
            if not host.startswith(self._agents.hostname_prefix) or host in self._records or agent.is_elastic:
                continue
            found = profile_for_task(host, self._agents.hostname_prefix, tuple(self._profiles.values()))
            if found is None or self._record_by_uuid(agent.uuid) is not None:
                continue  # not attributable: _clean_orphan_agents removes it once it is idle
            record = self._adopt(host, found.name, FleetState.REGISTERED, "GoCD agent")
            adopted.append((record.task_id, record.profile))
        if adopted and self._bridge is not None:
            self._bridge.tell(ReconcileTasks(tasks=tuple(adopted)))

    def _tie_pending_agents(self, backlog: BacklogSnapshot) -> None:
        """Tie Pending agents that carry no task id to the task that runs them.

        An agent whose auto-register key GoCD refused is Pending under its machine's
        hostname, not under AGENT_AUTO_REGISTER_HOSTNAME (reference 4.5): where the network
        lets Mesos set the container's hostname it is the task id anyway; with host
        networking it is the Mesos node's hostname. A Pending agent on a node where exactly
        one launch of ours waits for its agent, and the only such Pending agent there, is
        that launch's agent.
        """
        known = {r.agent_uuid for r in self._records.values() if r.agent_uuid}
        pending: dict[str, list[GoAgent]] = {}
        for agent in backlog.agents:
            if (
                agent.config_state == "Pending"
                and agent.uuid not in known
                and agent.uuid not in self._dead_pending
                and agent.hostname not in self._records
            ):
                pending.setdefault(_host_key(agent.hostname), []).append(agent)
        if not pending:
            return
        waiting: dict[str, list[Record]] = {}
        for record in self._records.values():
            if record.state in LAUNCH and record.agent_uuid is None and record.node:
                waiting.setdefault(_host_key(record.node), []).append(record)
        for node, records in waiting.items():
            agents = pending.get(node, [])
            if len(records) == 1 and len(agents) == 1:
                (record,), (agent,) = records, agents
                logger.info(
                    "Pending GoCD agent %s (%s) is on node %s, where only agent %s of ours waits: it is ours",
                    agent.hostname,
                    agent.uuid,
                    node,
                    record.task_id,
                )
                record.agent_uuid = agent.uuid
                self._mark()
            elif agents and self._ambiguous_told.get(node) != (len(agents), len(records)):
                self._ambiguous_told[node] = (len(agents), len(records))
                self._key_mismatch(
                    f"{len(agents)} Pending GoCD agent(s) on node {node}, where {len(records)} agents of "
                    "ours wait to register, cannot be told apart"
                )

    def _remove_dead_pending(self, backlog: BacklogSnapshot) -> None:
        """Remove the Pending agents of launches given up unregistered, so they neither pile
        up in GoCD nor keep the next launch on their node from being told apart.

        On a node where no launch of ours waits any more, a Pending agent nobody has tied
        was one of those launches' (GoCD forgets a Pending agent only after 5 minutes of
        silence). A Pending agent is disabled first (GoCD deletes only Disabled agents),
        then read again and deleted like an orphan.
        """
        nodes, self._given_up_on = self._given_up_on, set()
        if not nodes:
            return
        still_waiting = {
            _host_key(r.node) for r in self._records.values() if r.state in LAUNCH and r.agent_uuid is None
        }
        known = {r.agent_uuid for r in self._records.values() if r.agent_uuid}
        for agent in backlog.agents:
            node = _host_key(agent.hostname)
            if (
                agent.config_state == "Pending"
                and node in nodes
                and node not in still_waiting
                and agent.uuid not in known
                and agent.uuid not in self._dead_pending
            ):
                logger.info(
                    "Removing Pending GoCD agent %s (%s): the launch of ours on that node never registered",
                    agent.hostname,
                    agent.uuid,
                )
                self._dead_pending.add(agent.uuid)
                self._ask_poller(DisableAgent(uuid=agent.uuid), f"disable Pending agent {agent.uuid}")

    def _tell_undefined_environments(self, record: Record, agent: GoAgent) -> None:
        """One WARNING per profile and environment name GoCD defines nowhere: GoCD ignores the
        name on the agent, which then takes jobs of pipelines in no environment."""
        for name in agent.undefined_environments:
            key = (record.profile, name.casefold())
            if key in self._undefined_told:
                continue
            self._undefined_told.add(key)
            logger.warning(
                "Profile %s puts its agents in environment %r, which GoCD does not define: GoCD "
                "ignores the name, so they take jobs of pipelines in no environment (create the "
                "environment in GoCD, or fix [profiles] %s environments)",
                record.profile,
                name,
                record.profile,
                extra=_fields(record, "undefined_environment", name),
            )

    def _key_mismatch(self, what: str) -> None:
        """Say once, as an ERROR, that our agents come up Pending and what that means."""
        if self._key_mismatch_told:
            logger.warning("%s: the auto-register key still does not match", what)
            return
        self._key_mismatch_told = True
        logger.error(
            "%s: our agents register Pending, so the [agents] auto_register_key does not match the GoCD "
            "server's agentAutoRegisterKey (Admin > Server Configuration); gocd-mesos approves the agents "
            "it can tie to their tasks, but fix the key",
            what,
        )

    def _observe(self, record: Record, agent: GoAgent, agents_at: float) -> None:
        if record.agent_uuid != agent.uuid:
            record.agent_uuid = agent.uuid
            self._mark()
        self._tell_undefined_environments(record, agent)
        if agent.config_state == "Pending":
            if (
                not record.enable_sent
                and not record.retiring
                and record.state not in LEAVING
                and self._clock.now() >= record.retry_at
            ):
                self._key_mismatch(f"Agent {record.task_id} registered Pending")
                record.enable_sent = True
                self._mark()
                # Approve it as its profile's agent: GoCD stored none of the auto-register
                # values (resources, environments, hostname) of an agent it did not accept.
                profile = self._profiles.get(record.profile)
                approve = EnableAgent(
                    uuid=agent.uuid,
                    hostname=record.task_id if agent.hostname != record.task_id else None,
                    resources=profile.resources if profile else None,
                    environments=profile.environments if profile else None,
                )
                self._ask_poller(approve, f"approve agent {record.task_id}")
            return
        if record.state in LAUNCH:
            now = self._clock.now()
            self._set(record, FleetState.REGISTERED)
            record.registered_at = now
            logger.info(
                "Agent %s registered with GoCD as %s",
                record.task_id,
                agent.uuid,
                extra=_fields(record, "agent_registered"),
            )
            backoff = self._backoff.get(record.profile)
            if backoff is not None and backoff.failures and not backoff.probe_registered:
                backoff.probe_registered = True
                backoff.until = min(backoff.until, now)
                logger.info(
                    "Agent %s of profile %s registered after %d failed launch wave(s): launching "
                    "the rest of the demand",
                    record.task_id,
                    record.profile,
                    backoff.failures,
                )
                self._mark()
        if record.state in LEAVING or record.state in ENDED:
            return
        if agent.config_state == "Disabled" and not record.retiring:
            # Someone disabled an agent of ours: it is no capacity any more. Drain it; the
            # drain waits for a running job to end.
            logger.info("Agent %s was disabled in GoCD by someone else", record.task_id)
            self._start_drain(record, "disabled in GoCD")
            return
        if _building(agent):
            details = agent.build_details
            job = (details.job_url or f"{details.pipeline}/{details.stage}/{details.job}") if details else "?"
            if record.state != FleetState.BUILDING or job != record.last_job:
                record.jobs_done += 1
                record.last_job = job
                self._mark()
                self._healthy(record, f"agent {record.task_id} runs a job")
            record.idle_since = None
            self._set(record, FleetState.BUILDING)
            if self._used_up(record) and not record.retiring and agent.config_state == "Enabled":
                # Its last job: disable it now so that it takes no other.
                self._start_drain(record, "retired")
        elif agent.config_state == "Enabled" and record.state != FleetState.IDLE:
            record.idle_since = agents_at
            self._set(record, FleetState.IDLE)

    def _ask_job_history(self, record: Record, now: float) -> None:
        """Ask GoCD how many jobs an agent of a ``max_jobs`` profile has finished.

        A poll sees an agent building only if its job outlives the poll interval;
        GoCD's job history for the agent counts every job, short ones included.
        """
        if (
            self._dry_run
            or not self._has_max_jobs(record)
            or record.retiring
            or record.state not in WORKING
            or record.agent_uuid is None
            or now < record.retry_at
            or (record.history_asked_at and now - record.history_asked_at < self._retry_after)
        ):
            return
        # Asked again at every poll once answered; after retry_after when the answer was lost.
        record.history_asked_at = now
        self._ask_poller(ReadJobHistory(uuid=record.agent_uuid), f"read the job history of {record.task_id}")

    def _has_max_jobs(self, record: Record) -> bool:
        profile = self._profiles.get(record.profile)
        return profile is not None and profile.max_jobs > 0

    def _on_job_history(self, message: AgentJobHistory) -> None:
        record = self._record_by_uuid(message.uuid)
        if record is None:
            return
        record.history_asked_at = 0.0
        if record.change_failures:
            record.change_failures, record.retry_at = 0, 0.0
            self._mark()
        if message.completed > record.jobs_done:
            logger.debug(
                "Agent %s finished %d job(s), %d of them unseen by polls",
                record.task_id,
                message.completed,
                message.completed - record.jobs_done,
            )
            record.jobs_done = message.completed
            self._mark()
            self._healthy(record, f"agent {record.task_id} ran a job")
        if self._used_up(record) and not record.retiring and record.state in WORKING:
            # Its last job is done or under way: disable it now, not at the next plan.
            self._start_drain(record, "retired")

    def _check_timers(self, record: Record, agent: GoAgent | None, agents_at: float, now: float) -> None:
        """Act on the record's deadlines; ``agent`` is what the agents list read at ``agents_at``
        says of it (None: not listed)."""
        age = now - record.state_since
        if (
            record.state in (FleetState.LAUNCHING, FleetState.RUNNING)
            and agent is None
            # A list read before the deadline proves nothing: the agent may have registered since.
            and agents_at > record.register_by
        ):
            logger.warning(
                "Agent %s did not register with GoCD within %.0fs; killing its task",
                record.task_id,
                self._agents.register_timeout,
                extra=_fields(record, "register_timeout", "did not register in time"),
            )
            self._launch_failed(record, "did not register in time")
            self._kill(record.task_id)
            if record.node:
                self._given_up_on.add(_host_key(record.node))
        elif record.state == FleetState.REQUESTED and now > record.register_by:
            logger.warning(
                "No Mesos offer fitted agent %s of profile %s within %.0fs; giving up on it",
                record.task_id,
                record.profile,
                self._agents.register_timeout,
            )
            self._kill(record.task_id)
            self._forget(record)
        elif (
            record.state in LEAVING
            and age >= self._retry_after
            and now - record.step_at >= self._retry_after
            and now >= record.retry_at
        ):
            self._continue_drain(record, agent, agents_at)
        elif record.retiring and record.state in WORKING | {FleetState.LOST}:
            self._start_drain(record, "retired")
        elif (
            record.state == FleetState.DRAINING
            and agent is not None
            and agent.config_state == "Disabled"
            and agents_at > record.step_at
        ):
            # This listing was taken after the disable: it is the re-read. (A list read before
            # it may show an agent someone else had disabled, then enabled, and that builds now.)
            self._confirm_idle(record, agent)
        elif (
            record.state in WORKING
            and record.registered_at is not None
            and now - record.registered_at >= self._agents.register_timeout
        ):
            self._healthy(record, f"agent {record.task_id} stayed up")

    def _clean_orphan_agents(self, backlog: BacklogSnapshot, by_host: dict[str, GoAgent], now: float) -> None:
        """GoCD agents named like ours that no record accounts for: disable, then delete."""
        if self._dry_run or self._registered_at is None:
            return
        # Give reconciliation time to tell us about every task first.
        if now - self._registered_at < self._retry_after:
            return
        for host, agent in by_host.items():
            if not host.startswith(self._agents.hostname_prefix) or host in self._records or agent.is_elastic:
                continue
            if _building(agent):
                continue
            logger.info("GoCD agent %s (%s) has no task of ours; removing it", host, agent.uuid)
            if agent.config_state != "Disabled":
                self._ask_poller(DisableAgent(uuid=agent.uuid), f"disable orphan agent {host}")
            else:
                self._ask_poller(DeleteAgent(uuid=agent.uuid), f"delete orphan agent {host}")

    # --- the drain ------------------------------------------------------------

    def _start_drain(self, record: Record, why: str) -> None:
        # From here a leaving state says the agent leaves (a dry run forgets the choice).
        record.retiring = False
        self._mark()
        if self._dry_run:
            logger.info("Dry run: would drain agent %s (%s)", record.task_id, why)
            return
        if record.agent_uuid is None:
            logger.info(
                "Stopping agent %s (%s) before it registered",
                record.task_id,
                why,
                extra=_fields(record, "drain_started", why),
            )
            self._set(record, FleetState.KILLING)
            self._kill(record.task_id)
            return
        logger.info(
            "Draining agent %s (%s)", record.task_id, why, extra=_fields(record, "drain_started", why)
        )
        self._set(record, FleetState.DRAINING)
        record.step_at = self._clock.now()
        self._ask_poller(DisableAgent(uuid=record.agent_uuid), f"disable agent {record.task_id}")

    def _continue_drain(self, record: Record, agent: GoAgent | None, agents_at: float) -> None:
        """Re-issue the step a drain is waiting on (its answer was lost or failed); ``agent`` is
        the agent as the list read at ``agents_at`` shows it."""
        asked_at, record.step_at = record.step_at, self._clock.now()
        if record.state == FleetState.DRAINING and record.agent_uuid:
            if agent is not None and agent.config_state == "Disabled" and agents_at > asked_at:
                # Listed Disabled after the disable was asked for: the re-read it waits for.
                self._confirm_idle(record, agent)
            else:
                self._ask_poller(DisableAgent(uuid=record.agent_uuid), f"disable agent {record.task_id}")
        elif record.state == FleetState.KILLING:
            self._kill(record.task_id)
        elif record.state == FleetState.DELETING and record.agent_uuid:
            self._ask_poller(DeleteAgent(uuid=record.agent_uuid), f"delete agent {record.task_id}")

    def _confirm_idle(self, record: Record, agent: GoAgent) -> None:
        """The agent was read after it was disabled: kill its task only if it is not building."""
        if _building(agent):
            if not record.drain_waits:
                record.drain_waits = True
                logger.info(
                    "Agent %s is building; the drain waits until its job is done",
                    record.task_id,
                    extra=_fields(record, "drain_waits", job=record.last_job),
                )
            return
        if record.mesos_state in TaskUpdate.TERMINAL:
            # Its task is gone already (a lost agent's drain): nothing to kill.
            self._after_kill(record)
            return
        self._set(record, FleetState.KILLING)
        record.step_at = self._clock.now()
        self._kill(record.task_id)

    def _after_kill(self, record: Record) -> None:
        if record.agent_uuid:
            self._set(record, FleetState.DELETING)
            record.step_at = self._clock.now()
            self._ask_poller(DeleteAgent(uuid=record.agent_uuid), f"delete agent {record.task_id}")
        else:
            self._set(record, FleetState.GONE)
            self._forget(record)

    def _on_agent_outcome(self, message: AgentEnabled | AgentDisabled | AgentRead) -> None:
        record = self._record_by_uuid(message.agent.uuid) or self._records.get(message.agent.hostname)
        if record is None:
            if isinstance(message, AgentDisabled) and (
                message.agent.hostname.startswith(self._agents.hostname_prefix)
                or message.agent.uuid in self._dead_pending
            ):
                # An orphan agent we disabled: read it again before deleting it.
                self._ask_poller(ReadAgent(uuid=message.agent.uuid), "re-read orphan agent")
            elif isinstance(message, AgentRead) and message.agent.config_state == "Disabled":
                agent = message.agent
                if not _building(agent):
                    self._ask_poller(DeleteAgent(uuid=agent.uuid), f"delete orphan agent {agent.hostname}")
            return
        if record.change_failures:
            record.change_failures, record.retry_at = 0, 0.0
            self._mark()
        if isinstance(message, AgentEnabled):
            logger.info("Agent %s approved", record.task_id, extra=_fields(record, "agent_approved"))
            return
        if record.state != FleetState.DRAINING:
            return
        if isinstance(message, AgentDisabled):
            record.step_at = self._clock.now()
            self._ask_poller(ReadAgent(uuid=message.agent.uuid), f"re-read agent {record.task_id}")
        else:
            self._confirm_idle(record, message.agent)

    def _on_change_failed(self, message: AgentChangeFailed) -> None:
        """A GoCD change or read failed (network, auth, 5xx): retry it, backing off."""
        record = self._record_by_uuid(message.uuid)
        if record is None:
            # An orphan's cleanup: the next snapshot starts it again.
            logger.warning("GoCD %s of agent %s failed: %s", message.action, message.uuid, message.reason)
            return
        record.change_failures += 1
        delay = retry_delay(record.change_failures, self._retry_after, MAX_CHANGE_RETRY)
        record.retry_at = self._clock.now() + delay
        if message.action == "enable":
            record.enable_sent = False  # the next snapshot that shows it Pending asks again
        elif message.action == "history":
            record.history_asked_at = 0.0
        self._mark()
        logger.warning(
            "GoCD %s of agent %s failed: %s; retrying in %.0fs",
            message.action,
            record.task_id,
            message.reason,
            delay,
        )

    def _on_deleted(self, uuid: str) -> None:
        self._dead_pending.discard(uuid)
        record = self._record_by_uuid(uuid)
        if record is None:
            return
        logger.info("Agent %s deleted from GoCD", record.task_id, extra=_fields(record, "agent_deleted"))
        self._set(record, FleetState.GONE)
        self._forget(record)

    def _on_delete_refused(self, message: AgentDeleteRefused) -> None:
        record = self._record_by_uuid(message.uuid)
        logger.warning(
            "GoCD refused to delete agent %s: %s", record.task_id if record else message.uuid, message.reason
        )
        if record is not None:
            # Not disabled any more (someone re-enabled it): start the drain over.
            self._set(record, FleetState.DRAINING)
            record.step_at = self._clock.now()
            self._ask_poller(DisableAgent(uuid=message.uuid), f"disable agent {record.task_id}")

    def _on_not_found(self, message: AgentNotFound) -> None:
        self._dead_pending.discard(message.uuid)
        record = self._record_by_uuid(message.uuid)
        if record is None:
            return
        if message.action == "history":
            record.history_asked_at = 0.0
            return
        if message.action == "delete" or record.state == FleetState.DELETING:
            self._set(record, FleetState.GONE)
            self._forget(record)
            return
        if record.state == FleetState.DRAINING:
            # GoCD forgot it already: stop its task, nothing to delete afterwards.
            record.agent_uuid = None
            self._set(record, FleetState.KILLING)
            self._kill(record.task_id)

    def _record_by_uuid(self, uuid: str) -> Record | None:
        for record in self._records.values():
            if record.agent_uuid == uuid:
                return record
        return None

    # --- requests ---------------------------------------------------------------

    def _kill(self, task_id: str) -> None:
        if self._dry_run:
            logger.info("Dry run: would kill task %s", task_id)
            return
        record = self._records.get(task_id)
        if record is not None and record.state == FleetState.BUILDING:
            # Never: the drain only kills after reading the agent idle.
            logger.error("Refusing to kill task %s: its agent is building", task_id)
            return
        self.killed_total += 1
        self._bridge.tell(KillAgent(task_id=task_id))

    def _ask_poller(self, request: Any, what: str) -> None:
        if self._dry_run:
            logger.info("Dry run: would %s", what)
            return
        if self._poller is not None:
            self._poller.tell(request)
