"""Reaction, burst and the daemon's own resources, measured on the simulators.

Every time here is what a simulator recorded: a job's scheduling and assignment
in the GoCD simulator, a task's first status (the LAUNCH accepted) in the Mesos
simulator, an agent's registration in the GoCD simulator. The daemon runs as
a real process (``bin/gocd-mesosd``) at real speed.

Reaction: jobs are scheduled one at a time at random phases of the poll
interval, each needing a new agent (jobs build for long, ``min`` is 0, so no
idle agent ever takes one), so the k-th LAUNCH is the k-th job's.
"""

from __future__ import annotations

import random
import re
import statistics
import threading
import time
from collections.abc import Sequence
from typing import Any

from bench.world import PREFIX, World

__all__ = ["VARIANTS", "burst", "percentiles", "reaction", "reactions", "resources"]

#: The reaction's variants: name -> (``[gocd]`` keys, push). With push the backlog poll is 30 s,
#: as an operator may set it once push is on: the poll is only the safety net then.
VARIANTS: dict[str, tuple[dict[str, str], bool]] = {
    "feed": ({}, False),
    "feed+push": ({"poll_interval": "30s"}, True),
}
#: Real seconds between two jobs of the reaction, at least (at most twice that).
SPACING = 10.0
#: The webhook secret of the push variants (a test value: the world is thrown away).
SECRET = "bench-webhook-secret-0123456789"


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p95 and max of ``values`` (None when empty); p95 by the nearest-rank method."""
    if not values:
        return {"p50": None, "p95": None, "max": None, "n": 0}
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, -(-95 * len(ordered) // 100) - 1))
    return {"p50": statistics.median(ordered), "p95": ordered[rank], "max": ordered[-1], "n": len(ordered)}


def _launch_times(world: World) -> list[float]:
    """Clock times (GoCD simulator's clock, ``now``) of every LAUNCH the Mesos simulator accepted,
    oldest first: a task's first status, converted from wall time."""
    offset = world.clock.time() - world.clock.now()
    firsts = [min(s["timestamp"] for s in t["statuses"]) for t in world.tasks() if t["statuses"]]
    return sorted(t - offset for t in firsts)


def reaction(
    quick: bool, *, gocd: dict[str, str] | None = None, push: bool = False, jobs: int | None = None
) -> dict[str, Any]:
    """Seconds from each job scheduled to its agent's LAUNCH, to the agent registered and to the
    job assigned. With ``push``, the GoCD simulator posts its notifications (as the DigitalOcean
    plugin does) to the daemon's webhook."""
    count = jobs or (6 if quick else 30)
    keys = {"poll_interval": "10s", **(gocd or {})}
    poll = float(keys["poll_interval"].rstrip("s"))
    world = World(gocd=keys, profiles={"linux": {"resources": "linux", "max": "100"}})
    rng = random.Random(12)
    try:
        if push:
            (world.dir / "webhook-secret").write_text(SECRET, encoding="utf-8")
            (world.dir / "webhook-secret").chmod(0o600)
            world.gocd["webhook_secret_file"] = str(world.dir / "webhook-secret")
        daemon = world.start_daemon()
        world.wait_until(lambda: bool(world.gocd_sim.requests), 30, "the daemon's first GoCD read")
        if push:
            world.wait_until(lambda: "Status server listening on" in daemon.log(), 30, "the status server")
            url = re.search(r"Status server listening on (http://\S+/)", daemon.log())
            assert url is not None, daemon.log()
            hook = f"{url.group(1)}hooks/gocd/{SECRET}"
            world.gocd_sim.notify(stage_urls=[hook], agent_urls=[hook])
        locators: list[str] = []
        for _ in range(count):
            time.sleep(SPACING * (1.0 + rng.random()))  # one job per 10 to 20 s, at any poll phase
            locators += world.gocd_sim.schedule_jobs(
                f"r{len(locators)}", resources=["linux"], duration_s=3600
            )
        world.wait_until(lambda: len(_launch_times(world)) >= count, 120, "a LAUNCH per job")
        world.wait_until(
            lambda: all(j["assigned_at"] is not None for j in world.gocd_sim.state()["jobs"]),
            120,
            "every job assigned",
        )
        jobs_state = {j["locator"]: j for j in world.gocd_sim.state()["jobs"]}
        scheduled = [jobs_state[loc]["scheduled_at"] for loc in locators]
        launches = _launch_times(world)[:count]
        registered = sorted(
            a["registered_at"]
            for a in world.gocd_sim.state()["agents"]
            if a["hostname"].startswith(PREFIX) and a.get("registered_at") is not None
        )
        to_launch = [launch - at for launch, at in zip(launches, scheduled, strict=True)]
        to_registered = [reg - at for reg, at in zip(registered, scheduled, strict=False)]
        to_assigned = [jobs_state[loc]["assigned_at"] - jobs_state[loc]["scheduled_at"] for loc in locators]
        return {
            "poll_interval": poll,
            "jobs": count,
            "launches": len(_launch_times(world)),
            "to_launch": percentiles(to_launch),
            "to_registered": percentiles(to_registered),
            "to_assigned": percentiles(to_assigned),
        }
    finally:
        world.stop()


def reactions(quick: bool) -> dict[str, Any]:
    """:func:`reaction` for every variant of :data:`VARIANTS`, side by side (each its own world)."""
    results: dict[str, Any] = {}

    def measure(name: str, keys: dict[str, str], push: bool) -> None:
        results[name] = reaction(quick, gocd=keys, push=push)

    threads = [
        threading.Thread(target=measure, args=(name, keys, push), name=f"reaction-{name}")
        for name, (keys, push) in VARIANTS.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    missing = set(VARIANTS) - set(results)
    if missing:
        raise RuntimeError(f"reaction variants failed: {', '.join(sorted(missing))}")
    return {name: results[name] for name in VARIANTS}


def _feed_reads(world: World, since: int) -> int:
    return sum(
        1
        for _, path, _ in list(world.gocd_sim.requests)[since:]
        if "scheduled" in path or "dashboard" in path
    )


def burst(quick: bool) -> dict[str, Any]:
    """N jobs scheduled at once on a cluster with room: seconds and backlog reads until N LAUNCHes
    and until N jobs assigned; then a bigger burst at ``max_launch_per_cycle`` 100."""
    return {
        "burst": _burst(50 if quick else 200, nodes=8),
        "big_burst": _burst(250 if quick else 1000, nodes=34),
    }


def _burst(count: int, *, nodes: int) -> dict[str, Any]:
    poll = 10.0
    world = World(
        nodes=nodes,
        gocd={"poll_interval": f"{poll:g}s"},
        profiles={"linux": {"resources": "linux", "max": "2000"}},
    )
    try:
        world.start_daemon()
        world.wait_until(lambda: bool(world.gocd_sim.requests), 30, "the daemon's first GoCD read")
        before = len(world.gocd_sim.requests)
        started = world.clock.now()
        world.gocd_sim.schedule_jobs("burst", count=count, resources=["linux"], duration_s=3600)
        world.wait_until(lambda: len(world.tasks()) >= count, 600, f"{count} LAUNCHes")
        launched = world.clock.now() - started
        reads_to_launch = _feed_reads(world, before)
        world.wait_until(
            lambda: sum(j["assigned_at"] is not None for j in world.gocd_sim.state()["jobs"]) >= count,
            600,
            f"{count} assigned",
        )
        return {
            "jobs": count,
            "seconds_to_launches": launched,
            "seconds_to_assigned": world.clock.now() - started,
            "backlog_reads_to_launches": reads_to_launch,
            "poll_interval": poll,
        }
    finally:
        world.stop()


def resources(quick: bool) -> dict[str, Any]:
    """The daemon's resident memory and CPU while idle (two idle agents kept by ``min``)."""
    seconds = 20.0 if quick else 120.0
    world = World(profiles={"linux": {"resources": "linux", "min": "2", "max": "10"}})
    try:
        daemon = world.start_daemon()
        world.wait_until(
            lambda: sum(a["hostname"].startswith(PREFIX) for a in world.gocd_sim.state()["agents"]) >= 2,
            60,
            "two idle agents",
        )
        time.sleep(5)  # past start-up
        first, t0 = daemon.usage(), time.monotonic()
        time.sleep(seconds)
        last, t1 = daemon.usage(), time.monotonic()
        return {
            "idle_seconds": t1 - t0,
            "idle_cpu_percent": 100 * (last.cpu_seconds - first.cpu_seconds) / (t1 - t0),
            "rss_mb": last.rss / 2**20,
            "peak_rss_mb": last.peak_rss / 2**20,
        }
    finally:
        world.stop()
