"""Two real daemons (bin/gocd-mesosd) with ``[ha]`` against one ZooKeeper and both simulators.

Only the leader acts; SIGKILLed during launches, it is replaced by the standby,
which subscribes to Mesos with the same framework id and adopts the running
agents: every job gets exactly one agent, none is lost or orphaned. The
simulators run at real speed here, as the daemons do.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from actors.clock import RealClock
from actors.sim.mesos import MesosSimulator
from tests.conftest import ROOT
from tests.e2e_support import IMAGE, KEY, PREFIX, gocd_simulator

BIN = str(ROOT / "bin" / "gocd-mesosd")
JOBS = 4


def config(tmp_path: Path, name: str, gocd_url: str, mesos_url: str, zookeeper: str) -> str:
    path = tmp_path / f"{name}.ini"
    path.write_text(
        f"""
[gocd]
url = {gocd_url}
username = admin
password = admin-secret
poll_interval = 1s
[mesos]
master = {mesos_url}
user = gocd
refuse_seconds = 1
failover_timeout = 1h
[agents]
go_server_url = {gocd_url}
auto_register_key = {KEY}
hostname_prefix = {PREFIX}
[profiles]
[[linux]]
image = {IMAGE}
cpus = 1
mem = 1024
resources = linux
max = 10
idle_timeout = 10m
[state]
dir = {tmp_path / name}
[ha]
zookeeper = {zookeeper}
[http]
listen = 127.0.0.1:0
""",
        encoding="utf-8",
    )
    return str(path)


class Daemon:
    """One bin/gocd-mesosd process; its stderr is collected on a thread."""

    def __init__(self, config_path: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, BIN, config_path, "--log-level", "info"],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self.leading = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if "Leading in ZooKeeper" in line:
                self.leading.set()

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def get(self, path: str) -> tuple[int, str]:
        """(status, body) of a GET on this daemon's status server (its URL from its log)."""
        wait(lambda: "Status server listening on" in self.log, 30, "the status server")
        url = re.search(r"Status server listening on (http://\S+/)", self.log)
        assert url is not None
        try:
            with urllib.request.urlopen(url.group(1) + path.lstrip("/"), timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(0.1)


@pytest.fixture
def world(tmp_path, zookeeper):
    clock = RealClock()
    gocd = gocd_simulator(clock)
    mesos = MesosSimulator(clock=clock, agents=4, cpus=8, mem=16384, heartbeat_interval=2.0)
    gocd_url, mesos_url = gocd.start(), mesos.start()
    zk = f"{zookeeper.hosts}/ha-e2e-{os.getpid()}-{time.monotonic_ns()}"
    daemons: list[Daemon] = []

    def start(name: str, zookeeper: str = "") -> Daemon:
        daemons.append(Daemon(config(tmp_path, name, gocd_url, mesos_url, zookeeper or zk)))
        return daemons[-1]

    yield gocd, mesos, start
    for daemon in daemons:
        daemon.stop()
    mesos.stop()
    gocd.stop()


def tasks_of(mesos: MesosSimulator) -> list[dict]:
    return [t for f in mesos.state()["frameworks"] for t in (*f["tasks"], *f["completed_tasks"])]


def test_the_standby_takes_over_a_killed_leader_without_a_duplicate_or_lost_agent(world):
    gocd, mesos, start = world
    first = start("first")
    assert first.leading.wait(30), first.log
    second = start("second")
    wait(lambda: "Waiting to lead" in second.log, 30, "the second daemon queued")

    mesos.inject_fault("slow_launch", delay=2.0)
    gocd.schedule_jobs("app", count=JOBS, resources=["linux"], duration_s=600)
    wait(lambda: len(tasks_of(mesos)) >= 1, 30, "the leader launching")
    (framework,) = mesos.state()["frameworks"]
    assert not second.leading.is_set() and "Subscribing to Mesos" not in second.log  # only one acts
    # The standby serves its status as a standby; the leader as the leader.
    status, body = second.get("/status")
    assert status == 200 and json.loads(body)["ha"] == {
        "role": "standby",
        "enabled": True,
        "zookeeper_connected": True,
    }
    status, body = second.get("/readyz")
    assert status == 200 and json.loads(body)["standby"] is True
    assert "gocd_mesos_leader 0.0" in second.get("/metrics")[1]
    assert "gocd_mesos_leader 1.0" in first.get("/metrics")[1]
    assert json.loads(first.get("/status")[1])["ha"]["role"] == "leader"

    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    assert second.leading.wait(30), second.log
    wait(
        lambda: sum(1 for j in gocd.state()["jobs"] if j["state"] in ("assigned", "building")) == JOBS,
        60,
        "every job building",
    )
    frameworks = mesos.state()["frameworks"]
    assert [f["id"] for f in frameworks] == [framework["id"]]  # the same framework, failed over
    tasks = tasks_of(mesos)
    assert len(tasks) == JOBS, tasks  # no duplicate launch
    assert all(t["state"] == "TASK_RUNNING" for t in tasks), tasks  # none lost
    ours = [a for a in gocd.state()["agents"] if a["hostname"].startswith(PREFIX)]
    assert len(ours) == JOBS  # none orphaned: each task is a registered agent building
    wait(lambda: f"framework id {framework['id']}" in second.log, 10, "the standby's subscription logged")
    # The same status server now serves the leader it has become.
    assert "gocd_mesos_leader 1.0" in second.get("/metrics")[1]
    wait(lambda: second.get("/readyz")[0] == 200, 30, "the new leader ready")
    assert json.loads(second.get("/readyz")[1])["leader"] is True
    assert json.loads(second.get("/status")[1])["mesos"]["framework_id"] == framework["id"]


def test_a_zookeeper_restart_never_lets_two_daemons_act(world, tmp_path):
    from tests.zookeeper_support import ZooKeeperServer, zookeeper_jar

    gocd, mesos, start = world
    jar = zookeeper_jar()
    assert jar is not None  # the world fixture's server needed it too
    server = ZooKeeperServer(jar, tmp_path / "zk")
    server.start()
    try:
        first = start("first", f"{server.hosts}/restart")
        assert first.leading.wait(30), first.log
        second = start("second", f"{server.hosts}/restart")
        wait(lambda: "Waiting to lead" in second.log, 30, "the second daemon queued")
        gocd.schedule_jobs("app", count=2, resources=["linux"], duration_s=600)
        wait(lambda: len(tasks_of(mesos)) == 2, 30, "the leader's launches")

        server.stop()
        # The leader stops at once and exits 1 for its supervisor to restart it.
        assert first.proc.wait(15) == 1, first.log
        assert "no longer sure to lead" in first.log
        assert not second.leading.is_set()  # the old leader stopped before anyone else led
        server.start()
        # The standby leads once the old leader's session has expired, never before.
        assert second.leading.wait(30), second.log
        wait(
            lambda: "Re-registered" in second.log or "Registered" in second.log, 30, "the standby subscribed"
        )
        gocd.schedule_jobs("more", count=1, resources=["linux"], duration_s=600)
        wait(lambda: len(tasks_of(mesos)) == 3, 30, "the new leader's launch")
        assert len(mesos.state()["frameworks"]) == 1
        assert all(t["state"] in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING") for t in tasks_of(mesos))
    finally:
        server.stop()
