"""``python -m bench [--quick] [--out DIR] [--only SECTION ...]``: the benchmarks of issue 12.

Runs each section, prints a markdown table of its figures, and writes every
figure to ``<out>/latest.json`` (default ``bench/results``), whose path is
printed last. ``--quick`` runs the same measurements at small sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import plots, reaction, scale, trace

__all__ = ["SECTIONS", "main", "table"]

#: Section name -> (runner taking ``quick``, the table rows it makes).
SECTIONS: dict[str, tuple[Callable[[bool], dict[str, Any]], Callable[[dict[str, Any]], list[list[str]]]]] = {}


def _scale_rows(r: dict[str, Any]) -> list[list[str]]:
    d, f, a, o = r["decision"], r["parse_feed"], r["parse_agents"], r["offer_matching"]
    return [
        [
            f"one decision, {d['jobs']:,} jobs x {d['agents']:,} agents x {d['profiles']} profiles",
            f"{d['seconds'] * 1000:.1f} ms, peak {d['peak_mb']:.1f} MB",
            "<= 100 ms",
        ],
        [
            f"parse a {f['jobs']:,}-job feed ({f['bytes'] / 2**20:.1f} MiB)",
            f"{f['seconds'] * 1000:.0f} ms",
            "",
        ],
        [
            f"parse a {a['agents']:,}-agent JSON ({a['bytes'] / 2**20:.1f} MiB)",
            f"{a['seconds'] * 1000:.0f} ms",
            "",
        ],
        [
            f"offer matching, {o['offers']:,} offers x {o['launches']:,} queued launches",
            f"{o['seconds'] * 1000:.1f} ms ({o['placed']} placed)",
            "",
        ],
    ]


def _burst_rows(r: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name in ("burst", "big_burst"):
        b = r[name]
        goal = "within 2 poll cycles" if name == "burst" else "max_launch_per_cycle 100 per cycle"
        rows.append(
            [
                f"{b['jobs']:,} jobs at once -> {b['jobs']:,} LAUNCHes",
                f"{b['seconds_to_launches']:.1f} s, {b['backlog_reads_to_launches']} backlog reads",
                goal,
            ]
        )
        rows.append([f"{b['jobs']:,} jobs at once -> all assigned", f"{b['seconds_to_assigned']:.1f} s", ""])
    return rows


def _resources_rows(r: dict[str, Any]) -> list[list[str]]:
    return [
        [f"daemon idle CPU (over {r['idle_seconds']:.0f} s)", f"{r['idle_cpu_percent']:.2f} %", "<= 1 %"],
        [
            "daemon resident memory, idle",
            f"{r['rss_mb']:.0f} MB (peak {r['peak_rss_mb']:.0f} MB)",
            "<= 100 MB",
        ],
    ]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _trace_rows(r: dict[str, Any]) -> list[list[str]]:
    size = f"{r['hours']:g} h, {r['pipeline_runs']} pipeline runs, {r['jobs']:,} jobs"
    rows = [
        [
            f"trace: {size} (time x{r['scale']:g})",
            f"ideal {r['ideal']['agent_seconds'] / 3600:.1f} agent-hours",
            "",
        ]
    ]
    goals = {
        "default": "<= 1.15 x ideal; p95 <= poll + agent start + 5 s",
        "ancestor": "modelled near 2.7 x ideal, p95 40 min",
        "static": f"fleet {sum(r['static_fleet'].values())} sized to default's p95",
    }
    for name, p in r["policies"].items():
        wait, first, later = p["wait"], p["wait_first_stage"], p["wait_later_stages"]
        rows.append(
            [
                f"{name}: agent-seconds / ideal; idle agent-hours",
                f"{p['vs_ideal']:.2f} x; idle {p['idle_seconds'] / 3600:.1f} h; {p['launches']} launches",
                goals.get(name, ""),
            ]
        )
        rows.append(
            [
                f"{name}: wait p50 / p95 / max (first stage p95; later stages p95)",
                f"{_seconds(wait['p50'])} / {_seconds(wait['p95'])} / {_seconds(wait['max'])} s "
                f"({_seconds(first['p95'])}; {_seconds(later['p95'])})",
                "",
            ]
        )
        daemon = p["daemon"]
        rows.append(
            [
                f"{name}: the daemon process: peak / median RSS; CPU at real speed (busiest hour)",
                f"{daemon['peak_rss_mb']:.0f} / {daemon['median_rss_mb']:.0f} MB; "
                f"{daemon['cpu_percent_real_speed']:.2f} % ({daemon['cpu_percent_busiest_hour']:.2f} %)",
                "<= 100 MB; <= 1 %" if name == "default" else "",
            ]
        )
    return rows


def _reaction_rows(r: dict[str, Any]) -> list[list[str]]:
    rows = []
    for variant, v in r.items():
        for step, label in (
            ("to_launch", "LAUNCH"),
            ("to_registered", "agent registered"),
            ("to_assigned", "job assigned"),
        ):
            s = v[step]
            goal = ""
            if step == "to_launch":
                goal = "p95 <= 2 s" if "push" in variant else f"p95 <= {v['poll_interval'] + 1:g} s"
            rows.append(
                [
                    f"{variant}: job scheduled -> {label}, p50 / p95 / max ({s['n']} jobs)",
                    f"{_seconds(s['p50'])} / {_seconds(s['p95'])} / {_seconds(s['max'])} s",
                    goal,
                ]
            )
    return rows


SECTIONS["reaction"] = (reaction.reactions, _reaction_rows)
SECTIONS["trace"] = (trace.run, _trace_rows)
SECTIONS["scale"] = (scale.run, _scale_rows)
SECTIONS["burst"] = (reaction.burst, _burst_rows)
SECTIONS["resources"] = (reaction.resources, _resources_rows)


def table(rows: list[list[str]]) -> str:
    """A markdown table of (measurement, figure, goal) rows."""
    lines = ["| measurement | figure | goal |", "| --- | --- | --- |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the same measurements at small sizes")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"), help="results folder")
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), help="run only these sections")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": machine(),
        "quick": args.quick,
        "sections": {},
        "section_seconds": {},
    }
    started = time.monotonic()
    chosen = [name for name in SECTIONS if not args.only or name in args.only]

    def measure(name: str) -> None:
        section_started = time.monotonic()
        figures = SECTIONS[name][0](args.quick)
        results["sections"][name] = figures
        results["section_seconds"][name] = round(time.monotonic() - section_started, 1)

    if args.quick:
        # Small sizes, side by side: the whole quick run stays within a few minutes.
        threads = [threading.Thread(target=measure, args=(name,), name=name) for name in chosen]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        for name in chosen:
            measure(name)
    for name in chosen:
        if name not in results["sections"]:
            print(f"\n## {name}\n\nfailed: see the traceback above", flush=True)
            continue
        print(f"\n## {name}\n", flush=True)
        print(table(SECTIONS[name][1](results["sections"][name])), flush=True)
    if "trace" in results["sections"]:
        results["plots"] = [str(path) for path in plots.plot_trace(results["sections"]["trace"], out)]
    results["took_seconds"] = time.monotonic() - started
    path = out / "latest.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"\n{path}")
    return 0 if len(results["sections"]) == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
