"""Which offer takes which queued agent, and what the task looks like: pure functions.

The bridge owns no decision of its own. This module turns the driver's JSON
into frozen values (:func:`parse_offer`, :func:`parse_status`), decides which
queued tasks go into which offer (:func:`pack`: first-fit decreasing by
profile, so 200 tasks against many offers cost profiles x offers steps, never
tasks x offers), checks attribute constraints (:func:`satisfies`), and builds
the v1 JSON the driver sends: the ``FrameworkInfo`` (:func:`framework_info`),
each ``TaskInfo`` (:func:`build_task_info`) and the ``Filters``.

Hostnames: wherever the container gets a UTS namespace of its own, its
``ContainerInfo.hostname`` is the task id (:func:`container_hostname`), so a
GoCD agent that registers under its machine hostname (Pending, after a wrong
auto-register key) still names its task. With host networking it carries the
Mesos node's hostname instead.

Constraint semantics (``attribute:OPERATOR:value``), as Marathon had them:

* ``IS``: TEXT equal to ``value``; SCALAR numerically equal; SET equal to the
  comma-separated items of ``value`` (order ignored); missing attribute fails.
* ``LIKE``: ``value`` is a regular expression that must match the whole TEXT,
  the SCALAR written as ``%g``, or at least one SET item; missing fails.
* ``UNLIKE``: the negation of ``LIKE``; a missing attribute passes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from actors.config import AgentSettings, Constraint, MesosSettings, Profile
from actors.mesos.events import MesosAttribute, MesosOffer, MesosResource, MesosTaskStatus

__all__ = [
    "HOSTNAME_MAX",
    "LABEL_FRAMEWORK",
    "LABEL_PROFILE",
    "Placement",
    "QueuedTask",
    "build_task_info",
    "container_hostname",
    "filters",
    "framework_info",
    "network_sets_hostname",
    "offer_capacity",
    "pack",
    "parse_offer",
    "parse_status",
    "satisfies",
    "status_dict",
]

#: TaskInfo label naming the framework that launched the task.
LABEL_FRAMEWORK = "gocd-mesos.framework"
#: TaskInfo label naming the task's profile.
LABEL_PROFILE = "gocd-mesos.profile"

#: Scalar resources a GoCD agent task asks for.
SCALARS = ("cpus", "mem", "disk")

#: Seconds Mesos gives an agent between SIGTERM and SIGKILL when we kill its task.
KILL_GRACE_SECONDS = 30.0

#: Longest hostname we give a container: one DNS label (RFC 1035). Linux takes
#: 64 bytes (HOST_NAME_MAX) and no more: beyond it Docker fails the container
#: (moby daemon/daemon_unix.go ``maxHostnameLen``, or runc's sethostname EINVAL)
#: and so does the Mesos CNI isolator's sethostname.
HOSTNAME_MAX = 63

_NETWORKS = {"host": "HOST", "bridge": "BRIDGE", "none": "NONE", "user": "USER"}
# A whisker of tolerance: offers carry doubles that were summed and subtracted.
_EPSILON = 1e-6


# --- JSON -> values -------------------------------------------------------------


def _value(obj: Any) -> str:
    """``{"value": "x"}`` -> ``"x"`` (tolerates a bare string and absence)."""
    if isinstance(obj, Mapping):
        return str(obj.get("value", ""))
    return "" if obj is None else str(obj)


def _resource(data: Mapping[str, Any]) -> MesosResource:
    kind = data.get("type", "SCALAR")
    role = str(data.get("role") or data.get("allocation_info", {}).get("role") or "*")
    dynamic = "reservation" in data or bool(data.get("reservations"))
    if kind == "SCALAR":
        return MesosResource(
            name=str(data["name"]), role=role, scalar=float(data["scalar"]["value"]), dynamic=dynamic
        )
    if kind == "RANGES":
        ranges = tuple((int(r["begin"]), int(r["end"])) for r in data.get("ranges", {}).get("range", ()))
        return MesosResource(name=str(data["name"]), role=role, ranges=ranges, dynamic=dynamic)
    items = frozenset(str(i) for i in data.get("set", {}).get("item", ()))
    return MesosResource(name=str(data["name"]), role=role, items=items, dynamic=dynamic)


def _attribute(data: Mapping[str, Any]) -> MesosAttribute:
    kind = str(data.get("type", "TEXT"))
    name = str(data["name"])
    if kind == "SCALAR":
        return MesosAttribute(name=name, type=kind, scalar=float(data["scalar"]["value"]))
    if kind == "SET":
        return MesosAttribute(name=name, type=kind, items=tuple(str(i) for i in data["set"].get("item", ())))
    if kind == "RANGES":
        items = tuple(f"{r['begin']}-{r['end']}" for r in data["ranges"].get("range", ()))
        return MesosAttribute(name=name, type=kind, items=items)
    return MesosAttribute(name=name, type="TEXT", text=str(data.get("text", {}).get("value", "")))


def parse_offer(data: Mapping[str, Any]) -> MesosOffer:
    """An ``Offer`` JSON object (v1, old resource format) as a frozen value."""
    return MesosOffer(
        id=_value(data["id"]),
        agent_id=_value(data.get("agent_id")),
        hostname=str(data.get("hostname", "")),
        resources=tuple(_resource(r) for r in data.get("resources", ())),
        attributes=tuple(_attribute(a) for a in data.get("attributes", ())),
    )


def parse_status(data: Mapping[str, Any]) -> MesosTaskStatus:
    """A ``TaskStatus`` JSON object as a frozen value."""
    labels = data.get("labels", {}).get("labels", ()) if isinstance(data.get("labels"), Mapping) else ()
    timestamp = data.get("timestamp")
    return MesosTaskStatus(
        task_id=_value(data["task_id"]),
        state=str(data["state"]),
        agent_id=_value(data.get("agent_id")),
        source=str(data.get("source", "")),
        reason=str(data.get("reason", "")),
        message=str(data.get("message", "")),
        uuid=str(data.get("uuid", "")),
        labels=tuple((str(lb.get("key", "")), str(lb.get("value", ""))) for lb in labels),
        timestamp=float(timestamp) if timestamp is not None else None,
    )


def status_dict(status: MesosTaskStatus) -> dict[str, Any]:
    """The fields of ``status`` that ``acknowledgeStatusUpdate`` reads, as driver JSON."""
    data: dict[str, Any] = {"task_id": {"value": status.task_id}, "state": status.state}
    if status.agent_id:
        data["agent_id"] = {"value": status.agent_id}
    if status.uuid:
        data["uuid"] = status.uuid
    return data


# --- constraints ------------------------------------------------------------------


def _fullmatch(pattern: str, text: str) -> bool:
    try:
        return re.fullmatch(pattern, text) is not None
    except re.error:
        return False


def _like(constraint: Constraint, attribute: MesosAttribute) -> bool:
    if attribute.type == "SCALAR":
        return _fullmatch(constraint.value, f"{attribute.scalar:g}")
    if attribute.type in ("SET", "RANGES"):
        return any(_fullmatch(constraint.value, item) for item in attribute.items)
    return _fullmatch(constraint.value, attribute.text)


def _is(constraint: Constraint, attribute: MesosAttribute) -> bool:
    if attribute.type == "SCALAR":
        try:
            return math.isclose(float(constraint.value), attribute.scalar, abs_tol=_EPSILON)
        except ValueError:
            return False
    if attribute.type in ("SET", "RANGES"):
        wanted = {item.strip() for item in constraint.value.split(",") if item.strip()}
        return wanted == set(attribute.items)
    return constraint.value == attribute.text


def satisfies(attributes: Iterable[MesosAttribute], constraints: Iterable[Constraint]) -> bool:
    """Whether an agent node with ``attributes`` meets every constraint."""
    by_name = {a.name: a for a in attributes}
    for constraint in constraints:
        attribute = by_name.get(constraint.attribute)
        if constraint.operator == "UNLIKE":
            if attribute is not None and _like(constraint, attribute):
                return False
        elif attribute is None:
            return False
        elif constraint.operator == "LIKE":
            if not _like(constraint, attribute):
                return False
        elif not _is(constraint, attribute):
            return False
    return True


# --- packing --------------------------------------------------------------------


@dataclass(frozen=True)
class QueuedTask:
    """One agent waiting to be launched."""

    #: Task id.
    task_id: str
    #: Its profile.
    profile: Profile


@dataclass(frozen=True)
class Placement:
    """The tasks one offer takes, with the exact resources each task uses."""

    #: The offer.
    offer: MesosOffer
    #: (task, resources for its TaskInfo) pairs, in launch order.
    tasks: tuple[tuple[QueuedTask, tuple[MesosResource, ...]], ...]


def offer_capacity(offer: MesosOffer, role: str) -> dict[tuple[str, str], float]:
    """Scalar amounts of ``offer`` usable by a framework of ``role``, by (name, role).

    Unreserved (``*``) and statically reserved resources of our role count;
    dynamic reservations and other roles' resources do not.
    """
    pools: dict[tuple[str, str], float] = {}
    for r in offer.resources:
        if r.ranges or r.items or r.dynamic or r.role not in ("*", role):
            continue
        pools[(r.name, r.role)] = pools.get((r.name, r.role), 0.0) + r.scalar
    return pools


def _demand(profile: Profile) -> dict[str, float]:
    return {
        name: amount
        for name, amount in zip(SCALARS, (profile.cpus, profile.mem, profile.disk), strict=True)
        if amount > 0
    }


def _fits(pools: Mapping[tuple[str, str], float], demand: Mapping[str, float], role: str) -> int:
    """How many tasks of ``demand`` the pools hold."""
    count = math.inf
    for name, amount in demand.items():
        have = pools.get((name, role), 0.0) + (pools.get((name, "*"), 0.0) if role != "*" else 0.0)
        count = min(count, math.floor((have + _EPSILON) / amount))
    return 0 if count == math.inf else int(count)


def _take(
    pools: dict[tuple[str, str], float], demand: Mapping[str, float], role: str
) -> tuple[MesosResource, ...]:
    """Take one task's demand from the pools, our role's reservation first."""
    taken: list[MesosResource] = []
    for name, amount in demand.items():
        left = amount
        for pool_role in dict.fromkeys((role, "*")):
            have = pools.get((name, pool_role), 0.0)
            if left <= _EPSILON or have <= _EPSILON:
                continue
            use = min(have, left)
            pools[(name, pool_role)] = have - use
            left -= use
            taken.append(MesosResource(name=name, role=pool_role, scalar=round(use, 6)))
    return tuple(taken)


def pack(
    queue: Sequence[QueuedTask], offers: Sequence[MesosOffer], role: str = "*"
) -> tuple[tuple[Placement, ...], tuple[QueuedTask, ...]]:
    """Place queued tasks into offers: (placements of offers that take tasks, tasks left over).

    First-fit decreasing over profiles: the largest profile (cpus, then mem,
    then disk) is placed first, each profile's tasks in queue order, filling
    offers in the order given and respecting each profile's constraints. Offers
    that take nothing are not in the result: the caller declines them.
    """
    by_profile: dict[str, list[QueuedTask]] = {}
    profiles: dict[str, Profile] = {}
    for task in queue:
        by_profile.setdefault(task.profile.name, []).append(task)
        profiles.setdefault(task.profile.name, task.profile)
    order = sorted(profiles.values(), key=lambda p: (p.cpus, p.mem, p.disk), reverse=True)
    pools = [offer_capacity(offer, role) for offer in offers]
    placed: list[list[tuple[QueuedTask, tuple[MesosResource, ...]]]] = [[] for _ in offers]
    left: list[QueuedTask] = []
    for profile in order:
        waiting = by_profile[profile.name]
        demand = _demand(profile)
        index = 0
        for i, offer in enumerate(offers):
            if index >= len(waiting):
                break
            if not satisfies(offer.attributes, profile.constraints):
                continue
            room = _fits(pools[i], demand, role) if demand else len(waiting) - index
            for task in waiting[index : index + room]:
                placed[i].append((task, _take(pools[i], demand, role)))
            index += min(room, len(waiting) - index)
        left.extend(waiting[index:])
    placements = tuple(
        Placement(offer=offer, tasks=tuple(tasks))
        for offer, tasks in zip(offers, placed, strict=True)
        if tasks
    )
    left_ids = {t.task_id for t in left}
    return placements, tuple(t for t in queue if t.task_id in left_ids)


# --- JSON the driver sends --------------------------------------------------------


def filters(refuse_seconds: float) -> dict[str, float]:
    """A ``Filters`` object: offers we turn down are not re-offered for ``refuse_seconds``."""
    return {"refuse_seconds": float(refuse_seconds)}


def framework_info(mesos: MesosSettings, framework_id: str | None = None) -> dict[str, Any]:
    """The ``FrameworkInfo`` we subscribe with (``id`` only when we have one)."""
    info: dict[str, Any] = {
        "user": mesos.user,
        "name": mesos.framework_name,
        "failover_timeout": float(mesos.failover_timeout),
        "checkpoint": bool(mesos.checkpoint),
        "role": mesos.role,
    }
    if mesos.principal:
        # pymesos does not copy the principal into FrameworkInfo; Mesos wants it there.
        info["principal"] = mesos.principal
    if framework_id:
        info["id"] = {"value": framework_id}
    return info


def _scalar_json(resource: MesosResource) -> dict[str, Any]:
    return {
        "name": resource.name,
        "type": "SCALAR",
        "scalar": {"value": resource.scalar},
        "role": resource.role,
    }


def network_sets_hostname(profile: Profile) -> bool:
    """Whether the containers of ``profile`` get a hostname of their own from ``ContainerInfo``.

    Docker: every network but ``host``; with ``HOST`` and a hostname the
    executor fails the task ("Unable to set hostname with host network mode",
    apache/mesos src/docker/docker.cpp ``Docker::RunOptions::create``). Mesos
    containerizer: only in a named CNI network (``bridge`` is ``mesos-bridge``,
    ``user`` is ``network_name``); ``host`` and ``none`` send no network name,
    so the container joins the host's network and UTS namespaces and the CNI
    isolator ignores the hostname (src/slave/containerizer/mesos/isolators/
    network/cni/cni.cpp ``NetworkCniIsolatorProcess::prepare``).
    """
    if profile.containerizer == "mesos":
        return profile.network in ("bridge", "user")
    return profile.network != "host"


def container_hostname(task: QueuedTask) -> str | None:
    """The ``ContainerInfo.hostname`` of ``task``: its task id, or None when none is set.

    None for host networking (:func:`network_sets_hostname`), where the
    container has the Mesos node's hostname, and for a task id longer than
    :data:`HOSTNAME_MAX`, which is never cut short: a truncated name would
    name no task. Such a container keeps the name its runtime picks (Docker:
    the first 12 hex digits of its container id; Mesos CNI: the Mesos
    container id), which names no task either.
    """
    if not network_sets_hostname(task.profile) or len(task.task_id) > HOSTNAME_MAX:
        return None
    return task.task_id


def build_task_info(
    task: QueuedTask,
    *,
    agent_id: str,
    resources: Sequence[MesosResource],
    agents: AgentSettings,
    framework_name: str,
) -> dict[str, Any]:
    """The ``TaskInfo`` of one GoCD agent: its container, environment and labels.

    The task id doubles as ``AGENT_AUTO_REGISTER_HOSTNAME``, which ties the
    GoCD agent to its task, and as the container's hostname where the network
    allows one (:func:`container_hostname`), which still ties it when GoCD
    refuses the key and keeps the agent Pending under its machine hostname.
    ``shell: false`` without a value keeps the image's entrypoint (``sh -c``
    would become the entrypoint's arguments). No ``GO_EA_*`` variable and no
    elastic field is ever set: those would make GoCD treat the agent as an
    elastic one and refuse its key.
    """
    profile = task.profile
    env = [
        ("GO_SERVER_URL", agents.go_server_url),
        ("AGENT_AUTO_REGISTER_KEY", agents.auto_register_key.reveal()),
        ("AGENT_AUTO_REGISTER_RESOURCES", ",".join(profile.resources)),
        ("AGENT_AUTO_REGISTER_ENVIRONMENTS", ",".join(profile.environments)),
        ("AGENT_AUTO_REGISTER_HOSTNAME", task.task_id),
        *profile.env,
    ]
    volumes = [
        {"container_path": v.container_path, "host_path": v.host_path, "mode": v.mode.upper()}
        for v in profile.volumes
    ]
    container: dict[str, Any]
    if profile.containerizer == "mesos":
        container = {
            "type": "MESOS",
            "mesos": {
                "image": {
                    "type": "DOCKER",
                    "docker": {"name": profile.image},
                    "cached": not profile.force_pull,
                }
            },
        }
        if profile.network == "bridge":
            container["network_infos"] = [{"name": "mesos-bridge"}]
        elif profile.network == "user":
            container["network_infos"] = [{"name": profile.network_name}]
    else:
        container = {
            "type": "DOCKER",
            "docker": {
                "image": profile.image,
                "network": _NETWORKS.get(profile.network, "HOST"),
                "force_pull_image": profile.force_pull,
                "privileged": False,
                "parameters": [
                    {"key": "label", "value": f"{LABEL_FRAMEWORK}={framework_name}"},
                    {"key": "label", "value": f"{LABEL_PROFILE}={profile.name}"},
                ],
            },
        }
        if profile.network == "user":
            # The Docker containerizer joins the user network named in the first NetworkInfo.
            container["network_infos"] = [{"name": profile.network_name}]
    hostname = container_hostname(task)
    if hostname is not None:
        container["hostname"] = hostname
    if volumes:
        container["volumes"] = volumes
    return {
        "name": task.task_id,
        "task_id": {"value": task.task_id},
        "agent_id": {"value": agent_id},
        "resources": [_scalar_json(r) for r in resources],
        "command": {
            "shell": False,
            "environment": {"variables": [{"name": k, "type": "VALUE", "value": v} for k, v in env]},
        },
        "container": container,
        "labels": {
            "labels": [
                {"key": LABEL_FRAMEWORK, "value": framework_name},
                {"key": LABEL_PROFILE, "value": profile.name},
            ]
        },
        "kill_policy": {"grace_period": {"nanoseconds": int(KILL_GRACE_SECONDS * 1e9)}},
    }
