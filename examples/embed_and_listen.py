"""Embed gocd-mesos: start a system on simulated GoCD and Mesos, listen to its plans, stop.

Run it from a checkout or after ``pip install .``::

    python examples/embed_and_listen.py

Both simulators run in this process on one scaled clock (ten simulated seconds
per second), so the few jobs it schedules get agents, run and finish in a few
seconds. A plain function listens to what the system publishes and prints every
scale plan with each waiting job's reason. Exit status 0 once the jobs are done
and the system has stopped.
"""

from __future__ import annotations

import sys
import tempfile

import actors
from actors.messages import ScalePlan
from actors.sim.gocd import GoCDSimulator
from actors.sim.mesos import MesosSimulator

KEY = "example-auto-register-key"


class PlanPrinter:
    """The listener: a plain callable, run on a thread of its own, so printing never holds an
    actor up. It prints a plan when what it says differs from the last one printed."""

    def __init__(self, start: float) -> None:
        self._start = start
        self._last: object = None

    def __call__(self, message: object) -> None:
        if not isinstance(message, ScalePlan):
            return
        said = (message.launches, message.drains, tuple((r.locator, r.reason) for r in message.reasons))
        if said == self._last:
            return
        self._last = said
        launches = ", ".join(f"{n} {profile}" for profile, n in message.launches) or "nothing"
        at = message.decided_at - self._start
        print(f"plan at t={at:.0f}s: launch {launches}, drain {len(message.drains)}")
        for reason in message.reasons:
            detail = f" ({reason.detail})" if reason.detail else ""
            print(f"  {reason.locator}: {reason.reason}{detail}")


def main() -> int:
    clock = actors.ScaledClock(10.0)
    gocd = GoCDSimulator(clock=clock, auto_register_key=KEY)
    mesos = MesosSimulator(clock=clock, agents=2, cpus=8, mem=16384)
    gocd_url, mesos_url = gocd.start(), mesos.start()
    state_dir = tempfile.mkdtemp(prefix="gocd-mesos-example-")
    settings = actors.Settings.from_dict(
        {
            "gocd": {"url": gocd_url, "poll_interval": "2s"},
            "mesos": {"master": mesos_url, "refuse_seconds": "5s"},
            "agents": {"auto_register_key": KEY},
            "profiles": {
                "linux": {"image": "gocd/gocd-agent-ubuntu-24.04:v25.1.0", "resources": ["linux"], "max": 4},
            },
            "state": {"dir": state_dir},
            "http": {"listen": "127.0.0.1:0"},
        }
    )
    system = actors.start(settings, clock=clock, listeners=(PlanPrinter(clock.now()),))
    try:
        locators = gocd.schedule_jobs("example", count=3, resources=["linux"], duration_s=20)
        gocd.schedule_jobs("windows-only", resources=["windows"], duration_s=20)  # no profile serves it
        finished = gocd.wait_for(
            lambda st: (
                sum(1 for j in st["jobs"] if j["locator"] in locators and j["state"] == "completed") == 3
            ),
            timeout=45,
        )
    finally:
        ended = system.stop()
        mesos.stop()
        gocd.stop()
    print(f"jobs finished: {finished}; system ended with status {ended.status}")
    return 0 if finished and ended.status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
