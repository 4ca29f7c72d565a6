"""MesosBridge: the only caller of the Mesos driver; launches and kills agent tasks.

The bridge keeps a launch queue of requested agents, takes offers for them,
declines the rest, and tells its subscribers (the registry) every task status.
Which task goes into which offer and what a TaskInfo looks like are pure
functions in :mod:`actors.mesos.offers`; the driver's callbacks reach the bridge as
messages through :class:`~actors.mesos.scheduler.SchedulerAdapter`.

Accepted: :class:`~actors.messages.LaunchAgents`,
:class:`~actors.messages.KillAgent`, :class:`~actors.messages.ReconcileTasks`,
:class:`~actors.messages.SettingsChanged` (queued and new tasks use the new profiles; queued
tasks of a removed profile are dropped, ``TASK_DROPPED``), :class:`~actors.messages.Subscribe`,
and from the adapter
:class:`~actors.messages.FrameworkRegistered`, ``MesosDisconnected``,
``MesosOffersReceived``, ``MesosOfferRescinded``, ``MesosStatusReceived``,
``MesosAgentLost``, ``MesosExecutorLost``, ``MesosErrorReceived``.

Published: :class:`~actors.messages.TaskUpdate` (every status, and TASK_KILLED
for a task killed while still queued), :class:`~actors.messages.TaskLaunched`,
:class:`~actors.messages.FrameworkRegistered`,
:class:`~actors.messages.FrameworkDisconnected`,
:class:`~actors.messages.FrameworkError`.

The framework id is persisted in ``<state dir>/framework_id`` (or, with
``[ha] zookeeper``, in ZooKeeper, shared by every daemon of the election: see
:mod:`actors.ha`) and the bridge resubscribes with it, so a restarted daemon gets its running agents back.
After every (re)subscription it reconciles every task it knows (explicitly)
and then implicitly, to learn of tasks it does not know. It acknowledges an
update only after forwarding it. It SUPPRESSes offers while nothing is queued
and REVIVEs when something is. On stop the driver stops with failover: Mesos
keeps the agents running until ``failover_timeout``.

In a dry run the bridge does not connect to Mesos at all: subscribing with the
saved framework id would fail over the framework of a daemon running with the
same state dir (Mesos keeps one scheduler per framework), and subscribing as a
new framework would still register one and hold offers. Launches it is asked
for are dropped at once (``TASK_DROPPED``); it writes nothing.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable
from typing import Any, Protocol

from actors import state
from actors.base import BaseActor, Publisher
from actors.clock import Clock
from actors.config import AgentSettings, MesosSettings, Profile
from actors.mesos import offers
from actors.mesos.driver import driver_factory as default_driver_factory
from actors.mesos.events import (
    MesosAgentLost,
    MesosDisconnected,
    MesosErrorReceived,
    MesosExecutorLost,
    MesosOfferRescinded,
    MesosOffersReceived,
    MesosStatusReceived,
)
from actors.mesos.scheduler import SchedulerAdapter
from actors.messages import (
    FrameworkDisconnected,
    FrameworkError,
    FrameworkRegistered,
    KillAgent,
    LaunchAgents,
    OffersHandled,
    ReconcileTasks,
    SettingsChanged,
    Subscribe,
    TaskLaunched,
    TaskUpdate,
)

__all__ = ["FRAMEWORK_ID_FILE", "FrameworkIdFile", "FrameworkIdStore", "MesosBridge"]

logger = logging.getLogger(__name__)

#: File in the state dir holding the framework id.
FRAMEWORK_ID_FILE = "framework_id"
#: Seconds on_stop waits for the driver's thread.
DRIVER_JOIN_TIMEOUT = 5.0


class FrameworkIdStore(Protocol):
    """Where the bridge keeps the framework id between runs (and, with HA, between daemons)."""

    def read(self) -> str | None:
        """The saved framework id, None if there is none."""

    def write(self, framework_id: str) -> None:
        """Save ``framework_id``; raises OSError (or the store's own error) on failure."""

    def remove(self) -> None:
        """Forget the saved framework id."""


class FrameworkIdFile:
    """The framework id in ``<state dir>/framework_id``: the store of a daemon without HA."""

    def __init__(self, state_dir: str) -> None:
        #: Path of the file.
        self.path = os.path.join(state_dir, FRAMEWORK_ID_FILE)

    def read(self) -> str | None:
        return state.read_text(self.path) or None

    def write(self, framework_id: str) -> None:
        state.write_text(self.path, framework_id + "\n")

    def remove(self) -> None:
        state.remove(self.path)

    def __str__(self) -> str:
        return self.path


class MesosBridge(BaseActor):
    """Launch queue, offer matching and task status forwarding (see the module doc)."""

    def __init__(
        self,
        *,
        mesos: MesosSettings,
        agents: AgentSettings,
        profiles: tuple[Profile, ...],
        state_dir: str,
        clock: Clock,
        subscribers: tuple[Any, ...] = (),
        driver_factory: Callable[[Any, dict[str, Any]], Any] | None = None,
        dry_run: bool = False,
        stop_hook: Callable[[str], None] | None = None,
        framework_ids: FrameworkIdStore | None = None,
    ) -> None:
        super().__init__(stop_hook=stop_hook)
        self._mesos = mesos
        self._agents = agents
        self._profiles = {p.name: p for p in profiles}
        self._ids: FrameworkIdStore = framework_ids or FrameworkIdFile(state_dir)
        self._clock = clock
        self._publisher = Publisher(subscribers)
        # Built here, in the caller's (main) thread: pymesos must be imported there.
        self._driver_factory = driver_factory or default_driver_factory(mesos, clock)
        self._dry_run = dry_run
        self._driver: Any = None
        #: Framework id, persisted; None until the first subscription.
        self._framework_id: str | None = self._ids.read()
        self._connected = False
        self._suppressed = False
        #: Tasks waiting for an offer, in request order (task id -> task).
        self._queue: dict[str, offers.QueuedTask] = {}
        #: Tasks launched or reported by Mesos and not yet terminal: task id -> profile name.
        self._tasks: dict[str, str] = {}

    # --- lifecycle -------------------------------------------------------------------

    def on_start(self) -> None:
        if self._dry_run:
            logger.info(
                "Dry run: not connecting to Mesos (subscribing as framework %s would take it over from "
                "a daemon running with this state dir; as a new framework it would still hold offers)",
                self._framework_id or "(none saved)",
            )
            return
        self._start_driver()

    def on_stop(self) -> None:
        # Also run by BaseActor.on_failure after a crash, once the death is reported.
        self._stop_driver()

    def _start_driver(self) -> None:
        framework = offers.framework_info(self._mesos, self._framework_id)
        self._driver = self._driver_factory(SchedulerAdapter(self.actor_ref), framework)
        logger.info(
            "Subscribing to Mesos (%s) as %s%s",
            ", ".join(self._mesos.masters),
            self._mesos.framework_name,
            f", framework id {self._framework_id}" if self._framework_id else "",
        )
        self._driver.start()

    def _stop_driver(self) -> None:
        driver, self._driver = self._driver, None
        if driver is None:
            return
        try:
            # failover=True: the framework and every agent task outlive us.
            driver.stop(failover=True)
            driver.join(DRIVER_JOIN_TIMEOUT) if _joins_with_timeout(driver) else driver.join()
        except Exception:
            logger.exception("Stopping the Mesos driver failed")

    # --- messages --------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, LaunchAgents):
            self._launch(message)
        elif isinstance(message, KillAgent):
            self._kill(message.task_id)
        elif isinstance(message, ReconcileTasks):
            self._remember(message)
        elif isinstance(message, MesosOffersReceived):
            self._on_offers(message)
        elif isinstance(message, MesosStatusReceived):
            self._status(message)
        elif isinstance(message, FrameworkRegistered):
            self._registered(message)
        elif isinstance(message, MesosDisconnected):
            self._disconnected()
        elif isinstance(message, MesosOfferRescinded):
            logger.debug("Offer %s rescinded", message.offer_id)
        elif isinstance(message, MesosAgentLost):
            logger.warning("Mesos agent %s lost; its tasks will be reported lost", message.agent_id)
        elif isinstance(message, MesosExecutorLost):
            logger.warning(
                "Executor %s on %s exited with %s", message.executor_id, message.agent_id, message.exit_status
            )
        elif isinstance(message, MesosErrorReceived):
            self._error(message)
        elif isinstance(message, SettingsChanged):
            self._settings_changed(message)
        elif isinstance(message, Subscribe):
            self._publisher.add(message.subscriber)
        else:
            return super().on_receive(message)
        return None

    def _launch(self, message: LaunchAgents) -> None:
        profile = self._profiles.get(message.profile)
        now = self._clock.now()
        if profile is None:
            logger.error("Cannot launch %d agents: no profile %r", message.count, message.profile)
            for task_id in message.task_ids:
                self._publisher.publish(
                    TaskUpdate(task_id, "TASK_ERROR", now, message=f"Unknown profile {message.profile!r}")
                )
            return
        if self._dry_run:
            # Not subscribed, so never offered anything: the launch ends here.
            logger.debug("Dry run: dropping %d launch(es) of profile %s", message.count, profile.name)
            for task_id in message.task_ids:
                self._publisher.publish(
                    TaskUpdate(
                        task_id, "TASK_DROPPED", now, message="Dry run: not launched", profile=profile.name
                    )
                )
            return
        added = 0
        unnamed = []
        for task_id in message.task_ids:
            if task_id in self._queue or task_id in self._tasks:
                logger.warning("Task %s is already queued or running; not launched twice", task_id)
                continue
            task = self._queue[task_id] = offers.QueuedTask(task_id, profile)
            added += 1
            if offers.network_sets_hostname(profile) and offers.container_hostname(task) is None:
                unnamed.append(task_id)
        if unnamed:
            logger.warning(
                "Task ids of profile %s such as %s are longer than a hostname (%d characters): their "
                "containers keep a hostname of their own, so a Pending GoCD agent of theirs names no task",
                profile.name,
                unnamed[0],
                offers.HOSTNAME_MAX,
            )
        if added:
            logger.info(
                "Queued %d agents of profile %s (%d waiting)",
                added,
                profile.name,
                len(self._queue),
                extra={"event": "launch_queued", "profile": profile.name},
            )
            # REVIVE also clears our decline filters: the new tasks may fit declined agents.
            self._call("reviveOffers")
            self._suppressed = False

    def _settings_changed(self, message: SettingsChanged) -> None:
        self._profiles = {p.name: p for p in message.profiles}
        now = self._clock.now()
        for task_id, task in list(self._queue.items()):
            profile = self._profiles.get(task.profile.name)
            if profile is not None:
                self._queue[task_id] = offers.QueuedTask(task_id, profile)
                continue
            del self._queue[task_id]
            logger.info(
                "Dropped %s from the launch queue: profile %s was removed",
                task_id,
                task.profile.name,
                extra={
                    "event": "launch_dropped",
                    "task_id": task_id,
                    "profile": task.profile.name,
                    "reason": "profile removed",
                },
            )
            self._publisher.publish(
                TaskUpdate(
                    task_id,
                    "TASK_DROPPED",
                    now,
                    message=f"Profile {task.profile.name} was removed from the configuration",
                    profile=task.profile.name,
                )
            )
        self._maybe_suppress()

    def _kill(self, task_id: str) -> None:
        queued = self._queue.pop(task_id, None)
        if queued is not None:
            logger.info(
                "Dropped %s from the launch queue",
                task_id,
                extra={"event": "launch_dropped", "task_id": task_id, "profile": queued.profile.name},
            )
            self._publisher.publish(
                TaskUpdate(
                    task_id,
                    "TASK_KILLED",
                    self._clock.now(),
                    message="Killed before launch (was still queued)",
                    profile=queued.profile.name,
                )
            )
            self._maybe_suppress()
            return
        if self._dry_run:
            logger.info("Dry run: would kill task %s", task_id)
            return
        logger.info("Killing task %s", task_id, extra={"event": "kill", "task_id": task_id})
        self._call("killTask", {"value": task_id})

    def _remember(self, message: ReconcileTasks) -> None:
        for task_id, profile in message.tasks:
            if task_id not in self._queue:
                self._tasks[task_id] = profile or self._tasks.get(task_id, "")
        if self._connected and message.tasks:
            self._call("reconcileTasks", [{"task_id": {"value": t}} for t, _ in message.tasks])

    def _on_offers(self, message: MesosOffersReceived) -> None:
        refuse = offers.filters(self._mesos.refuse_seconds)
        placements, _ = offers.pack(tuple(self._queue.values()), message.offers, self._mesos.role)
        used = {p.offer.id for p in placements}
        for placement in placements:
            offer = placement.offer
            infos = [
                offers.build_task_info(
                    task,
                    agent_id=offer.agent_id,
                    resources=resources,
                    agents=self._agents,
                    framework_name=self._mesos.framework_name,
                )
                for task, resources in placement.tasks
            ]
            logger.info("Launching %d agents on %s", len(infos), offer.hostname, extra={"event": "launch"})
            if not self._call("launchTasks", [{"value": offer.id}], infos, refuse):
                continue  # the tasks stay queued; the offer is gone with the failed call
            for task, _ in placement.tasks:
                del self._queue[task.task_id]
                self._tasks[task.task_id] = task.profile.name
                self._publisher.publish(
                    TaskLaunched(task.task_id, task.profile.name, offer.agent_id, offer.hostname)
                )
        unused = [{"value": o.id} for o in message.offers if o.id not in used]
        if unused:
            logger.debug("Declining %d offers for %gs", len(unused), self._mesos.refuse_seconds)
            self._call("declineOffer", unused, refuse)
        self._publisher.publish(
            OffersHandled(received=len(message.offers), used=len(used), declined=len(unused))
        )
        self._maybe_suppress()

    def _status(self, message: MesosStatusReceived) -> None:
        status = message.status
        labels = dict(status.labels)
        profile = labels.get(offers.LABEL_PROFILE) or self._tasks.get(status.task_id, "")
        update = TaskUpdate(
            task_id=status.task_id,
            state=status.state,
            received_at=self._clock.now(),
            reason=status.reason,
            message=status.message,
            source=status.source,
            agent_id=status.agent_id,
            profile=profile,
        )
        logger.debug("Task %s is %s (%s)", status.task_id, status.state, status.reason or status.source)
        if update.is_terminal:
            self._tasks.pop(status.task_id, None)
        elif status.task_id not in self._queue:
            self._tasks[status.task_id] = profile
        self._publisher.publish(update)
        if status.uuid:
            self._call("acknowledgeStatusUpdate", offers.status_dict(status))

    def _registered(self, message: FrameworkRegistered) -> None:
        self._connected = True
        if message.framework_id and message.framework_id != self._framework_id:
            self._framework_id = message.framework_id
            try:
                self._ids.write(message.framework_id)
            except Exception as e:  # OSError from the file, kazoo's errors from ZooKeeper
                logger.error("Cannot save the framework id in %s: %s", self._ids, e)
        logger.info(
            "%s with Mesos master %s as framework %s",
            "Re-registered" if message.reregistered else "Registered",
            message.master or "?",
            message.framework_id,
        )
        self._publisher.publish(message)
        if self._tasks:
            self._call("reconcileTasks", [{"task_id": {"value": t}} for t in sorted(self._tasks)])
        self._call("reconcileTasks", [])
        # A (re)subscription starts unsuppressed.
        self._suppressed = False
        if self._queue:
            self._call("reviveOffers")
        else:
            self._maybe_suppress()

    def _disconnected(self) -> None:
        self._connected = False
        logger.warning("Disconnected from the Mesos master; the driver resubscribes")
        self._publisher.publish(FrameworkDisconnected(since=self._clock.now()))

    def _error(self, message: MesosErrorReceived) -> None:
        text = message.message
        if "has been removed" in text:
            # Our framework id is dead (failover timeout passed, or torn down): Mesos
            # killed its tasks. Register afresh; reconciliation reports the old tasks lost.
            logger.error(
                "Mesos removed framework %s (%s); registering a new framework", self._framework_id, text
            )
            self._publisher.publish(FrameworkError(text, fatal=False))
            self._stop_driver()
            self._framework_id = None
            try:
                self._ids.remove()
            except Exception as e:
                logger.error("Cannot forget the framework id in %s: %s", self._ids, e)
            self._connected = False
            self._start_driver()
            return
        fatal = message.driver_stopped
        logger.error("Mesos error: %s", text)
        self._publisher.publish(FrameworkError(text, fatal=fatal))
        if fatal and self._stop_hook is not None:
            self._stop_hook(f"Mesos driver stopped: {text}")

    # --- helpers ---------------------------------------------------------------------

    def _maybe_suppress(self) -> None:
        if not self._queue and not self._suppressed and self._connected and self._call("suppressOffers"):
            self._suppressed = True

    def _call(self, method: str, *args: Any) -> bool:
        """Call the driver; a failure is logged (the driver recovers on its own)."""
        if self._driver is None:
            return False
        try:
            getattr(self._driver, method)(*args)
            return True
        except Exception as e:
            logger.warning("Mesos %s failed: %s", method, e)
            return False


def _joins_with_timeout(driver: Any) -> bool:
    """pymesos's join() takes no timeout; ours does."""
    try:
        return "timeout" in inspect.signature(driver.join).parameters
    except (TypeError, ValueError):
        return False
