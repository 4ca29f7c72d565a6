"""A whole gocd-mesos system in one test process: both simulators and the daemon.

Time runs on one ScaledClock shared by the simulators and the daemon, so a
test covers minutes of simulated time in seconds. Tests synchronise on the
GoCD simulator's ``wait_for`` (woken by every change) and on the messages the
daemon publishes to a RecordingRef, never on sleeps.

With ``GOCD_MESOS_SIM_NO_FEED=1`` in the environment the GoCD simulator serves no
scheduled-jobs feed (a GoCD that dropped its Feeds API), so the whole suite runs
with the daemon's default ``[gocd] backlog = auto`` reading the dashboard.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from actors import system as gocd_mesos
from actors.clock import ScaledClock
from actors.config import (
    AgentSettings,
    GoCDSettings,
    HttpSettings,
    JudgeSettings,
    MesosSettings,
    Profile,
    Secret,
    Settings,
    StateSettings,
)
from actors.sim.gocd import GoCDSimulator
from actors.sim.mesos import MesosSimulator
from tests.conftest import RecordingRef

KEY = "e2e-auto-register-key"
PREFIX = "gocd-mesos-"
IMAGE = "gocd/gocd-agent-ubuntu-24.04:v25.1.0"


#: Whether the GoCD simulators of the end-to-end tests serve no scheduled-jobs feed.
NO_FEED = os.environ.get("GOCD_MESOS_SIM_NO_FEED", "") not in ("", "0")


def gocd_simulator(clock: Any, **kw: Any) -> GoCDSimulator:
    """The end-to-end tests' GoCD simulator: security on (user ``admin``), the auto-register key,
    and no feed under ``GOCD_MESOS_SIM_NO_FEED=1``."""
    kw.setdefault("feed", not NO_FEED)
    return GoCDSimulator(clock=clock, auto_register_key=KEY, username="admin", password="admin-secret", **kw)


def linux(**overrides: Any) -> Profile:
    base = Profile(name="linux", image=IMAGE, cpus=1, mem=1024, resources=("linux",), max=20, idle_timeout=60)
    return replace(base, **overrides)


@dataclass
class System:
    """Simulators and a running daemon; ``stop()`` ends them all."""

    clock: ScaledClock
    gocd: GoCDSimulator
    mesos: MesosSimulator
    settings: Settings
    events: RecordingRef = field(default_factory=RecordingRef)
    #: The running daemon (an actors.system.System), once started.
    daemon: Any = None
    failure: list[str] = field(default_factory=list)
    thread: threading.Thread | None = None
    status: list[int] = field(default_factory=list)
    #: The running daemon's actors by name (AgentRegistry, Judge, MesosBridge, GoCDPoller).
    refs: dict[str, Any] = field(default_factory=dict)

    def start_daemon(self, dry_run: bool = False) -> None:
        """Start the daemon through the one entry point; a thread waits for its end."""
        self.daemon = gocd_mesos.start(
            self.settings, clock=self.clock, listeners=(self.events,), dry_run=dry_run
        )
        self.refs = dict(self.daemon.refs)

        def watch(daemon: Any) -> None:
            ended = daemon.wait()
            if ended.reason:
                self.failure.append(ended.reason)
            self.status.append(ended.status)

        self.thread = threading.Thread(target=watch, args=(self.daemon,), name="daemon-wait", daemon=True)
        self.thread.start()

    def stop_daemon(self) -> None:
        if self.daemon is not None:
            self.daemon.stop(block=False)
        if self.thread is not None:
            self.thread.join(30)
            assert not self.thread.is_alive(), "daemon did not stop"
            self.thread = None

    def stop(self) -> None:
        self.stop_daemon()
        self.mesos.stop()
        self.gocd.stop()

    # --- observation ------------------------------------------------------------

    def wait_gocd(self, predicate: Any, timeout: float = 30.0, what: str = "condition") -> dict[str, Any]:
        assert self.gocd.wait_for(predicate, timeout), f"{what} not reached; GoCD state: {self.gocd.state()}"
        return self.gocd.state()

    def our_agents(self, state: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        state = state or self.gocd.state()
        return [a for a in state["agents"] if a["hostname"].startswith(PREFIX)]

    def running_tasks(self) -> list[dict[str, Any]]:
        tasks = []
        for framework in self.mesos.state()["frameworks"]:
            tasks.extend(
                t
                for t in framework["tasks"]
                if t["state"] in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING")
            )
        return tasks

    def all_tasks(self) -> list[dict[str, Any]]:
        tasks = []
        for framework in self.mesos.state()["frameworks"]:
            tasks.extend(framework["tasks"])
            tasks.extend(framework["completed_tasks"])
        return tasks


def completed(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The completed jobs of a GoCD simulator state."""
    return [j for j in state["jobs"] if j["state"] == "completed"]


def make_system(
    tmp_path: Any,
    *,
    profiles: tuple[Profile, ...] = (),
    scale: float = 20.0,
    nodes: int = 4,
    judge: JudgeSettings | None = None,
    register_timeout: float = 120.0,
    poll_interval: float = 5.0,
    feed: bool | None = None,
    gocd_options: dict[str, Any] | None = None,
) -> System:
    """Both simulators and the settings of a daemon on them; ``feed`` None follows
    ``GOCD_MESOS_SIM_NO_FEED``; ``gocd_options`` go to the GoCD simulator."""
    clock = ScaledClock(scale)
    options = dict(gocd_options or {})
    if feed is not None:
        options["feed"] = feed
    gocd = gocd_simulator(clock, **options)
    gocd_url = gocd.start()
    mesos = MesosSimulator(clock=clock, agents=nodes, cpus=8, mem=16384, heartbeat_interval=5.0)
    mesos_url = mesos.start()
    settings = Settings(
        gocd=GoCDSettings(
            url=gocd_url,
            username="admin",
            password=Secret("admin-secret"),
            poll_interval=poll_interval,
            max_backoff=4 * poll_interval,
            timeout=5.0,
        ),
        mesos=MesosSettings(masters=(mesos_url,), user="gocd", refuse_seconds=5.0, failover_timeout=3600.0),
        agents=AgentSettings(
            go_server_url=gocd_url,
            auto_register_key=Secret(KEY),
            hostname_prefix=PREFIX,
            register_timeout=register_timeout,
        ),
        profiles=profiles or (linux(),),
        judge=judge or JudgeSettings(stale_after=3 * poll_interval, backoff_initial=30, backoff_max=240),
        state=StateSettings(dir=str(tmp_path / "state")),
        # Port 0: systems of one process (and suites run side by side) never collide.
        http=HttpSettings(port=0),
    )
    return System(clock=clock, gocd=gocd, mesos=mesos, settings=settings)
