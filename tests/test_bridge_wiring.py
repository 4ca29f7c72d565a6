"""Wiring: the real MesosBridge actor and a real driver against the Mesos simulator over HTTP.

Every test runs with the builtin driver and again with unmodified pymesos
0.3.15 (skipped where pymesos is not installed; ``tox -e pymesos`` installs it
on CPython 3.10). ``GOCD_MESOS_TEST_DRIVER=builtin|pymesos`` runs only one.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal

import pytest

from actors import state
from actors.clock import ScaledClock
from actors.config import AgentSettings, MesosSettings, Profile, Secret
from actors.mesos.bridge import FRAMEWORK_ID_FILE, MesosBridge
from actors.mesos.driver import driver_factory, load_pymesos
from actors.messages import (
    FrameworkRegistered,
    KillAgent,
    LaunchAgents,
    ReconcileTasks,
    TaskLaunched,
    TaskUpdate,
)
from actors.sim.mesos import MesosSimulator
from tests.mesos_client import FakeAgents

DRIVERS = [d for d in ("builtin", "pymesos") if os.environ.get("GOCD_MESOS_TEST_DRIVER", d) == d]
AGENTS = AgentSettings(go_server_url="http://127.0.0.1:8153/go", auto_register_key=Secret("key"))
SMALL = Profile(
    name="small", image="gocd/gocd-agent-ubuntu-24.04:v25.1.0", cpus=1, mem=512, resources=("linux",)
)


@pytest.fixture(params=DRIVERS)
def driver_kind(request):
    if request.param == "pymesos" and importlib.util.find_spec("pymesos") is None:
        pytest.skip("pymesos is not installed (tox -e pymesos runs these on CPython 3.10)")
    return request.param


@pytest.fixture
def fast_clock():
    return ScaledClock(50)


@pytest.fixture
def agents():
    return FakeAgents()


@pytest.fixture
def sim(fast_clock, agents):
    simulator = MesosSimulator(
        clock=fast_clock, agents=2, cpus=4, mem=4096, heartbeat_interval=5.0, agent_factory=agents
    )
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def bridge(sim, driver_kind, fast_clock, recorder, tmp_path):
    refs = []

    def start():
        mesos = MesosSettings(
            masters=(sim.url,), user="gocd", driver=driver_kind, refuse_seconds=30.0, failover_timeout=3600.0
        )
        # Built here, in the main thread: pymesos must be imported there.
        ref = MesosBridge.start(
            mesos=mesos,
            agents=AGENTS,
            profiles=(SMALL,),
            state_dir=str(tmp_path),
            clock=fast_clock,
            subscribers=(recorder,),
        )
        refs.append(ref)
        return ref

    yield start
    for ref in refs:
        ref.stop(timeout=10)  # before the simulator goes away


def wait_running(recorder, task_ids):
    """Block until every task in ``task_ids`` reported TASK_RUNNING."""

    def check():
        return set(task_ids) <= {u.task_id for u in recorder.of(TaskUpdate) if u.state == "TASK_RUNNING"}

    with recorder._cond:
        assert recorder._cond.wait_for(check, 10), recorder.messages


def test_launch_run_and_kill_agents(bridge, recorder, agents, sim, tmp_path):
    ref = bridge()
    (registered,) = recorder.wait_for(FrameworkRegistered)
    assert state.read_text(str(tmp_path / FRAMEWORK_ID_FILE)) == registered.framework_id
    ref.tell(LaunchAgents("small", ("gocd-mesos-a1", "gocd-mesos-a2", "gocd-mesos-a3")))
    launched = recorder.wait_for(TaskLaunched, 3)
    assert {m.task_id for m in launched} == {"gocd-mesos-a1", "gocd-mesos-a2", "gocd-mesos-a3"}
    wait_running(recorder, ["gocd-mesos-a1", "gocd-mesos-a2", "gocd-mesos-a3"])
    assert all(u.profile == "small" for u in recorder.of(TaskUpdate))
    agents.wait(lambda made: len(made) == 3 and all(a.started for a in made))
    env = next(a.env for a in agents.made if a.env["AGENT_AUTO_REGISTER_HOSTNAME"] == "gocd-mesos-a1")
    assert env["GO_SERVER_URL"] == "http://127.0.0.1:8153/go" and env["AGENT_AUTO_REGISTER_KEY"] == "key"
    assert env["AGENT_AUTO_REGISTER_RESOURCES"] == "linux"
    (framework,) = sim.state()["frameworks"]
    assert {t["labels"][1]["value"] for t in framework["tasks"]} == {"small"}
    ref.tell(KillAgent("gocd-mesos-a2"))
    with recorder._cond:
        assert recorder._cond.wait_for(
            lambda: any(
                u.state == "TASK_KILLED" and u.task_id == "gocd-mesos-a2" for u in recorder.of(TaskUpdate)
            ),
            10,
        )
    agents.wait(
        lambda made: [a.env["AGENT_AUTO_REGISTER_HOSTNAME"] for a in made if a.stopped] == ["gocd-mesos-a2"]
    )


def test_a_dropped_stream_resubscribes_with_the_same_id_and_no_task_is_lost(bridge, recorder, sim):
    ref = bridge()
    (first,) = recorder.wait_for(FrameworkRegistered)
    ref.tell(LaunchAgents("small", ("gocd-mesos-b1", "gocd-mesos-b2")))
    wait_running(recorder, ["gocd-mesos-b1", "gocd-mesos-b2"])
    sim.inject_fault("drop_stream")
    again = recorder.wait_for(FrameworkRegistered, 2)[1]
    assert again.reregistered and again.framework_id == first.framework_id
    (framework,) = sim.state()["frameworks"]
    assert framework["id"] == first.framework_id and framework["active"]
    assert sorted((t["id"], t["state"]) for t in framework["tasks"]) == [
        ("gocd-mesos-b1", "TASK_RUNNING"),
        ("gocd-mesos-b2", "TASK_RUNNING"),
    ]
    assert not [u for u in recorder.of(TaskUpdate) if u.is_terminal]


def test_a_restarted_daemon_gets_its_framework_and_agents_back(bridge, recorder, sim):
    ref = bridge()
    (first,) = recorder.wait_for(FrameworkRegistered)
    ref.tell(LaunchAgents("small", ("gocd-mesos-c1",)))
    wait_running(recorder, ["gocd-mesos-c1"])
    ref.stop(timeout=10)
    ref2 = bridge()
    second = recorder.wait_for(FrameworkRegistered, 2)[1]
    assert second.framework_id == first.framework_id
    ref2.tell(ReconcileTasks((("gocd-mesos-c1", "small"),)))
    with recorder._cond:
        assert recorder._cond.wait_for(
            lambda: any(
                u.reason == "REASON_RECONCILIATION" and u.profile == "small" for u in recorder.of(TaskUpdate)
            ),
            10,
        )
    assert sim.state()["frameworks"][0]["tasks"][0]["state"] == "TASK_RUNNING"


def test_a_new_leader_is_followed(bridge, recorder, sim):
    bridge()
    (first,) = recorder.wait_for(FrameworkRegistered)
    leader = sim.inject_fault("leader_change")["leader"]
    again = recorder.wait_for(FrameworkRegistered, 2)[1]
    assert again.framework_id == first.framework_id and again.master.endswith(leader.split(":")[1])


def test_pymesos_is_loaded_without_its_import_side_effects(driver_kind, fast_clock):
    if driver_kind != "pymesos":
        pytest.skip("pymesos only")
    before = signal.getsignal(signal.SIGINT)
    pymesos = load_pymesos()
    assert signal.getsignal(signal.SIGINT) is before
    assert signal.getsignal(signal.SIGINT) is not pymesos.process._handle_sigint
    assert [h for h in logging.getLogger("pymesos").handlers if type(h) is logging.StreamHandler] == []
    mesos = MesosSettings(
        masters=("http://127.0.0.1:5050",), driver="pymesos", principal="p", secret=Secret("s")
    )
    driver = driver_factory(mesos, fast_clock)(object(), {"user": "u", "name": "n"})
    assert isinstance(driver, pymesos.MesosSchedulerDriver)
    assert driver._failover is True and driver.implicit_acknowledgements is False
    assert driver._basic_credential == "Basic cDpz" and driver.master_uri == "127.0.0.1:5050"
