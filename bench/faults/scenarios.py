"""The faults: each one a function that drives a :class:`~bench.faults.world.World`.

A scenario starts the simulators and the daemon, puts agents to work, injects
its fault for long enough to matter (:data:`FAULT_SECONDS` real seconds, two and
a half simulated minutes, longer than every daemon timer), adds demand while it
is in force, clears it and waits for the fleet to converge (every job done, the
fleet drained to ``min``, each live task a registered agent). :func:`run` then
stops the daemon with SIGTERM and checks the invariants on what the simulators
saw. A scenario returns notes for the table; an exception (say, no convergence)
is reported as such, with the invariants still checked.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.faults.invariants import check
from bench.faults.world import IMAGE, SCALE, Daemon, Timers, World

__all__ = ["FAULT_SECONDS", "SCENARIOS", "Scenario", "run"]

#: Real seconds a GoCD fault lasts (x SCALE simulated).
FAULT_SECONDS = 15.0
#: Real seconds the daemon may take to converge after a fault.
CONVERGE_SECONDS = 60.0
#: Simulated seconds an offer lives in the offers-rescinded fault (0.1 real ms: ACCEPTs come too late).
OFFER_TIMEOUT = 0.001

Scenario = Callable[[World], str]


def _start(world: World, jobs: int, seconds: float) -> Daemon:
    """Simulators, the daemon subscribed with its ``min`` agents idle, and ``jobs`` jobs building."""
    world.start()
    daemon = world.start_daemon()
    if not daemon.wait_registered():
        raise RuntimeError("the daemon did not subscribe to Mesos")
    world.until(
        lambda: sum(1 for a in world.our_agents() if a["agent_state"] == "Idle") == world.min,
        30,
        "min agents idle",
    )
    if jobs:
        world.schedule(jobs, seconds)
        world.until(lambda: len(world.building()) == jobs, 30, f"{jobs} jobs building")
    return daemon


def _at_launch(world: World, daemon: Daemon, jobs: int, seconds: float) -> None:
    """Schedule ``jobs`` jobs (more than the idle agents can take) and return as soon as the
    daemon logs its decision to launch for them: the fault then hits launches under way."""
    mark = len(daemon.lines)
    world.schedule(jobs, seconds)
    if daemon.wait_line(lambda ln: ln.get("event") == "launch_decided", 20, mark) is None:
        raise RuntimeError("no launch decided")


def _gocd_fault(
    inject: Callable[[World], None],
    clear: Callable[[World], None],
    *,
    stale: bool = True,
    no_changes: bool = False,
    jobs_outlive_fault: bool = False,
) -> Scenario:
    """A GoCD fault over three building agents: their jobs end while it lasts (or just after,
    when GoCD is down and an agent could not report its job), two more jobs come meanwhile."""

    def scenario(world: World) -> str:
        seconds = FAULT_SECONDS + 3 if jobs_outlive_fault else FAULT_SECONDS / 3
        _start(world, 3, seconds)
        with world.fault(world.name, stale=stale, no_changes=no_changes):
            inject(world)
            time.sleep(FAULT_SECONDS / 3)
            world.schedule(2, 3, pipeline="during")
            time.sleep(FAULT_SECONDS * 2 / 3)
            idle = [a for a in world.our_agents() if a["agent_state"] == "Idle"]
            clear(world)
        took = world.converge(CONVERGE_SECONDS)
        return f"{len(idle)} agent(s) idle at its end; converged {took:.0f}s after"

    return scenario


def _status(status: int) -> Callable[[World], None]:
    return lambda w: w.gocd.inject_fault("status", status=status, seconds=FAULT_SECONDS * SCALE)


def _clear(world: World) -> None:
    world.gocd.clear_faults()


def _gocd_stop(world: World) -> None:
    world.gocd.stop()


def _gocd_restart(world: World) -> None:
    world.gocd.start()


def _maintenance(on: bool) -> Callable[[World], None]:
    return lambda w: w.gocd.set_maintenance_mode(on)


def _malformed(prefix: str) -> Callable[[World], None]:
    return lambda w: w.gocd.inject_fault("malformed", seconds=FAULT_SECONDS * SCALE, path_prefix=prefix)


def _slow(world: World) -> None:
    late = 2 * world.timers.timeout * SCALE
    world.gocd.inject_fault("latency", delay_s=late, seconds=FAULT_SECONDS * SCALE)


def _mesos_fault(kind: str) -> Scenario:
    """A Mesos fault while launches are under way; two more jobs after it."""

    def scenario(world: World) -> str:
        daemon = _start(world, 0, 0)
        _at_launch(world, daemon, 3, 4)
        with world.fault(kind):
            world.mesos.inject_fault(kind)
        world.schedule(2, 2, pipeline="after")
        took = world.converge(CONVERGE_SECONDS)
        return f"converged {took:.0f}s after"

    return scenario


def stall_stream(world: World) -> str:
    """The stream stays open and silent: the daemon must notice the missing heartbeats."""
    daemon = _start(world, 0, 0)
    _at_launch(world, daemon, 3, 4)
    before = len([c for c in world.mesos.calls if c[1] == "SUBSCRIBE"])
    with world.fault("stall_stream"):
        world.mesos.inject_fault("stall_stream")
        world.schedule(2, 2, pipeline="during")
        took = world.until(
            lambda: len([c for c in world.mesos.calls if c[1] == "SUBSCRIBE"]) > before,
            30,
            "a resubscription",
        )
    world.converge(CONVERGE_SECONDS)
    return f"noticed and resubscribed {took:.1f}s after (heartbeat every {world.heartbeat:g} simulated s)"


def lose_agent(world: World) -> str:
    """A node with building agents goes away: their jobs are lost with it (the fault's doing);
    the daemon must replace the capacity and clear the dead agents out of GoCD."""
    _start(world, 3, 6)
    with world.fault("lose_agent"):
        result = world.mesos.inject_fault("lose_agent")
        world.schedule(2, 2, pipeline="after")
    took = world.converge(CONVERGE_SECONDS)
    lost = len(world.interrupted_jobs())
    return f"node {result['hostname']} lost, {lost} job(s) with it; converged {took:.0f}s after"


def fail_image(world: World) -> str:
    """The image crash-loops for the fault's length, then is fixed."""
    _start(world, 0, 0)
    with world.fault("fail_image") as window:
        world.mesos.inject_fault("fail_image", image=IMAGE)
        world.schedule(4, 5)
        time.sleep(FAULT_SECONDS)
        world.mesos.inject_fault("fail_image", count=0)
    waves = [
        len(tasks)
        for at, kind, _, tasks in world.mesos.calls
        if kind == "ACCEPT" and tasks and window.start <= at <= (window.end or at)
    ]
    if any(n > 1 for n in waves[1:]):
        raise RuntimeError(
            f"after the first wave the backoff let launches of {waves[1:]} through, not probes"
        )
    took = world.converge(CONVERGE_SECONDS)
    return (
        f"4 jobs, 1 idle agent: launches of {'+'.join(map(str, waves))} failed in "
        f"{FAULT_SECONDS * SCALE / 60:.1f} simulated min (a wave, then probes); converged {took:.0f}s after"
    )


def slow_launch(world: World) -> str:
    """Tasks take 60% of register_timeout to start: no launch may be doubled meanwhile."""
    delay = 0.6 * world.timers.register_timeout * SCALE
    _start(world, 0, 0)
    with world.fault("slow_launch"):
        world.mesos.inject_fault("slow_launch", delay=delay)
        world.schedule(4, 2)
        world.until(lambda: len(world.building()) >= 1 or not world.jobs(), 60, "a job building")
        world.mesos.inject_fault("slow_launch", delay=0)
    took = world.converge(CONVERGE_SECONDS)
    launched = len(world.tasks())
    return (
        f"{delay:g} simulated s to start; {launched} launches for 4 jobs and min; converged {took:.0f}s after"
    )


def offer_timeout(world: World) -> str:
    """Offers are rescinded OFFER_TIMEOUT simulated seconds after they are made: ACCEPTs race RESCINDs."""
    _start(world, 0, 0)
    with world.fault("offer_timeout"):
        world.mesos.inject_fault("offer_timeout", seconds=OFFER_TIMEOUT)
        world.schedule(5, 2)
        time.sleep(FAULT_SECONDS / 3)
        world.mesos.inject_fault("offer_timeout", seconds=0)
    took = world.converge(CONVERGE_SECONDS)
    launched = {t["id"] for t in world.tasks()}
    asked = {t for _, kind, _, tasks in world.mesos.calls if kind == "ACCEPT" for t in tasks}
    return f"{len(asked - launched)} launch(es) lost to a rescinded offer; converged {took:.0f}s after"


# --- the daemon's own faults -------------------------------------------------------------------

#: Lines that mark a launch or a drain under way, by phase.
PHASE_EVENTS = {
    "launch": frozenset({"launch_decided", "launch_queued", "launch"}),
    "drain": frozenset({"drain_decided", "drain_started", "drain_waits", "kill", "agent_deleted"}),
}
#: SIGKILL points, and the seed that places them.
KILL_POINTS, KILL_SEED = 20, 12


def sigkill(world: World, points: int = KILL_POINTS, seed: int = KILL_SEED) -> str:
    """SIGKILL at ``points`` moments of launches and drains, each time restarted at once.

    For each point the seeded generator picks a phase: for a launch, jobs are scheduled, more
    than the agents can take; for a drain, agents above ``min`` are left idle (after
    short jobs, when there are none). The daemon is killed a random 0 to 0.4 s after it logs
    the first line of that phase (a decision, a queued launch or LAUNCH, a drain, a kill or a
    delete), so the points fall at every step of both; a phase that does not come within 8 s
    (the jobs all found agents) is killed where it stands, and counted apart.
    """
    rng = random.Random(seed)
    daemon = _start(world, 0, 0)
    hits: dict[str, int] = {"launch": 0, "drain": 0}
    for _ in range(points):
        phase = rng.choice(("launch", "drain"))
        start = len(daemon.lines)
        # More jobs than agents that could take them (any enabled agent may be done in a moment).
        enabled = sum(1 for a in world.our_agents() if a["config_state"] == "Enabled")
        if phase == "launch":
            world.schedule(enabled + rng.randint(1, 3), rng.uniform(1.5, 4), pipeline=f"p{rng.randrange(5)}")
        elif len(world.live_tasks()) <= world.min:
            world.schedule(enabled + 2, 1.5, pipeline="short")
        events = PHASE_EVENTS[phase]

        def of_phase(line: dict[str, Any], events: frozenset[str] = events) -> bool:
            return line.get("event") in events

        if daemon.wait_line(of_phase, 8, start) is not None:
            hits[phase] += 1
        time.sleep(rng.uniform(0, 0.4))
        daemon.kill()
        daemon = world.start_daemon()
        if not daemon.wait_registered():
            raise RuntimeError("a restarted daemon did not subscribe to Mesos")
    took = world.converge(CONVERGE_SECONDS)
    return (
        f"seed {seed}: {hits['launch']} kills in launches, {hits['drain']} in drains"
        + (f", {points - sum(hits.values())} elsewhere" if sum(hits.values()) < points else "")
        + f"; {len(world.tasks())} tasks for {len(world.jobs())} jobs; converged {took:.0f}s after the last"
    )


def _read_only(path: Path, on: bool) -> str:
    """Make ``path`` read-only for the daemon (or writable again); how. Root ignores file modes,
    so as root the directory is made immutable (chattr +i) instead."""
    if os.geteuid() != 0:
        path.chmod(0o555 if on else 0o755)
        return "chmod 555"
    subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True, capture_output=True)
    return "chattr +i"


def read_only_state(world: World) -> str:
    """The state dir turns read-only under a running daemon: one ERROR line and exit 1, again at a
    restart while it stays so, and a clean restart once it is writable."""
    daemon = _start(world, 2, 8)
    how = _read_only(world.state_dir, True)
    try:
        world.schedule(2, 2, pipeline="more")  # a launch must be saved first
        first = daemon.wait_exit(30)
        again = world.start_daemon()
        second = again.wait_exit(30)
    finally:
        _read_only(world.state_dir, False)
    world.expected_exits = [1, 1]
    errors = [daemon.errors(), again.errors()]
    if [first, second] != [1, 1] or [len(e) for e in errors] != [1, 1]:
        raise RuntimeError(
            f"expected exit 1 with one ERROR line twice, got exits {[first, second]}: {errors}"
        )
    world.start_daemon()
    took = world.converge(CONVERGE_SECONDS)
    running, starting = (_short(world, e[0]) for e in errors)
    return (
        f"{how}; running: exit 1, '{running}'; restarted: exit 1, '{starting}'; "
        f"writable again: converged {took:.0f}s after"
    )


def truncated_fleet(world: World) -> str:
    """fleet.json cut in half while the daemon is down (SIGKILL) with agents building."""
    daemon = _start(world, 3, 8)
    daemon.kill()
    fleet = world.state_dir / "fleet.json"
    data = fleet.read_bytes()
    fleet.write_bytes(data[: len(data) // 2])
    again = world.start_daemon()
    if not again.wait_registered():
        raise RuntimeError("the restarted daemon did not subscribe to Mesos")
    world.schedule(2, 2, pipeline="after")
    took = world.converge(CONVERGE_SECONDS)
    errors = again.errors()
    moved = (world.state_dir / "fleet.json.broken").exists()
    if len(errors) != 1 or "unusable" not in errors[0] or not moved:
        raise RuntimeError(f"expected one ERROR about the unusable file, moved aside; got {errors}")
    error = _short(world, errors[0])
    return f"{len(data) // 2} of {len(data)} bytes kept; '{error}'; converged {took:.0f}s after"


def feed_removed(world: World) -> str:
    """GoCD drops the Feeds API under a running daemon (``[gocd] backlog = auto``) while agents
    build and two more jobs come: one WARNING that it reads the dashboard now, nothing lost."""
    daemon = _start(world, 3, FAULT_SECONDS / 3)
    mark = len(daemon.lines)
    with world.fault(world.name):
        world.gocd.remove_feed()
        time.sleep(FAULT_SECONDS / 3)
        world.schedule(2, 3, pipeline="after")
        time.sleep(FAULT_SECONDS * 2 / 3)
    took = world.converge(CONVERGE_SECONDS)
    switched = [
        ln["message"]
        for ln in daemon.lines[mark:]
        if ln.get("level") == "WARNING" and "serves no scheduled-jobs feed" in ln.get("message", "")
    ]
    if len(switched) != 1:
        raise RuntimeError(
            f"expected one WARNING that the backlog is read from the dashboard, got {switched}"
        )
    return f"one WARNING: reads the dashboard from then on; converged {took:.0f}s after"


def _short(world: World, line: str) -> str:
    """A log line with the world's folder as ``…``."""
    return line.replace(str(world.root), "…")


#: name -> (what is injected, the scenario, world options).
SCENARIOS: dict[str, tuple[str, Scenario, dict[str, Any]]] = {
    "gocd-refused": (
        "GoCD stopped, restarted on its port",
        _gocd_fault(_gocd_stop, _gocd_restart, jobs_outlive_fault=True),
        {},
    ),
    "gocd-500": ("every API call 500", _gocd_fault(_status(500), _clear), {}),
    "gocd-503-maintenance": (
        "maintenance mode: changes 503",
        _gocd_fault(_maintenance(True), _maintenance(False), stale=False, no_changes=True),
        {},
    ),
    "gocd-401": ("every API call 401 (password changed)", _gocd_fault(_status(401), _clear), {}),
    "gocd-malformed-xml": ("the feed cut in half", _gocd_fault(_malformed("/go/api/feed/"), _clear), {}),
    "gocd-malformed-json": (
        "the agents JSON cut in half",
        _gocd_fault(_malformed("/go/api/agents"), _clear),
        {},
    ),
    "gocd-slow": ("answers 2x [gocd] timeout late", _gocd_fault(_slow, _clear), {}),
    "gocd-feed-removed": ("the Feeds API gone (404) mid-run; backlog = auto", feed_removed, {}),
    "mesos-drop-stream": ("stream dropped during launches", _mesos_fault("drop_stream"), {}),
    "mesos-stall-stream": ("stream silent (no heartbeats)", stall_stream, {}),
    "mesos-failover": ("master failover in place", _mesos_fault("restart"), {}),
    "mesos-leader-change": ("leader moves to a new port", _mesos_fault("leader_change"), {}),
    "mesos-agent-lost": ("node with building agents lost", lose_agent, {"agent_timeout": 40.0}),
    "mesos-crash-loop": ("image fails at every launch", fail_image, {}),
    "mesos-slow-launch": ("tasks start late (60% of register_timeout)", slow_launch, {}),
    "mesos-offers-rescinded": ("offers rescinded 0.1 ms after they come", offer_timeout, {}),
    "daemon-sigkill": (
        f"SIGKILL at {KILL_POINTS} points, restarted",
        sigkill,
        {"timers": replace(Timers(), idle_timeout=1.5)},
    ),
    "state-read-only": ("[state] dir made read-only", read_only_state, {}),
    "fleet-truncated": ("fleet.json cut in half", truncated_fleet, {}),
}


def run(name: str, root: Path, keep: bool = False) -> dict[str, Any]:
    """Run one scenario in ``root``; its row of the table as a JSON-ready dict. Its folder (the
    daemon's logs and state) is removed unless it failed or ``keep``."""
    what, scenario, options = SCENARIOS[name]
    world = World(name=name, root=root / name, **options)
    started = time.monotonic()
    row: dict[str, Any] = {"fault": name, "injected": what}
    try:
        row["notes"] = scenario(world)
    except Exception as e:
        row["error"] = f"{type(e).__name__}: {e}"
        row["traceback"] = traceback.format_exc()
    try:
        for daemon in world.daemons:
            if daemon.proc.poll() is None:
                daemon.terminate()
        row["invariants"] = check(world)
        row["windows"] = [
            {"kind": w.kind, "simulated_seconds": round(((w.end or w.start) - w.start), 1)}
            for w in world.windows
        ]
        row["errors_logged"] = [e for d in world.daemons for e in d.errors()]
        row["daemon_runs"] = len(world.daemons)
    finally:
        world.stop()
    row["took_seconds"] = round(time.monotonic() - started, 1)
    broken = any(not c["held"] for c in row.get("invariants", {}).values())
    if not (keep or broken or "error" in row):
        shutil.rmtree(world.root, ignore_errors=True)
    else:
        row["kept"] = str(world.root)
    return row
