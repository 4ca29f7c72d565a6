"""The sandbox: the whole system on one machine, with no GoCD and no Mesos.

``gocd-mesosd --sandbox`` starts the GoCD and Mesos simulators and the daemon's
real actors in one process, on one :class:`~actors.clock.ScaledClock`, feeds
GoCD a demo workload (bursts of jobs with different resources and
environments, some that no profile can serve, one that needs an elastic
agent), prints a compact live line every few seconds and a final summary, and
can write the numbers as a JSON report. It is the README's first command and
the ground the benchmarks stand on.

Every time in the report is in simulated seconds.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from actors import system as gocd_mesos
from actors.clock import Clock, ScaledClock
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
from actors.exceptions import GocdMesosError
from actors.fleet.matching import job_fits_agent
from actors.fleet.states import IN_FLIGHT, LEAVING, FleetState
from actors.messages import FleetChanged, FleetView, ScalePlan, TaskUpdate

__all__ = ["REPORT_KEYS", "Burst", "Observer", "demo_workload", "run_sandbox", "sandbox_settings"]

logger = logging.getLogger(__name__)

#: The report's keys, exactly.
REPORT_KEYS = (
    "jobs_scheduled",
    "jobs_completed",
    "wait_p50_s",
    "wait_p95_s",
    "wait_max_s",
    "agent_seconds",
    "launches",
    "failed_launches",
    "kills",
    "max_agents",
    "building_agents_killed",
    "orphan_tasks",
    "orphan_agents",
)

KEY = "sandbox-auto-register-key"
PREFIX = "gocd-mesos-"
IMAGE = "gocd/gocd-agent-ubuntu-24.04:v25.1.0"
RUNNING = frozenset({"TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING"})


@dataclass(frozen=True)
class Burst:
    """Jobs scheduled together at one moment of the demo workload."""

    #: Simulated seconds after the start of the workload's cycle.
    at: float
    #: Pipeline name.
    pipeline: str
    #: How many jobs.
    count: int
    #: Resources the jobs need.
    resources: tuple[str, ...] = ()
    #: Environment of the pipeline, or None.
    environment: str | None = None
    #: Elastic profile the jobs need, or None.
    elastic_profile_id: str | None = None
    #: Simulated seconds each job runs.
    duration_s: float = 30.0


def demo_workload() -> tuple[Burst, ...]:
    """One 180-second cycle of the demo: builds, packaging, deploys, and backlog that is not ours."""
    return (
        Burst(0, "app-build", 6, ("linux",), duration_s=25),
        Burst(5, "app-package", 3, ("linux", "docker"), duration_s=40),
        Burst(15, "app-deploy", 2, ("linux",), environment="staging", duration_s=20),
        Burst(20, "win-installer", 2, ("windows",), duration_s=30),
        Burst(30, "k8s-tests", 1, elastic_profile_id="k8s-small", duration_s=30),
        Burst(60, "lib-build", 8, ("linux",), duration_s=15),
        Burst(90, "release-check", 2, ("linux", "clean"), duration_s=20),
        Burst(120, "app-build", 4, ("linux",), duration_s=25),
        Burst(125, "app-package", 2, ("linux", "docker"), duration_s=40),
        Burst(150, "app-deploy", 3, ("linux",), environment="staging", duration_s=20),
    )


#: Length of one cycle of the demo workload, in simulated seconds.
CYCLE = 180.0


def sandbox_settings(
    gocd_url: str, mesos_url: str, state_dir: str, http: HttpSettings | None = None
) -> Settings:
    """The daemon's configuration in the sandbox: four profiles, fast timings, the status
    server on ``http`` (default 127.0.0.1:9404)."""
    profiles = (
        Profile(name="linux", image=IMAGE, cpus=1, mem=1024, resources=("linux",), max=10, idle_timeout=60),
        Profile(
            name="docker",
            image=IMAGE,
            cpus=2,
            mem=4096,
            resources=("linux", "docker"),
            max=4,
            idle_timeout=60,
        ),
        Profile(
            name="staging",
            image=IMAGE,
            cpus=1,
            mem=1024,
            resources=("linux",),
            environments=("staging",),
            max=3,
            idle_timeout=60,
        ),
        Profile(
            name="clean",
            image=IMAGE,
            cpus=1,
            mem=1024,
            resources=("linux", "clean"),
            max=4,
            max_jobs=1,
            idle_timeout=30,
        ),
    )
    return Settings(
        gocd=GoCDSettings(url=gocd_url, poll_interval=5.0, max_backoff=30.0, timeout=5.0),
        mesos=MesosSettings(
            masters=(mesos_url,), user="gocd", framework_name="gocd-mesos-sandbox", refuse_seconds=5.0
        ),
        agents=AgentSettings(
            go_server_url=gocd_url,
            auto_register_key=Secret(KEY),
            hostname_prefix=PREFIX,
            register_timeout=60.0,
        ),
        profiles=profiles,
        judge=JudgeSettings(stale_after=20.0, backoff_initial=30.0, backoff_max=240.0),
        state=StateSettings(dir=state_dir),
        http=http or HttpSettings(),
        source="(sandbox)",
    )


class Observer:
    """Listens to what the daemon publishes (plans, fleet changes, task updates).

    It is told messages from the actors' threads and keeps only the latest of
    each, so reading it from the main thread is safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.plan: ScalePlan | None = None
        self.fleet: FleetChanged | None = None
        self.running: set[str] = set()
        self.max_agents = 0

    def tell(self, message: Any) -> None:
        with self._lock:
            if isinstance(message, ScalePlan):
                self.plan = message
            elif isinstance(message, FleetChanged):
                self.fleet = message
            elif isinstance(message, TaskUpdate):
                if message.state in RUNNING:
                    self.running.add(message.task_id)
                    self.max_agents = max(self.max_agents, len(self.running))
                else:
                    self.running.discard(message.task_id)


class _Workload:
    """Schedules the demo's bursts on the GoCD simulator, cycle after cycle, until ``until``."""

    def __init__(self, gocd: Any, clock: Clock, bursts: Iterable[Burst], until: float | None) -> None:
        self._gocd = gocd
        self._clock = clock
        self._bursts = sorted(bursts, key=lambda b: b.at)
        self._until = until
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-workload", daemon=True)
        self._lock = threading.Lock()
        #: Locator -> the burst it came from.
        self.jobs: dict[str, Burst] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        start = self._clock.now()
        cycle = 0
        while not self._stop.is_set():
            for burst in self._bursts:
                at = start + cycle * CYCLE + burst.at
                if self._until is not None and at - start > self._until:
                    return
                delay = at - self._clock.now()
                if delay > 0 and self._clock.wait(self._stop, delay):
                    return
                locators = self._gocd.schedule_jobs(
                    burst.pipeline,
                    count=burst.count,
                    resources=burst.resources,
                    environment=burst.environment,
                    elastic_profile_id=burst.elastic_profile_id,
                    duration_s=burst.duration_s,
                )
                with self._lock:
                    self.jobs.update((locator, burst) for locator in locators)
            cycle += 1

    def servable(self, profiles: Iterable[Profile]) -> set[str]:
        """Locators of the jobs some profile can run."""
        profiles = tuple(profiles)
        with self._lock:
            return {
                locator
                for locator, b in self.jobs.items()
                if not b.elastic_profile_id
                and any(
                    job_fits_agent(b.resources, b.environment, p.resources, p.environments) for p in profiles
                )
            }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = max(0, math.ceil(q * len(ordered)) - 1)
    return ordered[index]


def _live_line(now: float, start: float, gocd_state: dict[str, Any], observer: Observer) -> str:
    plan, fleet = observer.plan, observer.fleet
    reasons = Counter(r.reason for r in plan.reasons) if plan else Counter()
    waiting = sum(reasons.values())
    states = Counter(a.state for a in fleet.fleet.agents) if fleet else Counter()
    launching = sum(states[s] for s in IN_FLIGHT)
    leaving = sum(states[s] for s in LEAVING)
    jobs = gocd_state["jobs"]
    done = [j for j in jobs if j["state"] == "completed"]
    waits = [j["assigned_at"] - j["scheduled_at"] for j in jobs if j["assigned_at"] is not None]
    mean = sum(waits) / len(waits) if waits else 0.0
    why = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) or "none"
    return (
        f"t={now - start:5.0f}s | waiting {waiting} ({why}) | agents launching {launching}, "
        f"idle {states[FleetState.IDLE]}, building {states[FleetState.BUILDING]}, draining {leaving} | "
        f"jobs done {len(done)}/{len(jobs)} | mean wait {mean:.1f}s"
    )


def _report(
    gocd: Any, mesos: Any, observer: Observer, workload: _Workload, profiles: tuple[Profile, ...]
) -> dict[str, Any]:
    state = gocd.state()
    now = gocd.clock.now()
    now_wall = gocd.clock.time()
    servable = workload.servable(profiles)
    jobs = state["jobs"]
    waits = []
    for job in jobs:
        if job["locator"] not in servable:
            continue
        end = job["assigned_at"] if job["assigned_at"] is not None else now
        waits.append(end - job["scheduled_at"])
    mstate = mesos.state()
    tasks = [t for f in mstate["frameworks"] for t in f["tasks"] + f["completed_tasks"]]
    agent_seconds = 0.0
    for task in tasks:
        times = [s["timestamp"] for s in task["statuses"] if s["state"] == "TASK_RUNNING"]
        if not times:
            continue
        ends = [s["timestamp"] for s in task["statuses"] if s["state"] not in RUNNING]
        agent_seconds += (min(ends) if ends else now_wall) - min(times)
    running = {t["id"] for f in mstate["frameworks"] for t in f["tasks"] if t["state"] in RUNNING}
    fleet = observer.fleet.fleet if observer.fleet else FleetView()
    known = {a.task_id for a in fleet.agents if a.state not in (FleetState.GONE, FleetState.FAILED)}
    ours = [a for a in state["agents"] if a["hostname"].startswith(PREFIX)]
    agent_host = {a["uuid"]: a["hostname"] for a in state["agents"]}
    building_killed = sum(
        1 for j in jobs if j["state"] == "building" and agent_host.get(j["agent_uuid"], "") not in running
    )
    totals = observer.fleet
    return {
        "jobs_scheduled": len(jobs),
        "jobs_completed": sum(1 for j in jobs if j["state"] == "completed"),
        "wait_p50_s": round(_percentile(waits, 0.50), 3),
        "wait_p95_s": round(_percentile(waits, 0.95), 3),
        "wait_max_s": round(max(waits, default=0.0), 3),
        "agent_seconds": round(agent_seconds, 1),
        "launches": totals.launched_total if totals else 0,
        "failed_launches": totals.failed_total if totals else 0,
        "kills": totals.killed_total if totals else 0,
        "max_agents": observer.max_agents,
        "building_agents_killed": building_killed,
        "orphan_tasks": len(running - known),
        "orphan_agents": sum(1 for a in ours if a["hostname"] not in known),
    }


def run_sandbox(
    *,
    duration: float | None,
    time_scale: float = 1.0,
    report: str | None = None,
    out: TextIO | None = None,
    stop_event: threading.Event | None = None,
    line_every: float = 3.0,
    listen: HttpSettings | None = None,
    feed: bool = True,
) -> int:
    """Run the sandbox for ``duration`` wall-clock seconds (None: until ``stop_event``); exit status.

    The daemon's status server listens on ``listen`` (default 127.0.0.1:9404); its URL is the
    first thing printed. Without ``feed`` the simulated GoCD serves no Feeds API, as a GoCD
    after its removal: the daemon (``[gocd] backlog = auto``) reads the dashboard instead."""
    from actors.sim.gocd import GoCDSimulator
    from actors.sim.mesos import MesosSimulator

    out = out or sys.stdout
    stop_event = stop_event or threading.Event()
    clock = ScaledClock(time_scale)
    gocd = GoCDSimulator(clock=clock, auto_register_key=KEY, feed=feed)
    mesos = MesosSimulator(clock=clock, agents=4, cpus=8, mem=16384, attributes={"os": "linux"})
    state_dir = tempfile.mkdtemp(prefix="gocd-mesos-sandbox-")
    gocd_url, mesos_url = gocd.start(), mesos.start()
    settings = sandbox_settings(gocd_url, mesos_url, state_dir, listen)
    observer = Observer()
    # Stop scheduling early enough that the last jobs can finish before the end.
    horizon = None if duration is None else max(0.0, duration * time_scale * 0.55)
    workload = _Workload(gocd, clock, demo_workload(), horizon)
    start = clock.now()
    # The workload starts with the daemon, so that its first poll sees the first burst.
    workload.start()
    try:
        system = gocd_mesos.start(settings, clock=clock, listeners=(observer,))
    except GocdMesosError as e:
        workload.stop()
        mesos.stop()
        gocd.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
        hint = " (choose another with --listen)" if "already in use" in str(e) else ""
        print(f"gocd-mesos sandbox: the daemon failed: {e}{hint}", file=out, flush=True)
        return 1
    print(f"gocd-mesos sandbox: status {system.http_url}", file=out, flush=True)
    print(
        f"gocd-mesos sandbox: GoCD simulator {gocd_url}, Mesos simulator {mesos_url}, time x{time_scale:g}",
        file=out,
        flush=True,
    )

    # The daemon's end ends the sandbox too.
    def watch() -> None:
        system.wait()
        stop_event.set()

    watcher = threading.Thread(target=watch, name="sandbox-watch", daemon=True)
    watcher.start()
    try:
        # --duration is wall-clock time by definition, so this one reads the machine's clock.
        real_start = time.monotonic()
        while True:
            remaining = None if duration is None else duration - (time.monotonic() - real_start)
            if remaining is not None and remaining <= 0:
                break
            wait = line_every if remaining is None else min(line_every, remaining)
            if stop_event.wait(wait):
                break
            print(_live_line(clock.now(), start, gocd.state(), observer), file=out, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        workload.stop()
        numbers = _report(gocd, mesos, observer, workload, settings.profiles)
        exit_ = system.stop()
        mesos.stop()
        gocd.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
    print(
        "summary: "
        + ", ".join(f"{k}={v}" for k, v in numbers.items())
        + f" (simulated seconds; {(clock.now() - start):.0f}s simulated)",
        file=out,
        flush=True,
    )
    if report:
        with open(report, "w", encoding="utf-8") as f:
            json.dump(numbers, f, indent=2)
            f.write("\n")
    if exit_ is not None and exit_.status != 0:
        print(f"gocd-mesos sandbox: the daemon failed: {exit_.reason}", file=out, flush=True)
        return 1
    return 0
