"""Leader election and the shared framework id against a real ZooKeeper server (actors.ha)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

pytest.importorskip("kazoo", reason="kazoo not installed (pip install -e '.[test,zookeeper]')")

from actors.exceptions import GocdMesosError
from actors.ha import Leadership
from actors.messages import LeadershipChanged
from tests.conftest import ROOT

#: Short sessions keep a takeover after a crash quick.
SESSION = 2.0


@pytest.fixture
def zk_path(zookeeper):
    """A fresh ``hosts/path`` on the session's server for each test."""
    return f"{zookeeper.hosts}/test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def electors():
    made: list[Leadership] = []

    def make(zookeeper: str, name: str, **kw) -> Leadership:
        made.append(Leadership(zookeeper, identifier=name, **{"session_timeout": SESSION, **kw}))
        return made[-1]

    yield make
    for elector in made:
        elector.close()


def campaign_in_thread(elector: Leadership) -> threading.Thread:
    thread = threading.Thread(target=elector.campaign, daemon=True)
    thread.start()
    return thread


def test_of_two_electors_one_leads_and_the_other_takes_over_when_it_leaves(zk_path, electors):
    changes: list[LeadershipChanged] = []
    b_changes: list[LeadershipChanged] = []
    a = electors(zk_path, "a", listeners=(changes.append,))
    b = electors(zk_path, "b", listeners=(b_changes.append,))
    assert a.campaign() and a.leader
    waiting = campaign_in_thread(b)
    waiting.join(1.0)
    assert waiting.is_alive() and not b.leader  # queued behind a
    # b told its listeners it is a healthy standby (a status server shows it as one).
    assert [(c.leader, c.zookeeper_connected) for c in b_changes] == [(False, True)]
    a.close()
    waiting.join(10)
    assert b.leader and not a.leader
    # a queued (standby), led, and gave up leading; b led after standing by.
    assert [c.leader for c in changes] == [False, True, False]
    assert [c.leader for c in b_changes] == [False, True]


def test_a_standby_tells_when_its_zookeeper_connection_breaks_and_comes_back(zk_path, electors):
    changes: list[LeadershipChanged] = []
    standby = electors(zk_path, "s", listeners=(changes.append,))
    # Kazoo's connection thread calls this listener; a standby reports, never acts.
    standby._state_changed("SUSPENDED")
    standby._state_changed("CONNECTED")
    assert [(c.leader, c.zookeeper_connected) for c in changes] == [(False, False), (False, True)]


def test_a_cancelled_campaign_returns_false(zk_path, electors):
    assert electors(zk_path, "a").campaign()
    b = electors(zk_path, "b")
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(b.campaign()), daemon=True)
    thread.start()
    thread.join(0.5)
    b.cancel()
    thread.join(10)
    assert result == [False] and not b.leader


def test_a_killed_leader_is_replaced_once_its_session_expires(zk_path, electors):
    # The leader is another process, killed with SIGKILL: nothing releases its lock
    # but the end of its session on the server.
    script = (
        "import sys, time; from actors.ha import Leadership;"
        f"l = Leadership({zk_path!r}, identifier='doomed', session_timeout={SESSION});"
        "l.campaign(); l.framework_ids.write('F-SHARED'); print('leading', flush=True); time.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"leading\n"
        b = electors(zk_path, "b")
        waiting = campaign_in_thread(b)
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        waiting.join(SESSION * 5)
        assert b.leader
        assert time.monotonic() - killed_at >= SESSION * 0.5  # not before the session could expire
        assert b.framework_ids.read() == "F-SHARED"  # the new leader subscribes with the same id
    finally:
        proc.kill()
        proc.wait()


def test_only_the_leader_may_change_the_framework_id(zk_path, electors):
    a, b = electors(zk_path, "a"), electors(zk_path, "b")
    assert a.campaign()
    a.framework_ids.write("F-1")
    campaign_in_thread(b)
    deadline = time.monotonic() + 10
    while not b._client.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(GocdMesosError, match="Not the leader"):
        b.framework_ids.write("F-2")
    assert b.framework_ids.read() == "F-1"
    a.framework_ids.remove()
    assert b.framework_ids.read() is None
    a.framework_ids.remove()  # nothing to remove: no error


def test_no_zookeeper_is_an_error_at_campaign(electors):
    from tests.zookeeper_support import free_port

    with pytest.raises(GocdMesosError, match="Cannot connect to ZooKeeper"):
        Leadership(f"127.0.0.1:{free_port()}/x", session_timeout=1.0).campaign()


def test_a_zookeeper_restart_stops_the_leader_and_never_lets_two_act(tmp_path, electors):
    """The leader stops acting at SUSPENDED; the standby leads only after the leader has let go."""
    from tests.zookeeper_support import SKIP_REASON, ZooKeeperServer, zookeeper_jar

    jar = zookeeper_jar()
    if jar is None:
        pytest.skip(SKIP_REASON)
    server = ZooKeeperServer(jar, tmp_path / "zk")
    server.start()
    try:
        path = f"{server.hosts}/restart"
        # Who acts, and when: "acting" runs from winning until the watch's callback.
        log: list[tuple[float, str, str]] = []
        lost = threading.Event()
        a = electors(path, "a", session_timeout=8.0)
        b = electors(path, "b", session_timeout=8.0)
        assert a.campaign()
        log.append((time.monotonic(), "a", "acts"))

        def a_lost(reason: str) -> None:
            log.append((time.monotonic(), "a", reason))
            lost.set()

        a.watch(a_lost)
        b_changes: list[LeadershipChanged] = []
        b._listeners = (b_changes.append,)
        campaign_in_thread(b)
        deadline = time.monotonic() + 10
        while len(a._lock.contenders()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # b queued before the server goes away
        assert len(a._lock.contenders()) == 2

        server.stop()
        assert lost.wait(10), "the leader kept acting after its ZooKeeper connection broke"
        assert not a.leader and "suspended" in log[-1][2]
        server.start()
        # a's session outlives the restart: its lock node stays and b keeps waiting
        # until a (the CLI: by exiting) lets go.
        reconnected = threading.Event()
        a._client.add_listener(lambda state: reconnected.set() if state == "CONNECTED" else None)
        if a._client.connected:
            reconnected.set()
        assert reconnected.wait(15)
        assert not b.leader
        a.close()
        deadline = time.monotonic() + 15
        while not b.leader and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b.leader
        led = [c for c in b_changes if c.leader]
        assert len(led) == 1 and led[0].since > log[-1][0]  # b acts only after a stopped
        # While it stood by, b told its status server that ZooKeeper went away and came back.
        standby = [c.zookeeper_connected for c in b_changes if not c.leader]
        assert False in standby and standby[-1] is True
        seen: list[str] = []
        a.watch(seen.append)  # a watch after the loss is told at once
        assert seen and "suspended" in seen[0]
    finally:
        server.stop()
