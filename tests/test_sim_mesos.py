"""The Mesos master simulator over real HTTP: wire format, status codes, allocator, tasks, faults."""

from __future__ import annotations

import base64
import re
import signal
import subprocess
import sys

import pytest
import requests

from actors.sim.gocd import GoCDSimulator
from actors.sim.mesos import MesosSimulator
from tests.conftest import reset_mid_request
from tests.mesos_client import API, FakeAgents, StreamClient, launch, task_info


@pytest.fixture
def agents():
    return FakeAgents()


@pytest.fixture
def sim(clock, agents):
    simulator = MesosSimulator(
        clock=clock,
        agents=2,
        cpus=4,
        mem=8192,
        disk=10000,
        attributes={"os": "linux", "rack": "1"},
        agent_factory=agents,
    )
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def client(sim):
    clients = []

    def subscribe(**kw) -> StreamClient:
        c = StreamClient(sim.leader_url, **kw)
        clients.append(c)
        return c

    yield subscribe
    for c in clients:
        c.close()


def subscribed(client) -> tuple[StreamClient, list[dict]]:
    c = client()
    c.next("SUBSCRIBED")
    offers = c.next("OFFERS")["offers"]["offers"]
    return c, offers


def ack(c: StreamClient, status: dict) -> requests.Response:
    return c.call(
        {
            "type": "ACKNOWLEDGE",
            "acknowledge": {
                "agent_id": status["agent_id"],
                "task_id": status["task_id"],
                "uuid": status["uuid"],
            },
        }
    )


def next_status(c: StreamClient, state: str | None = None, *, acknowledge: bool = True) -> dict:
    status = c.next("UPDATE", skip=("HEARTBEAT", "OFFERS", "RESCIND"))["update"]["status"]
    if state is not None:
        assert status["state"] == state, status
    if acknowledge and "uuid" in status:
        assert ack(c, status).status_code == 202
    return status


def framework(sim) -> dict:
    (f,) = sim.state()["frameworks"]
    return f


def test_version_and_state(sim):
    assert requests.get(sim.url + "/version", timeout=5).json()["version"] == "1.11.0"
    state = requests.get(sim.url + "/master/state", timeout=5).json()
    assert [s["hostname"] for s in state["slaves"]] == ["127.0.0.1", "127.0.0.2"]
    assert state["slaves"][0]["resources"]["cpus"] == 4 and state["slaves"][0]["attributes"] == {
        "os": "linux",
        "rack": 1.0,
    }


def test_subscribe_stream_is_chunked_recordio(sim, client, clock):
    c = client()
    assert c.status == 200
    assert c.headers["transfer-encoding"] == "chunked" and c.headers["content-type"] == "application/json"
    assert "content-length" not in c.headers and c.stream_id
    first = c.events.get(timeout=5)
    assert first["type"] == "SUBSCRIBED"
    sub = first["subscribed"]
    assert sub["heartbeat_interval_seconds"] == 15 and sub["master_info"]["version"] == "1.11.0"
    assert sub["master_info"]["ip"] == 16777343 and sub["framework_id"]["value"].endswith("-0000")
    assert c.events.get(timeout=5)["type"] == "HEARTBEAT"  # immediately after SUBSCRIBED
    offers = c.next("OFFERS")["offers"]["offers"]
    assert len(offers) == 2
    assert {r["name"] for r in offers[0]["resources"]} == {"cpus", "mem", "disk", "ports"}
    assert offers[0]["attributes"][0] == {"name": "os", "type": "TEXT", "text": {"value": "linux"}}
    # every chunk is exactly one "<len>\n<json>" record
    assert c.raw_chunks[0].startswith(b"%d\n{" % (len(c.raw_chunks[0].split(b"\n", 1)[1])))
    clock.advance(15)
    assert c.next("HEARTBEAT", skip=())["type"] == "HEARTBEAT"


def test_call_status_codes(sim, client):
    c, _ = subscribed(client)
    url = sim.url + API
    body = {"type": "REVIVE", "framework_id": {"value": c.framework_id}}
    good = c.call({"type": "REVIVE"})
    assert good.status_code == 202 and good.headers["Content-Length"] == "0" and good.content == b""
    r = requests.get(url, timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    assert requests.post(url, data="{}", timeout=5).status_code == 400  # no Content-Type
    assert requests.post(url, data="{}", headers={"Content-Type": "text/plain"}, timeout=5).status_code == 415
    assert (
        c.call({"type": "REVIVE"}, headers={"Content-Type": "application/json; charset=utf-8"}).status_code
        == 415
    )
    r = requests.post(url, data="{nope", headers={"Content-Type": "application/json"}, timeout=5)
    assert r.status_code == 400
    headers = {"Content-Type": "application/json"}
    assert requests.post(url, json=body, headers=headers, timeout=5).status_code == 400  # no stream id
    r = requests.post(url, json=body, headers={**headers, "Mesos-Stream-Id": "other"}, timeout=5)
    assert r.status_code == 400 and "didn't match" in r.text
    r = requests.post(
        url,
        json={**body, "framework_id": {"value": "nope"}},
        headers={**headers, "Mesos-Stream-Id": c.stream_id},
        timeout=5,
    )
    assert r.status_code == 400 and "Framework cannot be found" in r.text
    r = c.call(
        {
            "type": "ACKNOWLEDGE",
            "acknowledge": {
                "agent_id": {"value": "a"},
                "task_id": {"value": "t"},
                "uuid": base64.b64encode(b"short").decode(),
            },
        }
    )
    assert r.status_code == 400
    assert c.call({"type": "KILL", "kill": {}}).status_code == 400
    assert c.call({"type": "UNKNOWN"}).status_code == 501
    sub = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n"}}}
    r = requests.post(url, json=sub, headers={**headers, "Mesos-Stream-Id": "x"}, timeout=5)
    assert r.status_code == 400
    r = requests.post(url, json=sub, headers={**headers, "Accept": "text/html"}, timeout=5)
    assert r.status_code == 406
    sub["framework_id"] = {"value": "x"}
    assert requests.post(url, json=sub, headers=headers, timeout=5).status_code == 400  # ids differ
    del sub["framework_id"]
    del sub["subscribe"]["framework_info"]["user"]
    assert requests.post(url, json=sub, headers=headers, timeout=5).status_code == 400  # required field


def test_wrong_credentials_get_401_with_the_realm(clock, agents):
    with MesosSimulator(
        clock=clock, agents=1, principal="gocd", secret="s3cret", agent_factory=agents
    ) as sim:
        url = sim.url + API
        sub = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n"}}}
        for auth in (None, ("gocd", "wrong"), ("other", "s3cret")):
            r = requests.post(url, json=sub, auth=auth, timeout=5)
            assert r.status_code == 401
            assert r.headers["WWW-Authenticate"] == 'Basic realm="mesos-master-scheduler"'
        c = StreamClient(sim.url, auth=("gocd", "s3cret"))
        try:
            c.next("SUBSCRIBED")
            assert framework(sim)["principal"] == "gocd"
        finally:
            c.close()


def test_a_task_runs_a_gocd_agent_until_killed(sim, client, agents):
    c, offers = subscribed(client)
    o = offers[0]
    assert c.call(launch(o["id"]["value"], task_info("t1", o["agent_id"]["value"]))).status_code == 202
    starting = next_status(c, "TASK_STARTING")
    assert starting["source"] == "SOURCE_EXECUTOR" and len(base64.b64decode(starting["uuid"])) == 16
    running = next_status(c, "TASK_RUNNING")
    assert running["container_status"]["network_infos"][0]["ip_addresses"][0]["ip_address"] == "127.0.0.1"
    agents.wait(lambda made: len(made) == 1 and made[0].started)
    (agent,) = agents.made
    assert agent.env["AGENT_AUTO_REGISTER_HOSTNAME"] == "t1" and agent.hostname == "127.0.0.1"
    task = framework(sim)["tasks"][0]
    assert (task["id"], task["state"], task["slave_id"]) == ("t1", "TASK_RUNNING", o["agent_id"]["value"])
    assert task["labels"] == [{"key": "gocd-mesos.profile", "value": "small"}]
    assert c.call({"type": "KILL", "kill": {"task_id": {"value": "t1"}}}).status_code == 202
    killed = next_status(c, "TASK_KILLED")
    assert "uuid" in killed and agent.stopped
    assert framework(sim)["tasks"] == [] and framework(sim)["completed_tasks"][0]["state"] == "TASK_KILLED"


def test_updates_are_resent_until_acknowledged_and_in_order(sim, client, clock):
    c, offers = subscribed(client)
    o = offers[0]
    c.call(launch(o["id"]["value"], task_info("t1", o["agent_id"]["value"])))
    first = next_status(c, "TASK_STARTING", acknowledge=False)
    assert framework(sim)["tasks"][0]["state"] == "TASK_RUNNING" or framework(sim)["tasks"][0]["state"] == (
        "TASK_STARTING"
    )
    clock.advance(10)  # the agent's retry interval
    again = next_status(c, "TASK_STARTING", acknowledge=False)
    assert again["uuid"] == first["uuid"]
    assert ack(c, first).status_code == 202
    next_status(c, "TASK_RUNNING")
    # an acknowledgement of an unknown uuid is ignored
    assert ack(c, {**first, "uuid": base64.b64encode(b"0" * 16).decode()}).status_code == 202


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task_id": {"value": "bad/id"}}, "'TaskID.value' is invalid"),
        ({"resources": []}, "Task uses no resources"),
        ({"agent_id": {"value": "elsewhere"}}, "Task uses invalid agent elsewhere while agent"),
        ({"command": None}, "Task should have at least one (but not both) of CommandInfo or ExecutorInfo"),
        ({"container": {"type": "DOCKER"}}, "DockerInfo 'docker' is not set for DOCKER typed ContainerInfo"),
        (
            {
                "container": {
                    "type": "DOCKER",
                    "docker": {"image": "i", "parameters": [{"key": "name", "value": "x"}]},
                }
            },
            "Parameter in DockerInfo must not be 'name'",
        ),
        (
            {"resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 64}}]},
            "Total resources cpus(*):64 required by task and its executor is more than available",
        ),
    ],
)
def test_invalid_tasks_get_task_error(sim, client, change, message):
    c, offers = subscribed(client)
    o = offers[0]
    info = task_info("t1", o["agent_id"]["value"])
    info.update(change)
    info = {k: v for k, v in info.items() if v is not None}
    c.call(launch(o["id"]["value"], info))
    status = next_status(c, "TASK_ERROR")
    assert status["reason"] == "REASON_TASK_INVALID" and status["source"] == "SOURCE_MASTER"
    assert message in status["message"] and "uuid" not in status


def test_later_tasks_of_one_accept_can_run_out_of_resources(sim, client):
    c, offers = subscribed(client)
    o = offers[0]
    agent = o["agent_id"]["value"]
    c.call(launch(o["id"]["value"], task_info("a", agent, cpus=3), task_info("b", agent, cpus=3)))
    states = {}
    for _ in range(3):
        s = next_status(c)
        states.setdefault(s["task_id"]["value"], []).append(s["state"])
    assert states["b"] == ["TASK_ERROR"] and states["a"][0] == "TASK_STARTING"


def test_stale_offers_lose_the_tasks(sim, client):
    c, offers = subscribed(client)
    o = offers[0]
    c.call({"type": "DECLINE", "decline": {"offer_ids": [o["id"]]}})
    c.call(launch(o["id"]["value"], task_info("t1", o["agent_id"]["value"])))
    status = next_status(c, "TASK_LOST")
    assert status["reason"] == "REASON_INVALID_OFFERS"
    assert (
        status["message"] == f"Task launched with invalid offers: Offer {o['id']['value']} is no longer valid"
    )


def test_offer_timeout_rescinds_offers_and_a_late_accept_loses_its_tasks(sim, client, clock):
    sim.inject_fault("offer_timeout", seconds=10)
    c, offers = subscribed(client)
    clock.advance(5)
    assert len(framework(sim)["offers"]) == 2  # not yet
    clock.advance(5)
    rescinded = {c.next("RESCIND", skip=("HEARTBEAT",))["rescind"]["offer_id"]["value"] for _ in offers}
    assert rescinded == {o["id"]["value"] for o in offers}
    # The allocator offers the resources anew, under new ids.
    assert not rescinded & {o["id"] for o in framework(sim)["offers"]}
    o = offers[0]
    c.call(launch(o["id"]["value"], task_info("t1", o["agent_id"]["value"])))
    status = next_status(c, "TASK_LOST")
    assert status["reason"] == "REASON_INVALID_OFFERS"
    # seconds 0 turns the timeout off, for the offers outstanding too.
    outstanding = {o["id"] for o in framework(sim)["offers"]}
    sim.inject_fault("offer_timeout", seconds=0)
    clock.advance(60)
    assert outstanding and outstanding <= {o["id"] for o in framework(sim)["offers"]}
    with pytest.raises(ValueError):
        sim.inject_fault("offer_timeout", seconds=-1)


def test_calls_lists_the_accepted_calls_with_their_task_ids(sim, client, clock):
    c, offers = subscribed(client)
    o = offers[0]
    c.call(launch(o["id"]["value"], task_info("t1", o["agent_id"]["value"])))
    next_status(c, "TASK_STARTING")
    clock.advance(2)
    c.call({"type": "KILL", "kill": {"task_id": {"value": "t1"}}})
    assert c.call({"type": "KILL"}).status_code == 400  # refused calls are not listed
    kinds = [(kind, tasks) for _, kind, fid, tasks in sim.calls if fid == c.framework_id]
    assert kinds[0] == ("SUBSCRIBE", ())
    assert ("ACCEPT", ("t1",)) in kinds and ("ACKNOWLEDGE", ("t1",)) in kinds
    assert kinds[-1] == ("KILL", ("t1",))
    (kill_at,) = [at for at, kind, _, _ in sim.calls if kind == "KILL"]
    assert kill_at == clock.now()


def test_decline_filters_and_the_subset_rule(clock, agents):
    with MesosSimulator(clock=clock, agents=1, cpus=4, mem=8192, agent_factory=agents) as sim:
        c = StreamClient(sim.url)
        try:
            c.next("SUBSCRIBED")
            (o,) = c.next("OFFERS")["offers"]["offers"]
            c.call(
                {"type": "DECLINE", "decline": {"offer_ids": [o["id"]], "filters": {"refuse_seconds": 30}}}
            )
            clock.advance(1)
            assert framework(sim)["offers"] == []  # refused and nothing new
            clock.advance(30)
            (o,) = c.next("OFFERS")["offers"]["offers"]
            # take a part; the rest is refused for 30 s
            c.call(launch(o["id"]["value"], task_info("t1", o["agent_id"]["value"], cpus=1), refuse=30))
            next_status(c, "TASK_STARTING")
            next_status(c, "TASK_RUNNING")
            clock.advance(1)
            assert framework(sim)["offers"] == []
            # a killed task frees resources: more than was refused, so offered again despite the filter
            c.call({"type": "KILL", "kill": {"task_id": {"value": "t1"}}})
            next_status(c, "TASK_KILLED")
            clock.advance(1)
            (o,) = c.next("OFFERS")["offers"]["offers"]
            assert o["resources"][0]["scalar"]["value"] == 4
        finally:
            c.close()


def test_suppress_and_revive(sim, client, clock):
    c, offers = subscribed(client)
    c.call({"type": "SUPPRESS"})
    c.call(
        {
            "type": "DECLINE",
            "decline": {"offer_ids": [o["id"] for o in offers], "filters": {"refuse_seconds": 0}},
        }
    )
    clock.advance(5)
    assert framework(sim)["offers"] == []
    c.call({"type": "REVIVE"})
    assert len(c.next("OFFERS")["offers"]["offers"]) == 2


def test_reconciliation(sim, client):
    c, offers = subscribed(client)
    o = offers[0]
    agent = o["agent_id"]["value"]
    c.call(launch(o["id"]["value"], task_info("t1", agent)))
    next_status(c, "TASK_STARTING")
    next_status(c, "TASK_RUNNING")
    c.call({"type": "RECONCILE", "reconcile": {"tasks": []}})
    implicit = next_status(c, "TASK_RUNNING")
    assert implicit["reason"] == "REASON_RECONCILIATION" and "uuid" not in implicit
    assert implicit["message"] == "Reconciliation: Latest task state"
    c.call(
        {
            "type": "RECONCILE",
            "reconcile": {
                "tasks": [
                    {"task_id": {"value": "t1"}},
                    {"task_id": {"value": "ghost"}},
                    {"task_id": {"value": "ghost2"}, "agent_id": {"value": agent}},
                ]
            },
        }
    )
    assert next_status(c, "TASK_RUNNING")["task_id"]["value"] == "t1"
    ghost = next_status(c, "TASK_LOST")
    assert (ghost["task_id"]["value"], ghost["message"]) == ("ghost", "Reconciliation: Task is unknown")
    ghost2 = next_status(c, "TASK_LOST")
    assert ghost2["message"] == "Reconciliation: Task is unknown to the agent"
    c.call({"type": "KILL", "kill": {"task_id": {"value": "nobody"}}})
    assert next_status(c, "TASK_LOST")["reason"] == "REASON_RECONCILIATION"


def test_partition_aware_frameworks_get_the_finer_states(sim, client):
    info = {"user": "u", "name": "n", "failover_timeout": 60.0, "capabilities": [{"type": "PARTITION_AWARE"}]}
    c = client(framework_info=info)
    c.next("SUBSCRIBED")
    c.call({"type": "RECONCILE", "reconcile": {"tasks": [{"task_id": {"value": "ghost"}}]}})
    assert next_status(c)["state"] == "TASK_UNKNOWN"


def test_a_task_without_a_valid_go_server_url_fails(sim, client, agents):
    c, offers = subscribed(client)
    o = offers[0]
    c.call(
        launch(o["id"]["value"], task_info("t1", o["agent_id"]["value"], go_server_url="http://gocd:8153/"))
    )
    next_status(c, "TASK_STARTING")
    next_status(c, "TASK_RUNNING")
    failed = next_status(c, "TASK_FAILED")
    assert "GO_SERVER_URL" in failed["message"]
    assert agents.made == []


def test_fail_image_and_slow_launch_faults(sim, client, clock, agents):
    c, offers = subscribed(client)
    agent = offers[0]["agent_id"]["value"]
    sim.inject_fault("fail_image", image="gocd/broken:v1")
    c.call(
        launch(
            offers[0]["id"]["value"], task_info("t1", agent, image="gocd/broken:v1"), task_info("t2", agent)
        )
    )
    by_task: dict[str, list[dict]] = {"t1": [], "t2": []}
    for _ in range(4):
        s = next_status(c)
        by_task[s["task_id"]["value"]].append(s)
    assert [s["state"] for s in by_task["t1"]] == ["TASK_STARTING", "TASK_FAILED"]
    assert by_task["t1"][1]["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    assert [s["state"] for s in by_task["t2"]] == ["TASK_STARTING", "TASK_RUNNING"]
    assert requests.post(sim.url + "/_sim/faults", json={"kind": "slow_launch", "delay": 60}, timeout=5).ok
    c.call(launch(offers[1]["id"]["value"], task_info("t3", offers[1]["agent_id"]["value"])))
    next_status(c, "TASK_STARTING")
    assert [t["state"] for t in framework(sim)["tasks"] if t["id"] == "t3"] == ["TASK_STARTING"]
    clock.advance(60)
    next_status(c, "TASK_RUNNING")
    assert requests.post(sim.url + "/_sim/faults", json={"kind": "nope"}, timeout=5).status_code == 400


def test_fail_next_launches(sim, client):
    c, offers = subscribed(client)
    sim.inject_fault("fail_image", count=1)
    agent = offers[0]["agent_id"]["value"]
    c.call(launch(offers[0]["id"]["value"], task_info("t1", agent), task_info("t2", agent)))
    states = {}
    for _ in range(4):
        s = next_status(c)
        states.setdefault(s["task_id"]["value"], []).append(s["state"])
    assert sorted(states.values()) == [["TASK_STARTING", "TASK_FAILED"], ["TASK_STARTING", "TASK_RUNNING"]]


def docker(network: str, hostname: str | None = None, **extra) -> dict:
    container = {"type": "DOCKER", "docker": {"image": "gocd/agent:v1", "network": network}, **extra}
    if hostname is not None:
        container["hostname"] = hostname
    return container


def mesos(networks: tuple[str, ...] = (), hostname: str | None = None) -> dict:
    container: dict = {"type": "MESOS", "mesos": {"image": {"type": "DOCKER", "docker": {"name": "i"}}}}
    if networks:
        container["network_infos"] = [{"name": n} for n in networks]
    if hostname is not None:
        container["hostname"] = hostname
    return container


HEX12 = re.compile(r"[0-9a-f]{12}")
MESOS_CONTAINER_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        # Docker on the host network: the node's hostname.
        (docker("HOST"), "127.0.0.1"),
        # Docker elsewhere: --hostname, else the first 12 hex digits of the container id.
        (docker("BRIDGE", "gocd-mesos-linux-0a1b2c3d"), "gocd-mesos-linux-0a1b2c3d"),
        (docker("BRIDGE"), HEX12),
        (docker("NONE", "gocd-mesos-linux-0a1b2c3d"), "gocd-mesos-linux-0a1b2c3d"),
        (docker("NONE"), HEX12),
        (
            docker("USER", "gocd-mesos-linux-0a1b2c3d", network_infos=[{"name": "ci"}]),
            "gocd-mesos-linux-0a1b2c3d",
        ),
        (docker("USER", network_infos=[{"name": "ci"}]), HEX12),
        # Linux's limit is 64 bytes, not a DNS label's 63.
        (docker("BRIDGE", "h" * 64), "h" * 64),
        # Mesos containerizer in a named CNI network: the hostname, else the Mesos container id.
        (mesos(("mesos-bridge",), "gocd-mesos-linux-0a1b2c3d"), "gocd-mesos-linux-0a1b2c3d"),
        (mesos(("mesos-bridge",)), MESOS_CONTAINER_ID),
        # Without a network name it shares the node's UTS namespace; a hostname is ignored.
        (mesos((), "gocd-mesos-linux-0a1b2c3d"), "127.0.0.1"),
        (mesos(), "127.0.0.1"),
    ],
)
def test_the_agent_gets_the_hostname_its_container_would_have(sim, client, agents, container, expected):
    c, offers = subscribed(client)
    o = offers[0]
    c.call(launch(o["id"]["value"], task_info("t1", o["agent_id"]["value"], container=container)))
    next_status(c, "TASK_STARTING")
    next_status(c, "TASK_RUNNING")
    agents.wait(lambda made: len(made) == 1 and made[0].started)
    (agent,) = agents.made
    if isinstance(expected, re.Pattern):
        assert expected.fullmatch(agent.hostname), agent.hostname
    else:
        assert agent.hostname == expected


def test_two_docker_containers_without_a_hostname_get_different_ones(sim, client, agents):
    c, offers = subscribed(client)
    o = offers[0]
    agent_id = o["agent_id"]["value"]
    c.call(
        launch(
            o["id"]["value"],
            task_info("t1", agent_id, container=docker("BRIDGE")),
            task_info("t2", agent_id, container=docker("BRIDGE")),
        )
    )
    agents.wait(lambda made: len(made) == 2 and all(a.started for a in made))
    assert agents.made[0].hostname != agents.made[1].hostname


def test_a_docker_hostname_on_the_host_network_fails_the_task_as_the_executor_does(sim, client, agents):
    c, offers = subscribed(client)
    o = offers[0]
    container = docker("HOST", "gocd-mesos-linux-0a1b2c3d")
    c.call(launch(o["id"]["value"], task_info("t1", o["agent_id"]["value"], container=container)))
    next_status(c, "TASK_STARTING")
    failed = next_status(c, "TASK_FAILED")
    assert failed["source"] == "SOURCE_EXECUTOR" and "reason" not in failed and "uuid" in failed
    assert failed["message"] == (
        "Failed to create docker run options: Unable to set hostname with host network mode"
    )
    assert agents.made == []


def test_a_hostname_linux_cannot_take_fails_the_task(sim, client, agents):
    c, offers = subscribed(client)
    o = offers[0]
    agent_id = o["agent_id"]["value"]
    too_long = "h" * 65
    c.call(launch(o["id"]["value"], task_info("t1", agent_id, container=docker("BRIDGE", too_long))))
    next_status(c, "TASK_STARTING")
    failed = next_status(c, "TASK_FAILED")
    assert (failed["source"], failed["message"]) == ("SOURCE_EXECUTOR", "Container exited with status 125")
    assert "reason" not in failed
    # The Mesos containerizer fails it before any executor runs: no TASK_STARTING.
    c.call(
        launch(
            offers[1]["id"]["value"],
            task_info("t2", offers[1]["agent_id"]["value"], container=mesos(("mesos-bridge",), too_long)),
        )
    )
    failed = next_status(c, "TASK_FAILED")
    assert (failed["source"], failed["reason"]) == ("SOURCE_AGENT", "REASON_CONTAINER_LAUNCH_FAILED")
    assert failed["message"].startswith("Failed to launch container: ") and too_long in failed["message"]
    assert agents.made == []


@pytest.mark.parametrize(
    ("container", "pending_as"),
    [
        (docker("BRIDGE", "gocd-mesos-linux-0a1b2c3d"), "gocd-mesos-linux-0a1b2c3d"),
        (docker("HOST"), "127.0.0.1"),
        (docker("BRIDGE"), HEX12),
    ],
)
def test_with_a_wrong_key_the_pending_agent_carries_the_machine_hostname(clock, container, pending_as):
    with (
        GoCDSimulator(clock=clock, auto_register_key="right-key") as gocd,
        MesosSimulator(clock=clock, agents=1) as sim,
    ):
        c = StreamClient(sim.leader_url)
        try:
            c.next("SUBSCRIBED")
            (o,) = c.next("OFFERS")["offers"]["offers"]
            info = task_info("gocd-mesos-linux-0a1b2c3d", o["agent_id"]["value"], container=container)
            info["command"]["environment"]["variables"] = [
                {"name": "GO_SERVER_URL", "value": gocd.url},
                {"name": "AGENT_AUTO_REGISTER_KEY", "value": "wrong-key"},
                {"name": "AGENT_AUTO_REGISTER_HOSTNAME", "value": "gocd-mesos-linux-0a1b2c3d"},
            ]
            c.call(launch(o["id"]["value"], info))
            assert gocd.wait_for(lambda st: len(st["agents"]) == 1, timeout=10), gocd.state()
            (agent,) = gocd.state()["agents"]
        finally:
            c.close()
    assert agent["config_state"] == "Pending"
    if isinstance(pending_as, re.Pattern):
        assert pending_as.fullmatch(agent["hostname"]), agent["hostname"]
    else:
        assert agent["hostname"] == pending_as


def test_losing_an_agent_node(sim, client, agents):
    c, offers = subscribed(client)
    o = offers[0]
    c.call(launch(o["id"]["value"], task_info("t1", o["agent_id"]["value"])))
    next_status(c, "TASK_STARTING")
    next_status(c, "TASK_RUNNING")
    result = sim.inject_fault("lose_agent")
    assert result["agent_id"] == o["agent_id"]["value"]
    kinds = []
    while True:
        event = c.events.get(timeout=5)
        kinds.append(event["type"])
        if event["type"] == "UPDATE":
            seen = event["update"]["status"]
            break
    assert "FAILURE" in kinds
    assert seen["state"] == "TASK_LOST" and seen["reason"] == "REASON_AGENT_REMOVED" and "uuid" not in seen
    agents.wait(lambda made: made[0].stopped)
    assert not next(s for s in sim.state()["slaves"] if s["id"] == o["agent_id"]["value"])["active"]


def test_failover_keeps_tasks_and_replaces_the_old_stream(sim, client, clock):
    c, offers = subscribed(client)
    o = offers[0]
    c.call(launch(o["id"]["value"], task_info("t1", o["agent_id"]["value"])))
    next_status(c, "TASK_STARTING")
    next_status(c, "TASK_RUNNING")
    # a second subscription with the same id fails the first one over
    c2 = client(framework_id=c.framework_id)
    assert c2.next("SUBSCRIBED")["subscribed"]["framework_id"]["value"] == c.framework_id
    assert c.next("ERROR", skip=("HEARTBEAT", "OFFERS"))["error"]["message"] == "Framework failed over"
    assert c.ended.wait(5)
    assert c.call({"type": "REVIVE"}).status_code == 400  # the old stream id is stale
    # the stream drops: the framework is disconnected but its task lives
    sim.inject_fault("drop_stream")
    assert c2.ended.wait(5)
    assert framework(sim)["active"] is False and framework(sim)["tasks"][0]["state"] == "TASK_RUNNING"
    r = requests.post(
        sim.url + API,
        json={"type": "REVIVE", "framework_id": {"value": c.framework_id}},
        headers={"Content-Type": "application/json", "Mesos-Stream-Id": c2.stream_id},
        timeout=5,
    )
    assert r.status_code == 403
    c3 = client(framework_id=c.framework_id)
    c3.next("SUBSCRIBED")
    assert framework(sim)["active"] is True and framework(sim)["tasks"][0]["id"] == "t1"
    # the failover timeout expires: the framework and its tasks are gone
    sim.inject_fault("drop_stream")
    assert c3.ended.wait(5)
    clock.advance(3600)
    state = sim.state()
    assert state["frameworks"] == [] and state["completed_frameworks"][0]["completed_tasks"][0]["state"] == (
        "TASK_KILLED"
    )
    c4 = client(framework_id=c.framework_id)
    assert c4.status == 200
    assert c4.next("ERROR", skip=())["error"]["message"] == "Framework has been removed"
    assert c4.ended.wait(5)


def test_teardown_removes_the_framework(sim, client, agents):
    c, offers = subscribed(client)
    o = offers[0]
    c.call(launch(o["id"]["value"], task_info("t1", o["agent_id"]["value"])))
    next_status(c, "TASK_STARTING")
    next_status(c, "TASK_RUNNING")
    assert c.call({"type": "TEARDOWN"}).status_code == 202
    assert c.ended.wait(5)
    agents.wait(lambda made: made[0].stopped)
    assert sim.state()["completed_frameworks"][0]["id"] == c.framework_id


def test_restart_and_leader_change_keep_tasks(sim, client):
    c, offers = subscribed(client)
    o = offers[0]
    c.call(launch(o["id"]["value"], task_info("t1", o["agent_id"]["value"])))
    next_status(c, "TASK_STARTING")
    next_status(c, "TASK_RUNNING")
    sim.inject_fault("restart")
    assert c.ended.wait(5)
    assert c.call({"type": "REVIVE"}).status_code == 400  # the new master does not know it yet
    c2 = client(framework_id=c.framework_id)
    c2.next("SUBSCRIBED")
    assert framework(sim)["tasks"][0]["state"] == "TASK_RUNNING"
    old = sim.leader_url
    result = sim.inject_fault("leader_change")
    assert c2.ended.wait(5) and sim.leader_url != old
    r = requests.post(
        old + API, json={}, headers={"Content-Type": "application/json"}, timeout=5, allow_redirects=False
    )
    assert r.status_code == 307 and r.headers["Location"] == f"//{result['leader']}{API}"
    c3 = StreamClient(sim.leader_url, framework_id=c.framework_id)
    try:
        c3.next("SUBSCRIBED")
        assert framework(sim)["tasks"][0]["id"] == "t1"
    finally:
        c3.close()


def test_a_scheduler_that_dies_with_its_connection_open_is_no_traceback(sim, capfd):
    """Seen in the fault campaign: a SIGKILLed daemon's keep-alive connections are reset."""
    host, port = sim.address.split(":")
    reset_mid_request(host, int(port), b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
    assert "Traceback" not in capfd.readouterr().err


def test_standalone_serves_until_sigterm():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "actors.sim.mesos",
            "--port",
            "0",
            "--agents",
            "2",
            "--attributes",
            "rack:a;os:linux",
            "--time-scale",
            "10",
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        state = requests.get(url + "/master/state", timeout=5).json()
        assert state["slaves"][1]["attributes"] == {"rack": "a", "os": "linux"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait()


def test_calls_keep_the_connection_alive_unless_asked_to_close(sim, client):
    c, _ = subscribed(client)
    assert "Connection" not in c.call({"type": "REVIVE"}).headers
    closing = c.call({"type": "REVIVE"}, headers={"Connection": "close"})
    assert closing.status_code == 202 and closing.headers["Connection"] == "close"
