"""The workload trace replayed on the simulators, one policy at a time, through the policy seam.

Each replay runs the daemon's whole system (``actors.start`` with ``[judge]
policy``) in a process of its own, on a :class:`~actors.clock.ScaledClock` of
the same origin as the simulators' in this process, so a day passes in minutes
and the daemon's memory and CPU can be read from ``/proc`` as it works. Every run of the trace becomes a
pipeline of its own in the GoCD simulator (its stages and jobs with that run's
durations) triggered at its time; the simulator schedules each next stage when
the previous one passed. Each launched agent starts after the trace's drawn
start time (around 30 s) before it talks to GoCD.

Figures come from the simulators: a job's wait is its assignment minus its
scheduling in the GoCD simulator; agent-seconds are the Mesos simulator's task
lifetimes (first status to terminal status, or to the end of the replay);
busy agent-seconds are the jobs' building times on those agents. The daemon's
CPU seconds over the replay are those of a real day's work (everything it does
is paced by the clock), so CPU seconds per simulated second is its CPU share
at real speed.
"""

from __future__ import annotations

import bisect
import multiprocessing
import statistics
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import actors
from actors.clock import Clock, ScaledClock, Timer
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
from actors.sim.gocd_agent import SimAgent
from actors.sim.mesos import MesosSimulator
from bench.reaction import percentiles
from bench.workload import PROFILES, Trace, generate, static_waits
from bench.world import IMAGE, KEY, PREFIX, usage

__all__ = ["ideal", "replay", "run", "static_size"]

#: Seconds between a simulated agent's pings (GoCD's agent default is 5 s; longer here keeps the
#: simulator's load bearable at a high time scale, and changes nothing the benchmark measures).
PING_INTERVAL = 30.0
#: Seconds the queueing model adds to each job on a static agent: an idle GoCD agent asks for work
#: every 1 to 10 s (its backoff), and the daemon's poll finds a job in half an interval on average.
ASSIGN_OVERHEAD = 5.0
#: Simulated seconds a replay may run past the trace's end for its last jobs; a job still waiting
#: then counts as waiting until that end (the ancestor's policy can take that long).
TAIL = 2 * 3600.0
#: Simulated seconds between two samples of the waiting jobs and live agents.
SAMPLE_EVERY = 60.0


class DelayedAgent:
    """A simulated agent whose process takes ``delay`` seconds of clock time to start."""

    def __init__(self, agent: SimAgent, delay: float, clock: Clock) -> None:
        self._agent = agent
        self._delay = delay
        self._clock = clock
        self._timer: Timer | None = None

    def start(self) -> None:
        self._timer = self._clock.call_later(self._delay, self._agent.start)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._agent.stop()


def ideal(trace: Trace) -> dict[str, float]:
    """The lower bound: every job on an agent started for it alone, the moment it is scheduled."""
    starts = sum(trace.agent_starts[: trace.jobs])
    return {"agent_seconds": trace.busy_seconds + starts, "busy_seconds": trace.busy_seconds}


def static_size(trace: Trace, target_p95: float) -> dict[str, int]:
    """The static fleet, grown one agent at a time for the profile whose jobs wait longest, until
    the p95 wait of every job in the queueing model (:func:`~bench.workload.static_waits`) is at
    most ``target_p95``."""
    fleet = dict.fromkeys(PROFILES, 1)
    while sum(fleet.values()) < 2000:
        waits = static_waits(trace, fleet, ASSIGN_OVERHEAD)
        if (percentiles([w for w, _, _ in waits])["p95"] or 0.0) <= target_p95:
            break
        by_profile: dict[str, list[float]] = {name: [] for name in PROFILES}
        for wait, _, profile in waits:
            by_profile[profile].append(wait)
        fleet[max(PROFILES, key=lambda name: percentiles(by_profile[name])["p95"] or 0.0)] += 1
    return fleet


def _daemon(settings: Settings, scale: float, origin: tuple[float, float], stop: Any) -> None:
    """The daemon's system on a clock of ``origin`` and ``scale``, until ``stop`` is set (the
    target of the replay's daemon process)."""
    system = actors.start(settings, clock=ScaledClock(scale, origin=origin), http=False)
    try:
        stop.wait()
    finally:
        system.stop()


def _settings(policy: str, fleet: Mapping[str, int], gocd_url: str, mesos_url: str, state: Path) -> Settings:
    profiles = tuple(
        Profile(
            name=name,
            image=IMAGE,
            cpus=1,
            mem=1024,
            resources=resources,
            environments=environments,
            min=fleet.get(name, 0),
            max=max(200, fleet.get(name, 0)),
        )
        for name, (resources, environments) in PROFILES.items()
    )
    return Settings(
        gocd=GoCDSettings(url=gocd_url, poll_interval=10.0, timeout=30.0),
        mesos=MesosSettings(masters=(mesos_url,), user="gocd", refuse_seconds=5.0, failover_timeout=3600.0),
        agents=AgentSettings(
            go_server_url=gocd_url,
            auto_register_key=Secret(KEY),
            hostname_prefix=PREFIX,
            register_timeout=600.0,
        ),
        profiles=profiles,
        judge=JudgeSettings(policy=policy, stale_after=120.0),
        state=StateSettings(dir=str(state)),
        http=HttpSettings(port=0),
    )


def replay(
    trace: Trace, policy: str, *, scale: float, fleet: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """Replay ``trace`` with ``policy`` (``default``, ``ancestor`` or ``static`` with ``fleet`` as
    each profile's ``min``); the figures the simulators saw."""
    clock = ScaledClock(scale)
    starts = iter(trace.agent_starts)
    lock = threading.Lock()

    def agent_factory(env: dict[str, str], hostname: str, agent_clock: Clock) -> DelayedAgent:
        with lock:
            delay = next(starts, 30.0)
        agent = SimAgent.from_environment(
            env, clock=agent_clock, hostname=hostname, ping_interval=PING_INTERVAL
        )
        return DelayedAgent(agent, delay, agent_clock)

    gocd = GoCDSimulator(clock=clock, auto_register_key=KEY, agent_timeout=3 * PING_INTERVAL + 60)
    mesos = MesosSimulator(
        clock=clock, agents=12, cpus=64, mem=131072, heartbeat_interval=15.0, agent_factory=agent_factory
    )
    gocd_url, mesos_url = gocd.start(), mesos.start()
    folder = tempfile.TemporaryDirectory(prefix="gocd-mesos-trace-")
    settings = _settings(policy, fleet or {}, gocd_url, mesos_url, Path(folder.name) / "state")
    if policy != "static":
        settings = replace(settings, profiles=tuple(replace(p, min=0) for p in settings.profiles))
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    daemon = context.Process(
        target=_daemon, args=(settings, scale, clock.origin, stop), name=f"gocd-mesos-{policy}", daemon=True
    )
    daemon.start()
    assert daemon.pid is not None
    # The daemon is up once its framework subscribed: its start-up is not the day's work.
    deadline = time.monotonic() + 120.0
    while not mesos.state()["frameworks"]:
        if not daemon.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the {policy} daemon did not subscribe to the Mesos simulator")
        time.sleep(0.05)
    if policy == "static":
        # A static fleet is up before the day begins: its agents have registered.
        size = sum((fleet or {}).values())
        gocd.wait_for(
            lambda st: sum(1 for a in st["agents"] if a["registered_at"] is not None) >= size,
            timeout=600.0,
        )
    began = clock.now()
    timeline: list[tuple[float, int, int]] = []
    #: (seconds since start, the daemon's resident bytes, its CPU seconds) once a simulated minute.
    daemon_usage: list[tuple[float, int, float]] = []
    done = threading.Event()

    def sample() -> None:
        # (seconds since start, waiting jobs, our live tasks) once a simulated minute, for the plots.
        while not clock.wait(done, SAMPLE_EVERY):
            waiting = sum(1 for j in gocd.state()["jobs"] if j["state"] == "scheduled")
            live = sum(len(f["tasks"]) for f in mesos.state()["frameworks"])
            at = round(clock.now() - began, 1)
            timeline.append((at, waiting, live))
            if daemon.is_alive():
                now = usage(pid)
                daemon_usage.append((at, now.rss, now.cpu_seconds))

    pid = daemon.pid
    daemon_usage.append((0.0, usage(pid).rss, usage(pid).cpu_seconds))

    sampler = threading.Thread(target=sample, name="trace-sampler", daemon=True)
    sampler.start()
    try:
        for index, run in enumerate(trace.runs):
            clock.sleep(max(0.0, began + run.at - clock.now()))
            pipeline = trace.pipeline(run.pipeline)
            name = f"{pipeline.name}-r{index:04d}"
            stages = [
                {
                    "name": stage.name,
                    "jobs": [
                        {"name": job.name, "resources": list(job.resources), "duration_s": seconds}
                        for job, seconds in zip(stage.jobs, durations, strict=True)
                    ],
                }
                for stage, durations in zip(pipeline.stages, run.durations, strict=True)
            ]
            gocd.define_pipeline(name, stages=stages, environment=pipeline.environment)
            gocd.trigger_pipeline(name)
        total, limit = trace.jobs, trace.length + TAIL

        def finished(state: dict[str, Any]) -> bool:
            completed = sum(1 for j in state["jobs"] if j["state"] == "completed")
            return completed >= total or clock.now() - began > limit

        while not gocd.wait_for(finished, timeout=5.0):
            pass
        ended = clock.now()
        peak_rss = usage(pid).peak_rss
        figures = _figures(trace, gocd.state(), mesos.state(), began, ended, clock)
        done.set()
        sampler.join(10)
        figures["daemon"] = _daemon_figures(daemon_usage, peak_rss, scale)
        figures["timeline"] = timeline
        figures["waits"] = sorted(
            round(j["assigned_at"] - j["scheduled_at"], 2)
            for j in gocd.state()["jobs"]
            if j["assigned_at"] is not None
        )
        return figures
    finally:
        done.set()
        stop.set()
        daemon.join(60)
        if daemon.is_alive():
            daemon.kill()
        mesos.stop()
        gocd.stop()
        folder.cleanup()


def _daemon_figures(samples: list[tuple[float, int, float]], peak_rss: int, scale: float) -> dict[str, Any]:
    """The daemon process's memory and CPU over a replay, from ``samples`` of (simulated seconds
    since the start, resident bytes, CPU seconds): the peak and median resident memory, and its CPU
    share at real speed (CPU seconds per simulated second) over the whole replay and its busiest
    simulated hour."""
    (t0, _, cpu0), (t1, _, cpu1) = samples[0], samples[-1]
    times = [at for at, _, _ in samples]
    busiest = 0.0
    for at, _, cpu in samples:
        # The last sample within the hour from this one; a window under 50 minutes is no hour.
        end, _, end_cpu = samples[bisect.bisect_right(times, at + 3600.0) - 1]
        if end - at >= 3000.0:
            busiest = max(busiest, (end_cpu - cpu) / (end - at))
    return {
        "peak_rss_mb": peak_rss / 2**20,
        "median_rss_mb": statistics.median(rss for _, rss, _ in samples) / 2**20,
        "cpu_seconds": cpu1 - cpu0,
        "cpu_percent_real_speed": 100.0 * (cpu1 - cpu0) / max(t1 - t0, 1e-9),
        "cpu_percent_busiest_hour": 100.0 * busiest,
        "cpu_percent_at_scale": 100.0 * (cpu1 - cpu0) / max(t1 - t0, 1e-9) * scale,
    }


def _figures(
    trace: Trace,
    gocd_state: dict[str, Any],
    mesos_state: dict[str, Any],
    began: float,
    ended: float,
    clock: Clock,
) -> dict[str, Any]:
    jobs = gocd_state["jobs"]
    waits = [j["assigned_at"] - j["scheduled_at"] for j in jobs if j["assigned_at"] is not None]
    first = [
        j["assigned_at"] - j["scheduled_at"]
        for j in jobs
        if j["assigned_at"] is not None and "/stage1/" in j["locator"]
    ]
    later = [
        j["assigned_at"] - j["scheduled_at"]
        for j in jobs
        if j["assigned_at"] is not None and "/stage1/" not in j["locator"]
    ]
    busy = sum(j["completed_at"] - j["assigned_at"] for j in jobs if j["completed_at"] is not None)
    offset = clock.time() - clock.now()
    agent_seconds = 0.0
    tasks = [t for f in mesos_state["frameworks"] for t in (*f["tasks"], *f["completed_tasks"])]
    for task in tasks:
        stamps = [s["timestamp"] - offset for s in task["statuses"]]
        if not stamps:
            continue
        terminal = task["state"] in (
            "TASK_FINISHED",
            "TASK_FAILED",
            "TASK_KILLED",
            "TASK_LOST",
            "TASK_ERROR",
            "TASK_DROPPED",
            "TASK_GONE",
        )
        end = max(stamps) if terminal else ended
        agent_seconds += max(0.0, min(end, ended) - max(min(stamps), began))
    return {
        "jobs": len(jobs),
        "scheduled_of_trace": trace.jobs,
        "assigned": sum(1 for j in jobs if j["assigned_at"] is not None),
        "wait": percentiles(waits),
        "wait_first_stage": percentiles(first),
        "wait_later_stages": percentiles(later),
        "agent_seconds": agent_seconds,
        "busy_seconds": busy,
        "idle_seconds": agent_seconds - busy,
        "launches": len(tasks),
        "replayed_seconds": ended - began,
        "mean_wait": statistics.fmean(waits) if waits else None,
    }


def run(quick: bool) -> dict[str, Any]:
    """The trace section: the generated day replayed with the default policy, the ancestor's, and
    a static fleet sized (in the queueing model) to the default policy's p95 wait; the ideal."""
    if quick:
        trace, scale = generate(pipelines=12, peak_per_hour=20, hours=0.75, start_hour=10), 60.0
    else:
        trace, scale = generate(), 60.0
    results: dict[str, Any] = {}

    def replay_into(name: str, policy: str, fleet: Mapping[str, int] | None = None) -> None:
        results[name] = replay(trace, policy, scale=scale, fleet=fleet)

    # At x60 a millisecond of CPU contention is 60 ms of simulated wait: the full run replays
    # one policy at a time, the quick one the ancestor's beside the others to stay short.
    beside = None
    if quick:
        beside = threading.Thread(target=replay_into, args=("ancestor", "ancestor"), daemon=True)
        beside.start()
    replay_into("default", "default")
    target = results["default"]["wait"]["p95"] or 0.0
    fleet = static_size(trace, target)
    replay_into("static", "static", fleet)
    if beside is not None:
        beside.join()
    else:
        replay_into("ancestor", "ancestor")
    bound = ideal(trace)
    for name in ("default", "ancestor", "static"):
        results[name]["vs_ideal"] = results[name]["agent_seconds"] / bound["agent_seconds"]
    return {
        "scale": scale,
        "hours": trace.length / 3600.0,
        "pipeline_runs": len(trace.runs),
        "jobs": trace.jobs,
        "ideal": bound,
        "static_fleet": fleet,
        "policies": results,
    }
