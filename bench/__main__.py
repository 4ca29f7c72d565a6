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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import reaction, scale

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
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick, "sections": {}}
    started = time.monotonic()
    for name, (run, rows) in SECTIONS.items():
        if args.only and name not in args.only:
            continue
        print(f"\n## {name}\n", flush=True)
        section_started = time.monotonic()
        figures = run(args.quick)
        figures["took_seconds"] = time.monotonic() - section_started
        results["sections"][name] = figures
        print(table(rows(figures)), flush=True)
    results["took_seconds"] = time.monotonic() - started
    path = out / "latest.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"\n{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
