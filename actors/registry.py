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
``TaskLaunched``, ``TaskUpdate``, ``FrameworkRegistered``, the poller's agent
outcomes (``AgentEnabled``, ``AgentDisabled``, ``AgentRead``, ``AgentDeleted``,
``AgentDeleteRefused``, ``AgentNotFound``, ``AgentChangeFailed``), ``Subscribe``.
Sends: ``Decide`` to the judge; ``LaunchAgents``, ``KillAgent``,
``ReconcileTasks`` to the bridge; ``EnableAgent``, ``DisableAgent``,
``ReadAgent``, ``DeleteAgent`` to the poller; ``FleetChanged`` to subscribers.
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
from actors.base import BaseActor, Publisher
from actors.clock import Clock
from actors.config import AgentSettings, JudgeSettings, Profile
from actors.messages import (
    AgentChangeFailed,
    AgentDeleted,
    AgentDeleteRefused,
    AgentDisabled,
    AgentEnabled,
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
    FrameworkRegistered,
    GoAgent,
    GoCDUnavailable,
    KillAgent,
    LaunchAgents,
    Peers,
    ProfileBackoff,
    ReadAgent,
    ReconcileTasks,
    ScalePlan,
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

LAUNCH_STATES = frozenset({"requested", "launching", "running"})
WORKING_STATES = frozenset({"registered", "idle", "building"})
LEAVING_STATES = frozenset({"draining", "killing", "deleting"})
ENDED_STATES = frozenset({"gone", "failed", "lost"})
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
    state: str
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
    #: Chosen to leave: drain until gone.
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
    failures: int = 0
    until: float = 0.0


_SLUG_RE = re.compile(r"[^a-z0-9]+")


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
            data = state.read_json(self._path, default=None)
        except ValueError as e:
            if self._dry_run:
                logger.error("Fleet state %s is not JSON (%s); dry run: starting empty", self._path, e)
                return
            # Keep the unreadable file for a human; start empty rather than guess.
            broken = f"{self._path}.broken"
            os.replace(self._path, broken)
            logger.error(
                "Fleet state %s is not JSON (%s); moved it to %s and starting empty", self._path, e, broken
            )
            return
        if not data:
            return
        if data.get("version") != FLEET_VERSION:
            logger.error(
                "Fleet state %s has version %r, not %d; ignoring it",
                self._path,
                data.get("version"),
                FLEET_VERSION,
            )
            return
        now = self._clock.now()
        names = {f.name for f in fields(Record)}
        for raw in data.get("records", []):
            record = Record(**{k: v for k, v in raw.items() if k in names})
            # Clock values of a previous process mean nothing now: restart the timers.
            record.requested_at = record.state_since = now
            record.step_at = 0.0
            if record.idle_since is not None:
                record.idle_since = now
            self._records[record.task_id] = record
        for name, raw in data.get("backoff", {}).items():
            self._backoff[name] = _Backoff(failures=int(raw.get("failures", 0)), until=0.0)
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
            raise OSError(f"[state] dir {directory} is not writable: {e.strerror or e} ({FLEET_FILE})") from e
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
        elif isinstance(message, (AgentEnabled, AgentDisabled, AgentRead)):
            self._on_agent_outcome(message)
        elif isinstance(message, AgentDeleted):
            self._on_deleted(message.uuid)
        elif isinstance(message, AgentDeleteRefused):
            self._on_delete_refused(message)
        elif isinstance(message, AgentNotFound):
            self._on_not_found(message)
        elif isinstance(message, AgentChangeFailed):
            logger.warning(
                "GoCD %s of agent %s failed: %s; retrying", message.action, message.uuid, message.reason
            )
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
                ProfileBackoff(profile=name, failures=b.failures, until=b.until)
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
            if record is not None and record.state not in ENDED_STATES and not record.retiring:
                self._start_drain(record, "retired" if self._used_up(record) else "idle")
        if self._decide_again:
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
        now = self._clock.now()
        task_ids = tuple(self._new_task_id(profile) for _ in range(count))
        for task_id in task_ids:
            self._records[task_id] = Record(
                task_id=task_id, profile=profile, state="requested", requested_at=now, state_since=now
            )
        self._mark()
        # Persist before the bridge hears of it: a crash now leaves records that
        # reconciliation resolves, never a task nobody knows.
        self._save()
        self.launched_total += count
        self._bridge.tell(LaunchAgents(profile=profile, task_ids=task_ids))

    def _new_task_id(self, profile: str) -> str:
        slug = _SLUG_RE.sub("-", profile.lower()).strip("-")[:20] or "agent"
        while True:
            task_id = f"{self._agents.hostname_prefix}{slug}-{secrets.token_hex(4)}"
            if task_id not in self._records:
                return task_id

    # --- Mesos --------------------------------------------------------------

    def _reconcile(self) -> None:
        if self._bridge is None:
            return
        tasks = tuple((r.task_id, r.profile) for r in self._records.values() if r.state not in ENDED_STATES)
        self._bridge.tell(ReconcileTasks(tasks=tasks))

    def _set(self, record: Record, new_state: str) -> None:
        if record.state != new_state:
            logger.debug("Agent %s: %s -> %s", record.task_id, record.state, new_state)
            record.state = new_state
            record.state_since = self._clock.now()
            self._mark()

    def _on_launched(self, message: TaskLaunched) -> None:
        record = self._records.get(message.task_id)
        if record is not None and record.state == "requested":
            self._set(record, "launching")

    def _on_task_update(self, update: TaskUpdate) -> None:
        record = self._records.get(update.task_id)
        if record is None:
            self._on_unknown_task(update)
            return
        if record.mesos_state != update.state:
            record.mesos_state = update.state
            self._mark()
        if not update.is_terminal:
            if update.state == "TASK_RUNNING" and record.state in ("requested", "launching"):
                self._set(record, "running")
            elif record.state == "requested":
                self._set(record, "launching")
            return
        # The task is gone.
        if record.state in ENDED_STATES:
            return
        why = f"{update.state} {update.reason} {update.message}".strip()
        if record.state == "killing" or (record.state == "draining" and update.state == "TASK_KILLED"):
            self._after_kill(record)
        elif record.state == "deleting":
            pass  # the GoCD delete is under way
        elif record.state == "requested" and update.reason == "REASON_RECONCILIATION":
            # Reconciliation says Mesos never saw it: the launch died with a previous process.
            logger.info("Agent %s was never launched; forgetting it", record.task_id)
            self._bridge.tell(KillAgent(task_id=record.task_id))
            self._forget(record)
        elif record.state in LAUNCH_STATES:
            self._launch_failed(record, why)
        else:
            # A working agent's task died under it.
            record.failure = why
            logger.warning("Agent %s lost its task: %s", record.task_id, record.failure)
            self._set(record, "lost")
            if record.agent_uuid:
                self._start_drain(record, "lost")
            else:
                self._forget(record)

    def _on_unknown_task(self, update: TaskUpdate) -> None:
        if update.is_terminal or not update.task_id.startswith(self._agents.hostname_prefix):
            return
        profile = update.profile
        now = self._clock.now()
        # A task of ours we have no record of (state lost, or launched just before a
        # crash): adopt it; if its agent never registers it is killed like any other.
        record = Record(
            task_id=update.task_id, profile=profile, state="running", requested_at=now, state_since=now
        )
        record.mesos_state = update.state
        self._records[update.task_id] = record
        self._mark()
        if profile not in self._profiles:
            logger.warning("Task %s belongs to unknown profile %r; retiring it", update.task_id, profile)
            record.retiring = True
        else:
            logger.info("Adopting task %s of profile %s", update.task_id, profile)

    def _launch_failed(self, record: Record, why: str) -> None:
        record.failure = why
        self.failed_total += 1
        backoff = self._backoff.setdefault(record.profile, _Backoff())
        backoff.failures += 1
        delay = min(
            self._judge_settings.backoff_initial * 2 ** (backoff.failures - 1),
            self._judge_settings.backoff_max,
        )
        backoff.until = self._clock.now() + delay
        logger.warning(
            "Launch of agent %s (profile %s) failed: %s; %d failure(s) in a row, next launch in %.0fs",
            record.task_id,
            record.profile,
            why,
            backoff.failures,
            delay,
        )
        self._set(record, "failed")
        self._forget(record)

    def _forget(self, record: Record) -> None:
        self._records.pop(record.task_id, None)
        self._mark()

    # --- GoCD ---------------------------------------------------------------

    def _on_backlog(self, backlog: BacklogSnapshot) -> None:
        self._backlog = backlog
        self._unavailable = None
        now = self._clock.now()
        by_host: dict[str, GoAgent] = {agent.hostname: agent for agent in backlog.agents}
        for record in list(self._records.values()):
            seen = by_host.get(record.task_id)
            if seen is not None:
                self._observe(record, seen, backlog.fetched_at)
            self._check_timers(record, seen, backlog.fetched_at, now)
        self._clean_orphan_agents(backlog, by_host, now)
        self._decide()

    def _observe(self, record: Record, agent: GoAgent, fetched_at: float) -> None:
        if record.agent_uuid != agent.uuid:
            record.agent_uuid = agent.uuid
            self._mark()
        if record.state in LAUNCH_STATES:
            self._set(record, "registered")
            logger.info("Agent %s registered with GoCD as %s", record.task_id, agent.uuid)
            backoff = self._backoff.get(record.profile)
            if backoff is not None and backoff.failures:
                backoff.failures, backoff.until = 0, 0.0
                self._mark()
        if agent.config_state == "Pending":
            if not record.enable_sent and not record.retiring:
                logger.error(
                    "Agent %s registered Pending: the auto-register key gocd-mesos gives agents does not "
                    "match the GoCD server's agentAutoRegisterKey; approving it",
                    record.task_id,
                )
                record.enable_sent = True
                self._mark()
                self._ask_poller(EnableAgent(uuid=agent.uuid), f"approve agent {record.task_id}")
            return
        if record.state in LEAVING_STATES or record.state in ENDED_STATES:
            return
        if _building(agent):
            details = agent.build_details
            job = (details.job_url or f"{details.pipeline}/{details.stage}/{details.job}") if details else "?"
            if record.state != "building" or job != record.last_job:
                record.jobs_done += 1
                record.last_job = job
                self._mark()
            record.idle_since = None
            self._set(record, "building")
            if self._used_up(record) and not record.retiring and agent.config_state == "Enabled":
                # Its last job: disable it now so that it takes no other.
                self._start_drain(record, "retired")
        elif agent.config_state == "Enabled" and record.state != "idle":
            record.idle_since = fetched_at
            self._set(record, "idle")

    def _check_timers(self, record: Record, agent: GoAgent | None, fetched_at: float, now: float) -> None:
        age = now - record.state_since
        if (
            record.state in ("launching", "running")
            and agent is None
            and now - record.requested_at > self._agents.register_timeout
        ):
            logger.warning(
                "Agent %s did not register with GoCD within %.0fs; killing its task",
                record.task_id,
                self._agents.register_timeout,
            )
            self._launch_failed(record, "did not register in time")
            self._kill(record.task_id)
        elif record.state == "requested" and now - record.requested_at > self._agents.register_timeout:
            logger.warning(
                "No Mesos offer fitted agent %s of profile %s within %.0fs; giving up on it",
                record.task_id,
                record.profile,
                self._agents.register_timeout,
            )
            self._kill(record.task_id)
            self._forget(record)
        elif (
            record.retiring
            and record.state in LEAVING_STATES
            and age >= self._retry_after
            and now - record.step_at >= self._retry_after
        ):
            self._continue_drain(record, agent, fetched_at)
        elif record.retiring and record.state in WORKING_STATES | {"lost"}:
            self._start_drain(record, "retired")
        elif (
            record.state == "draining"
            and agent is not None
            and agent.config_state == "Disabled"
            and fetched_at > record.step_at
        ):
            # This listing was taken after the disable: it is the re-read.
            self._confirm_idle(record, agent)

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
        record.retiring = True
        self._mark()
        if self._dry_run:
            logger.info("Dry run: would drain agent %s (%s)", record.task_id, why)
            record.retiring = False
            return
        if record.agent_uuid is None:
            logger.info("Stopping agent %s (%s) before it registered", record.task_id, why)
            self._set(record, "killing")
            self._kill(record.task_id)
            return
        logger.info("Draining agent %s (%s)", record.task_id, why)
        self._set(record, "draining")
        record.step_at = self._clock.now()
        self._ask_poller(DisableAgent(uuid=record.agent_uuid), f"disable agent {record.task_id}")

    def _continue_drain(self, record: Record, agent: GoAgent | None, fetched_at: float) -> None:
        """Re-issue the step a drain is waiting on (its answer was lost or failed)."""
        record.step_at = self._clock.now()
        if record.state == "draining" and record.agent_uuid:
            if agent is not None and agent.config_state == "Disabled":
                self._confirm_idle(record, agent)
            else:
                self._ask_poller(DisableAgent(uuid=record.agent_uuid), f"disable agent {record.task_id}")
        elif record.state == "killing":
            self._kill(record.task_id)
        elif record.state == "deleting" and record.agent_uuid:
            self._ask_poller(DeleteAgent(uuid=record.agent_uuid), f"delete agent {record.task_id}")

    def _confirm_idle(self, record: Record, agent: GoAgent) -> None:
        """The agent was read after it was disabled: kill its task only if it is not building."""
        if _building(agent):
            if not record.drain_waits:
                record.drain_waits = True
                logger.info("Agent %s is building; the drain waits until its job is done", record.task_id)
            return
        if record.state == "lost" or record.mesos_state in TaskUpdate.TERMINAL:
            self._after_kill(record)
            return
        self._set(record, "killing")
        record.step_at = self._clock.now()
        self._kill(record.task_id)

    def _after_kill(self, record: Record) -> None:
        if record.agent_uuid:
            self._set(record, "deleting")
            record.step_at = self._clock.now()
            self._ask_poller(DeleteAgent(uuid=record.agent_uuid), f"delete agent {record.task_id}")
        else:
            self._set(record, "gone")
            self._forget(record)

    def _on_agent_outcome(self, message: AgentEnabled | AgentDisabled | AgentRead) -> None:
        record = self._record_by_uuid(message.agent.uuid) or self._records.get(message.agent.hostname)
        if record is None:
            if isinstance(message, AgentDisabled) and message.agent.hostname.startswith(
                self._agents.hostname_prefix
            ):
                # An orphan agent we disabled: read it again before deleting it.
                self._ask_poller(ReadAgent(uuid=message.agent.uuid), "re-read orphan agent")
            elif isinstance(message, AgentRead) and message.agent.config_state == "Disabled":
                agent = message.agent
                if not _building(agent):
                    self._ask_poller(DeleteAgent(uuid=agent.uuid), f"delete orphan agent {agent.hostname}")
            return
        if isinstance(message, AgentEnabled):
            logger.info("Agent %s approved", record.task_id)
            return
        if record.state != "draining":
            return
        if isinstance(message, AgentDisabled):
            record.step_at = self._clock.now()
            self._ask_poller(ReadAgent(uuid=message.agent.uuid), f"re-read agent {record.task_id}")
        else:
            self._confirm_idle(record, message.agent)

    def _on_deleted(self, uuid: str) -> None:
        record = self._record_by_uuid(uuid)
        if record is None:
            return
        logger.info("Agent %s deleted from GoCD", record.task_id)
        self._set(record, "gone")
        self._forget(record)

    def _on_delete_refused(self, message: AgentDeleteRefused) -> None:
        record = self._record_by_uuid(message.uuid)
        logger.warning(
            "GoCD refused to delete agent %s: %s", record.task_id if record else message.uuid, message.reason
        )
        if record is not None:
            # Not disabled any more (someone re-enabled it): start the drain over.
            self._set(record, "draining")
            record.step_at = self._clock.now()
            self._ask_poller(DisableAgent(uuid=message.uuid), f"disable agent {record.task_id}")

    def _on_not_found(self, message: AgentNotFound) -> None:
        record = self._record_by_uuid(message.uuid)
        if record is None:
            return
        if message.action == "delete" or record.state == "deleting":
            self._set(record, "gone")
            self._forget(record)
            return
        if record.state == "draining":
            # GoCD forgot it already: stop its task, nothing to delete afterwards.
            record.agent_uuid = None
            self._set(record, "killing")
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
        if record is not None and record.state == "building":
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
