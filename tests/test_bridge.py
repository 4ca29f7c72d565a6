"""MesosBridge as an actor without a thread: fake driver, manual clock, on_receive called directly."""

from __future__ import annotations

import logging
import os
from dataclasses import replace

import pytest

from actors import state
from actors.config import AgentSettings, Constraint, MesosSettings, Profile, Secret
from actors.mesos.bridge import FRAMEWORK_ID_FILE, MesosBridge
from actors.mesos.events import (
    MesosAttribute,
    MesosDisconnected,
    MesosErrorReceived,
    MesosOffer,
    MesosOffersReceived,
    MesosResource,
    MesosStatusReceived,
    MesosTaskStatus,
)
from actors.messages import (
    FrameworkDisconnected,
    FrameworkError,
    FrameworkRegistered,
    KillAgent,
    LaunchAgents,
    OffersHandled,
    ReconcileTasks,
    TaskLaunched,
    TaskUpdate,
)

MESOS = MesosSettings(masters=("http://127.0.0.1:5050",), user="gocd", refuse_seconds=30.0)
AGENTS = AgentSettings(go_server_url="http://127.0.0.1:8153/go", auto_register_key=Secret("key"))
SMALL = Profile(name="small", image="gocd/agent:v1", cpus=1, mem=1024)
LINUX = Profile(
    name="linux", image="gocd/agent:v1", cpus=1, mem=1024, constraints=(Constraint("os", "IS", "linux"),)
)


class FakeDriver:
    """Records every driver call as (method, args)."""

    def __init__(self, sched, framework):
        self.sched = sched
        self.framework = framework
        self.calls: list[tuple[str, tuple]] = []
        self.started = self.stopped = False

    def start(self):
        self.started = True

    def stop(self, failover=False):
        self.stopped = True
        self.calls.append(("stop", (failover,)))

    def join(self, timeout=None):
        pass

    def __getattr__(self, name):
        def record(*args):
            self.calls.append((name, args))

        return record

    def named(self, name):
        return [args for method, args in self.calls if method == name]


def offer(oid: str, cpus: float = 8, mem: float = 16384, agent: str = "S1", attrs=()) -> MesosOffer:
    return MesosOffer(
        id=oid,
        agent_id=agent,
        hostname=f"host-{agent}",
        resources=(MesosResource("cpus", "*", cpus), MesosResource("mem", "*", mem)),
        attributes=attrs,
    )


@pytest.fixture
def make(tmp_path, clock, recorder):
    drivers: list[FakeDriver] = []

    def factory(sched, framework):
        drivers.append(FakeDriver(sched, framework))
        return drivers[-1]

    def build(**kw) -> tuple[MesosBridge, list[FakeDriver]]:
        bridge = MesosBridge(
            mesos=kw.pop("mesos", MESOS),
            agents=AGENTS,
            profiles=kw.pop("profiles", (SMALL, LINUX)),
            state_dir=str(tmp_path),
            clock=clock,
            subscribers=(recorder,),
            driver_factory=factory,
            **kw,
        )
        bridge.on_start()
        return bridge, drivers

    return build


def registered(bridge, framework_id="F-1", reregistered=False):
    bridge.on_receive(FrameworkRegistered(framework_id, reregistered, "127.0.0.1:5050"))


def test_start_subscribes_with_the_persisted_framework_id(make, tmp_path):
    state.write_text(str(tmp_path / FRAMEWORK_ID_FILE), "F-OLD\n")
    bridge, (driver,) = make()
    assert driver.started
    assert (
        driver.framework["id"] == {"value": "F-OLD"} and driver.framework["failover_timeout"] == 7 * 86400.0
    )
    bridge.on_stop()
    assert driver.calls[-1] == ("stop", (True,))  # failover: agents keep running


def test_registration_persists_the_id_reconciles_and_suppresses(make, tmp_path, recorder):
    bridge, (driver,) = make()
    bridge.on_receive(ReconcileTasks((("t-known", "small"),)))
    assert driver.named("reconcileTasks") == []  # not connected yet
    registered(bridge)
    assert state.read_text(str(tmp_path / FRAMEWORK_ID_FILE)) == "F-1"
    assert recorder.of(FrameworkRegistered) == [FrameworkRegistered("F-1", False, "127.0.0.1:5050")]
    assert driver.named("reconcileTasks") == [([{"task_id": {"value": "t-known"}}],), ([],)]
    assert driver.named("suppressOffers") == [()]
    bridge.on_receive(MesosDisconnected())
    assert recorder.of(FrameworkDisconnected)
    registered(bridge, reregistered=True)
    assert len(driver.named("suppressOffers")) == 2  # a resubscription starts unsuppressed


def test_launch_revives_packs_declines_and_suppresses(make, recorder):
    bridge, (driver,) = make()
    registered(bridge)
    bridge.on_receive(LaunchAgents("small", ("a1", "a2", "a3")))
    assert driver.named("reviveOffers") == [()]
    bridge.on_receive(
        MesosOffersReceived((offer("O1", cpus=2), offer("O2", agent="S2"), offer("O3", agent="S3")))
    )
    launches = driver.named("launchTasks")
    assert [(ids, [t["task_id"]["value"] for t in infos]) for ids, infos, _ in launches] == [
        ([{"value": "O1"}], ["a1", "a2"]),
        ([{"value": "O2"}], ["a3"]),
    ]
    assert launches[0][2] == {"refuse_seconds": 30.0}
    assert driver.named("declineOffer") == [([{"value": "O3"}], {"refuse_seconds": 30.0})]
    assert recorder.of(TaskLaunched) == [
        TaskLaunched("a1", "small", "S1", "host-S1"),
        TaskLaunched("a2", "small", "S1", "host-S1"),
        TaskLaunched("a3", "small", "S2", "host-S2"),
    ]
    assert len(driver.named("suppressOffers")) == 2  # after registration, and now the queue is empty
    assert recorder.of(OffersHandled) == [OffersHandled(received=3, used=2, declined=1)]
    env = {v["name"]: v["value"] for v in launches[0][1][0]["command"]["environment"]["variables"]}
    assert env["AGENT_AUTO_REGISTER_HOSTNAME"] == "a1" and env["AGENT_AUTO_REGISTER_KEY"] == "key"


def test_a_task_id_too_long_for_a_hostname_is_launched_with_a_warning(make, caplog):
    bridge, (driver,) = make(profiles=(replace(SMALL, network="bridge"),))
    registered(bridge)
    long_id = "p" * 40 + "s" * 20 + "-0a1b2c3d"  # the longest id the registry makes: 69 characters
    bridge.on_receive(LaunchAgents("small", ("short-0a1b2c3d", long_id)))
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert long_id in warning.getMessage() and "63 characters" in warning.getMessage()
    bridge.on_receive(MesosOffersReceived((offer("O1"),)))
    ((_, infos, _),) = driver.named("launchTasks")
    assert [i["container"].get("hostname") for i in infos] == ["short-0a1b2c3d", None]


def test_offers_without_a_queue_are_declined(make):
    bridge, (driver,) = make()
    registered(bridge)
    bridge.on_receive(MesosOffersReceived((offer("O1"), offer("O2"))))
    assert driver.named("launchTasks") == []
    assert driver.named("declineOffer") == [([{"value": "O1"}, {"value": "O2"}], {"refuse_seconds": 30.0})]


def test_constraints_keep_a_task_queued_until_a_matching_offer(make, recorder):
    bridge, (driver,) = make()
    registered(bridge)
    bridge.on_receive(LaunchAgents("linux", ("l1",)))
    windows = (MesosAttribute("os", "TEXT", text="windows"),)
    bridge.on_receive(MesosOffersReceived((offer("O1", attrs=windows),)))
    assert driver.named("launchTasks") == [] and len(driver.named("declineOffer")) == 1
    linux = (MesosAttribute("os", "TEXT", text="linux"),)
    bridge.on_receive(MesosOffersReceived((offer("O2", agent="S2", attrs=linux),)))
    assert driver.named("launchTasks")[0][0] == [{"value": "O2"}]


def test_kill_of_a_queued_task_drops_it_and_reports_it_killed(make, recorder):
    bridge, (driver,) = make()
    registered(bridge)
    bridge.on_receive(LaunchAgents("small", ("a1",)))
    bridge.on_receive(KillAgent("a1"))
    (update,) = recorder.of(TaskUpdate)
    assert (update.task_id, update.state, update.profile) == ("a1", "TASK_KILLED", "small")
    assert driver.named("killTask") == []
    bridge.on_receive(MesosOffersReceived((offer("O1"),)))
    assert driver.named("launchTasks") == []
    bridge.on_receive(KillAgent("running-1"))
    assert driver.named("killTask") == [({"value": "running-1"},)]


def test_status_updates_are_forwarded_then_acknowledged(make, recorder, clock):
    bridge, (driver,) = make()
    registered(bridge)
    bridge.on_receive(LaunchAgents("small", ("a1",)))
    bridge.on_receive(MesosOffersReceived((offer("O1"),)))
    running = MesosTaskStatus("a1", "TASK_RUNNING", "S1", "SOURCE_EXECUTOR", uuid="VNKvV7CARDSywR/FQVfZ7w==")
    bridge.on_receive(MesosStatusReceived(running))
    (update,) = recorder.of(TaskUpdate)
    assert update == TaskUpdate("a1", "TASK_RUNNING", clock.now(), "", "", "SOURCE_EXECUTOR", "S1", "small")
    assert driver.named("acknowledgeStatusUpdate") == [
        (
            {
                "task_id": {"value": "a1"},
                "state": "TASK_RUNNING",
                "agent_id": {"value": "S1"},
                "uuid": running.uuid,
            },
        )
    ]
    # Master-made updates carry no uuid and are not acknowledged.
    bridge.on_receive(MesosStatusReceived(MesosTaskStatus("zz", "TASK_LOST", reason="REASON_RECONCILIATION")))
    assert recorder.of(TaskUpdate)[-1].profile == ""
    assert len(driver.named("acknowledgeStatusUpdate")) == 1


def test_a_known_task_is_reconciled_until_terminal(make):
    bridge, (driver,) = make()
    registered(bridge)
    bridge.on_receive(ReconcileTasks((("t1", "small"), ("t2", "small"))))
    bridge.on_receive(MesosStatusReceived(MesosTaskStatus("t1", "TASK_KILLED", "S1")))
    registered(bridge, reregistered=True)
    assert driver.named("reconcileTasks")[-2:] == [([{"task_id": {"value": "t2"}}],), ([],)]


def test_unknown_profile_is_an_error(make, recorder):
    bridge, (driver,) = make()
    bridge.on_receive(LaunchAgents("nope", ("x1",)))
    (update,) = recorder.of(TaskUpdate)
    assert update.state == "TASK_ERROR" and "nope" in update.message
    assert driver.named("reviveOffers") == []


def test_dry_run_never_launches_nor_kills(make, recorder, tmp_path, caplog):
    """Nor subscribes: with the saved framework id that would fail a running daemon's framework over."""
    state.write_text(str(tmp_path / FRAMEWORK_ID_FILE), "F-PROD\n")
    with caplog.at_level(logging.INFO, logger="actors.mesos.bridge"):
        bridge, drivers = make(dry_run=True)
    assert drivers == []
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert line.startswith("Dry run: not connecting to Mesos")
    bridge.on_receive(LaunchAgents("small", ("a1",)))
    assert [(u.task_id, u.state) for u in recorder.of(TaskUpdate)] == [("a1", "TASK_DROPPED")]
    bridge.on_receive(KillAgent("running-1"))
    bridge.on_stop()
    assert drivers == []
    assert os.listdir(tmp_path) == [FRAMEWORK_ID_FILE]
    assert state.read_text(str(tmp_path / FRAMEWORK_ID_FILE)) == "F-PROD"


def test_a_removed_framework_registers_afresh(make, tmp_path, recorder):
    bridge, drivers = make()
    registered(bridge)
    bridge.on_receive(MesosErrorReceived("Framework has been removed", driver_stopped=True))
    assert len(drivers) == 2 and drivers[0].stopped and drivers[1].started
    assert "id" not in drivers[1].framework
    assert not os.path.exists(tmp_path / FRAMEWORK_ID_FILE)
    assert recorder.of(FrameworkError) == [FrameworkError("Framework has been removed", False)]


def test_a_fatal_error_stops_the_daemon(make, recorder):
    reasons = []
    bridge, _ = make(stop_hook=reasons.append)
    bridge.on_receive(MesosErrorReceived("refused our credentials (HTTP 401)", driver_stopped=True))
    assert recorder.of(FrameworkError)[0].fatal and reasons
    bridge.on_receive(MesosErrorReceived("some master hiccup", driver_stopped=False))
    assert not recorder.of(FrameworkError)[1].fatal and len(reasons) == 1


def test_a_failing_driver_call_is_survived(make, recorder):
    bridge, (driver,) = make()
    registered(bridge)

    def boom(*args):
        raise RuntimeError("Failed to send request 403")

    driver.launchTasks = boom
    bridge.on_receive(LaunchAgents("small", ("a1",)))
    bridge.on_receive(MesosOffersReceived((offer("O1"),)))
    assert recorder.of(TaskLaunched) == []  # still queued for the next offer
    del driver.launchTasks
    bridge.on_receive(MesosOffersReceived((offer("O2"),)))
    assert [m.task_id for m in recorder.of(TaskLaunched)] == ["a1"]


class MemoryIds:
    """A framework id store in memory (the shape of actors.ha.ZooKeeperFrameworkId)."""

    def __init__(self, value=None, fail=False):
        self.value, self.fail = value, fail

    def read(self):
        return self.value

    def write(self, framework_id):
        if self.fail:
            raise RuntimeError("ZooKeeper is gone")
        self.value = framework_id

    def remove(self):
        self.value = None


def test_a_framework_id_store_replaces_the_file(make, tmp_path):
    ids = MemoryIds("F-SHARED")
    bridge, (driver,) = make(framework_ids=ids)
    assert driver.framework["id"] == {"value": "F-SHARED"}
    registered(bridge, "F-NEW")
    assert ids.value == "F-NEW" and not os.path.exists(tmp_path / FRAMEWORK_ID_FILE)


def test_a_store_that_cannot_save_is_logged_and_the_bridge_goes_on(make, caplog):
    bridge, (driver,) = make(framework_ids=MemoryIds(fail=True))
    with caplog.at_level(logging.ERROR):
        registered(bridge, "F-NEW")
    assert "Cannot save the framework id" in caplog.text
    assert driver.named("reconcileTasks") == [([],)]
