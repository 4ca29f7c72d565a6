"""Offer parsing, constraints, packing and TaskInfo building: pure functions, table-driven."""

from __future__ import annotations

import pytest

from actors.config import AgentSettings, Constraint, MesosSettings, Profile, Secret, Volume
from actors.mesos.events import MesosAttribute, MesosOffer, MesosResource
from actors.mesos.offers import (
    HOSTNAME_MAX,
    LABEL_FRAMEWORK,
    LABEL_PROFILE,
    QueuedTask,
    build_task_info,
    container_hostname,
    framework_info,
    offer_capacity,
    pack,
    parse_offer,
    parse_status,
    satisfies,
    status_dict,
)

AGENTS = AgentSettings(go_server_url="https://gocd.example:8154/go", auto_register_key=Secret("k-123"))
SMALL = Profile(name="small", image="gocd/gocd-agent-ubuntu-24.04:v25.1.0", cpus=1, mem=1024, disk=0)
LARGE = Profile(name="large", image="gocd/gocd-agent-ubuntu-24.04:v25.1.0", cpus=4, mem=8192, disk=1000)


def offer(
    oid: str, cpus: float, mem: float, disk: float = 0.0, *, attrs=(), role="*", agent="S1"
) -> MesosOffer:
    resources = [MesosResource("cpus", role, cpus), MesosResource("mem", role, mem)]
    if disk:
        resources.append(MesosResource("disk", role, disk))
    return MesosOffer(
        id=oid, agent_id=agent, hostname=f"host-{agent}", resources=tuple(resources), attributes=attrs
    )


def queue(profile: Profile, n: int, prefix: str = "t") -> list[QueuedTask]:
    return [QueuedTask(f"{prefix}{profile.name}-{i}", profile) for i in range(n)]


def test_parse_offer_reads_the_v1_json():
    data = {
        "id": {"value": "M-O12"},
        "framework_id": {"value": "M-0000"},
        "agent_id": {"value": "M-S3"},
        "hostname": "agent3",
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 8.0}, "role": "*"},
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {"range": [{"begin": 31000, "end": 32000}]},
                "role": "*",
            },
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2.0}, "role": "gocd", "reservation": {}},
        ],
        "attributes": [
            {"name": "os", "type": "TEXT", "text": {"value": "linux"}},
            {"name": "rack", "type": "SCALAR", "scalar": {"value": 4}},
            {"name": "zone", "type": "SET", "set": {"item": ["a", "b"]}},
        ],
    }
    parsed = parse_offer(data)
    assert parsed.id == "M-O12" and parsed.agent_id == "M-S3" and parsed.hostname == "agent3"
    assert parsed.resources[0] == MesosResource("cpus", "*", 8.0)
    assert parsed.resources[1].ranges == ((31000, 32000),)
    assert parsed.resources[2].dynamic and parsed.resources[2].role == "gocd"
    assert parsed.attributes == (
        MesosAttribute("os", "TEXT", text="linux"),
        MesosAttribute("rack", "SCALAR", scalar=4.0),
        MesosAttribute("zone", "SET", items=("a", "b")),
    )


def test_parse_status_and_back_for_the_acknowledgement():
    data = {
        "task_id": {"value": "t1"},
        "state": "TASK_RUNNING",
        "source": "SOURCE_EXECUTOR",
        "agent_id": {"value": "S1"},
        "uuid": "VNKvV7CARDSywR/FQVfZ7w==",
        "timestamp": 1.5,
        "labels": {"labels": [{"key": LABEL_PROFILE, "value": "small"}]},
    }
    status = parse_status(data)
    assert (status.task_id, status.state, status.agent_id, status.uuid) == (
        "t1",
        "TASK_RUNNING",
        "S1",
        data["uuid"],
    )
    assert status.labels == ((LABEL_PROFILE, "small"),)
    back = status_dict(status)
    assert (
        back["uuid"] == data["uuid"]
        and back["agent_id"] == {"value": "S1"}
        and back["task_id"] == {"value": "t1"}
    )
    assert "uuid" not in status_dict(parse_status({"task_id": {"value": "t"}, "state": "TASK_LOST"}))


TEXT = MesosAttribute("os", "TEXT", text="linux")
RACK = MesosAttribute("rack", "SCALAR", scalar=4.0)
ZONE = MesosAttribute("zone", "SET", items=("a", "b"))


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        (Constraint("os", "IS", "linux"), True),
        (Constraint("os", "IS", "Linux"), False),
        (Constraint("os", "LIKE", "lin.*"), True),
        (Constraint("os", "LIKE", "lin"), False),  # a full match, not a search
        (Constraint("os", "UNLIKE", "win.*"), True),
        (Constraint("os", "UNLIKE", "lin.*"), False),
        (Constraint("rack", "IS", "4"), True),
        (Constraint("rack", "IS", "4.0"), True),
        (Constraint("rack", "IS", "5"), False),
        (Constraint("rack", "IS", "four"), False),
        (Constraint("rack", "LIKE", "[3-5]"), True),
        (Constraint("zone", "IS", "b,a"), True),
        (Constraint("zone", "IS", "a"), False),
        (Constraint("zone", "LIKE", "b"), True),
        (Constraint("zone", "UNLIKE", "b"), False),
        (Constraint("gpu", "IS", "yes"), False),  # missing attribute
        (Constraint("gpu", "LIKE", ".*"), False),
        (Constraint("gpu", "UNLIKE", ".*"), True),
        (Constraint("os", "LIKE", "("), False),  # a broken regex matches nothing
    ],
)
def test_constraints(constraint, expected):
    assert satisfies((TEXT, RACK, ZONE), (constraint,)) is expected


def test_all_constraints_must_hold():
    assert satisfies((TEXT, RACK), (Constraint("os", "IS", "linux"), Constraint("rack", "IS", "4")))
    assert not satisfies((TEXT, RACK), (Constraint("os", "IS", "linux"), Constraint("rack", "IS", "3")))


@pytest.mark.parametrize(
    ("tasks", "offers", "placed", "left"),
    [
        # one offer holds as many small agents as its cpus and mem allow
        (queue(SMALL, 5), [offer("o1", 4, 16384)], {"o1": 4}, 1),
        # memory is the limit here
        (queue(SMALL, 5), [offer("o1", 8, 2048)], {"o1": 2}, 3),
        # spills over into the next offer
        (queue(SMALL, 5), [offer("o1", 2, 4096), offer("o2", 8, 8192)], {"o1": 2, "o2": 3}, 0),
        # an offer too small for anything is not used
        (queue(SMALL, 1), [offer("o1", 0.5, 4096), offer("o2", 1, 1024)], {"o2": 1}, 0),
        # disk counts when the profile asks for it
        (queue(LARGE, 2), [offer("o1", 8, 16384, 1500)], {"o1": 1}, 1),
        # first-fit decreasing: the large agent goes first and the small ones fill the rest
        (queue(SMALL, 4) + queue(LARGE, 1), [offer("o1", 5, 10240, 2000)], {"o1": 2}, 3),
        # no offers, nothing placed
        (queue(SMALL, 2), [], {}, 2),
    ],
)
def test_pack(tasks, offers, placed, left):
    placements, leftover = pack(tasks, offers)
    assert {p.offer.id: len(p.tasks) for p in placements} == placed
    assert len(leftover) == left
    assert len({t.task_id for p in placements for t, _ in p.tasks} | {t.task_id for t in leftover}) == len(
        tasks
    )


def test_pack_places_large_first_and_keeps_queue_order_within_a_profile():
    tasks = queue(SMALL, 3) + queue(LARGE, 1)
    (placement,), _ = pack(tasks, [offer("o1", 16, 65536, 5000)])
    assert [t.task_id for t, _ in placement.tasks] == ["tlarge-0", "tsmall-0", "tsmall-1", "tsmall-2"]
    leftover = pack(queue(SMALL, 3), [offer("o1", 1, 1024)])[1]
    assert [t.task_id for t in leftover] == ["tsmall-1", "tsmall-2"]


def test_pack_respects_constraints():
    linux = Profile(name="linux", image="i", cpus=1, mem=512, constraints=(Constraint("os", "IS", "linux"),))
    offers = [
        offer("win", 8, 8192, attrs=(MesosAttribute("os", "TEXT", text="windows"),), agent="S1"),
        offer("lin", 8, 8192, attrs=(TEXT,), agent="S2"),
    ]
    placements, left = pack(queue(linux, 2), offers)
    assert [p.offer.id for p in placements] == ["lin"] and not left


def test_pack_uses_our_reservation_first_and_ignores_other_roles_and_dynamic_ones():
    o = MesosOffer(
        id="o1",
        agent_id="S1",
        hostname="h",
        resources=(
            MesosResource("cpus", "*", 1.0),
            MesosResource("cpus", "gocd", 0.5),
            MesosResource("cpus", "other", 8.0),
            MesosResource("mem", "gocd", 4096.0, dynamic=True),
            MesosResource("mem", "*", 1024.0),
        ),
    )
    assert offer_capacity(o, "gocd") == {("cpus", "*"): 1.0, ("cpus", "gocd"): 0.5, ("mem", "*"): 1024.0}
    (placement,), left = pack(queue(SMALL, 2), [o], role="gocd")
    assert len(placement.tasks) == 1 and len(left) == 1
    resources = placement.tasks[0][1]
    assert MesosResource("cpus", "gocd", 0.5) in resources and MesosResource("cpus", "*", 0.5) in resources
    assert pack(queue(SMALL, 1), [o], role="*")[0][0].tasks[0][1][0] == MesosResource("cpus", "*", 1.0)


def test_pack_200_tasks_against_many_offers():
    # Its speed is a benchmark's business; here: everything placed, largest first.
    tasks = queue(SMALL, 150) + queue(LARGE, 50)
    offers = [offer(f"o{i}", 8, 16384, 100000, agent=f"S{i}") for i in range(500)]
    placements, left = pack(tasks, offers)
    assert not left and sum(len(p.tasks) for p in placements) == 200
    assert all(t.profile == LARGE for t, _ in placements[0].tasks)


def test_build_task_info_docker():
    profile = Profile(
        name="docker-large",
        image="gocd/gocd-agent-ubuntu-24.04:v25.1.0",
        cpus=2,
        mem=4096,
        resources=("docker", "linux"),
        environments=("prod",),
        network="bridge",
        force_pull=True,
        volumes=(
            Volume("/var/run/docker.sock", "/var/run/docker.sock", "RW"),
            Volume("/cache", "/cache", "RO"),
        ),
        env=(("JAVA_OPTS", "-Xmx1g"),),
    )
    info = build_task_info(
        QueuedTask("gocd-mesos-docker-large-1", profile),
        agent_id="S3",
        resources=(MesosResource("cpus", "*", 2.0), MesosResource("mem", "*", 4096.0)),
        agents=AGENTS,
        framework_name="gocd-mesos",
    )
    assert info["task_id"] == {"value": "gocd-mesos-docker-large-1"} and info["agent_id"] == {"value": "S3"}
    assert info["name"] == "gocd-mesos-docker-large-1"
    assert info["resources"] == [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2.0}, "role": "*"},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 4096.0}, "role": "*"},
    ]
    assert info["command"]["shell"] is False and "value" not in info["command"]
    env = {v["name"]: v["value"] for v in info["command"]["environment"]["variables"]}
    assert env == {
        "GO_SERVER_URL": "https://gocd.example:8154/go",
        "AGENT_AUTO_REGISTER_KEY": "k-123",
        "AGENT_AUTO_REGISTER_RESOURCES": "docker,linux",
        "AGENT_AUTO_REGISTER_ENVIRONMENTS": "prod",
        "AGENT_AUTO_REGISTER_HOSTNAME": "gocd-mesos-docker-large-1",
        "JAVA_OPTS": "-Xmx1g",
    }
    assert not any(k.startswith("GO_EA_") for k in env)
    docker = info["container"]["docker"]
    assert info["container"]["type"] == "DOCKER"
    assert (docker["image"], docker["network"], docker["force_pull_image"]) == (profile.image, "BRIDGE", True)
    assert info["container"]["hostname"] == "gocd-mesos-docker-large-1"
    assert {"key": "label", "value": "gocd-mesos.profile=docker-large"} in docker["parameters"]
    assert info["container"]["volumes"] == [
        {"container_path": "/var/run/docker.sock", "host_path": "/var/run/docker.sock", "mode": "RW"},
        {"container_path": "/cache", "host_path": "/cache", "mode": "RO"},
    ]
    assert {"key": LABEL_PROFILE, "value": "docker-large"} in info["labels"]["labels"]
    assert {"key": LABEL_FRAMEWORK, "value": "gocd-mesos"} in info["labels"]["labels"]
    assert "elastic" not in str(info).lower()


def test_build_task_info_mesos_containerizer():
    profile = Profile(name="m", image="gocd/agent:v1", containerizer="mesos", network="host")
    info = build_task_info(
        QueuedTask("t", profile), agent_id="S", resources=(), agents=AGENTS, framework_name="f"
    )
    assert info["container"] == {
        "type": "MESOS",
        "mesos": {"image": {"type": "DOCKER", "docker": {"name": "gocd/agent:v1"}, "cached": True}},
    }


@pytest.mark.parametrize("containerizer", ["docker", "mesos"])
def test_build_task_info_user_network(containerizer):
    profile = Profile(name="u", image="i", containerizer=containerizer, network="user", network_name="ci-net")
    info = build_task_info(
        QueuedTask("t", profile), agent_id="S", resources=(), agents=AGENTS, framework_name="f"
    )
    assert info["container"]["network_infos"] == [{"name": "ci-net"}]
    if containerizer == "docker":
        assert info["container"]["docker"]["network"] == "USER"


@pytest.mark.parametrize(
    ("containerizer", "network", "hostname"),
    [
        # Docker: every network but HOST has a UTS namespace of its own.
        ("docker", "bridge", "gocd-mesos-linux-0a1b2c3d"),
        ("docker", "none", "gocd-mesos-linux-0a1b2c3d"),
        ("docker", "user", "gocd-mesos-linux-0a1b2c3d"),
        # Mesos refuses to start a Docker container with a hostname on HOST.
        ("docker", "host", None),
        # Mesos containerizer: only a named CNI network gets its own namespaces.
        ("mesos", "bridge", "gocd-mesos-linux-0a1b2c3d"),
        ("mesos", "user", "gocd-mesos-linux-0a1b2c3d"),
        # No network name: the host's network and UTS namespaces, hostname ignored.
        ("mesos", "host", None),
        ("mesos", "none", None),
    ],
)
def test_the_container_hostname_is_the_task_id_where_the_network_allows_one(containerizer, network, hostname):
    profile = Profile(
        name="linux",
        image="i",
        containerizer=containerizer,
        network=network,
        network_name="ci-net" if network == "user" else "",
    )
    task = QueuedTask("gocd-mesos-linux-0a1b2c3d", profile)
    info = build_task_info(task, agent_id="S", resources=(), agents=AGENTS, framework_name="f")
    assert info["container"].get("hostname") == hostname == container_hostname(task)
    # The environment names the task whatever the network.
    env = {v["name"]: v["value"] for v in info["command"]["environment"]["variables"]}
    assert env["AGENT_AUTO_REGISTER_HOSTNAME"] == task.task_id


@pytest.mark.parametrize("containerizer", ["docker", "mesos"])
def test_a_task_id_longer_than_a_hostname_is_not_cut_short_but_left_out(containerizer):
    # The longest id the registry makes: a 40-character prefix, a 20-character
    # slug, a dash and 8 hex digits.
    profile = Profile(name="linux", image="i", containerizer=containerizer, network="bridge")
    fits = QueuedTask("p" * (HOSTNAME_MAX - 9) + "-0a1b2c3d", profile)
    longest = QueuedTask("p" * 40 + "s" * 20 + "-0a1b2c3d", profile)
    assert len(fits.task_id) == HOSTNAME_MAX == 63 and len(longest.task_id) == 69
    assert container_hostname(fits) == fits.task_id
    assert container_hostname(longest) is None
    info = build_task_info(longest, agent_id="S", resources=(), agents=AGENTS, framework_name="f")
    assert "hostname" not in info["container"]


def test_framework_info():
    mesos = MesosSettings(
        masters=("http://m:5050",), user="gocd", principal="p", role="ci", failover_timeout=600
    )
    info = framework_info(mesos, "F-1")
    assert info == {
        "user": "gocd",
        "name": "gocd-mesos",
        "failover_timeout": 600.0,
        "checkpoint": True,
        "role": "ci",
        "principal": "p",
        "id": {"value": "F-1"},
    }
    assert "id" not in framework_info(mesos) and "principal" not in framework_info(
        MesosSettings(masters=("x",))
    )
