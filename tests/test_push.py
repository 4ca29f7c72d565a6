"""Push: GoCD's hints and the regular poll together, with the real poller, registry and judge.

The actors run on their threads on a manual clock; the poller reads a fake GoCD client and the
Mesos bridge is a recording ref, so every launch the registry asks for is counted. The tests
synchronise on the plans the judge publishes, never on sleeps.
"""

from __future__ import annotations

import logging
import random
from dataclasses import replace

import pytest
import requests

from actors.base import Ping
from actors.config import AgentSettings, JudgeSettings, Profile, Secret
from actors.fleet.judge import Judge
from actors.fleet.registry import AgentRegistry
from actors.gocd.poller import GoCDPoller
from actors.http.server import StatusServer
from actors.messages import BacklogSnapshot, GoCDHint, LaunchAgents, Peers, ScalePlan, ScheduledJob
from actors.sim.gocd import GoCDSimulator
from tests.conftest import WATCHED_SECRETS, RecordingRef
from tests.gocd_support import PASSWORD, settings
from tests.test_http_hooks import AGENT, DO_STAGE
from tests.test_poller import FakeClient

HOOK_SECRET = WATCHED_SECRETS[3]

JOB = ScheduledJob(
    locator="app/7/build/1/unit",
    pipeline="app",
    pipeline_counter=7,
    stage="build",
    stage_counter=1,
    name="unit",
    resources=frozenset({"linux"}),
)
LINUX = Profile(name="linux", image="i", resources=("linux",), max=10)


class Brain:
    """Poller, registry and judge wired as start() wires them; the bridge records."""

    def __init__(self, clock, tmp_path) -> None:
        self.clock = clock
        self.client = FakeClient()
        self.client.jobs, self.client.agents_ = (), ()
        self.bridge, self.plans = RecordingRef(), RecordingRef()
        self.registry = AgentRegistry.start(
            agents=AgentSettings(go_server_url="http://gocd/go", auto_register_key=Secret("k")),
            profiles=(LINUX,),
            judge_settings=JudgeSettings(stale_after=60),
            state_dir=str(tmp_path),
            clock=clock,
            poll_interval=30,
        )
        self.judge = Judge.start(
            profiles=(LINUX,),
            settings=JudgeSettings(stale_after=60),
            clock=clock,
            registry=self.registry,
            subscribers=(self.plans,),
        )
        self.poller = GoCDPoller.start(
            settings=replace(settings("http://gocd.test/go"), poll_interval=30.0),
            clock=clock,
            subscribers=(self.registry,),
            client=self.client,
            rng=random.Random(1),
        )
        self.registry.tell(Peers(judge=self.judge, bridge=self.bridge, poller=self.poller))
        self.decided = 0
        self.wait_for_plans(1)  # the plan the registry asks for once it knows its peers

    def wait_for_plans(self, count: int) -> list[ScalePlan]:
        self.plans.wait_until(
            lambda ms: sum(isinstance(m, ScalePlan) for m in ms) >= count, 10, f"{count} plans"
        )
        self.decided = count
        return self.plans.of(ScalePlan)

    def read(self, advance: float) -> ScalePlan:
        """Advance the clock to a read of GoCD (a poll or a hinted read) and wait for its plan."""
        self.clock.advance(advance)
        return self.wait_for_plans(self.decided + 1)[-1]

    def hint(self) -> None:
        self.poller.tell(GoCDHint("backlog", self.clock.now(), "app/7/build/1 scheduled"))
        self.poller.ask(Ping(), timeout=10)  # its read is scheduled before the clock moves on

    def launches(self) -> list[LaunchAgents]:
        return self.bridge.of(LaunchAgents)


@pytest.mark.parametrize("first", ["hint", "poll"])
def test_a_job_seen_by_a_hinted_read_and_by_the_poll_is_launched_for_once(clock, tmp_path, first):
    brain = Brain(clock, tmp_path)
    brain.read(0)  # the first poll: nothing waits
    if first == "hint":
        brain.clock.advance(5)
        brain.client.jobs = (JOB,)  # GoCD schedules a job and notifies
        brain.hint()
        plan = brain.read(0.5)  # the hinted read
        assert plan.launches == (("linux", 1),)
        plan = brain.read(24.5)  # the regular poll at 30 sees the same job
    else:
        brain.clock.advance(29.8)
        brain.client.jobs = (JOB,)
        brain.hint()
        plan = brain.read(0.2)  # the regular poll at 30 reads it first and answers the hint
        assert plan.launches == (("linux", 1),)
        brain.hint()  # GoCD notifies again (an agent's change, a stage of another pipeline)
        plan = brain.read(0.5)  # the hinted read sees the same job
    assert plan.launches == () and [r.reason for r in plan.reasons] == ["agent-starting"]
    plan = brain.read(30)  # and the poll after that
    assert plan.launches == () and [r.reason for r in plan.reasons] == ["agent-starting"]
    (launch,) = brain.launches()
    assert launch.profile == "linux" and launch.count == 1
    assert brain.client.reads.count("jobs") == 4


def test_a_burst_of_100_notifications_over_http_is_one_read_of_gocd(clock, recorder):
    sim = GoCDSimulator(clock=clock, username="admin", password=PASSWORD)
    sim.start()
    poller = GoCDPoller.start(
        settings=settings(sim.url, username="admin", password=PASSWORD), clock=clock, subscribers=(recorder,)
    )
    server = StatusServer(
        host="127.0.0.1", port=0, clock=clock, webhook_secret=Secret(HOOK_SECRET), on_hint=poller.tell
    )
    server.start()
    client_log = logging.getLogger("urllib3.connectionpool")  # it would log the hook's secret
    level = client_log.level
    client_log.setLevel(logging.INFO)
    try:
        clock.advance(0)  # the first poll
        recorder.wait_for(BacklogSnapshot, 1)

        def reads() -> int:
            return sum(1 for _, path, _ in list(sim.requests) if path.endswith("/scheduled.xml"))

        assert reads() == 1
        sim.schedule_jobs("app", resources=["linux"])
        with requests.Session() as session:
            for i in range(100):
                document = DO_STAGE if i % 2 else AGENT
                answer = session.post(f"{server.url}hooks/gocd/{HOOK_SECRET}", json=document, timeout=10)
                assert answer.status_code == 200
        poller.ask(Ping(), timeout=10)  # every hint is in
        clock.advance(0.5)
        (_, hinted) = recorder.wait_for(BacklogSnapshot, 2)
        assert [j.locator for j in hinted.jobs] == ["app/1/build/1/job"]
        clock.advance(5)
        poller.ask(Ping(), timeout=10)
        assert reads() == 2 and len(recorder.of(BacklogSnapshot)) == 2
    finally:
        client_log.setLevel(level)
        server.stop()
        poller.stop()
        sim.stop()
