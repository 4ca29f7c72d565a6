"""The builtin v1 driver against the Mesos simulator over real HTTP on loopback."""

from __future__ import annotations

import importlib.util
import json
import threading

import pytest

from actors.clock import ScaledClock
from actors.exceptions import MesosError
from actors.mesos.driver import MesosSchedulerDriver, Scheduler, _parse_masters, zk_leader_node, zk_master_url
from actors.sim.mesos import MesosSimulator
from tests.mesos_client import FakeAgents, task_info

FRAMEWORK = {"user": "gocd", "name": "driver-test", "failover_timeout": 3600.0}


class Recorder(Scheduler):
    """Records every callback; ``wait`` blocks until one arrived."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []
        self.cond = threading.Condition()
        self.threads: set[str] = set()

    def _record(self, name: str, *args) -> None:
        with self.cond:
            self.calls.append((name, args))
            self.threads.add(threading.current_thread().name)
            self.cond.notify_all()

    def wait(self, name: str, count: int = 1, timeout: float = 10.0, where=lambda args: True) -> list[tuple]:
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.named(name, where)) >= count, timeout)
            assert ok, f"no {count} x {name}; got {[c[0] for c in self.calls]}"
            return self.named(name, where)

    def named(self, name: str, where=lambda args: True) -> list[tuple]:
        return [args for n, args in self.calls if n == name and where(args)]

    def registered(self, driver, frameworkId, masterInfo):
        self._record("registered", frameworkId, masterInfo)

    def reregistered(self, driver, masterInfo):
        self._record("reregistered", masterInfo)

    def disconnected(self, driver):
        self._record("disconnected")

    def resourceOffers(self, driver, offers):
        self._record("resourceOffers", offers)

    def offerRescinded(self, driver, offerId):
        self._record("offerRescinded", offerId)

    def statusUpdate(self, driver, status):
        self._record("statusUpdate", status)

    def slaveLost(self, driver, slaveId):
        self._record("slaveLost", slaveId)

    def error(self, driver, message):
        self._record("error", message)

    def processHeartBeat(self, driver):
        self._record("heartbeat")


def state_is(state):
    return lambda args: args[0]["state"] == state


@pytest.fixture
def fast_clock():
    return ScaledClock(50)


@pytest.fixture
def sim(fast_clock):
    simulator = MesosSimulator(clock=fast_clock, agents=2, heartbeat_interval=2.0, agent_factory=FakeAgents())
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def drivers():
    made: list[MesosSchedulerDriver] = []
    yield made
    for d in made:
        d.stop(failover=True)
        d.join(5)


@pytest.fixture
def start(sim, fast_clock, drivers):
    def make(master=None, framework=None, **kw) -> tuple[MesosSchedulerDriver, Recorder]:
        sched = kw.pop("sched", None) or Recorder()
        kw.setdefault("implicit_acknowledgements", False)
        driver = MesosSchedulerDriver(
            sched, dict(framework or FRAMEWORK), master or sim.url, clock=fast_clock, **kw
        )
        drivers.append(driver)
        driver.start()
        return driver, sched

    return make


def launch_one(driver, sched, task_id="t1"):
    ((offers,),) = sched.wait("resourceOffers")[:1]
    o = offers[0]
    driver.launchTasks([o["id"]], [task_info(task_id, o["agent_id"]["value"])], {"refuse_seconds": 60})
    for state in ("TASK_STARTING", "TASK_RUNNING"):
        ((status,),) = sched.wait("statusUpdate", where=lambda a, s=state: a[0]["state"] == s)[-1:]
        driver.acknowledgeStatusUpdate(status)
    return o


def framework_state(sim):
    (f,) = sim.state()["frameworks"]
    return f


def test_subscribe_launch_acknowledge_kill(sim, start):
    driver, sched = start()
    ((fid, info),) = sched.wait("registered")
    assert fid["value"] == driver.framework_id and info["port"] == int(sim.url.rsplit(":", 1)[1])
    assert driver.connected and driver.master == sim.address
    launch_one(driver, sched)
    assert framework_state(sim)["tasks"][0]["state"] == "TASK_RUNNING"
    driver.killTask({"value": "t1"})
    ((killed,),) = sched.wait("statusUpdate", where=state_is("TASK_KILLED"))
    driver.acknowledgeStatusUpdate(killed)
    sched.wait("heartbeat")
    assert sched.threads == {"mesos-driver"}  # every callback on the driver's own thread


def test_reconcile_keeps_agent_ids(sim, start):
    driver, sched = start()
    sched.wait("registered")
    driver.reconcileTasks(
        [{"task_id": {"value": "ghost"}}, {"task_id": {"value": "g2"}, "agent_id": {"value": "nowhere"}}]
    )
    lost = sched.wait("statusUpdate", 2, where=state_is("TASK_LOST"))
    assert {s["task_id"]["value"] for (s,) in lost} == {"ghost", "g2"}
    assert all("uuid" not in s for (s,) in lost)


def test_a_dropped_stream_resubscribes_with_the_same_id_and_loses_no_task(sim, start):
    driver, sched = start()
    ((fid, _),) = sched.wait("registered")
    launch_one(driver, sched)
    sim.inject_fault("drop_stream")
    sched.wait("disconnected")
    sched.wait("reregistered")
    assert driver.framework_id == fid["value"] and len(sim.state()["frameworks"]) == 1
    assert framework_state(sim)["tasks"][0]["state"] == "TASK_RUNNING"
    assert not sched.named("statusUpdate", where=state_is("TASK_LOST"))


def test_a_silent_stream_is_dropped_by_the_heartbeat_watchdog(sim, start):
    _driver, sched = start()
    sched.wait("registered")
    sim.inject_fault("stall_stream")
    sched.wait("disconnected")
    sched.wait("reregistered")
    assert framework_state(sim)["active"]


def test_follows_a_307_to_the_leader(sim, start):
    old = sim.url
    leader = sim.inject_fault("leader_change")["leader"]
    driver, sched = start(master=old)
    sched.wait("registered")
    assert driver.master == leader


def test_tries_the_master_list_in_turn(sim, start):
    driver, sched = start(master=f"http://127.0.0.1:9,{sim.address}")
    sched.wait("registered")
    assert driver.master == sim.address


def test_authentication(fast_clock, drivers):
    with MesosSimulator(
        clock=fast_clock, agents=1, principal="gocd", secret="s3cret", agent_factory=FakeAgents()
    ) as sim:
        framework = {**FRAMEWORK, "principal": "gocd"}
        good = MesosSchedulerDriver(
            Recorder(), framework, sim.url, principal="gocd", secret="s3cret", clock=fast_clock
        )
        bad = MesosSchedulerDriver(
            Recorder(), framework, sim.url, principal="gocd", secret="nope", clock=fast_clock
        )
        drivers.extend([good, bad])
        good.start()
        bad.start()
        good.sched.wait("registered")
        ((message,),) = bad.sched.wait("error")
        assert "refused our credentials (HTTP 401)" in message
        bad.join(5)
        assert bad.aborted and not bad.connected


def test_a_callback_exception_never_tears_the_framework_down(sim, start):
    class Boom(Recorder):
        def resourceOffers(self, driver, offers):
            super().resourceOffers(driver, offers)
            raise ValueError("boom in callback")

    driver, sched = start(sched=Boom())
    sched.wait("resourceOffers")
    launch_one(driver, sched)
    assert framework_state(sim)["active"] and sim.state()["completed_frameworks"] == []


def test_stop_with_failover_keeps_the_framework_and_without_tears_it_down(sim, start):
    driver, sched = start()
    sched.wait("registered")
    launch_one(driver, sched)
    driver.stop(failover=True)
    driver.join(5)
    assert sim.state()["frameworks"][0]["tasks"][0]["state"] == "TASK_RUNNING"
    driver.start()
    sched.wait("reregistered")
    driver.stop()  # failover=False: TEARDOWN
    driver.join(5)
    assert sim.state()["completed_frameworks"][0]["id"] == sched.named("registered")[0][0]["value"]
    assert driver.framework_id is None


def test_a_removed_framework_backs_off_then_reports_the_error(sim, start):
    driver, sched = start()
    ((fid, _),) = sched.wait("registered")
    driver.stop()  # TEARDOWN: the id is now "removed"
    driver.join(5)
    again, sched2 = start(framework={**FRAMEWORK, "id": fid})
    ((message,),) = sched2.wait("error")
    assert message == "Framework has been removed"
    again.join(5)
    assert again.aborted and not sched2.named("registered")


def test_implicit_acknowledgements(sim, start):
    driver, sched = start(implicit_acknowledgements=True)
    (offers,) = sched.wait("resourceOffers")[0]
    o = offers[0]
    driver.launchTasks(o["id"], [task_info("t1", o["agent_id"]["value"])])
    sched.wait("statusUpdate", where=state_is("TASK_RUNNING"))
    driver.killTask({"value": "t1"})
    sched.wait("statusUpdate", where=state_is("TASK_KILLED"))
    # the terminal update was acknowledged: the master forgets the task
    sched.wait("heartbeat", count=len(sched.named("heartbeat")) + 2)
    assert framework_state(sim)["tasks"] == []


def test_calls_before_subscription_are_dropped_and_failed_calls_raise(sim, fast_clock, start):
    idle = MesosSchedulerDriver(Recorder(), FRAMEWORK, sim.url, clock=fast_clock)
    idle.declineOffer({"value": "O1"})  # not connected: silently dropped, as pymesos does
    driver, sched = start()
    sched.wait("registered")
    driver._stream_id = "not-the-stream"
    with pytest.raises(MesosError, match="400"):
        driver.reviveOffers()


def test_zookeeper_leader_detection(sim, start):
    assert zk_leader_node(["log_replicas", "json.info_0000000012", "json.info_0000000003", "info_1"]) == (
        "json.info_0000000003"
    )
    assert zk_leader_node(["log_replicas"]) is None
    host, port = sim.address.split(":")
    data = json.dumps({"address": {"hostname": "m", "ip": host, "port": int(port)}}).encode()
    assert zk_master_url(data) == f"http://{sim.address}"

    class FakeZk:
        def __init__(self, hosts):
            self.hosts = hosts

        def start(self):
            pass

        def stop(self):
            pass

        def close(self):
            pass

        def get_children(self, path):
            assert path == "/mesos"
            return ["json.info_0000000001", "log_replicas"]

        def get(self, path):
            assert path == "/mesos/json.info_0000000001"
            return data, None

    driver, sched = start(master="zk://127.0.0.1:2181/mesos", zk_client_factory=FakeZk)
    sched.wait("registered")
    assert driver.master == sim.address


@pytest.mark.skipif(importlib.util.find_spec("kazoo") is not None, reason="kazoo is installed")
def test_zk_without_kazoo_is_a_clear_error():
    with pytest.raises(MesosError, match=r"gocd-mesos\[zookeeper\]"):
        MesosSchedulerDriver(Recorder(), FRAMEWORK, "zk://127.0.0.1:2181/mesos")


def test_master_strings():
    assert _parse_masters("http://a:5050, https://b:5050") == (None, ("http://a:5050", "https://b:5050"))
    assert _parse_masters("a:5050") == (None, ("http://a:5050",))
    assert _parse_masters("zk://z:2181/mesos") == ("zk://z:2181/mesos", ())
    with pytest.raises(MesosError):
        _parse_masters(" , ")


def test_sessions_carry_tls_verification_and_credentials(tmp_path):
    bundle = str(tmp_path / "ca.pem")
    driver = MesosSchedulerDriver(
        Recorder(), FRAMEWORK, "https://m:5050", principal="p", secret="s", verify=bundle
    )
    session = driver._new_session()
    assert session.verify == bundle and session.auth == ("p", "s")
