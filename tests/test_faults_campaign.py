"""The fault campaign's own parts (``bench/faults``; the campaign runs with ``tox -e faults``).

The fuzzing targets run here on a few payloads each, so that a change to a parser, the
configuration or a policy that breaks a target's contract, or the campaign's code, shows
in the default suite; the tables render what a run gives.
"""

from __future__ import annotations

from bench.faults import fuzz
from bench.faults.__main__ import PENDING, fault_table, fuzz_table
from bench.faults.invariants import INVARIANTS


def test_every_fuzzing_target_holds_on_a_few_payloads():
    rows = fuzz.run(140)
    assert [r["target"] for r in rows] == list(fuzz.TARGETS)
    assert all(r["held"] for r in rows), [r.get("failure") for r in rows if not r["held"]]
    assert all(r["payloads"] > 0 for r in rows)


def test_the_tables_show_each_invariant_held_or_broken_and_what_is_pending():
    held = {key: {"held": True, "detail": ""} for key in INVARIANTS}
    rows = [
        {"fault": "gocd-500", "injected": "every API call 500", "invariants": held, "took_seconds": 21.4},
        {
            "fault": "mesos-failover",
            "injected": "master failover",
            "invariants": {**held, "no_orphans": {"held": False, "detail": "x"}},
            "took_seconds": 9.6,
        },
        {"fault": "fleet-truncated", "injected": "cut", "error": "TimeoutError: x", "took_seconds": 60.0},
    ]
    table = fault_table(rows).splitlines()
    assert table[0].split(" | ")[2:-1] == list(INVARIANTS.values())
    assert table[2] == "| gocd-500 | every API call 500 | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ | 21 s |"
    assert table[3] == "| mesos-failover | master failover | ✓ | ✗ | ✓ | ✓ | ✓ | ✓ | 10 s |"
    assert table[4].startswith("| fleet-truncated (error) | cut | - |")
    assert any("gocd-feed-removed" in line and "pending" in line for line in table) == (
        "gocd-feed-removed" in PENDING
    )
    fuzzed = fuzz_table([{"target": "t", "payloads": 12_000, "property": "p", "held": True}]).splitlines()
    assert fuzzed[2] == "| t | 12,000 | p | ✓ |"
    assert fuzzed[3] == "| **total** | **12,000** | | ✓ |"
