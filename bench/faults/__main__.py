"""``python -m bench.faults [--only NAME ...] [--payloads N] [--out DIR]``: the fault campaign.

Runs every fault of :mod:`bench.faults.scenarios` against the daemon as a real
process on the simulators, checks the invariants of
:mod:`bench.faults.invariants` after each, fuzzes the parsers, the
configuration and the policies (:mod:`bench.faults.fuzz`) in a second process
meanwhile, prints a table of faults tried and invariants held and one of the
payloads fuzzed, and writes everything to ``<out>/faults-latest.json`` (default
``bench/results``), whose path is printed last. Exit status 1 when an invariant
or a property broke.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.faults import fuzz, scenarios
from bench.faults.invariants import INVARIANTS
from bench.faults.world import SCALE, Timers

__all__ = ["PENDING", "fault_table", "fuzz_table", "main"]

#: Faults and targets the brief lists that wait for code not on main yet: name -> why.
PENDING: dict[str, str] = {}

#: Payloads fuzzed in all, shared among the targets.
PAYLOADS = 12_000


def machine() -> dict[str, Any]:
    """What the campaign ran on, and how busy the machine was when it ended."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _mark(held: bool | None) -> str:
    return "✓" if held else ("✗" if held is False else "-")


def fault_table(rows: list[dict[str, Any]]) -> str:
    """A markdown table: one fault a row, one invariant a column (✓ held, ✗ broken)."""
    head = ["fault", "injected", *INVARIANTS.values(), "took"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in rows:
        checks = row.get("invariants", {})
        marks = [_mark(checks[k]["held"]) if k in checks else "-" for k in INVARIANTS]
        fault = row["fault"] + (" (error)" if "error" in row else "")
        lines.append(
            "| " + " | ".join([fault, row["injected"], *marks, f"{row['took_seconds']:.0f} s"]) + " |"
        )
    for name, why in PENDING.items():
        if name.startswith("gocd-"):
            lines.append("| " + " | ".join([name, f"pending: {why}", *["-"] * len(INVARIANTS), ""]) + " |")
    return "\n".join(lines)


def fuzz_table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of the fuzzing targets, with the total of payloads."""
    lines = ["| target | payloads | property | held |", "| --- | ---: | --- | --- |"]
    for row in rows:
        lines.append(f"| {row['target']} | {row['payloads']:,} | {row['property']} | {_mark(row['held'])} |")
    lines.append(
        f"| **total** | **{sum(r['payloads'] for r in rows):,}** | | {_mark(all(r['held'] for r in rows))} |"
    )
    for name, why in PENDING.items():
        if not name.startswith("gocd-"):
            lines.append(f"| {name} | - | pending: {why} | - |")
    return "\n".join(lines)


def _details(rows: list[dict[str, Any]]) -> list[str]:
    """One line per note, broken invariant or error, for under the table."""
    out = []
    for row in rows:
        if "error" in row:
            out.append(f"- {row['fault']}: ERROR {row['error']}")
        elif row.get("notes"):
            out.append(f"- {row['fault']}: {row['notes']}")
        for key, check in row.get("invariants", {}).items():
            if not check["held"]:
                out.append(f"  - {INVARIANTS[key]} BROKEN: {check['detail']}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", nargs="+", choices=sorted(scenarios.SCENARIOS), help="run only these faults"
    )
    parser.add_argument(
        "--payloads", type=int, default=PAYLOADS, help=f"payloads to fuzz (default {PAYLOADS:,})"
    )
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parents[1] / "results"), help="results folder"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    names = args.only or list(scenarios.SCENARIOS)
    print(
        f"Fault campaign: {len(names)} faults against bin/gocd-mesosd on the simulators (x{SCALE:g}), "
        f"{args.payloads:,} payloads fuzzed meanwhile",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="gocd-mesos-faults-") as tmp,
        concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn")
        ) as pool,
    ):
        fuzzing = pool.submit(fuzz.run, args.payloads) if args.payloads > 0 else None
        for name in names:
            row = scenarios.run(name, Path(tmp))
            rows.append(row)
            broken = [INVARIANTS[k] for k, c in row.get("invariants", {}).items() if not c["held"]]
            status = (
                "ERROR " + row["error"]
                if "error" in row
                else ("BROKEN: " + ", ".join(broken) if broken else "ok")
            )
            print(f"  {name}: {status} ({row['took_seconds']:.0f} s)", flush=True)
        fuzzed = fuzzing.result() if fuzzing is not None else []
    took = time.monotonic() - started
    print("\n## Faults tried and invariants held\n")
    print(fault_table(rows))
    print()
    print("\n".join(_details(rows)))
    print("\n## Payloads fuzzed\n")
    print(fuzz_table(fuzzed))
    for row in fuzzed:
        if not row["held"]:
            print(f"\n{row['target']} BROKEN: {row['failure']}")
    held = all("error" not in r and all(c["held"] for c in r["invariants"].values()) for r in rows) and all(
        r["held"] for r in fuzzed
    )
    checks = sum(len(r.get("invariants", {})) for r in rows)
    print(
        f"\n{len(rows)} faults, {checks} invariant checks, {sum(r['payloads'] for r in fuzzed):,} payloads: "
        f"{'all held' if held else 'SOMETHING BROKE'}; {took:.0f} s on {machine()['cpus']} CPUs"
    )
    results = {
        "machine": machine(),
        "scale": SCALE,
        "timers": asdict(Timers()),
        "fault_seconds": scenarios.FAULT_SECONDS,
        "faults": rows,
        "fuzz": fuzzed,
        "pending": PENDING,
        "held": held,
        "took_seconds": round(took, 1),
    }
    path = out / "faults-latest.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"\n{path}")
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
