"""One gocd-mesos system: the four actors wired as the daemon runs them, and their handle.

:func:`start` is the one entry point: the daemon's ``main()``, the sandbox, the
end-to-end tests and ops tooling that embeds gocd-mesos all start a system
through it. It starts the AgentRegistry, the Judge, the MesosBridge and the
GoCDPoller in that order, confirms each with a ping, then serves the status
server (:mod:`actors.http`, on ``[http] listen``, with GoCD's webhook when
``[gocd] webhook_secret_file`` is set: its hints go to the GoCDPoller) and returns a
:class:`System`: the actor refs, ``http_url``, ``subscribe``/``unsubscribe`` for listeners of
the published messages, ``wait()`` and ``stop()``.

A listener is a pykka ``ActorRef`` (told every published message) or a plain
callable, which runs on a thread of its own: a slow listener only lets its own
queue grow, a raising one is logged, and neither ever stalls or kills an
actor. Every published message reaches every listener through one fan-out
actor, so listeners come and go without the four actors knowing.

A system supervises only its own actors: any of them that dies, whether it
reported its death or not, ends the system with exit status 1 and one ERROR
line naming it; stopping stops them in reverse order and nothing else, so two
systems can share a process.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka

from actors import __version__
from actors.base import Ping
from actors.clock import Clock, RealClock
from actors.config import Settings
from actors.exceptions import GocdMesosError

if TYPE_CHECKING:
    from actors.fleet.judge import Policy, PolicyFunction
    from actors.http.server import StatusServer
    from actors.mesos.bridge import FrameworkIdStore
    from actors.messages import GoCDHint

__all__ = ["ActorSpec", "Exit", "Listener", "System", "build_actors", "make_status_server", "run", "start"]

logger = logging.getLogger(__name__)

#: What may listen to a system: an ActorRef (told each message) or a callable (called with it).
Listener = Any


@dataclass(frozen=True)
class ActorSpec:
    """How to start one actor of a system."""

    #: Name used in log lines and in :attr:`System.refs`.
    name: str
    #: Starts the actor (``SomeActor.start(...)``) and returns its ref.
    start: Callable[[], pykka.ActorRef[Any]]


@dataclass(frozen=True)
class Exit:
    """How a system ended."""

    #: 0 after an orderly stop, 1 when an actor died or the system could not start.
    status: int
    #: Why it ended with status 1 ("AgentRegistry crashed: ..."); "" after an orderly stop.
    reason: str = ""


def build_actors(
    settings: Settings,
    *,
    clock: Clock,
    stop_hook: Callable[[str], None],
    subscribers: tuple[Any, ...] = (),
    policy: Policy | PolicyFunction | None = None,
    dry_run: bool = False,
    framework_ids: FrameworkIdStore | None = None,
) -> list[ActorSpec]:
    """The actors of a system in start order: AgentRegistry, Judge, MesosBridge, GoCDPoller.

    The registry starts first and learns the others' refs from a ``Peers``
    message told once the poller, the last one, has started; the others get
    the registry's ref when they are built. ``subscribers`` are told every
    message the four publish; ``framework_ids`` is where the bridge keeps the
    framework id (default: ``<state dir>/framework_id``).
    """
    # Imported here so that `--check-config` and `--version` stay light.
    from actors.fleet.judge import Judge
    from actors.fleet.registry import AgentRegistry
    from actors.gocd.poller import GoCDPoller
    from actors.mesos.bridge import MesosBridge
    from actors.messages import Peers

    s = settings
    refs: dict[str, pykka.ActorRef[Any]] = {}

    def registry() -> pykka.ActorRef[Any]:
        refs["registry"] = AgentRegistry.start(
            agents=s.agents,
            profiles=s.profiles,
            judge_settings=s.judge,
            state_dir=s.state.dir,
            clock=clock,
            poll_interval=s.gocd.poll_interval,
            subscribers=subscribers,
            dry_run=dry_run,
            stop_hook=stop_hook,
        )
        return refs["registry"]

    def judge() -> pykka.ActorRef[Any]:
        refs["judge"] = Judge.start(
            profiles=s.profiles,
            settings=s.judge,
            clock=clock,
            registry=refs["registry"],
            subscribers=subscribers,
            policy=policy,
            dry_run=dry_run,
            stop_hook=stop_hook,
        )
        return refs["judge"]

    def bridge() -> pykka.ActorRef[Any]:
        refs["bridge"] = MesosBridge.start(
            mesos=s.mesos,
            agents=s.agents,
            profiles=s.profiles,
            state_dir=s.state.dir,
            clock=clock,
            subscribers=(refs["registry"], *subscribers),
            dry_run=dry_run,
            stop_hook=stop_hook,
            framework_ids=framework_ids,
        )
        return refs["bridge"]

    def poller() -> pykka.ActorRef[Any]:
        refs["poller"] = GoCDPoller.start(
            settings=s.gocd,
            clock=clock,
            subscribers=(refs["registry"], *subscribers),
            dry_run=dry_run,
            stop_hook=stop_hook,
        )
        # A registry dead by now is for the system's watch to report; raising here
        # would leave this poller running outside the list of actors to stop.
        with contextlib.suppress(pykka.ActorDeadError):
            refs["registry"].tell(Peers(judge=refs["judge"], bridge=refs["bridge"], poller=refs["poller"]))
        return refs["poller"]

    return [
        ActorSpec("AgentRegistry", registry),
        ActorSpec("Judge", judge),
        ActorSpec("MesosBridge", bridge),
        ActorSpec("GoCDPoller", poller),
    ]


def start(
    settings: Settings,
    *,
    clock: Clock | None = None,
    listeners: Iterable[Listener] = (),
    policy: Policy | PolicyFunction | None = None,
    dry_run: bool = False,
    start_timeout: float = 10.0,
    http: bool = True,
    framework_ids: FrameworkIdStore | None = None,
    status_server: StatusServer | None = None,
) -> System:
    """Start a system on ``settings`` and return its handle once every actor answers.

    ``clock`` defaults to the real clock; ``listeners`` are subscribed before the
    first message is published; ``policy`` (an object with the
    :class:`~actors.fleet.judge.Policy` protocol's ``decide`` method, or a plain
    function of :func:`~actors.fleet.judge.decide`'s signature) replaces the scaling
    policy that ``[judge] policy`` names; ``dry_run`` decides and logs but changes
    nothing anywhere; ``http=False`` leaves out the status server that otherwise
    serves on ``[http] listen`` (port 0 picks a free port: see :attr:`System.http_url`);
    ``framework_ids`` replaces the framework id file (the HA leader passes its ZooKeeper
    store, see :mod:`actors.ha`); ``status_server`` is a server made beforehand with
    :func:`make_status_server` (an HA standby's, serving while it waits to lead) for the
    system to serve through and stop with it, instead of one of its own.
    Raises :class:`~actors.exceptions.GocdMesosError` if the system could not start
    (it is stopped again, and the reason logged).
    """
    clock = clock or RealClock()
    system = System()
    if status_server is None and http:
        try:
            status_server = make_status_server(settings, clock)
        except GocdMesosError:
            system.stop()
            raise
    if status_server is not None:
        # Bound before any actor starts, so a taken port fails first; subscribed before the
        # first message is published; serving once the actors run.
        status_server.watch(lambda: {name: ref.is_alive() for name, ref in system.refs.items()})
        status_server.hints_to(system.hint)
        system.subscribe(status_server.listener)
        system.http_server = status_server
    for listener in listeners:
        system.subscribe(listener)
    specs = build_actors(
        settings,
        clock=clock,
        stop_hook=system.stop_hook,
        subscribers=(system.fanout,),
        policy=policy,
        dry_run=dry_run,
        framework_ids=framework_ids,
    )
    if not system.start_actors(specs, start_timeout=start_timeout):
        raise GocdMesosError(f"gocd-mesos could not start: {system.wait().reason}")
    if system.http_server is not None:
        system.http_server.start()
    return system


def make_status_server(settings: Settings, clock: Clock) -> StatusServer:
    """A status server bound to ``[http] listen``, not serving yet (see :func:`start`).

    Raises :class:`~actors.exceptions.GocdMesosError` (logged) if the address cannot be bound.
    """
    from actors.http.server import StatusServer

    try:
        return StatusServer(
            host=settings.http.host,
            port=settings.http.port,
            clock=clock,
            profiles=settings.profiles,
            stale_after=settings.judge.stale_after,
            username=settings.http.username,
            password=settings.http.password,
            token=settings.http.token,
            webhook_secret=settings.gocd.webhook_secret,
        )
    except GocdMesosError as e:
        logger.error("%s", e)
        raise


def run(
    specs: Sequence[ActorSpec],
    stop_event: threading.Event,
    *,
    failure: list[str] | None = None,
    start_timeout: float = 10.0,
    stop_timeout: float = 10.0,
    watch_interval: float = 1.0,
) -> int:
    """Start ``specs`` in order, wait for ``stop_event`` or a dead actor, stop them in reverse.

    The supervision of :class:`System`, for actors the caller builds itself
    (their stop hook appends to ``failure`` and sets ``stop_event``); returns the
    exit status.
    """
    system = System(
        stop_event=stop_event, failure=failure, stop_timeout=stop_timeout, watch_interval=watch_interval
    )
    system.start_actors(specs, start_timeout=start_timeout)
    return system.wait().status


class System:
    """A running gocd-mesos system: its actors, its listeners and how it ends.

    Built by :func:`start`. ``wait()`` blocks until the system ends (an actor
    died, or ``stop()`` was asked for) and returns its :class:`Exit`; ``stop()``
    asks for the end and waits for it. Both may be called from any thread, any
    number of times.
    """

    def __init__(
        self,
        *,
        stop_event: threading.Event | None = None,
        failure: list[str] | None = None,
        stop_timeout: float = 10.0,
        watch_interval: float = 1.0,
    ) -> None:
        self._stop_event = stop_event or threading.Event()
        #: Reasons told by actors that died (through :meth:`stop_hook`).
        self._failure = [] if failure is None else failure
        self._stop_timeout = stop_timeout
        self._watch_interval = watch_interval
        self._started: list[tuple[str, pykka.ActorRef[Any]]] = []
        self._start_failed = ""
        self._exit: Exit | None = None
        self._ending = threading.Lock()
        #: The fan-out actor every actor publishes to; listeners subscribe to it.
        self.fanout: pykka.ActorRef[Any] = _Fanout.start()
        #: The status server (``actors.http.server.StatusServer``); None when not serving.
        self.http_server: Any = None

    # --- the actors ------------------------------------------------------------------

    @property
    def refs(self) -> Mapping[str, pykka.ActorRef[Any]]:
        """The actors by name: ``AgentRegistry``, ``Judge``, ``MesosBridge``, ``GoCDPoller``."""
        return dict(self._started)

    @property
    def registry(self) -> pykka.ActorRef[Any]:
        """The AgentRegistry's ref."""
        return self.refs["AgentRegistry"]

    @property
    def judge(self) -> pykka.ActorRef[Any]:
        """The Judge's ref."""
        return self.refs["Judge"]

    @property
    def bridge(self) -> pykka.ActorRef[Any]:
        """The MesosBridge's ref."""
        return self.refs["MesosBridge"]

    @property
    def poller(self) -> pykka.ActorRef[Any]:
        """The GoCDPoller's ref."""
        return self.refs["GoCDPoller"]

    @property
    def http_url(self) -> str | None:
        """``http://host:port/`` of the status server (the bound port); None when not serving."""
        return None if self.http_server is None else str(self.http_server.url)

    def reload(self, settings: Settings) -> None:
        """Apply ``settings``' profiles and ``[judge]`` settings without a restart: tells
        :class:`~actors.messages.SettingsChanged` to the Judge, the MesosBridge and the
        AgentRegistry, which decides again at once. The other sections need a restart and are
        not looked at here (see :mod:`actors.reload`)."""
        from actors.messages import SettingsChanged

        change = SettingsChanged(profiles=settings.profiles, judge=settings.judge)
        # The registry last: the decision it asks for is made with the new settings.
        for name in ("Judge", "MesosBridge", "AgentRegistry"):
            ref = self.refs.get(name)
            if ref is not None:
                with contextlib.suppress(pykka.ActorDeadError):
                    ref.tell(change)

    def hint(self, hint: GoCDHint) -> None:
        """Tell the GoCDPoller a :class:`~actors.messages.GoCDHint` (the webhook's); raises
        ``pykka.ActorDeadError`` when it is not running."""
        poller = self.refs.get("GoCDPoller")
        if poller is None:
            raise pykka.ActorDeadError("the GoCDPoller is not running")
        poller.tell(hint)

    def stop_hook(self, reason: str) -> None:
        """Called by an actor that dies, with why: ends the system."""
        self._failure.append(reason)
        self._stop_event.set()

    def start_actors(self, specs: Sequence[ActorSpec], *, start_timeout: float = 10.0) -> bool:
        """Start ``specs`` in order, each confirmed with a ping; False (and the system ended,
        its reason logged) if one fails to start."""
        try:
            for spec in specs:
                logger.debug("Starting %s", spec.name)
                ref = spec.start()
                self._started.append((spec.name, ref))
                ref.ask(Ping(), timeout=start_timeout)
                logger.debug("%s is up", spec.name)
        except GocdMesosError as e:
            self._start_failed = str(e)
        except pykka.Timeout:
            self._start_failed = (
                f"{self._started[-1][0]} did not answer within {start_timeout:g}s of starting"
            )
        except pykka.ActorDeadError:
            self._start_failed = (
                f"{self._started[-1][0] if self._started else 'an actor'} died while starting"
            )
        if self._start_failed:
            logger.error("%s", self._start_failed)
            self._stop_event.set()
            self.wait()
            return False
        logger.info("gocd-mesos %s running with %d actors", __version__, len(self._started))
        return True

    # --- listeners -------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Tell ``listener`` every message the actors publish from now on: ScalePlan,
        FleetChanged, BacklogSnapshot, GoCDUnavailable, TaskUpdate, ... (see
        :mod:`actors.messages`). A callable runs on a thread of its own."""
        self.fanout.tell(_Add(listener))

    def unsubscribe(self, listener: Listener) -> None:
        """Stop telling ``listener``; a callable's thread ends."""
        with contextlib.suppress(pykka.ActorDeadError):
            self.fanout.tell(_Remove(listener))

    # --- the end ---------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> Exit:
        """Block until the system ends, stop what is left of it, return how it ended.

        With ``timeout``, give up after that many seconds: the Exit then has status
        ``-1`` and the system keeps running.
        """
        waited = 0.0
        while not self._stop_event.is_set() and all(ref.is_alive() for _, ref in self._started):
            if timeout is not None and waited >= timeout:
                return Exit(-1, "still running")
            step = self._watch_interval if timeout is None else min(self._watch_interval, timeout - waited)
            self._stop_event.wait(step)
            waited += step
        with self._ending:
            if self._exit is None:
                self._exit = self._end()
        return self._exit

    def stop(self, block: bool = True) -> Exit | None:
        """End the system in order (Mesos keeps the agents running) and return how it ended;
        with ``block=False`` only ask for the end (safe in a signal handler) and return None."""
        self._stop_event.set()
        return self.wait() if block else None

    def _end(self) -> Exit:
        dead = [name for name, ref in self._started if not ref.is_alive()]
        for name, ref in reversed(self._started):
            try:
                ref.stop(timeout=self._stop_timeout)
            except pykka.Timeout:
                logger.error("%s did not stop within %gs; it is still running", name, self._stop_timeout)
            except pykka.ActorDeadError:
                pass
        with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
            self.fanout.stop(timeout=self._stop_timeout)
        if self.http_server is not None:
            self.http_server.stop(timeout=self._stop_timeout)
        if self._start_failed:
            return Exit(1, self._start_failed)
        # The hook's reasons ("AgentRegistry crashed: ...") say more than "is no
        # longer running"; an actor without one died silently. Read after the
        # stops, so that a hook still under way when the watch saw the death is in.
        reported = tuple(self._failure)
        silent = [
            f"{name} is no longer running"
            for name in dead
            if not any(reason.startswith(f"{name} ") for reason in reported)
        ]
        if silent or reported:
            reason = "; ".join([*silent, *reported])
            logger.error("Stopped because %s", reason)
            return Exit(1, reason)
        return Exit(0)


# --- listeners: the fan-out actor and callables on threads of their own ------------------


@dataclass(frozen=True)
class _Add:
    listener: Any


@dataclass(frozen=True)
class _Remove:
    listener: Any


class _Fanout(pykka.ThreadingActor):
    """Tells every message it gets to the system's listeners (a dead one is dropped)."""

    def __init__(self) -> None:
        super().__init__()
        self._targets: dict[int, tuple[Any, Any]] = {}

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Add):
            key = id(message.listener)
            if key not in self._targets:
                target = message.listener
                if not hasattr(target, "tell"):
                    target = _CallableListener.start(message.listener)
                self._targets[key] = (message.listener, target)
        elif isinstance(message, _Remove):
            _, target = self._targets.pop(id(message.listener), (None, None))
            if isinstance(target, pykka.ActorRef) and target is not message.listener:
                target.stop(block=False)
        else:
            for key, (_, target) in list(self._targets.items()):
                try:
                    target.tell(message)
                except pykka.ActorDeadError:
                    del self._targets[key]
        return None

    def on_stop(self) -> None:
        for listener, target in self._targets.values():
            if target is not listener:
                with contextlib.suppress(pykka.ActorDeadError):
                    target.stop(block=False)


class _CallableListener(pykka.ThreadingActor):
    """Runs a callable listener on a thread of its own; what it raises is logged, never passed on."""

    def __init__(self, function: Callable[[Any], Any]) -> None:
        super().__init__()
        self._function = function
        self._failures = 0

    def on_receive(self, message: Any) -> Any:
        try:
            self._function(message)
        except Exception:
            self._failures += 1
            # The first failure with its traceback; the next ones briefly.
            if self._failures == 1:
                logger.exception("Listener %r failed on %s", self._function, type(message).__name__)
            else:
                logger.debug("Listener %r failed again (%d times)", self._function, self._failures)
        return None
