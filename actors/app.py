"""The daemon's entry point: arguments, logging, configuration, actor order.

:func:`main` is what ``gocd-mesosd`` (and ``bin/gocd-mesosd``) runs: it parses
the command line, loads the configuration (exit 2 on any problem), sets up
logging, and hands the actors to :func:`run`. :func:`run` starts the actors in
order, confirms each with a ping, blocks until SIGTERM/SIGINT or a dead actor
(whether it reported its death or not), then stops them in reverse. Exit status: 0 after an orderly stop, 1 on
a runtime failure, 2 on a configuration or usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pykka

from actors import __version__, config
from actors.base import Ping
from actors.clock import Clock, RealClock
from actors.exceptions import ConfigError, GocdMesosError

__all__ = ["ActorSpec", "Runtime", "build_actors", "main", "run"]

logger = logging.getLogger(__name__)

#: Libraries whose INFO chatter operators do not need.
NOISY_LOGGERS = ("urllib3", "requests", "pykka", "kazoo", "pymesos")


@dataclass(frozen=True)
class ActorSpec:
    """How to start one actor of the daemon."""

    #: Name used in log lines.
    name: str
    #: Starts the actor (``SomeActor.start(...)``) and returns its ref.
    start: Callable[[], pykka.ActorRef[Any]]


@dataclass(frozen=True)
class Runtime:
    """What the actors of one daemon run share."""

    #: The validated configuration.
    settings: config.Settings
    #: The clock every timer goes through.
    clock: Clock
    #: Decide and log, but never launch, kill or change an agent, write the state dir or subscribe to Mesos.
    dry_run: bool
    #: Called with a reason when an actor dies; stops the daemon.
    stop_hook: Callable[[str], None]
    #: Extra listeners of every published message (status page, sandbox, embedding tools).
    subscribers: tuple[Any, ...] = ()
    #: The scaling policy the judge applies (see :func:`actors.fleet.judge.decide`).
    policy: Callable[..., Any] | None = None


def build_actors(runtime: Runtime) -> list[ActorSpec]:
    """The daemon's actors in start order: AgentRegistry, Judge, MesosBridge, GoCDPoller.

    The registry starts first and learns the others' refs from a ``Peers``
    message told once the poller, the last one, has started; the others get
    the registry's ref when they are built.
    """
    # Imported here so that `--check-config` and `--version` stay light.
    from actors.fleet.judge import Judge
    from actors.fleet.registry import AgentRegistry
    from actors.gocd.poller import GoCDPoller
    from actors.mesos.bridge import MesosBridge
    from actors.messages import Peers

    s = runtime.settings
    refs: dict[str, pykka.ActorRef[Any]] = {}

    def registry() -> pykka.ActorRef[Any]:
        refs["registry"] = AgentRegistry.start(
            agents=s.agents,
            profiles=s.profiles,
            judge_settings=s.judge,
            state_dir=s.state.dir,
            clock=runtime.clock,
            poll_interval=s.gocd.poll_interval,
            subscribers=runtime.subscribers,
            dry_run=runtime.dry_run,
            stop_hook=runtime.stop_hook,
        )
        return refs["registry"]

    def judge() -> pykka.ActorRef[Any]:
        refs["judge"] = Judge.start(
            profiles=s.profiles,
            settings=s.judge,
            clock=runtime.clock,
            registry=refs["registry"],
            subscribers=runtime.subscribers,
            policy=runtime.policy,
            dry_run=runtime.dry_run,
            stop_hook=runtime.stop_hook,
        )
        return refs["judge"]

    def bridge() -> pykka.ActorRef[Any]:
        refs["bridge"] = MesosBridge.start(
            mesos=s.mesos,
            agents=s.agents,
            profiles=s.profiles,
            state_dir=s.state.dir,
            clock=runtime.clock,
            subscribers=(refs["registry"], *runtime.subscribers),
            dry_run=runtime.dry_run,
            stop_hook=runtime.stop_hook,
        )
        return refs["bridge"]

    def poller() -> pykka.ActorRef[Any]:
        refs["poller"] = GoCDPoller.start(
            settings=s.gocd,
            clock=runtime.clock,
            subscribers=(refs["registry"], *runtime.subscribers),
            dry_run=runtime.dry_run,
            stop_hook=runtime.stop_hook,
        )
        # A registry dead by now is for run()'s watch to report; raising here
        # would leave this poller running outside run()'s list of actors to stop.
        with contextlib.suppress(pykka.ActorDeadError):
            refs["registry"].tell(Peers(judge=refs["judge"], bridge=refs["bridge"], poller=refs["poller"]))
        return refs["poller"]

    return [
        ActorSpec("AgentRegistry", registry),
        ActorSpec("Judge", judge),
        ActorSpec("MesosBridge", bridge),
        ActorSpec("GoCDPoller", poller),
    ]


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

    ``failure`` collects the reasons given by actors that died (filled by the
    stop hook). The hook alone is not trusted to come: an actor stopped from
    outside, or whose ``on_failure`` raises before reporting, dies silently, so
    every ``watch_interval`` seconds run also checks that each actor is alive.
    Any failure makes the exit status 1 and is logged in one ERROR line. Only
    the actors of ``specs`` are stopped: another system in this process is not
    ours to stop.
    """
    failure = [] if failure is None else failure
    started: list[tuple[str, pykka.ActorRef[Any]]] = []
    dead: list[str] = []
    status = 0
    try:
        for spec in specs:
            logger.debug("Starting %s", spec.name)
            ref = spec.start()
            started.append((spec.name, ref))
            ref.ask(Ping(), timeout=start_timeout)
            logger.debug("%s is up", spec.name)
        logger.info("gocd-mesos %s running with %d actors", __version__, len(started))
        while not stop_event.wait(watch_interval) and all(ref.is_alive() for _, ref in started):
            pass
        dead = [name for name, ref in started if not ref.is_alive()]
    except GocdMesosError as e:
        logger.error("%s", e)
        status = 1
    except pykka.Timeout:
        logger.error("%s did not answer within %gs of starting", started[-1][0], start_timeout)
        status = 1
    except pykka.ActorDeadError:
        logger.error("%s died while starting", started[-1][0] if started else "an actor")
        status = 1
    finally:
        for name, ref in reversed(started):
            try:
                ref.stop(timeout=stop_timeout)
            except pykka.Timeout:
                logger.error("%s did not stop within %gs; it is still running", name, stop_timeout)
            except pykka.ActorDeadError:
                pass
    # The hook's reasons ("AgentRegistry crashed: ...") say more than "is no
    # longer running"; an actor without one died silently. Read after the
    # stops, so that a hook still under way when the watch saw the death is in.
    reported = tuple(failure)
    silent = [
        f"{name} is no longer running"
        for name in dead
        if not any(reason.startswith(f"{name} ") for reason in reported)
    ]
    if silent or reported:
        logger.error("Stopped because %s", "; ".join([*silent, *reported]))
        status = 1
    return status


# --- logging ----------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, thread, message."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def setup_logging(level: str, fmt: str, stream: Any = None) -> None:
    """Log to stderr (journald picks it up) at ``level`` in ``fmt``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(threadName)s] %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    quiet = max(logging.WARNING, root.level)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
    if hasattr(signal, "SIGUSR1"):
        # `kill -USR1 <pid>` dumps every thread's stack to stderr.
        faulthandler.register(signal.SIGUSR1, all_threads=True)


# --- command line -------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gocd-mesosd",
        description="Autoscale GoCD build agents on Apache Mesos from the GoCD job backlog.",
    )
    parser.add_argument("config", nargs="?", help="path of the INI configuration (see etc/gocd-mesos.ini)")
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration, print it with secrets masked, and exit",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="decide and log, but never launch, kill or change an agent, write the state dir "
        "or connect to Mesos",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="override [logging] level",
    )
    parser.add_argument("--log-format", choices=("text", "json"), help="override [logging] format")
    sandbox = parser.add_argument_group(
        "sandbox (both simulators and the daemon in one process, no config needed)"
    )
    sandbox.add_argument("--sandbox", action="store_true", help="run the demo on simulated GoCD and Mesos")
    sandbox.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help="wall-clock seconds before the final summary (default: until Ctrl-C)",
    )
    sandbox.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="simulated time runs X times faster (default 1)",
    )
    sandbox.add_argument("--report", metavar="FILE", help="write the final numbers as JSON to FILE")
    parser.add_argument("--version", action="version", version=f"gocd-mesos {__version__}")
    args = parser.parse_args(argv)
    if args.sandbox:
        if args.config or args.check_config or args.dry_run:
            parser.error("--sandbox takes no configuration file, --check-config or --dry-run")
        if args.time_scale <= 0 or (args.duration is not None and args.duration <= 0):
            parser.error("--time-scale and --duration must be positive")
    elif not args.config:
        parser.error("the configuration file is required (or --sandbox)")
    elif args.duration is not None or args.report or args.time_scale != 1.0:
        parser.error("--duration, --time-scale and --report go with --sandbox")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gocd-mesosd``; returns the exit status."""
    args = parse_args(argv)
    if args.sandbox:
        return _sandbox(args)
    try:
        settings = config.load(args.config)
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        print(f"gocd-mesosd: {len(e.problems)} configuration problem(s); nothing started", file=sys.stderr)
        return 2
    if args.check_config:
        sys.stdout.write(config.render(settings))
        print(f"# {args.config}: configuration OK", file=sys.stderr)
        return 0

    setup_logging(args.log_level or settings.logging.level, args.log_format or settings.logging.format)
    stop_event = threading.Event()
    failure: list[str] = []

    def stop_hook(reason: str) -> None:
        failure.append(reason)
        stop_event.set()

    def on_signal(signum: int, frame: Any) -> None:
        logger.info("Got %s; stopping (Mesos keeps the agents running)", signal.Signals(signum).name)
        stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.dry_run:
        # The state dir may be a running daemon's: a dry run only reads it.
        logger.info("Dry run: decisions are logged; nothing is launched, killed, changed or saved")
    else:
        try:
            os.makedirs(settings.state.dir, exist_ok=True)
            probe = os.path.join(settings.state.dir, ".write-test")
            with open(probe, "w", encoding="utf-8"):
                pass
            os.unlink(probe)
        except OSError as e:
            logger.error("[state] dir %s is not writable: %s", settings.state.dir, e.strerror or e)
            return 1
    runtime = Runtime(settings=settings, clock=RealClock(), dry_run=args.dry_run, stop_hook=stop_hook)
    try:
        specs = build_actors(runtime)
    except GocdMesosError as e:
        logger.error("%s", e)
        return 1
    return run(specs, stop_event, failure=failure)


def _sandbox(args: argparse.Namespace) -> int:
    from actors.sandbox import run_sandbox

    setup_logging(args.log_level or "WARNING", args.log_format or "text")
    stop_event = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return run_sandbox(
        duration=args.duration, time_scale=args.time_scale, report=args.report, stop_event=stop_event
    )
