"""The status page for people: what ``/`` renders, from one snapshot and ``now``.

:func:`step_path` is the charts' one drawing rule, a pure function from a step
series (a value holding from each time until the next) to SVG path data;
:func:`page_context` gathers what the template ``templates/status.html`` shows.
The template engine escapes every value (autoescape), so names that come from
GoCD never reach the page as markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from actors.http.model import WINDOW, Counts, Snapshot

__all__ = ["CHART_HEIGHT", "CHART_WIDTH", "Chart", "page_context", "series", "step_path"]

#: Size of a chart's drawing area in SVG user units.
CHART_WIDTH: float = 600
CHART_HEIGHT: float = 120


def step_path(
    steps: Sequence[tuple[float, float]],
    *,
    start: float,
    end: float,
    top: float,
    width: float = CHART_WIDTH,
    height: float = CHART_HEIGHT,
) -> str:
    """SVG path data drawing ``steps`` between clock times ``start`` and ``end``.

    ``steps`` are (clock time, value) pairs, oldest first, each value holding until
    the next pair's time (the last until ``end``). Time maps to x in [0, ``width``],
    values in [0, ``top``] to y in [``height``, 0] (SVG's y grows downwards). A step
    that began before ``start`` starts the line at ``start``; steps at or after ``end``
    are left out. Empty when nothing falls in the range.
    """
    if end <= start or top <= 0:
        return ""
    span = end - start
    shown = [(t, v) for t, v in steps if t < end]
    # The last step before the window covers its start; earlier ones are not drawn.
    before = [i for i, (t, _) in enumerate(shown) if t <= start]
    if before:
        shown = shown[before[-1] :]
    if not shown:
        return ""

    def x(t: float) -> str:
        return _num((max(t, start) - start) / span * width)

    def y(v: float) -> str:
        return _num(height - min(max(v, 0.0), top) / top * height)

    parts = [f"M{x(shown[0][0])},{y(shown[0][1])}"]
    for (_, value), (t_next, next_value) in pairwise(shown):
        parts.append(f"H{x(t_next)}")
        if next_value != value:
            parts.append(f"V{y(next_value)}")
    parts.append(f"H{x(end)}")
    return " ".join(parts)


def _num(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def series(
    timeline: Iterable[tuple[float, Counts]], states: Iterable[str]
) -> tuple[tuple[float, float], ...]:
    """A fleet ``timeline`` as (clock time, agents in any of ``states``, all profiles)."""
    wanted = frozenset(states)
    return tuple((t, float(sum(n for (_, state), n in counts if state in wanted))) for t, counts in timeline)


@dataclass(frozen=True)
class Chart:
    """One chart of the page: two step lines over the last hour."""

    #: The chart's title.
    title: str
    #: (label, SVG path data, CSS class, legend note) per line.
    lines: tuple[tuple[str, str, str, str], ...]
    #: The value the chart's top stands for.
    top: float


def _top(*values: Iterable[tuple[float, float]]) -> float:
    return max([1.0, *(v for s in values for _, v in s)])


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds // 60 % 60:02d}m"


def page_context(snapshot: Snapshot, now: float) -> dict[str, Any]:
    """The template's values for ``snapshot`` at clock time ``now``."""
    start = now - WINDOW
    waiting = tuple((t, float(n)) for t, n in snapshot.waiting_timeline)
    agents = series(snapshot.timeline, ("starting", "idle", "building", "leaving"))
    busy = series(snapshot.timeline, ("building",))
    idle = series(snapshot.timeline, ("idle",))
    recent = snapshot.recent_agent_seconds(now)
    busy_seconds = sum(s for (_, state), s in recent.items() if state == "building")
    idle_seconds = sum(s for (_, state), s in recent.items() if state == "idle")
    top1, top2 = _top(waiting, agents), _top(busy, idle)
    charts = (
        Chart(
            title="Waiting jobs and agents, last hour",
            lines=(
                ("waiting jobs", step_path(waiting, start=start, end=now, top=top1), "waiting", ""),
                ("agents", step_path(agents, start=start, end=now, top=top1), "agents", ""),
            ),
            top=top1,
        ),
        Chart(
            title="Busy and idle agents, last hour",
            lines=(
                (
                    "busy",
                    step_path(busy, start=start, end=now, top=top2),
                    "busy",
                    f"{busy_seconds:.0f} agent-seconds",
                ),
                (
                    "idle",
                    step_path(idle, start=start, end=now, top=top2),
                    "idle",
                    f"{idle_seconds:.0f} agent-seconds",
                ),
            ),
            top=top2,
        ),
    )
    seen = dict(snapshot.first_seen)
    jobs = [
        (job, _duration(now - seen[job.locator]) if job.locator in seen else "") for job in snapshot.waiting
    ]
    oldest = sorted(snapshot.oldest_wait(now).items(), key=lambda kv: -kv[1])
    return {
        "snapshot": snapshot,
        "now": now,
        "profiles": [
            (p, _duration(p.backoff_until - now) if p.backoff_until is not None else "")
            for p in snapshot.profiles
        ],
        "jobs": jobs,
        "oldest": [(profile, reason, _duration(seconds)) for (profile, reason), seconds in oldest],
        "charts": charts,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "duration": _duration,
    }
