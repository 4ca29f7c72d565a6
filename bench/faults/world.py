"""One world of the campaign: both simulators in this process, the daemon as a real process.

A :class:`World` runs a GoCD simulator and a Mesos simulator on one
:class:`~actors.clock.ScaledClock` (:data:`SCALE` simulated seconds per real
second) and starts ``bin/gocd-mesosd`` against them as a child process, with an
INI file written for it. The daemon always runs on real time (it has no time
scale), so its timers are written in the INI at a tenth of a realistic value
(:class:`Timers`: a 1 s poll is GoCD polled every 10 simulated seconds): the
daemon and the simulators then keep the same pace, and a fault of 15 real
seconds lasts two and a half simulated minutes, longer than every timer the
daemon has.

The world also records what the simulators saw, for the invariants
(:mod:`bench.faults.invariants`): every GoCD request with its clock time and the
agent state it asked for, every scheduler call the Mesos master accepted
(:attr:`MesosSimulator.calls`), which simulated agent ran in which task, and
the windows during which a fault was in force.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.clock import Clock, ScaledClock
from actors.sim.gocd import GoCDSimulator
from actors.sim.gocd_agent import SimAgent
from actors.sim.mesos import MesosSimulator

__all__ = ["BIN", "KEY", "PREFIX", "SCALE", "Daemon", "Timers", "Window", "World"]

#: Simulated seconds per real second, for the simulators (see the module docstring).
SCALE = 10.0
BIN = str(Path(__file__).resolve().parents[2] / "bin" / "gocd-mesosd")
KEY = "faults-auto-register-key"
PREFIX = "gocd-mesos-"
IMAGE = "gocd/gocd-agent-ubuntu-24.04:v25.1.0"
USER, PASSWORD = "admin", "faults-secret"
#: Mesos states of a task that still holds resources.
LIVE = frozenset({"TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING"})


@dataclass(frozen=True)
class Timers:
    """The daemon's timers, real seconds (a tenth of realistic values: see the module docstring)."""

    poll_interval: float = 1.0
    timeout: float = 1.0
    max_backoff: float = 4.0
    stale_after: float = 3.0
    idle_timeout: float = 4.0
    register_timeout: float = 10.0
    backoff_initial: float = 2.0
    backoff_max: float = 8.0


@dataclass
class Window:
    """A fault in force from ``start`` to ``end`` (clock seconds)."""

    kind: str
    start: float
    end: float | None = None
    #: Whether the daemon cannot read GoCD meanwhile: nothing may be drained or killed then.
    stale: bool = False
    #: Whether GoCD refuses every agent change meanwhile (maintenance): nothing may be killed.
    no_changes: bool = False


def free_port() -> int:
    """A free loopback port, for a simulator that must come back on the same one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ObservedGoCD(GoCDSimulator):
    """The GoCD simulator, keeping every API request with its clock time and answer."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        #: ``(clock now, method, path, agent_config_state asked for or None, status or None)``.
        self.seen: list[tuple[float, str, str, str | None, int | None]] = []

    def handle(self, request: Any) -> Any:
        asked = None
        if request.method == "PATCH" and request.body:
            with contextlib.suppress(ValueError, AttributeError):
                asked = json.loads(request.body).get("agent_config_state")
        response = super().handle(request)
        if request.path.startswith("/go/api/"):
            self.seen.append(
                (self.clock.now(), request.method, request.path, asked, getattr(response, "status", None))
            )
        return response


class Daemon:
    """One ``bin/gocd-mesosd`` process with JSON logs, read on a thread."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log_path = log
        self._log = log.open("a", encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, BIN, str(config), "--log-format", "json", "--log-level", "info"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        #: The log lines, parsed (a line that is not JSON is kept as its text in ``message``).
        self.lines: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        #: How the process ended as this campaign meant it: "sigterm", "sigkill" or None.
        self.ended_by: str | None = None
        self._reader = threading.Thread(target=self._read, name=f"daemon-{self.proc.pid}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for text in self.proc.stderr:
            self._log.write(text)
            try:
                line = json.loads(text)
                if not isinstance(line, dict):
                    raise ValueError
            except ValueError:
                line = {"level": "RAW", "message": text.rstrip("\n")}
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        self._log.close()
        with self._cond:
            self._cond.notify_all()

    def wait_line(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float, start: int = 0
    ) -> int | None:
        """Index of the first line from ``start`` on that matches, waiting up to ``timeout``; None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(start, len(self.lines)):
                    if predicate(self.lines[i]):
                        return i
                start = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return None
                self._cond.wait(min(left, 0.5))

    def wait_registered(self, timeout: float = 30.0) -> bool:
        """Whether the daemon subscribed to Mesos within ``timeout``."""
        return self.wait_line(lambda ln: "with Mesos master" in ln.get("message", ""), timeout) is not None

    def errors(self) -> list[str]:
        """The ERROR and CRITICAL lines, and any line that is not JSON (a traceback's)."""
        with self._cond:
            return [
                ln.get("message", "")
                for ln in self.lines
                if ln.get("level") in ("ERROR", "CRITICAL")
                or (ln.get("level") == "RAW" and ln.get("message"))
            ]

    def kill(self) -> None:
        """SIGKILL, as a crash of the host would."""
        self.ended_by = "sigkill"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._reader.join(10)

    def terminate(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and the exit status (None: it did not stop in time, and was killed)."""
        if self.proc.poll() is None:
            self.ended_by = "sigterm"
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        self._reader.join(10)
        return status

    def wait_exit(self, timeout: float) -> int | None:
        """The exit status once it exits by itself within ``timeout``; None if it still runs."""
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(10)
        return status


@dataclass
class World:
    """Simulators, a state dir and the daemons started on them (see the module docstring)."""

    name: str
    root: Path
    timers: Timers = field(default_factory=Timers)
    nodes: int = 3
    #: The profile's min and max.
    min: int = 1
    max: int = 8
    #: Seconds of silence (simulated) before the GoCD simulator says LostContact.
    agent_timeout: float = 300.0
    #: Seconds between Mesos heartbeats (simulated).
    heartbeat: float = 1.0
    clock: Clock = field(init=False)
    gocd: ObservedGoCD = field(init=False)
    mesos: MesosSimulator = field(init=False)
    daemons: list[Daemon] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    #: Simulated agent uuid -> its task id; and the agents themselves, by task id.
    agent_task: dict[str, str] = field(default_factory=dict)
    sim_agents: dict[str, SimAgent] = field(default_factory=dict)
    #: Exit statuses the scenario expects of daemons that ended by themselves (e.g. 1).
    expected_exits: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.clock = ScaledClock(SCALE)
        self.gocd = ObservedGoCD(
            clock=self.clock,
            auto_register_key=KEY,
            username=USER,
            password=PASSWORD,
            agent_timeout=self.agent_timeout,
            port=free_port(),
        )
        self.mesos = MesosSimulator(
            clock=self.clock,
            agents=self.nodes,
            cpus=8,
            mem=16384,
            heartbeat_interval=self.heartbeat,
            agent_factory=self._agent,
        )

    def _agent(self, env: dict[str, str], hostname: str, clock: Clock) -> SimAgent:
        agent = SimAgent.from_environment(env, clock=clock, hostname=hostname)
        task_id = env.get("AGENT_AUTO_REGISTER_HOSTNAME") or hostname
        self.agent_task[agent.uuid] = task_id
        self.sim_agents[task_id] = agent
        return agent

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def config(self) -> Path:
        return self.root / "gocd-mesos.ini"

    def start(self) -> None:
        """Start both simulators and write the daemon's INI file."""
        gocd_url = self.gocd.start()
        mesos_url = self.mesos.start()
        t = self.timers
        self.config.write_text(
            f"""# The fault campaign's daemon ({self.name}); timers at a tenth (bench/faults/world.py).
[gocd]
url = {gocd_url}
username = {USER}
password = {PASSWORD}
timeout = {t.timeout:g}s
poll_interval = {t.poll_interval:g}s
max_backoff = {t.max_backoff:g}s
[mesos]
master = {mesos_url}
user = gocd
refuse_seconds = 5s
failover_timeout = 1h
[agents]
auto_register_key = {KEY}
hostname_prefix = {PREFIX}
register_timeout = {t.register_timeout:g}s
[profiles]
[[linux]]
image = {IMAGE}
cpus = 1
mem = 1G
resources = linux
min = {self.min}
max = {self.max}
idle_timeout = {t.idle_timeout:g}s
[judge]
stale_after = {t.stale_after:g}s
backoff_initial = {t.backoff_initial:g}s
backoff_max = {t.backoff_max:g}s
[state]
dir = {self.state_dir}
[http]
listen = 127.0.0.1:0
""",
            encoding="utf-8",
        )

    def start_daemon(self) -> Daemon:
        daemon = Daemon(self.config, self.root / f"daemon-{len(self.daemons) + 1}.log")
        self.daemons.append(daemon)
        return daemon

    @property
    def daemon(self) -> Daemon:
        """The daemon started last."""
        return self.daemons[-1]

    def stop(self) -> None:
        for daemon in self.daemons:
            if daemon.proc.poll() is None:
                daemon.terminate()
        self.mesos.stop()
        self.gocd.stop()

    # --- the workload -----------------------------------------------------------------

    def schedule(self, count: int, seconds: float, pipeline: str = "app") -> list[str]:
        """``count`` jobs for the profile that run ``seconds`` (real; simulated x SCALE)."""
        return self.gocd.schedule_jobs(pipeline, count=count, resources=["linux"], duration_s=seconds * SCALE)

    @contextlib.contextmanager
    def fault(self, kind: str, *, stale: bool = False, no_changes: bool = False) -> Iterator[Window]:
        """Record the window of a fault the body injects and clears."""
        window = Window(kind, self.clock.now(), stale=stale, no_changes=no_changes)
        self.windows.append(window)
        try:
            yield window
        finally:
            window.end = self.clock.now()

    # --- what the simulators show -----------------------------------------------------

    def jobs(self) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = self.gocd.state()["jobs"]
        return jobs

    def our_agents(self) -> list[dict[str, Any]]:
        return [a for a in self.gocd.state()["agents"] if a["hostname"].startswith(PREFIX)]

    def tasks(self) -> list[dict[str, Any]]:
        """Every task of ours Mesos ever had, live or ended, over all frameworks."""
        state = self.mesos.state()
        out: list[dict[str, Any]] = []
        for f in (*state["frameworks"], *state["completed_frameworks"]):
            out.extend(t for t in (*f["tasks"], *f["unreachable_tasks"], *f["completed_tasks"]))
        return [t for t in out if t["id"].startswith(PREFIX)]

    def live_tasks(self) -> set[str]:
        return {t["id"] for t in self.tasks() if t["state"] in LIVE}

    def building(self) -> list[dict[str, Any]]:
        return [j for j in self.jobs() if j["state"] == "building"]

    def until(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        """Wait (real seconds) until ``predicate()``; how long it took. TimeoutError with ``what``."""
        started = time.monotonic()
        while not predicate():
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{self.name}: {what} not reached within {timeout:g}s")
            time.sleep(0.1)
        return time.monotonic() - started

    def interrupted_jobs(self) -> set[str]:
        """Jobs building on an agent whose task is no longer live: they will never complete."""
        live = self.live_tasks()
        return {
            j["locator"]
            for j in self.jobs()
            if j["state"] == "building" and self.agent_task.get(j["agent_uuid"] or "") not in live
        }

    def converged(self) -> bool:
        """Every job done (or lost with its node), nothing waiting, and the fleet down to min
        with each live task of ours a registered GoCD agent and each GoCD agent of ours a live task."""
        jobs = self.jobs()
        lost = self.interrupted_jobs()
        if any(j["state"] != "completed" and j["locator"] not in lost for j in jobs):
            return False
        live = self.live_tasks()
        agents = {a["hostname"] for a in self.our_agents()}
        return live == agents and len(live) == self.min

    def converge(self, timeout: float = 60.0) -> float:
        """Wait for :meth:`converged`; real seconds it took."""
        return self.until(self.converged, timeout, "convergence")
