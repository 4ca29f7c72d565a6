"""A custom scaling policy, honoured end to end: never more than 2 launches per plan.

Run it from a checkout or after ``pip install .``::

    python examples/custom_policy.py

A policy is any object with the ``decide(request, profiles, settings, now)``
method of :class:`actors.fleet.judge.Policy` (a plain function of that signature
works too). This one asks the default policy for its plan and keeps at most two
of its launches; each job it holds back says why (``held-by-policy``). Five jobs
are scheduled on simulated GoCD and Mesos; the script checks from the published
plans and from the Mesos simulator that no plan launched more than two agents,
prints each plan, and exits 0 once every job has run.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile

import actors
from actors.config import JudgeSettings, Profile
from actors.fleet.judge import DefaultPolicy
from actors.messages import Decide, JobReason, ScalePlan
from actors.sim.gocd import GoCDSimulator
from actors.sim.mesos import MesosSimulator

KEY = "example-auto-register-key"
MAX_PER_PLAN = 2


class AtMostTwoPerPlan:
    """The default policy, with at most ``MAX_PER_PLAN`` launches in any one plan."""

    def __init__(self) -> None:
        self._default = DefaultPolicy()

    def decide(
        self, request: Decide, profiles: tuple[Profile, ...], settings: JudgeSettings, now: float
    ) -> ScalePlan:
        plan = self._default.decide(request, profiles, settings, now)
        budget, launches = MAX_PER_PLAN, []
        for profile, count in plan.launches:
            if budget > 0:
                launches.append((profile, min(count, budget)))
                budget -= min(count, budget)
        held = sum(n for _, n in plan.launches) - sum(n for _, n in launches)
        reasons = list(plan.reasons)
        for i in range(len(reasons) - 1, -1, -1):  # hold back the newest jobs
            if held and reasons[i].reason == "launching":
                r = reasons[i]
                reasons[i] = JobReason(
                    r.locator, "held-by-policy", r.profile, f"at most {MAX_PER_PLAN} per plan"
                )
                held -= 1
        return dataclasses.replace(plan, launches=tuple(launches), reasons=tuple(reasons))


def main() -> int:
    clock = actors.ScaledClock(10.0)
    gocd = GoCDSimulator(clock=clock, auto_register_key=KEY)
    mesos = MesosSimulator(clock=clock, agents=2, cpus=8, mem=16384)
    gocd_url, mesos_url = gocd.start(), mesos.start()
    settings = actors.Settings.from_dict(
        {
            "gocd": {"url": gocd_url, "poll_interval": "2s"},
            "mesos": {"master": mesos_url, "refuse_seconds": "5s"},
            "agents": {"auto_register_key": KEY},
            "profiles": {"linux": {"image": "gocd/gocd-agent-ubuntu-24.04:v25.1.0", "resources": ["linux"]}},
            "state": {"dir": tempfile.mkdtemp(prefix="gocd-mesos-example-")},
            "http": {"listen": "127.0.0.1:0"},
        }
    )
    plans: list[ScalePlan] = []

    def show(message: object) -> None:
        if isinstance(message, ScalePlan) and message.launches:
            plans.append(message)
            print(f"plan: launch {sum(n for _, n in message.launches)}")
            for reason in message.reasons:
                print(f"  {reason.locator}: {reason.reason} {reason.detail}".rstrip())

    system = actors.start(settings, clock=clock, listeners=(show,), policy=AtMostTwoPerPlan())
    try:
        locators = gocd.schedule_jobs("custom", count=5, resources=["linux"], duration_s=10)
        finished = gocd.wait_for(
            lambda st: (
                sum(1 for j in st["jobs"] if j["locator"] in locators and j["state"] == "completed") == 5
            ),
            timeout=50,
        )
    finally:
        ended = system.stop()
        tasks = [t for f in mesos.state()["frameworks"] for t in f["tasks"] + f["completed_tasks"]]
        mesos.stop()
        gocd.stop()
    largest = max((sum(n for _, n in p.launches) for p in plans), default=0)
    print(f"jobs finished: {finished}; plans that launched: {len(plans)}, the largest {largest}")
    print(f"Mesos saw {len(tasks)} tasks for 5 jobs")
    honoured = largest <= MAX_PER_PLAN and len(plans) >= 3 and len(tasks) == 5
    return 0 if finished and honoured and ended.status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
