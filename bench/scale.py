"""Scale: decision time and peak memory, parse times, offer matching, at the sizes of issue 12.

Every payload parsed here is what the GoCD simulator serves over HTTP (the feed's
XML, the agents API's JSON), fetched once and then parsed in a loop, so the
figures are for the real wire formats. Times are the best of ``repeat`` runs
(the least disturbed by other work on the machine), peak memory comes from
:mod:`tracemalloc` over one run.
"""

from __future__ import annotations

import json
import random
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import requests

from actors.clock import ManualClock
from actors.config import JudgeSettings, Profile
from actors.fleet.judge import decide
from actors.fleet.states import FleetState
from actors.gocd.client import parse_agents, parse_scheduled_jobs, vnd
from actors.mesos.events import MesosOffer, MesosResource
from actors.mesos.offers import QueuedTask, pack
from actors.messages import BacklogSnapshot, Decide, FleetAgent, FleetView, GoAgent, ScheduledJob
from actors.sim.gocd import GoCDSimulator

__all__ = ["SIZES", "run"]

#: Clock time of the decision; the backlog is read at that time too (fresh, not stale).
NOW = 1000.0
#: (full, quick) sizes.
SIZES = {
    "jobs": (10_000, 1_000),
    "agents": (5_000, 500),
    "profiles": (20, 20),
    "offers": (1_000, 100),
    "launches": (500, 50),
}


def timed(function: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """(best seconds of ``repeat`` calls, the last result)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def peak_bytes(function: Callable[[], Any]) -> int:
    """Peak memory allocated by Python during one call, in bytes."""
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def decision_inputs(
    jobs: int, agents: int, profiles: int, seed: int = 7
) -> tuple[Decide, tuple[Profile, ...]]:
    """A backlog of ``jobs`` waiting jobs over ``profiles`` profiles (some fitting none) and a
    fleet of ``agents`` agents of ours, every one a GoCD agent too, in mixed states."""
    rng = random.Random(seed)
    configured = tuple(
        Profile(name=f"p{i}", image="img", resources=(f"r{i}",), min=1, max=agents) for i in range(profiles)
    )
    waiting = tuple(
        ScheduledJob(
            locator=f"pipe{n % 500}/{n}/build/1/job",
            pipeline=f"pipe{n % 500}",
            pipeline_counter=n,
            stage="build",
            stage_counter=1,
            name="job",
            resources=frozenset({f"r{rng.randrange(profiles + 2)}"}),  # r20, r21: no profile
        )
        for n in range(jobs)
    )
    states = (FleetState.IDLE, FleetState.BUILDING, FleetState.BUILDING, FleetState.LAUNCHING)
    fleet, gocd = [], []
    for n in range(agents):
        profile = configured[n % profiles]
        state = states[n % len(states)]
        uuid = f"uuid-{n}" if state != FleetState.LAUNCHING else None
        fleet.append(
            FleetAgent(
                task_id=f"gocd-agent-{profile.name}-{n}",
                profile=profile.name,
                state=state,
                agent_uuid=uuid,
                idle_since=0.0 if state == FleetState.IDLE else None,
            )
        )
        if uuid:
            gocd.append(
                GoAgent(
                    uuid=uuid,
                    hostname=f"gocd-agent-{profile.name}-{n}",
                    config_state="Enabled",
                    agent_state="Idle" if state == FleetState.IDLE else "Building",
                    build_state="Idle" if state == FleetState.IDLE else "Building",
                    resources=profile.resources,
                )
            )
    backlog = BacklogSnapshot(jobs=waiting, agents=tuple(gocd), fetched_at=NOW)
    return Decide(backlog=backlog, fleet=FleetView(agents=tuple(fleet))), configured


def feed_and_agents(jobs: int, agents: int) -> tuple[bytes, bytes]:
    """The feed XML with ``jobs`` waiting jobs and the agents JSON with ``agents`` agents,
    as the GoCD simulator serves them."""
    with GoCDSimulator(clock=ManualClock()) as gocd:
        for n in range(0, jobs, 50):
            gocd.schedule_jobs(f"pipe{n // 50}", count=min(50, jobs - n), resources=["linux", "docker"])
        for n in range(agents):
            gocd.add_agent(f"host-{n}", resources=["linux"], environments=["prod"])
        feed = requests.get(f"{gocd.url}/api/feed/jobs/scheduled.xml", timeout=60)
        listed = requests.get(f"{gocd.url}/api/agents", headers={"Accept": vnd(7)}, timeout=60)
        feed.raise_for_status()
        listed.raise_for_status()
        return feed.content, listed.content


def offers_and_queue(offers: int, launches: int, profiles: int) -> tuple[list[MesosOffer], list[QueuedTask]]:
    """``offers`` offers of 8 cpus and 16 GiB and ``launches`` queued agents over ``profiles``."""
    configured = [
        Profile(name=f"p{i}", image="img", cpus=1 + i % 4, mem=1024.0 * (1 + i % 8)) for i in range(profiles)
    ]
    made = [
        MesosOffer(
            id=f"o{n}",
            agent_id=f"a{n}",
            hostname=f"node{n}",
            resources=(MesosResource(name="cpus", scalar=8.0), MesosResource(name="mem", scalar=16384.0)),
        )
        for n in range(offers)
    ]
    queue = [QueuedTask(task_id=f"t{n}", profile=configured[n % profiles]) for n in range(launches)]
    return made, queue


def run(quick: bool = False) -> dict[str, Any]:
    """The scale figures, as a JSON-ready dict."""
    pick = 1 if quick else 0
    jobs, agents, profiles = SIZES["jobs"][pick], SIZES["agents"][pick], SIZES["profiles"][pick]
    request, configured = decision_inputs(jobs, agents, profiles)
    settings = JudgeSettings(max_launch_per_cycle=100)
    assert not decide(request, configured, settings, NOW).stale
    seconds, plan = timed(lambda: decide(request, configured, settings, NOW), repeat=3 if quick else 5)
    memory = peak_bytes(lambda: decide(request, configured, settings, NOW))
    feed, listed = feed_and_agents(jobs, agents)
    feed_seconds, parsed_jobs = timed(lambda: parse_scheduled_jobs(feed), repeat=3)
    agents_seconds, parsed_agents = timed(lambda: parse_agents(json.loads(listed)), repeat=3)
    offers, queue = offers_and_queue(SIZES["offers"][pick], SIZES["launches"][pick], profiles)
    pack_seconds, (placements, left) = timed(lambda: pack(queue, offers), repeat=5)
    assert len(parsed_jobs) == jobs and len(parsed_agents) == agents
    return {
        "decision": {
            "jobs": jobs,
            "agents": agents,
            "profiles": profiles,
            "seconds": seconds,
            "peak_mb": memory / 2**20,
            "launches": sum(n for _, n in plan.launches),
            "reasons": len(plan.reasons),
        },
        "parse_feed": {"jobs": jobs, "bytes": len(feed), "seconds": feed_seconds},
        "parse_agents": {"agents": agents, "bytes": len(listed), "seconds": agents_seconds},
        "offer_matching": {
            "offers": len(offers),
            "launches": len(queue),
            "seconds": pack_seconds,
            "placed": sum(len(p.tasks) for p in placements),
            "left": len(left),
        },
    }
