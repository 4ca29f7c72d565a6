"""The benchmarks' world: both simulators in this process, the daemon as a real process.

:class:`World` starts a GoCD and a Mesos simulator on loopback and runs
``bin/gocd-mesosd`` on an INI file written for them, as an operator would;
every figure is then read from what the simulators saw. :class:`Process`
samples the daemon's resident memory and CPU time from ``/proc``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.clock import Clock, RealClock
from actors.sim.gocd import GoCDSimulator
from actors.sim.mesos import MesosSimulator

__all__ = ["IMAGE", "KEY", "PREFIX", "Process", "Usage", "World", "usage"]

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-auto-register-key"
PREFIX = "gocd-mesos-"
IMAGE = "gocd/gocd-agent-ubuntu-24.04:v25.1.0"


@dataclass(frozen=True)
class Usage:
    """One sample of a process's resources."""

    #: Resident memory, bytes.
    rss: int
    #: Peak resident memory so far (VmHWM), bytes.
    peak_rss: int
    #: User plus system CPU seconds so far.
    cpu_seconds: float


def usage(pid: int) -> Usage:
    """Memory and CPU time of process ``pid`` now (Linux ``/proc``)."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return Usage(
        rss=int(fields["VmRSS"].split()[0]) * 1024,
        peak_rss=int(fields["VmHWM"].split()[0]) * 1024,
        cpu_seconds=(int(stat[11]) + int(stat[12])) / ticks,
    )


class Process:
    """A running ``bin/gocd-mesosd``; its log goes to a file."""

    def __init__(self, config: Path, log: Path, *extra: str) -> None:
        self.log_path = log
        self._log = log.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bin" / "gocd-mesosd"), str(config), *extra],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def usage(self) -> Usage:
        """Memory and CPU time of the process now."""
        return usage(self.proc.pid)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        """SIGTERM, then the exit status (SIGKILL after 30 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@dataclass
class World:
    """Both simulators and, once :meth:`start_daemon` ran, the daemon process."""

    clock: Clock = field(default_factory=RealClock)
    nodes: int = 10
    cpus: float = 32.0
    mem: float = 65536.0
    #: ``[gocd]`` keys beyond url and credentials (poll_interval, backlog, ...).
    gocd: dict[str, str] = field(default_factory=dict)
    #: ``[[profile]]`` sections: name -> keys (image, resources, max, ...).
    profiles: dict[str, dict[str, str]] = field(default_factory=lambda: {"linux": {"resources": "linux"}})
    #: ``[judge]`` keys.
    judge: dict[str, str] = field(default_factory=dict)
    #: Makes each launched task's agent (see MesosSimulator's ``agent_factory``); None: at once.
    agent_factory: Callable[[dict[str, str], str, Clock], Any] | None = None
    #: Keyword arguments of the GoCD simulator.
    gocd_options: dict[str, Any] = field(default_factory=dict)
    daemon: Process | None = None

    def __post_init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="gocd-mesos-bench-")
        self.dir = Path(self._dir.name)
        self.gocd_sim = GoCDSimulator(clock=self.clock, auto_register_key=KEY, **self.gocd_options)
        self.mesos_sim = MesosSimulator(
            clock=self.clock,
            agents=self.nodes,
            cpus=self.cpus,
            mem=self.mem,
            heartbeat_interval=5.0,
            agent_factory=self.agent_factory,
        )
        self.gocd_url = self.gocd_sim.start()
        self.mesos_url = self.mesos_sim.start()

    def config(self) -> Path:
        """The INI file for the daemon."""
        lines = ["[gocd]", f"url = {self.gocd_url}", *(f"{k} = {v}" for k, v in self.gocd.items())]
        lines += ["[mesos]", f"master = {self.mesos_url}", "user = gocd", "refuse_seconds = 1"]
        lines += ["[agents]", f"go_server_url = {self.gocd_url}", f"auto_register_key = {KEY}"]
        lines += [f"hostname_prefix = {PREFIX}", "[profiles]"]
        for name, keys in self.profiles.items():
            section = {"image": IMAGE, "cpus": "1", "mem": "1024", **keys}
            lines += [f"[[{name}]]", *(f"{k} = {v}" for k, v in section.items())]
        lines += ["[judge]", *(f"{k} = {v}" for k, v in self.judge.items())]
        lines += ["[state]", f"dir = {self.dir / 'state'}", "[http]", "listen = 127.0.0.1:0"]
        path = self.dir / "gocd-mesos.ini"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def start_daemon(self, *extra: str) -> Process:
        self.daemon = Process(self.config(), self.dir / "daemon.log", *extra)
        return self.daemon

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait (real time) until ``predicate()``; RuntimeError with the daemon's log if not."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.daemon is not None and self.daemon.proc.poll() is not None:
                raise RuntimeError(
                    f"the daemon exited while waiting for {what}:\n{self.daemon.log()[-3000:]}"
                )
            if time.monotonic() > deadline:
                log = self.daemon.log()[-3000:] if self.daemon else ""
                raise RuntimeError(f"{what} not reached within {timeout:g}s:\n{log}")
            time.sleep(0.05)

    def tasks(self) -> list[dict[str, Any]]:
        """Every task of every framework, live and completed, as the Mesos simulator has them."""
        state = self.mesos_sim.state()
        frameworks = [*state["frameworks"], *state.get("completed_frameworks", [])]
        return [t for f in frameworks for t in (*f["tasks"], *f["completed_tasks"])]

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        self.mesos_sim.stop()
        self.gocd_sim.stop()
        self._dir.cleanup()
