"""The invariants checked after each fault, computed from what the simulators saw.

Nothing here reads the daemon's own accounting (its metrics, ``/status`` or
published messages): the GoCD simulator knows which jobs ran on which agent and
when, the Mesos simulator which tasks it launched and which KILL calls it
accepted when, and the world which simulated agent ran in which task and when
each fault was in force. The daemon's files count only for the state check,
whose question is whether they are intact.

Each check gives ``(held, detail)``; :func:`check` gathers them for one world.
"""

from __future__ import annotations

import json
from typing import Any

from bench.faults.world import World

__all__ = ["INVARIANTS", "check"]

#: Invariant key -> column title of the table.
INVARIANTS = {
    "no_building_killed": "no building agent killed",
    "no_orphans": "no orphan task or agent",
    "launches_bounded": "launches <= demand + min",
    "no_crash": "no crash",
    "state_intact": "state intact",
    "no_scale_down_stale": "no scale-down on stale data",
}

#: Task states that end a task without a KILL of ours: the launch failed or the node went.
ENDED_BY_ITSELF = frozenset(
    {"TASK_FAILED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED", "TASK_GONE", "TASK_UNREACHABLE"}
)


def _kills(world: World) -> list[tuple[float, str]]:
    """(clock time, task id) of each KILL the Mesos master accepted."""
    return [(at, tasks[0]) for at, kind, _, tasks in list(world.mesos.calls) if kind == "KILL" and tasks]


def no_building_killed(world: World) -> tuple[bool, str]:
    """No KILL reached a task whose GoCD agent was running a job at that moment (per GoCD)."""
    task_agent = {task: uuid for uuid, task in world.agent_task.items()}
    jobs = world.jobs()
    bad = []
    for at, task in _kills(world):
        uuid = task_agent.get(task)
        for job in jobs:
            if (
                uuid is not None
                and job["agent_uuid"] == uuid
                and job["assigned_at"] is not None
                and job["assigned_at"] <= at
                and (job["completed_at"] is None or job["completed_at"] > at)
            ):
                bad.append(f"{task} killed while building {job['locator']}")
    lost = sorted(world.interrupted_jobs())
    detail = f"{len(_kills(world))} kills"
    if lost:
        detail += f"; {len(lost)} job(s) lost with their node"
    return not bad, "; ".join(bad) or detail


def no_orphans(world: World) -> tuple[bool, str]:
    """After convergence, each live task of ours is a GoCD agent of ours and vice versa."""
    live = world.live_tasks()
    agents = {a["hostname"] for a in world.our_agents()}
    tasks_only, agents_only = sorted(live - agents), sorted(agents - live)
    if tasks_only or agents_only:
        return False, f"tasks without agent {tasks_only}, agents without task {agents_only}"
    return True, f"{len(live)} task(s) = {len(agents)} agent(s)"


def launches_bounded(world: World) -> tuple[bool, str]:
    """Tasks Mesos launched <= jobs scheduled + min + launches that had to be replaced
    (tasks that failed or were lost, or were killed before their agent registered)."""
    tasks = world.tasks()
    killed = {task for _, task in _kills(world)}
    replaced = 0
    for task in tasks:
        agent = world.sim_agents.get(task["id"])
        registered = agent is not None and agent.registered.is_set()
        if task["state"] in ENDED_BY_ITSELF or (task["id"] in killed and not registered):
            replaced += 1
    jobs = len(world.jobs())
    bound = jobs + world.min + replaced
    detail = f"{len(tasks)} launched for {jobs} jobs + min {world.min} + {replaced} replaced"
    return len(tasks) <= bound, detail


def no_crash(world: World) -> tuple[bool, str]:
    """Every daemon ended as the campaign ended it (SIGTERM: status 0; SIGKILL), or with a
    status the scenario expects (a clean exit 1), and none logged a traceback."""
    bad = []
    expected = list(world.expected_exits)
    for n, daemon in enumerate(world.daemons, 1):
        status = daemon.proc.poll()
        raw = [ln["message"] for ln in daemon.lines if ln.get("level") == "RAW" and ln.get("message")]
        if raw:
            bad.append(f"daemon {n} wrote {len(raw)} non-JSON line(s), first: {raw[0][:120]}")
        if daemon.ended_by == "sigkill":
            continue
        if daemon.ended_by == "sigterm" and status == 0:
            continue
        if daemon.ended_by is None and status in expected:
            expected.remove(status)
            continue
        bad.append(f"daemon {n} ended with status {status} ({daemon.ended_by or 'by itself'})")
    if expected:
        bad.append(f"expected exit(s) {expected} did not happen")
    return not bad, "; ".join(bad) or f"{len(world.daemons)} daemon run(s)"


def state_intact(world: World) -> tuple[bool, str]:
    """After the last orderly stop, ``fleet.json`` is JSON of the expected shape and lists
    exactly the live tasks of ours (a broken file must have been moved aside, with an ERROR)."""
    path = world.state_dir / "fleet.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        records = {r["task_id"]: r["state"] for r in data["records"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        return False, f"{path.name}: {e}"
    kept = {task for task, state in records.items() if state not in ("gone", "failed", "lost")}
    live = world.live_tasks()
    if kept != live:
        return False, f"{path.name} lists {sorted(kept)}, Mesos runs {sorted(live)}"
    return True, f"{len(kept)} record(s) = live tasks"


def no_scale_down_stale(world: World) -> tuple[bool, str]:
    """No agent disabled or deleted and no task killed while GoCD could not be read; no task
    killed while GoCD refused every agent change."""
    bad = []
    kills = _kills(world)
    for w in world.windows:
        end = w.end if w.end is not None else float("inf")
        if not (w.stale or w.no_changes):
            continue
        for at, task in kills:
            if w.start < at <= end:
                bad.append(f"{task} killed during {w.kind}")
        if w.stale:
            for at, method, path, asked, _ in world.gocd.seen:
                if (
                    w.start < at <= end
                    and path.startswith("/go/api/agents")
                    and (method == "DELETE" or asked == "Disabled")
                ):
                    bad.append(f"{method} {path} during {w.kind}")
    windows = [w for w in world.windows if w.stale or w.no_changes]
    return not bad, "; ".join(bad[:3]) or f"{len(windows)} window(s) checked"


CHECKS = {
    "no_building_killed": no_building_killed,
    "no_orphans": no_orphans,
    "launches_bounded": launches_bounded,
    "no_crash": no_crash,
    "state_intact": state_intact,
    "no_scale_down_stale": no_scale_down_stale,
}


def check(world: World) -> dict[str, dict[str, Any]]:
    """Every invariant of :data:`INVARIANTS` for ``world``: ``{key: {"held", "detail"}}``."""
    out = {}
    for key, function in CHECKS.items():
        held, detail = function(world)
        out[key] = {"held": held, "detail": detail}
    return out
