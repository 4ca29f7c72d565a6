"""The Scheduler adapter: every callback becomes one message, and nothing ever raises."""

from __future__ import annotations

import pykka

from actors.mesos.events import (
    MesosAgentLost,
    MesosDisconnected,
    MesosErrorReceived,
    MesosExecutorLost,
    MesosOfferRescinded,
    MesosOffersReceived,
    MesosStatusReceived,
)
from actors.mesos.scheduler import SchedulerAdapter
from actors.messages import FrameworkRegistered

OFFER = {
    "id": {"value": "O1"},
    "agent_id": {"value": "S1"},
    "hostname": "h1",
    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}, "role": "*"}],
}


class Driver:
    framework_id = "F-1"
    aborted = False


def test_callbacks_become_messages(recorder):
    adapter = SchedulerAdapter(recorder)
    driver = Driver()
    adapter.registered(driver, {"value": "F-1"}, {"hostname": "127.0.0.1", "port": 5050})
    adapter.reregistered(driver, {"hostname": "127.0.0.1", "port": 5051})
    adapter.disconnected(driver)
    adapter.processHeartBeat(driver)
    adapter.resourceOffers(driver, [OFFER, {"broken": True}])
    adapter.offerRescinded(driver, {"value": "O1"})
    adapter.statusUpdate(driver, {"task_id": {"value": "t"}, "state": "TASK_RUNNING", "uuid": "dQ=="})
    adapter.slaveLost(driver, {"value": "S1"})
    adapter.executorLost(driver, {"value": "E"}, {"value": "S1"}, 137)
    adapter.frameworkMessage(driver, {"value": "E"}, {"value": "S1"}, "aGk=")
    adapter.inverseOffers(driver, [])
    adapter.error(driver, "Framework failed over")
    kinds = [type(m) for m in recorder.messages]
    assert kinds == [
        FrameworkRegistered,
        FrameworkRegistered,
        MesosDisconnected,
        MesosOffersReceived,
        MesosOfferRescinded,
        MesosStatusReceived,
        MesosAgentLost,
        MesosExecutorLost,
        MesosErrorReceived,
    ]
    first, again = recorder.of(FrameworkRegistered)
    assert first == FrameworkRegistered("F-1", False, "127.0.0.1:5050")
    assert again == FrameworkRegistered("F-1", True, "127.0.0.1:5051")
    (offers,) = recorder.of(MesosOffersReceived)
    assert [o.id for o in offers.offers] == ["O1"]  # the unreadable offer is dropped
    assert recorder.of(MesosStatusReceived)[0].status.uuid == "dQ=="
    assert recorder.of(MesosExecutorLost)[0].exit_status == 137
    assert recorder.of(MesosErrorReceived)[0] == MesosErrorReceived("Framework failed over", False)


def test_nothing_escapes_a_callback(recorder):
    recorder.dead = True  # every tell raises ActorDeadError
    adapter = SchedulerAdapter(recorder)
    adapter.registered(None, None, None)
    adapter.resourceOffers(None, None)
    adapter.statusUpdate(None, {"no": "task"})
    adapter.executorLost(None, None, None, "x")
    adapter.error(None, "boom")
    adapter.disconnected(None)


def test_a_stopped_bridge_is_fine():
    class Dead:
        def tell(self, message):
            raise pykka.ActorDeadError("gone")

    SchedulerAdapter(Dead()).slaveLost(None, {"value": "S1"})
