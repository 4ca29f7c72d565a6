"""The command line: ``gocd-mesosd``'s arguments, logging, signals and exit status.

:func:`main` is what ``gocd-mesosd`` (and ``bin/gocd-mesosd``) runs: it parses
the command line, loads the configuration (exit 2 on any problem), sets up
logging, starts the system through :func:`actors.system.start`, and blocks
until SIGTERM/SIGINT or a dead actor, then stops the system; SIGHUP reloads the
file (:mod:`actors.reload`) on the main thread. Exit status: 0
after an orderly stop, 1 on a runtime failure, 2 on a configuration or usage
error. With ``[ha] zookeeper`` it first waits to lead (see :mod:`actors.ha`).
``--sandbox`` hands over to :func:`actors.sandbox.run_sandbox`.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from actors import __version__, config
from actors.clock import RealClock
from actors.exceptions import ConfigError, GocdMesosError
from actors.reload import reload
from actors.system import System, make_status_server, start

if TYPE_CHECKING:
    from actors.ha import Leadership
    from actors.http.server import StatusServer

__all__ = ["LOG_FIELDS", "JsonFormatter", "main", "parse_args", "setup_logging"]

logger = logging.getLogger(__name__)

#: Libraries whose INFO chatter operators do not need.
NOISY_LOGGERS = ("urllib3", "requests", "pykka", "kazoo", "pymesos")


# --- logging ----------------------------------------------------------------


#: Keys a JSON line carries when it concerns them (the key lines pass them through ``extra=``):
#: stable, for log queries. ``event`` names the kind of line ("launch_decided", "drain_started").
LOG_FIELDS = ("event", "profile", "task_id", "agent_uuid", "job", "reason")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, thread, message, and those of
    :data:`LOG_FIELDS` the line was given."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "message": record.getMessage(),
        }
        for key in LOG_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                data[key] = value
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
    # pykka logs an actor's crash at ERROR with its traceback; our actors report their own
    # (BaseActor.on_failure) and the system names the cause in one ERROR line.
    logging.getLogger("pykka").setLevel(max(logging.CRITICAL, root.level))
    if hasattr(signal, "SIGUSR1"):
        # `kill -USR1 <pid>` dumps every thread's stack to stderr.
        faulthandler.register(signal.SIGUSR1, all_threads=True)


def warn_readable_secret_files(settings: config.Settings) -> None:
    """A WARNING for each secret file of ``settings`` that group or others may read."""
    for where, path in settings.secret_files:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue  # config.load read it a moment ago; a race is not worth a line
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            logger.warning(
                "%s %s is readable by %s (mode %04o); chmod 600 it",
                where,
                path,
                "group and others"
                if mode & stat.S_IRGRP and mode & stat.S_IROTH
                else ("group" if mode & stat.S_IRGRP else "others"),
                stat.S_IMODE(mode),
            )


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
    sandbox.add_argument(
        "--no-feed",
        action="store_true",
        help="the simulated GoCD has no Feeds API, as after its removal: the daemon reads the dashboard",
    )
    sandbox.add_argument(
        "--listen",
        type=config.HttpSettings.parse,
        default=config.HttpSettings(),
        metavar="HOST:PORT",
        help="the sandbox daemon's status server (default 127.0.0.1:9404; port 0 picks a free one)",
    )
    parser.add_argument("--version", action="version", version=f"gocd-mesos {__version__}")
    args = parser.parse_args(argv)
    if args.sandbox:
        if args.config or args.check_config or args.dry_run:
            parser.error("--sandbox takes no configuration file, --check-config or --dry-run")
        if args.time_scale <= 0 or (args.duration is not None and args.duration <= 0):
            parser.error("--time-scale and --duration must be positive")
    elif not args.config:
        parser.error("the configuration file is required (or --sandbox)")
    elif (
        args.duration is not None
        or args.report
        or args.time_scale != 1.0
        or args.listen != config.HttpSettings()
        or args.no_feed
    ):
        parser.error("--duration, --time-scale, --report, --listen and --no-feed go with --sandbox")
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
    warn_readable_secret_files(settings)
    running: list[System] = []
    stop_asked = threading.Event()
    reload_asked = threading.Event()
    leadership: Leadership | None = None

    def on_signal(signum: int, frame: Any) -> None:
        logger.info("Got %s; stopping (Mesos keeps the agents running)", signal.Signals(signum).name)
        stop_asked.set()
        if leadership is not None:
            leadership.cancel()
        for system in running:
            system.stop(block=False)

    def on_hangup(signum: int, frame: Any) -> None:
        # Only a flag: the main thread reads the file, not a signal handler.
        reload_asked.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, on_hangup)
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
    status_server: StatusServer | None = None
    if settings.ha.zookeeper and not args.dry_run:
        # Only the leader starts a system; see actors.ha for why a leader that
        # loses ZooKeeper exits (status 1, systemd restarts it) instead of waiting.
        # The status server serves from the start, so a standby shows as one.
        from actors.ha import Leadership

        try:
            status_server = make_status_server(settings, RealClock())
        except GocdMesosError:
            return 1  # logged
        status_server.start()
        leadership = Leadership(settings.ha.zookeeper, listeners=(status_server.tell,))
        try:
            if not leadership.campaign():
                leadership.close()
                status_server.stop()
                return 0
        except GocdMesosError as e:
            logger.error("%s", e)
            leadership.close()
            status_server.stop()
            return 1
    try:
        running.append(
            start(
                settings,
                dry_run=args.dry_run,
                framework_ids=leadership.framework_ids if leadership else None,
                status_server=status_server,
            )
        )
    except GocdMesosError:
        if leadership is not None:
            leadership.close()
        return 1  # start() has logged why
    system = running[0]
    if leadership is not None:
        leadership.watch(system.stop_hook)
    if stop_asked.is_set():
        system.stop(block=False)

    def relog(new: config.LoggingSettings) -> None:
        setup_logging(args.log_level or new.level, args.log_format or new.format)

    while (end := system.wait(timeout=RELOAD_LATENCY)).status == -1:
        if reload_asked.is_set():
            reload_asked.clear()
            logger.info("Got SIGHUP; reloading %s", args.config)
            settings = reload(args.config, settings, system, relog)
    if leadership is not None:
        leadership.close()
    return end.status


#: Seconds the main thread may take to notice a SIGHUP.
RELOAD_LATENCY = 0.5


def _sandbox(args: argparse.Namespace) -> int:
    from actors.sandbox import run_sandbox

    setup_logging(args.log_level or "WARNING", args.log_format or "text")
    stop_event = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return run_sandbox(
        duration=args.duration,
        time_scale=args.time_scale,
        report=args.report,
        stop_event=stop_event,
        listen=args.listen,
        feed=not args.no_feed,
    )
