"""A Mesos master simulator speaking the v1 scheduler HTTP API, quirks included.

:class:`MesosSimulator` serves ``POST /api/v1/scheduler`` on loopback exactly
as ``shared/reference/mesos-api.md`` describes Mesos 1.11: a chunked RecordIO
SUBSCRIBE stream with ``Mesos-Stream-Id`` (SUBSCRIBED, an immediate HEARTBEAT,
then one every interval), OFFERS / RESCIND / UPDATE / FAILURE / ERROR events
in the proto nesting, calls answered ``202`` with ``Content-Length: 0``, and
the status codes of a real master (401 with ``WWW-Authenticate``, 307 to the
leader, 400/403/405/406/415). Behind it sits a cluster of simulated agent
nodes: an allocator with an allocation interval, decline filters (subset
rule), SUPPRESS/REVIVE, launch validation with the master's messages, reliable
status updates (base64 uuid, re-sent until acknowledged, in order per task),
reconciliation, kills and framework failover.

A launched task runs a simulated GoCD agent: the task's environment goes to
``agent_factory(env, hostname, clock)`` (by default
:meth:`actors.sim.gocd_agent.SimAgent.from_environment`), whose object is
started on TASK_RUNNING and stopped when the task is killed. ``hostname`` is
the machine hostname the container would have: ``ContainerInfo.hostname``
where its network gives it a UTS namespace of its own (Docker BRIDGE, NONE,
USER; Mesos containerizer in a named CNI network), else the Docker runtime's
12-hex-digit container id prefix or the Mesos container id; the node's
hostname with host networking. A Docker task that sets a hostname on the HOST
network fails as the Docker executor makes it fail. A task without a valid
``GO_SERVER_URL`` "exits" with TASK_FAILED, as the image's entrypoint would.
Tasks never finish by themselves.

Faults (``POST /_sim/faults`` with ``{"kind": ...}`` or :meth:`inject_fault`):

* ``drop_stream`` [``framework_id``]: close the subscription stream(s) abruptly;
* ``stall_stream`` [``framework_id``]: keep the stream open, send nothing more;
* ``restart``: master failover in place: streams and connections closed,
  offers and filters forgotten, tasks kept; frameworks must resubscribe;
* ``leader_change`` [``leader``: ``host:port``]: this master stops leading and
  answers 307 to the leader; without ``leader`` it opens a new port that
  leads, with the same cluster state (a failover to another master);
* ``lose_agent`` [``agent_id`` | ``hostname``]: an agent node becomes
  unreachable: RESCIND of its offers, FAILURE, and TASK_LOST (TASK_UNREACHABLE
  for PARTITION_AWARE frameworks) for its tasks; default: the node with most tasks;
* ``fail_image`` [``image``] [``count``] [``message``]: launches of ``image``
  (or the next ``count`` launches) fail with TASK_STARTING then TASK_FAILED /
  REASON_CONTAINER_LAUNCH_FAILED; ``count: 0`` with no image clears it;
* ``slow_launch`` ``delay`` [``count``]: ``delay`` clock seconds between
  TASK_STARTING and TASK_RUNNING for the next ``count`` launches (all if absent);
* ``offer_timeout`` ``seconds``: the master's ``--offer_timeout``: an offer
  neither accepted nor declined within ``seconds`` is rescinded (RESCIND), and
  an ACCEPT that comes later loses its tasks (TASK_LOST, REASON_INVALID_OFFERS);
  ``seconds: 0`` turns it off, for outstanding offers too (offers never expire,
  Mesos's default).

Observation: ``GET /master/state`` (a subset of Mesos's), ``GET /version``, and
:attr:`MesosSimulator.calls`, the scheduler calls the master accepted (202).
Standalone: ``python -m actors.sim.mesos --port 5050 --agents 3``.

Known simplifications: JSON only (protobuf bodies get 415), one role per
framework, no reservations, no executors of our own, no operator API. A
node's machine hostname is its Mesos hostname; a real agent advertises its
``--hostname``, else the reverse-DNS name of its IP (src/slave/slave.cpp),
which may be longer than (or differ from) what gethostname() answers there.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import contextlib
import itertools
import json
import logging
import math
import queue
import re
import select
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from actors.clock import Clock, RealClock, ScaledClock
from actors.sim import QuietRequestHandler, serve_until_signal

__all__ = ["MesosSimulator", "main"]

logger = logging.getLogger(__name__)

VERSION = "1.11.0"
API_PATH = "/api/v1/scheduler"
REALM = "mesos-master-scheduler"
#: The allocator offers nothing smaller than this (src/master/constants.hpp).
MIN_CPUS = 0.01
MIN_MEM = 32.0
#: Default and cap of a decline filter, seconds (mesos.proto Filters; allocator).
DEFAULT_REFUSE = 5.0
MAX_REFUSE = 365 * 86400.0
#: Cap of the status update retry interval, seconds (src/slave/constants.hpp).
STATUS_RETRY_MAX = 600.0
#: Longest hostname sethostname(2) takes: Linux HOST_NAME_MAX, bytes.
HOST_NAME_MAX = 64

TERMINAL = frozenset(
    {
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_ERROR",
        "TASK_LOST",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
    }
)
CALL_TYPES = frozenset(
    {
        "SUBSCRIBE",
        "TEARDOWN",
        "ACCEPT",
        "DECLINE",
        "ACCEPT_INVERSE_OFFERS",
        "DECLINE_INVERSE_OFFERS",
        "REVIVE",
        "KILL",
        "SHUTDOWN",
        "ACKNOWLEDGE",
        "ACKNOWLEDGE_OPERATION_STATUS",
        "RECONCILE",
        "RECONCILE_OPERATIONS",
        "MESSAGE",
        "REQUEST",
        "SUPPRESS",
        "UPDATE_FRAMEWORK",
        "UNKNOWN",
    }
)
# The sub-message each call type needs (scheduler::call::validate).
CALL_BODIES = {
    "ACCEPT": "accept",
    "DECLINE": "decline",
    "ACCEPT_INVERSE_OFFERS": "accept_inverse_offers",
    "DECLINE_INVERSE_OFFERS": "decline_inverse_offers",
    "KILL": "kill",
    "SHUTDOWN": "shutdown",
    "ACKNOWLEDGE": "acknowledge",
    "ACKNOWLEDGE_OPERATION_STATUS": "acknowledge_operation_status",
    "RECONCILE": "reconcile",
    "RECONCILE_OPERATIONS": "reconcile_operations",
    "MESSAGE": "message",
    "REQUEST": "request",
    "UPDATE_FRAMEWORK": "update_framework",
}
FAULT_KINDS = (
    "drop_stream",
    "stall_stream",
    "restart",
    "leader_change",
    "lose_agent",
    "fail_image",
    "slow_launch",
    "offer_timeout",
)
#: How many accepted scheduler calls ``MesosSimulator.calls`` keeps.
CALL_LOG = 10_000
_ID_BAD = re.compile(r"[/\\\x00-\x1f\x7f]")


class _HttpError(Exception):
    def __init__(self, status: int, text: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = dict(headers or {})


def _default_agent_factory(env: Mapping[str, str], hostname: str, clock: Clock) -> Any:
    from actors.sim.gocd_agent import SimAgent

    return SimAgent.from_environment(env, clock=clock, hostname=hostname)


def _valid_go_server_url(url: str) -> bool:
    """The agent image's check: http(s) and a path ending in /go (or /go/)."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and parts.path.rstrip("/").endswith("/go")


def _new_uuid() -> str:
    return base64.b64encode(uuid.uuid4().bytes).decode("ascii")


def _id_error(value: Any) -> str | None:
    """Why a Mesos ID value is invalid (src/common/validation.cpp validateID), or None."""
    if not isinstance(value, str) or value == "":
        return "ID must not be empty"
    if len(value) > 255:
        return "ID must not be greater than 255 characters"
    if value in (".", ".."):
        return "'.' and '..' are disallowed for ID"
    if _ID_BAD.search(value):
        return "ID must not contain '/', '\\' or control characters"
    return None


# --- resources -------------------------------------------------------------------


class _Res:
    """Scalars by name plus port ranges: what a node, offer or task holds."""

    __slots__ = ("ports", "scalars")

    def __init__(
        self, scalars: Mapping[str, float] | None = None, ports: list[tuple[int, int]] | None = None
    ):
        self.scalars = {k: float(v) for k, v in (scalars or {}).items() if v}
        self.ports = _normalise(ports or [])

    def copy(self) -> _Res:
        return _Res(self.scalars, self.ports)

    def __add__(self, other: _Res) -> _Res:
        scalars = dict(self.scalars)
        for k, v in other.scalars.items():
            scalars[k] = scalars.get(k, 0.0) + v
        return _Res(scalars, self.ports + other.ports)

    def __sub__(self, other: _Res) -> _Res:
        scalars = dict(self.scalars)
        for k, v in other.scalars.items():
            left = scalars.get(k, 0.0) - v
            scalars[k] = left if left > 1e-9 else 0.0
        return _Res(scalars, _subtract_ranges(self.ports, other.ports))

    def contains(self, other: _Res) -> bool:
        if any(self.scalars.get(k, 0.0) + 1e-9 < v for k, v in other.scalars.items()):
            return False
        return not _subtract_ranges(other.ports, self.ports)

    def empty(self) -> bool:
        return not any(v > 1e-9 for v in self.scalars.values()) and not self.ports

    def allocatable(self) -> bool:
        return self.scalars.get("cpus", 0.0) >= MIN_CPUS or self.scalars.get("mem", 0.0) >= MIN_MEM

    def to_json(self, role: str = "*") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for name in sorted(self.scalars, key=lambda n: ["cpus", "mem", "disk", n].index(n)):
            value = self.scalars[name]
            if value > 1e-9:
                out.append(
                    {"name": name, "type": "SCALAR", "scalar": {"value": round(value, 6)}, "role": role}
                )
        if self.ports:
            out.append(
                {
                    "name": "ports",
                    "type": "RANGES",
                    "role": role,
                    "ranges": {"range": [{"begin": b, "end": e} for b, e in self.ports]},
                }
            )
        return out

    def model(self) -> dict[str, Any]:
        """The /master/state form: ``{"cpus": 1, "mem": 2048, "disk": 0, "gpus": 0, "ports": "[..]"}``."""
        data: dict[str, Any] = {
            name: round(self.scalars.get(name, 0.0), 6) for name in ("cpus", "mem", "disk", "gpus")
        }
        if self.ports:
            data["ports"] = "[" + ", ".join(f"{b}-{e}" for b, e in self.ports) + "]"
        return data

    def __str__(self) -> str:
        parts = [f"{k}(*):{v:g}" for k, v in self.scalars.items() if v > 1e-9]
        if self.ports:
            parts.append("ports(*):[" + ", ".join(f"{b}-{e}" for b, e in self.ports) + "]")
        return "; ".join(parts) if parts else "{}"


def _normalise(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for b, e in sorted(ranges):
        if out and b <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((b, e))
    return out


def _subtract_ranges(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for start, end in a:
        pieces = [(start, end)]
        for bs, be in b:
            nxt = []
            for s, e in pieces:
                if be < s or bs > e:
                    nxt.append((s, e))
                    continue
                if s < bs:
                    nxt.append((s, bs - 1))
                if be < e:
                    nxt.append((be + 1, e))
            pieces = nxt
        out.extend(pieces)
    return _normalise(out)


def _parse_resources(items: Any) -> tuple[_Res, str | None]:
    """Resource JSON of a TaskInfo -> (_Res, error)."""
    if not isinstance(items, list):
        return _Res(), "resources must be a list"
    res = _Res()
    for item in items:
        if not isinstance(item, dict) or "name" not in item or "type" not in item:
            return _Res(), "Invalid resources: a resource needs 'name' and 'type'"
        kind = item["type"]
        if kind == "SCALAR":
            try:
                value = float(item["scalar"]["value"])
            except (KeyError, TypeError, ValueError):
                return _Res(), f"Invalid resources: {item['name']} has no scalar value"
            if value < 0 or math.isnan(value) or math.isinf(value):
                return _Res(), f"Invalid resources: {item['name']} must be a non-negative finite number"
            res = res + _Res({item["name"]: value})
        elif kind == "RANGES" and item["name"] == "ports":
            ranges = [(int(r["begin"]), int(r["end"])) for r in item.get("ranges", {}).get("range", [])]
            res = res + _Res(ports=ranges)
        else:
            return _Res(), f"Invalid resources: {item['name']} of type {kind} is not offered here"
    return res, None


def _parse_attribute(name: str, value: str) -> dict[str, Any]:
    """Mesos's ``--attributes`` value syntax: number -> SCALAR, [a-b] -> RANGES, {a,b} -> SET, else TEXT."""
    value = value.strip()
    try:
        return {"name": name, "type": "SCALAR", "scalar": {"value": float(value)}}
    except ValueError:
        pass
    if value.startswith("[") and value.endswith("]"):
        ranges = []
        for part in value[1:-1].split(","):
            b, _, e = part.strip().partition("-")
            ranges.append({"begin": int(b), "end": int(e or b)})
        return {"name": name, "type": "RANGES", "ranges": {"range": ranges}}
    if value.startswith("{") and value.endswith("}"):
        return {
            "name": name,
            "type": "SET",
            "set": {"item": [i.strip() for i in value[1:-1].split(",") if i.strip()]},
        }
    return {"name": name, "type": "TEXT", "text": {"value": value}}


def _attribute_model(attr: Mapping[str, Any]) -> Any:
    kind = attr["type"]
    if kind == "SCALAR":
        return attr["scalar"]["value"]
    if kind == "RANGES":
        return "[" + ", ".join(f"{r['begin']}-{r['end']}" for r in attr["ranges"]["range"]) + "]"
    if kind == "SET":
        return "{" + ",".join(attr["set"]["item"]) + "}"
    return attr["text"]["value"]


# --- model ------------------------------------------------------------------------


class _Stream:
    """One SUBSCRIBE response: events queued by anyone, written by its handler thread."""

    def __init__(self, framework_id: str) -> None:
        self.id = str(uuid.uuid4())
        self.framework_id = framework_id
        self.events: collections.deque[dict[str, Any] | None] = collections.deque()
        self.closing: str | None = None  # "final" (zero chunk) or "abort" (TCP close)
        self.stalled = False
        self.closed = False
        self.wake_r, self.wake_w = socket.socketpair()

    def send(self, event: dict[str, Any]) -> None:
        if self.closing is None and not self.stalled:
            self.events.append(event)
            self._wake()

    def close(self, abrupt: bool = False) -> None:
        if self.closing is None:
            self.closing = "abort" if abrupt else "final"
            self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self.wake_w.send(b"\0")


class _Node:
    def __init__(self, node_id: str, hostname: str, total: _Res, attributes: list[dict[str, Any]]) -> None:
        self.id = node_id
        self.hostname = hostname
        self.total = total
        self.attributes = attributes
        self.reachable = True


def _docker_network(container: Mapping[str, Any]) -> str:
    """DockerInfo.network; HOST when unset, as on Linux (src/docker/docker.cpp)."""
    return str(container.get("docker", {}).get("network", "HOST"))


def _cni_networks(container: Mapping[str, Any]) -> list[str]:
    """The named networks a Mesos-containerizer container joins (the CNI isolator's)."""
    return [str(n["name"]) for n in container.get("network_infos", []) if n.get("name")]


class _Task:
    def __init__(self, framework_id: str, node: _Node, info: dict[str, Any], resources: _Res) -> None:
        self.id: str = info["task_id"]["value"]
        self.name: str = info.get("name", self.id)
        self.framework_id = framework_id
        self.node = node
        self.info = info
        self.resources = resources
        self.state = "TASK_STAGING"
        self.statuses: list[dict[str, Any]] = []
        self.pending: collections.deque[dict[str, Any]] = collections.deque()
        self.retry_interval = 0.0
        self.retry_timer: Any = None
        self.agent: Any = None
        self.killed = False
        self.fail_launch: str | None = None
        self.launch_delay = 0.0
        self.container_id = str(uuid.uuid4())
        #: The Docker daemon's id of the container (64 hex digits), Docker containerizer only.
        self.docker_id = uuid.uuid4().hex + uuid.uuid4().hex
        self.unreachable = False

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def env(self) -> dict[str, str]:
        variables = self.info.get("command", {}).get("environment", {}).get("variables", [])
        return {v["name"]: str(v.get("value", "")) for v in variables if "name" in v}

    def image(self) -> str:
        container = self.info.get("container", {})
        if container.get("type") == "MESOS":
            return str(container.get("mesos", {}).get("image", {}).get("docker", {}).get("name", ""))
        return str(container.get("docker", {}).get("image", ""))

    def machine_hostname(self) -> str:
        """What gethostname() answers inside the task's container.

        Docker (moby daemon/container.go, where the daemon creates the
        container): ``--hostname`` if given, else the node's hostname on the
        host network and the first 12 hex digits of the container id on any
        other. Mesos containerizer (apache/mesos src/slave/containerizer/mesos/
        isolators/network/cni/cni.cpp, ``prepare`` and ``_isolate``): in a named
        CNI network ``ContainerInfo.hostname``, else the Mesos container id;
        without a named network the container shares the node's UTS namespace
        and a hostname is ignored.
        """
        container = self.info.get("container", {})
        hostname = str(container.get("hostname", ""))
        if container.get("type") == "DOCKER":
            if _docker_network(container) == "HOST":
                return self.node.hostname
            return hostname or self.docker_id[:12]
        if _cni_networks(container):
            return hostname or self.container_id
        return self.node.hostname

    def hostname_failure(self) -> tuple[str, str | None, str] | None:
        """(source, reason, message) of the TASK_FAILED a hostname the container cannot take
        ends in, or None."""
        container = self.info.get("container", {})
        hostname = str(container.get("hostname", ""))
        if not hostname:
            return None
        if container.get("type") == "DOCKER":
            if _docker_network(container) == "HOST":
                # src/docker/docker.cpp Docker::RunOptions::create refuses; the Docker
                # executor sends it with no reason (src/docker/executor.cpp launchTask).
                return (
                    "SOURCE_EXECUTOR",
                    None,
                    "Failed to create docker run options: Unable to set hostname with host network mode",
                )
            if len(hostname.encode()) > HOST_NAME_MAX:
                # The daemon refuses it (or runc's sethostname fails with EINVAL): `docker run`
                # exits 125 and the executor reports that exit (executor.cpp _reaped).
                return ("SOURCE_EXECUTOR", None, "Container exited with status 125")
        elif _cni_networks(container) and len(hostname.encode()) > HOST_NAME_MAX:
            # The CNI isolator's setup helper fails sethostname, so the launch does
            # (cni.cpp; src/slave/slave.cpp executorLaunched): reported by the agent.
            return (
                "SOURCE_AGENT",
                "REASON_CONTAINER_LAUNCH_FAILED",
                "Failed to launch container: Failed to setup hostname and network files: "
                f"Failed to set the hostname of the container to '{hostname}': Invalid argument",
            )
        return None

    def model(self) -> dict[str, Any]:
        labels = self.info.get("labels", {}).get("labels", [])
        return {
            "id": self.id,
            "name": self.name,
            "framework_id": self.framework_id,
            "executor_id": "",
            "slave_id": self.node.id,
            "state": self.state,
            "resources": self.resources.model(),
            "labels": [{"key": lb.get("key", ""), "value": lb.get("value", "")} for lb in labels],
            "statuses": [{"state": s["state"], "timestamp": s["timestamp"]} for s in self.statuses],
            "container": self.info.get("container", {}),
        }


class _Framework:
    def __init__(
        self, framework_id: str, info: dict[str, Any], principal: str | None, registered: float
    ) -> None:
        self.id = framework_id
        self.info = info
        self.principal = principal
        self.registered_time = registered
        self.stream: _Stream | None = None
        self.recovered = False  # known from before a master failover, not yet resubscribed
        self.suppressed: set[str] = set()
        self.filters: dict[str, tuple[float, _Res]] = {}
        self.offers: dict[str, tuple[_Node, _Res]] = {}
        self.tasks: dict[str, _Task] = {}
        self.completed: list[_Task] = []
        self.failover_timer: Any = None

    @property
    def connected(self) -> bool:
        return self.stream is not None

    @property
    def role(self) -> str:
        return str(self.info.get("role") or "*")

    @property
    def partition_aware(self) -> bool:
        return any(c.get("type") == "PARTITION_AWARE" for c in self.info.get("capabilities", []))

    def send(self, event: dict[str, Any]) -> None:
        if self.stream is not None:
            self.stream.send(event)


class _Runner:
    """One worker thread that starts and stops the simulated agents, never under the master lock."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="mesos-sim-runner", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], None]) -> None:
        self._queue.put(fn)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(5)

    def _loop(self) -> None:
        while True:
            fn = self._queue.get()
            if fn is None:
                return
            try:
                fn()
            except Exception:
                logger.exception("Simulated container action failed")


# --- HTTP -------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: MesosSimulator) -> None:
        self.sim = sim
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    @property
    def addr(self) -> str:
        host, port = self.server_address[:2]
        return f"{host if isinstance(host, str) else host.decode()}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conn_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self.conn_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(QuietRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.server.addr, format % args)

    def _reply(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "text/plain; charset=utf-8",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if body:
            self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._reply(status, json.dumps(value).encode("utf-8"), "application/json")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _route(self) -> None:
        sim = self.server.sim
        path = urlsplit(self.path).path
        try:
            if path == API_PATH:
                sim._http_scheduler(self)
            elif path == "/version" and self.command == "GET":
                self._json(200, sim.version_info())
            elif (
                path in ("/master/state", "/master/state.json", "/state", "/state.json")
                and self.command == "GET"
            ):
                sim._check_leader(self)
                self._json(200, sim.state())
            elif path == "/health" and self.command == "GET":
                self._reply(200)
            elif path == "/_sim/faults" and self.command == "POST":
                try:
                    spec = json.loads(self._body() or b"{}")
                    if not isinstance(spec, dict) or "kind" not in spec:
                        raise ValueError('expected {"kind": ...}')
                    result = sim.inject_fault(**spec)
                except (ValueError, TypeError, KeyError) as e:
                    self._reply(400, f"{e}\n".encode())
                    return
                self._json(200, result)
            else:
                self._reply(404)
        except _HttpError as e:
            self._reply(e.status, (e.text + "\n").encode() if e.text else b"", headers=e.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _route


# --- the simulator ---------------------------------------------------------------


class MesosSimulator:
    """An in-process Mesos master and its agent nodes (see the module doc).

    ``attributes`` is one dict for every node or a list with one dict per
    node, values in Mesos's ``--attributes`` syntax (``"4"``, ``"{a,b}"``,
    ``"linux"``). Times are seconds of ``clock``.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        agents: int = 3,
        cpus: float = 8.0,
        mem: float = 16384.0,
        disk: float = 100000.0,
        ports: tuple[int, int] | None = (31000, 32000),
        attributes: Mapping[str, str] | list[Mapping[str, str]] | None = None,
        principal: str | None = None,
        secret: str | None = None,
        heartbeat_interval: float = 15.0,
        allocation_interval: float = 1.0,
        status_retry_interval: float = 10.0,
        agent_factory: Callable[[dict[str, str], str, Clock], Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.clock: Clock = clock or RealClock()
        self.principal = principal
        self.secret = secret
        self.heartbeat_interval = float(heartbeat_interval)
        self.allocation_interval = float(allocation_interval)
        self.status_retry_interval = float(status_retry_interval)
        self.agent_factory = agent_factory or _default_agent_factory
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._master_id = str(uuid.uuid4())
        self._framework_seq = itertools.count()
        self._offer_seq = itertools.count(1)
        self._frameworks: dict[str, _Framework] = {}
        self._completed_frameworks: dict[str, _Framework] = {}
        self._nodes: dict[str, _Node] = {}
        for i in range(agents):
            attrs = attributes[i] if isinstance(attributes, list) else (attributes or {})
            total = _Res({"cpus": cpus, "mem": mem, "disk": disk}, [ports] if ports else [])
            node_id = f"{self._master_id}-S{i}"
            self._nodes[node_id] = _Node(
                node_id, f"127.0.0.{i + 1}", total, [_parse_attribute(k, str(v)) for k, v in attrs.items()]
            )
        self._servers: list[tuple[_Server, threading.Thread]] = []
        self._leader: str | None = None
        self._running = False
        self._runner: _Runner | None = None
        # Faults in force.
        self._fail_images: set[str] = set()
        self._fail_next = 0
        self._fail_message = "Failed to launch container: simulated image failure"
        self._slow_delay = 0.0
        self._slow_count: int | None = None
        self._offer_timeout = 0.0
        #: The scheduler calls answered 202 and the subscriptions accepted, oldest first (at most
        #: CALL_LOG): ``(clock now, call type, framework id, task ids)``, the task ids being those a
        #: LAUNCH, KILL, ACKNOWLEDGE or RECONCILE names. Not Mesos's: what a test saw the master do.
        self.calls: collections.deque[tuple[float, str, str, tuple[str, ...]]] = collections.deque(
            maxlen=CALL_LOG
        )

    # --- lifecycle --------------------------------------------------------------

    def start(self) -> str:
        """Serve on ``host:port`` (0 picks a free port); returns the base URL."""
        with self._lock:
            self._running = True
            self._runner = _Runner()
            server = self._listen(self._port)
            self._leader = server.addr
            self._schedule_allocation()
        logger.info("Mesos master simulator at %s with %d agents", self.url, len(self._nodes))
        return self.url

    def stop(self) -> None:
        """Close every stream and connection, stop every simulated agent."""
        with self._lock:
            if not self._running:
                return
            self._running = False
            agents = []
            for f in self._frameworks.values():
                if f.stream is not None:
                    f.stream.close(abrupt=True)
                for task in f.tasks.values():
                    if task.agent is not None:
                        agents.append(task.agent)
                        task.agent = None
            servers, self._servers = self._servers, []
        for server, thread in servers:
            server.shutdown()
            server.drop_connections()
            server.server_close()
            thread.join(5)
        for agent in agents:
            with contextlib.suppress(Exception):
                agent.stop()
        if self._runner is not None:
            self._runner.stop()

    def __enter__(self) -> MesosSimulator:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL of the first listener (``http://127.0.0.1:PORT``)."""
        return f"http://{self._servers[0][0].addr}" if self._servers else ""

    @property
    def leader_url(self) -> str:
        """Base URL of the leading master."""
        return f"http://{self._leader}" if self._leader else ""

    @property
    def address(self) -> str:
        """``host:port`` of the first listener."""
        return self._servers[0][0].addr if self._servers else ""

    def _listen(self, port: int) -> _Server:
        server = _Server((self._host, port), self)
        thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name=f"mesos-sim-{server.addr}", daemon=True
        )
        thread.start()
        self._servers.append((server, thread))
        return server

    def version_info(self) -> dict[str, Any]:
        return {"version": VERSION, "build_user": "sim", "git_tag": VERSION}

    # --- observation --------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The ``/master/state`` subset: frameworks with tasks, slaves with resources and attributes."""
        with self._lock:
            leader = self._leader or ""
            return {
                "version": VERSION,
                "id": self._master_id,
                "pid": f"master@{leader}",
                "hostname": leader.split(":")[0],
                "leader": f"master@{leader}",
                "activated_slaves": sum(1 for n in self._nodes.values() if n.reachable),
                "frameworks": [self._framework_model(f) for f in self._frameworks.values()],
                "completed_frameworks": [
                    self._framework_model(f) for f in self._completed_frameworks.values()
                ],
                "slaves": [self._node_model(n) for n in self._nodes.values()],
            }

    def _framework_model(self, f: _Framework) -> dict[str, Any]:
        live = [t for t in f.tasks.values() if not t.unreachable]
        return {
            "id": f.id,
            "name": f.info.get("name", ""),
            "user": f.info.get("user", ""),
            "role": f.role,
            "principal": f.principal or f.info.get("principal", ""),
            "active": f.connected,
            "connected": f.connected,
            "recovered": f.recovered,
            "failover_timeout": float(f.info.get("failover_timeout", 0.0)),
            "checkpoint": bool(f.info.get("checkpoint", False)),
            "registered_time": f.registered_time,
            "tasks": [t.model() for t in live],
            "unreachable_tasks": [t.model() for t in f.tasks.values() if t.unreachable],
            "completed_tasks": [t.model() for t in f.completed],
            "offers": [
                {"id": oid, "slave_id": node.id, "resources": res.model()}
                for oid, (node, res) in f.offers.items()
            ],
        }

    def _node_model(self, node: _Node) -> dict[str, Any]:
        used = self._used(node)
        offered = self._offered(node)
        return {
            "id": node.id,
            "pid": f"slave(1)@{node.hostname}:5051",
            "hostname": node.hostname,
            "port": 5051,
            "active": node.reachable,
            "resources": node.total.model(),
            "used_resources": used.model(),
            "offered_resources": offered.model(),
            "unreserved_resources": node.total.model(),
            "attributes": {a["name"]: _attribute_model(a) for a in node.attributes},
            "version": VERSION,
        }

    # --- faults ----------------------------------------------------------------------

    def inject_fault(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Apply one fault (see the module doc); returns what it did."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        logger.info("Fault: %s %s", kind, fields)
        with self._lock:
            if kind in ("drop_stream", "stall_stream"):
                wanted = fields.get("framework_id")
                hit = []
                for f in self._frameworks.values():
                    if f.stream is not None and wanted in (None, f.id):
                        hit.append(f.id)
                        if kind == "drop_stream":
                            # The master closes it, so it knows at once (no race with the socket).
                            stream = f.stream
                            stream.close(abrupt=True)
                            self._stream_ended(stream)
                        else:
                            f.stream.stalled = True
                return {"kind": kind, "frameworks": hit}
            if kind == "restart":
                self._failover_in_place()
                return {"kind": kind, "master_id": self._master_id}
            if kind == "leader_change":
                leader = fields.get("leader")
                if leader is None:
                    leader = self._listen(0).addr
                self._leader = str(leader).split("//")[-1].rstrip("/")
                self._failover_in_place()
                return {"kind": kind, "leader": self._leader}
            if kind == "lose_agent":
                node = self._pick_node(fields.get("agent_id"), fields.get("hostname"))
                self._lose_node(node)
                return {"kind": kind, "agent_id": node.id, "hostname": node.hostname}
            if kind == "fail_image":
                if "image" in fields:
                    self._fail_images.add(str(fields["image"]))
                if "count" in fields:
                    self._fail_next = int(fields["count"])
                    if self._fail_next == 0 and "image" not in fields:
                        self._fail_images.clear()
                if "message" in fields:
                    self._fail_message = str(fields["message"])
                return {"kind": kind, "images": sorted(self._fail_images), "count": self._fail_next}
            if kind == "offer_timeout":
                seconds = float(fields.get("seconds", 0.0))
                if seconds < 0 or math.isnan(seconds):
                    raise ValueError(f"offer_timeout seconds must be 0 or more, not {seconds!r}")
                self._offer_timeout = seconds
                return {"kind": kind, "seconds": seconds}
            # slow_launch
            self._slow_delay = float(fields.get("delay", 0.0))
            self._slow_count = int(fields["count"]) if "count" in fields else None
            return {"kind": kind, "delay": self._slow_delay, "count": self._slow_count}

    def _failover_in_place(self) -> None:
        """A master failover: a new master id, streams and connections gone, tasks kept."""
        self._master_id = str(uuid.uuid4())
        for f in self._frameworks.values():
            if f.stream is not None:
                f.stream.close(abrupt=True)
                f.stream = None
            f.recovered = True
            f.offers.clear()
            f.filters.clear()
            f.suppressed.clear()
            if f.failover_timer is not None:
                f.failover_timer.cancel()
                f.failover_timer = None
        servers = [s for s, _ in self._servers]
        # Outside-the-lock work is fine here: dropping sockets only wakes handler threads.
        for server in servers:
            server.drop_connections()

    def _pick_node(self, agent_id: str | None, hostname: str | None) -> _Node:
        if agent_id or hostname:
            for node in self._nodes.values():
                if node.id == agent_id or node.hostname == hostname:
                    return node
            raise ValueError(f"no agent {agent_id or hostname!r}")
        candidates = [n for n in self._nodes.values() if n.reachable]
        if not candidates:
            raise ValueError("no reachable agent left")
        counts = {n.id: 0 for n in candidates}
        for f in self._frameworks.values():
            for t in f.tasks.values():
                if t.node.id in counts and not t.terminal:
                    counts[t.node.id] += 1
        return max(candidates, key=lambda n: counts[n.id])

    def _lose_node(self, node: _Node) -> None:
        node.reachable = False
        for f in self._frameworks.values():
            for oid, (onode, _) in list(f.offers.items()):
                if onode is node:
                    del f.offers[oid]
                    f.send({"type": "RESCIND", "rescind": {"offer_id": {"value": oid}}})
            f.send({"type": "FAILURE", "failure": {"agent_id": {"value": node.id}}})
            for task in list(f.tasks.values()):
                if task.node is not node or task.terminal:
                    continue
                self._stop_agent(task)
                task.pending.clear()
                self._cancel_retry(task)
                state = "TASK_UNREACHABLE" if f.partition_aware else "TASK_LOST"
                status = self._status(
                    task,
                    state,
                    "SOURCE_MASTER",
                    "REASON_AGENT_REMOVED",
                    f"Agent {node.hostname} is unreachable",
                    reliable=False,
                )
                task.state = state
                task.statuses.append(status)
                f.send({"type": "UPDATE", "update": {"status": status}})
                if f.partition_aware:
                    task.unreachable = True
                else:
                    del f.tasks[task.id]
                    f.completed.append(task)

    # --- allocation -----------------------------------------------------------------

    def _schedule_allocation(self) -> None:
        def tick() -> None:
            with self._lock:
                if not self._running:
                    return
                self._allocate()
                self._schedule_allocation()

        self.clock.call_later(self.allocation_interval, tick)

    def _used(self, node: _Node) -> _Res:
        used = _Res()
        for f in self._frameworks.values():
            for t in f.tasks.values():
                if t.node is node and not t.terminal:
                    used = used + t.resources
        return used

    def _offered(self, node: _Node) -> _Res:
        offered = _Res()
        for f in self._frameworks.values():
            for onode, res in f.offers.values():
                if onode is node:
                    offered = offered + res
        return offered

    def _allocate(self, only: _Framework | None = None) -> None:
        now = self.clock.now()
        for f in list(self._frameworks.values()):
            if (only is not None and f is not only) or not f.connected or f.role in f.suppressed:
                continue
            offers = []
            for node in self._nodes.values():
                if not node.reachable:
                    continue
                available = node.total - self._used(node) - self._offered(node)
                if not available.allocatable():
                    continue
                refused = f.filters.get(node.id)
                if refused is not None:
                    if now < refused[0] and refused[1].contains(available):
                        continue
                    if now >= refused[0]:
                        del f.filters[node.id]
                offer_id = f"{self._master_id}-O{next(self._offer_seq)}"
                f.offers[offer_id] = (node, available)
                offers.append(self._offer_json(f, offer_id, node, available))
                if self._offer_timeout > 0:
                    self._expire_offer_later(f, offer_id)
            if offers:
                f.send({"type": "OFFERS", "offers": {"offers": offers}})

    def _expire_offer_later(self, f: _Framework, offer_id: str) -> None:
        """``--offer_timeout``: rescind the offer if it is still outstanding then (master.cpp
        ``offerTimeout``); its resources go back to the allocator, with no filter."""

        def expire() -> None:
            with self._lock:
                if self._offer_timeout > 0 and f.offers.pop(offer_id, None) is not None:
                    f.send({"type": "RESCIND", "rescind": {"offer_id": {"value": offer_id}}})

        self.clock.call_later(self._offer_timeout, expire)

    def _offer_json(self, f: _Framework, offer_id: str, node: _Node, res: _Res) -> dict[str, Any]:
        return {
            "id": {"value": offer_id},
            "framework_id": {"value": f.id},
            "agent_id": {"value": node.id},
            "hostname": node.hostname,
            "url": {
                "scheme": "http",
                "address": {"hostname": node.hostname, "ip": node.hostname, "port": 5051},
                "path": "/slave(1)",
            },
            "resources": res.to_json("*"),
            "attributes": list(node.attributes),
        }

    def _filter(self, f: _Framework, node: _Node, refused: _Res, filters: Any) -> None:
        seconds = DEFAULT_REFUSE
        if isinstance(filters, dict) and "refuse_seconds" in filters:
            try:
                seconds = float(filters["refuse_seconds"])
            except (TypeError, ValueError):
                seconds = DEFAULT_REFUSE
            if seconds < 0 or math.isnan(seconds):
                seconds = DEFAULT_REFUSE
        seconds = min(seconds, MAX_REFUSE)
        if seconds <= 0 or refused.empty():
            return
        f.filters[node.id] = (self.clock.now() + max(self.allocation_interval, seconds), refused)

    # --- status updates ----------------------------------------------------------------

    def _status(
        self,
        task: _Task,
        state: str,
        source: str,
        reason: str | None = None,
        message: str | None = None,
        reliable: bool = True,
    ) -> dict[str, Any]:
        status: dict[str, Any] = {
            "task_id": {"value": task.id},
            "state": state,
            "source": source,
            "agent_id": {"value": task.node.id},
            "timestamp": self.clock.time(),
        }
        if reason:
            status["reason"] = reason
        if message:
            status["message"] = message
        if reliable:
            status["uuid"] = _new_uuid()
            status["executor_id"] = {"value": task.id}
            status["container_status"] = {
                "container_id": {"value": task.container_id},
                "network_infos": [{"ip_addresses": [{"protocol": "IPv4", "ip_address": task.node.hostname}]}],
            }
        return status

    def _agent_update(
        self,
        task: _Task,
        state: str,
        reason: str | None = None,
        message: str | None = None,
        source: str = "SOURCE_EXECUTOR",
    ) -> None:
        """A reliable update from the agent: queued per task, forwarded in order until acked."""
        status = self._status(task, state, source, reason, message)
        task.state = state
        task.statuses.append(status)
        task.pending.append(status)
        if len(task.pending) == 1:
            task.retry_interval = self.status_retry_interval
            self._forward(task)

    def _forward(self, task: _Task) -> None:
        if not task.pending or not self._running:
            return
        head = task.pending[0]
        f = self._frameworks.get(task.framework_id)
        if f is not None and not f.recovered:
            f.send({"type": "UPDATE", "update": {"status": head}})
        self._cancel_retry(task)
        uuid_ = head["uuid"]

        def retry() -> None:
            with self._lock:
                if task.pending and task.pending[0]["uuid"] == uuid_:
                    task.retry_interval = min(task.retry_interval * 2, STATUS_RETRY_MAX)
                    self._forward(task)

        task.retry_timer = self.clock.call_later(task.retry_interval, retry)

    def _cancel_retry(self, task: _Task) -> None:
        if task.retry_timer is not None:
            task.retry_timer.cancel()
            task.retry_timer = None

    def _master_update(
        self,
        f: _Framework,
        task_id: str,
        state: str,
        reason: str,
        message: str,
        agent_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """An update made by the master itself: no uuid, never retried."""
        status: dict[str, Any] = {
            "task_id": {"value": task_id},
            "state": state,
            "source": "SOURCE_MASTER",
            "reason": reason,
            "message": message,
            "timestamp": self.clock.time(),
        }
        if agent_id:
            status["agent_id"] = {"value": agent_id}
        status.update(extra or {})
        f.send({"type": "UPDATE", "update": {"status": status}})

    # --- containers (simulated GoCD agents) ---------------------------------------------

    def _start_container(self, task: _Task) -> None:
        """Runner thread: TASK_STARTING, then the image either fails or the agent starts."""
        with self._lock:
            if task.killed or task.terminal or not self._running:
                return
            # The image comes first: a pull failure hides a hostname problem.
            failure = task.hostname_failure() if task.fail_launch is None else None
            if failure is not None and failure[0] == "SOURCE_AGENT":
                # The container never ran its executor: no TASK_STARTING.
                self._agent_update(task, "TASK_FAILED", failure[1], failure[2], source=failure[0])
                return
            self._agent_update(task, "TASK_STARTING")
            if task.fail_launch is not None:
                self._agent_update(task, "TASK_FAILED", "REASON_CONTAINER_LAUNCH_FAILED", task.fail_launch)
                return
            if failure is not None:
                self._agent_update(task, "TASK_FAILED", failure[1], failure[2], source=failure[0])
                return
            delay = task.launch_delay
        if delay > 0:
            runner = self._runner
            assert runner is not None
            self.clock.call_later(delay, lambda: runner.submit(lambda: self._run_agent(task)))
        else:
            self._run_agent(task)

    def _run_agent(self, task: _Task) -> None:
        """Runner thread: the entrypoint checks GO_SERVER_URL, then the agent runs until killed."""
        with self._lock:
            if task.killed or task.terminal or not self._running:
                return
            env = task.env()
            hostname = task.machine_hostname()
        agent = None
        error = None
        if not _valid_go_server_url(env.get("GO_SERVER_URL", "")):
            error = "GO_SERVER_URL must be an http(s) URL ending in /go"
        else:
            try:
                agent = self.agent_factory(env, hostname, self.clock)
                agent.start()
            except Exception as e:
                logger.warning("Simulated agent of task %s did not start: %s", task.id, e)
                error = str(e)
                agent = None
        with self._lock:
            if task.killed or task.terminal or not self._running:
                stale, agent = agent, None
            else:
                stale = None
                self._agent_update(task, "TASK_RUNNING")
                if error is not None:
                    # The container ran and its entrypoint exited: as the real image does.
                    self._agent_update(task, "TASK_FAILED", None, f"Container exited with status 1: {error}")
                else:
                    task.agent = agent
        if stale is not None:
            with contextlib.suppress(Exception):
                stale.stop()

    def _stop_agent(self, task: _Task) -> None:
        agent, task.agent = task.agent, None
        task.killed = True
        if agent is not None and self._runner is not None:
            self._runner.submit(agent.stop)

    # --- HTTP: the scheduler endpoint ---------------------------------------------------

    def _check_leader(self, handler: _Handler) -> None:
        if self._leader is not None and handler.server.addr != self._leader:
            raise _HttpError(307, "", {"Location": f"//{self._leader}{urlsplit(handler.path).path}"})

    def _authenticate(self, handler: _Handler) -> str | None:
        """The authenticated principal (None without authentication); 401 on bad credentials."""
        if self.principal is None:
            return None
        header = handler.headers.get("Authorization", "")
        challenge = {"WWW-Authenticate": f'Basic realm="{REALM}"'}
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise _HttpError(401, "", challenge)
        try:
            user, _, password = (
                base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            raise _HttpError(401, "", challenge) from None
        if user != self.principal or password != (self.secret or ""):
            raise _HttpError(401, "", challenge)
        return user

    def _http_scheduler(self, handler: _Handler) -> None:
        principal = self._authenticate(handler)
        self._check_leader(handler)
        if handler.command != "POST":
            raise _HttpError(
                405, f"Expecting one of {{ 'POST' }}, but received '{handler.command}'", {"Allow": "POST"}
            )
        body = handler._body()
        content_type = handler.headers.get("Content-Type")
        if content_type is None:
            raise _HttpError(400, "Expecting 'Content-Type' to be present")
        if content_type != "application/json":
            raise _HttpError(
                415, "Expecting 'Content-Type' of application/json (the simulator speaks no protobuf)"
            )
        try:
            call = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise _HttpError(400, f"Failed to parse body into JSON: {e}") from None
        if not isinstance(call, dict):
            raise _HttpError(400, "Failed to convert JSON into Call protobuf: not an object")
        self._validate_call(call)
        kind = call["type"]
        if kind == "SUBSCRIBE":
            if handler.headers.get("Mesos-Stream-Id") is not None:
                raise _HttpError(400, "Subscribe calls should not include the 'Mesos-Stream-Id' header")
            accept = handler.headers.get("Accept", "*/*")
            if not any(
                a.split(";")[0].strip()
                in ("application/json", "application/*", "*/*", "application/x-protobuf")
                for a in accept.split(",")
            ):
                raise _HttpError(
                    406, "Expecting 'Accept' to allow application/json or application/x-protobuf"
                )
            self._subscribe(handler, call, principal)
            return
        with self._lock:
            fid = call["framework_id"]["value"]
            f = self._frameworks.get(fid)
            if f is None or f.recovered:
                raise _HttpError(400, "Framework cannot be found")
            if principal is not None and f.principal not in (None, principal):
                raise _HttpError(
                    400,
                    f"Authenticated principal '{principal}' does not match principal "
                    f"'{f.principal}' set in `FrameworkInfo`",
                )
            if not f.connected:
                raise _HttpError(403, "Framework is not subscribed")
            stream_id = handler.headers.get("Mesos-Stream-Id")
            if stream_id is None:
                raise _HttpError(400, "All non-subscribe calls should include the 'Mesos-Stream-Id' header")
            assert f.stream is not None
            if stream_id != f.stream.id:
                raise _HttpError(
                    400,
                    f"The stream ID '{stream_id}' included in this request didn't match the "
                    f"stream ID currently associated with framework ID {f.id}",
                )
            if kind == "UNKNOWN":
                raise _HttpError(501, "Received an unexpected 'UNKNOWN' call")
            self.calls.append((self.clock.now(), kind, f.id, _call_task_ids(call)))
            self._dispatch_call(f, call)
        handler._reply(202)

    def _validate_call(self, call: dict[str, Any]) -> None:
        def missing(path: str) -> _HttpError:
            return _HttpError(
                400, f"Failed to convert JSON into Call protobuf: Missing required fields: {path}"
            )

        kind = call.get("type")
        if kind is None:
            raise missing("type")
        if kind not in CALL_TYPES:
            raise _HttpError(
                400, f"Failed to convert JSON into Call protobuf: Failed to find enum for '{kind}'"
            )
        if kind == "SUBSCRIBE":
            sub = call.get("subscribe")
            if not isinstance(sub, dict):
                raise _HttpError(
                    400, "Failed to validate scheduler::Call: Expecting 'subscribe' to be present"
                )
            info = sub.get("framework_info")
            if not isinstance(info, dict):
                raise missing("subscribe.framework_info")
            for key in ("user", "name"):
                if key not in info:
                    raise missing(f"subscribe.framework_info.{key}")
            if call.get("framework_id") != info.get("id"):
                raise _HttpError(
                    400,
                    "Failed to validate scheduler::Call: 'framework_id' differs from "
                    "'subscribe.framework_info.id'",
                )
            return
        if not isinstance(call.get("framework_id"), dict) or "value" not in call["framework_id"]:
            raise _HttpError(
                400, "Failed to validate scheduler::Call: Expecting 'framework_id' to be present"
            )
        body_key = CALL_BODIES.get(kind)
        if body_key is not None and not isinstance(call.get(body_key), dict):
            raise _HttpError(400, f"Failed to validate scheduler::Call: Expecting '{body_key}' to be present")
        if kind == "ACKNOWLEDGE":
            ack = call["acknowledge"]
            for key in ("agent_id", "task_id", "uuid"):
                if key not in ack:
                    raise missing(f"acknowledge.{key}")
            try:
                raw = base64.b64decode(str(ack["uuid"]), validate=True)
            except binascii.Error:
                raw = b""
            if len(raw) != 16:
                raise _HttpError(400, "Failed to validate scheduler::Call: Not a valid UUID")
        elif kind == "KILL" and "task_id" not in call["kill"]:
            raise missing("kill.task_id")
        elif kind == "RECONCILE":
            for i, task in enumerate(call["reconcile"].get("tasks", [])):
                if "task_id" not in task:
                    raise missing(f"reconcile.tasks[{i}].task_id")
        elif kind == "ACCEPT":
            for i, op in enumerate(call["accept"].get("operations", [])):
                if "type" not in op:
                    raise missing(f"accept.operations[{i}].type")
                for j, info in enumerate(op.get("launch", {}).get("task_infos", [])):
                    for key in ("name", "task_id", "agent_id"):
                        if key not in info:
                            raise missing(f"accept.operations[{i}].launch.task_infos[{j}].{key}")
        elif kind == "MESSAGE":
            for key in ("agent_id", "executor_id", "data"):
                if key not in call["message"]:
                    raise missing(f"message.{key}")

    # --- SUBSCRIBE ---------------------------------------------------------------------

    def _subscribe(self, handler: _Handler, call: dict[str, Any], principal: str | None) -> None:
        info = dict(call["subscribe"]["framework_info"])
        refusal = None
        with self._lock:
            fid = info.get("id", {}).get("value")
            if principal is not None and info.get("principal") not in (None, principal):
                raise _HttpError(
                    400,
                    f"Authenticated principal '{principal}' does not match principal "
                    f"'{info.get('principal')}' set in `FrameworkInfo`",
                )
            timeout = info.get("failover_timeout", 0.0)
            if not isinstance(timeout, (int, float)) or timeout < 0 or math.isnan(timeout):
                refusal = "Invalid framework's failover timeout"
            elif fid is not None and fid in self._completed_frameworks:
                refusal = "Framework has been removed"
            elif fid is not None and _id_error(fid):
                refusal = f"'FrameworkID.value' is invalid: {_id_error(fid)}"
            elif "roles" in info and not any(
                c.get("type") == "MULTI_ROLE" for c in info.get("capabilities", [])
            ):
                refusal = "'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE capable"
            stream = _Stream(fid or "")
            if refusal is None:
                f = self._frameworks.get(fid) if fid else None
                if f is not None and f.principal not in (None, principal) and principal is not None:
                    refusal = "Changing framework's principal is not allowed"
            if refusal is None:
                if fid is None:
                    fid = f"{self._master_id}-{next(self._framework_seq):04d}"
                    info["id"] = {"value": fid}
                f = self._frameworks.get(fid)
                if f is None:
                    # A new framework, or one a failed-over master never saw (recoverFramework).
                    f = _Framework(fid, info, principal or info.get("principal"), self.clock.time())
                    self._frameworks[fid] = f
                else:
                    # user and checkpoint changes are ignored on resubscription.
                    info["user"] = f.info.get("user", info["user"])
                    info["checkpoint"] = f.info.get("checkpoint", info.get("checkpoint", False))
                    f.info = info
                    if f.stream is not None:
                        f.stream.send({"type": "ERROR", "error": {"message": "Framework failed over"}})
                        f.stream.close()
                f.recovered = False
                f.offers.clear()  # outstanding offers are discarded without RESCIND
                f.suppressed = set(call["subscribe"].get("suppressed_roles", []))
                if f.failover_timer is not None:
                    f.failover_timer.cancel()
                    f.failover_timer = None
                stream.framework_id = fid
                f.stream = stream
                master_host, _, master_port = (self._leader or handler.server.addr).partition(":")
                stream.send(
                    {
                        "type": "SUBSCRIBED",
                        "subscribed": {
                            "framework_id": {"value": fid},
                            "heartbeat_interval_seconds": self.heartbeat_interval,
                            "master_info": {
                                "id": self._master_id,
                                "ip": int.from_bytes(socket.inet_aton(master_host), "little"),
                                "port": int(master_port),
                                "pid": f"master@{master_host}:{master_port}",
                                "hostname": master_host,
                                "version": VERSION,
                                "address": {
                                    "hostname": master_host,
                                    "ip": master_host,
                                    "port": int(master_port),
                                },
                            },
                        },
                    }
                )
                stream.send({"type": "HEARTBEAT"})
                self._schedule_heartbeat(stream)
                self.calls.append((self.clock.now(), "SUBSCRIBE", fid, ()))
                self._allocate(only=f)
                logger.info("Framework %s (%s) subscribed", fid, info.get("name"))
            else:
                stream.send({"type": "ERROR", "error": {"message": refusal}})
                stream.close()
                logger.info("Refused subscription of %s: %s", fid, refusal)
        self._serve_stream(handler, stream)

    def _schedule_heartbeat(self, stream: _Stream) -> None:
        def beat() -> None:
            with self._lock:
                if stream.closing is not None or stream.closed or not self._running:
                    return
                stream.send({"type": "HEARTBEAT"})
                self._schedule_heartbeat(stream)

        self.clock.call_later(self.heartbeat_interval, beat)

    def _serve_stream(self, handler: _Handler, stream: _Stream) -> None:
        """The handler thread writes the stream's events as chunks until it closes or breaks."""
        sock = handler.connection
        abrupt = False
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Transfer-Encoding", "chunked")
            handler.send_header("Mesos-Stream-Id", stream.id)
            handler.end_headers()
            while True:
                while stream.events:
                    event = stream.events.popleft()
                    if event is None:
                        continue
                    data = json.dumps(event).encode("utf-8")
                    record = str(len(data)).encode("ascii") + b"\n" + data
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(record), record))
                if stream.closing == "final":
                    handler.wfile.write(b"0\r\n\r\n")
                    break
                if stream.closing == "abort":
                    abrupt = True
                    break
                readable, _, _ = select.select([sock, stream.wake_r], [], [])
                if stream.wake_r in readable:
                    stream.wake_r.recv(4096)
                if sock in readable:
                    try:
                        data = sock.recv(4096)
                    except OSError:
                        data = b""
                    if not data:
                        break  # the scheduler closed the connection
        except OSError:
            pass
        finally:
            stream.closed = True
            handler.close_connection = True
            if abrupt:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            for s in (stream.wake_r, stream.wake_w):
                with contextlib.suppress(OSError):
                    s.close()
            self._stream_ended(stream)

    def _stream_ended(self, stream: _Stream) -> None:
        """The master notices a closed subscription: the framework is disconnected, its timer starts."""
        with self._lock:
            f = self._frameworks.get(stream.framework_id)
            if f is None or f.stream is not stream:
                return
            f.stream = None
            f.offers.clear()  # rescinded; nobody to tell
            timeout = float(f.info.get("failover_timeout", 0.0))
            logger.info("Framework %s disconnected; failover timeout %gs", f.id, timeout)

            def expire() -> None:
                with self._lock:
                    if f.stream is None and f.id in self._frameworks and not f.recovered:
                        logger.info("Framework %s failover timeout expired", f.id)
                        self._remove_framework(f)

            if self._running:
                f.failover_timer = self.clock.call_later(timeout, expire)

    def _remove_framework(self, f: _Framework) -> None:
        """TEARDOWN or failover timeout: every task killed, no updates sent, the id is 'completed'."""
        for task in list(f.tasks.values()):
            self._stop_agent(task)
            self._cancel_retry(task)
            task.pending.clear()
            if not task.terminal:
                task.state = "TASK_KILLED"
                task.statuses.append(
                    {
                        "state": "TASK_KILLED",
                        "timestamp": self.clock.time(),
                        "reason": "REASON_FRAMEWORK_REMOVED",
                    }
                )
            f.completed.append(task)
        f.tasks.clear()
        f.offers.clear()
        if f.failover_timer is not None:
            f.failover_timer.cancel()
            f.failover_timer = None
        if f.stream is not None:
            f.stream.close()
            f.stream = None
        self._frameworks.pop(f.id, None)
        self._completed_frameworks[f.id] = f

    # --- calls ----------------------------------------------------------------------------

    def _dispatch_call(self, f: _Framework, call: dict[str, Any]) -> None:
        kind = call["type"]
        if kind == "TEARDOWN":
            logger.info("Framework %s tears down", f.id)
            self._remove_framework(f)
        elif kind == "ACCEPT":
            self._accept(f, call["accept"])
        elif kind == "DECLINE":
            for oid in call["decline"].get("offer_ids", []):
                entry = f.offers.pop(oid.get("value"), None)
                if entry is None:
                    logger.debug("DECLINE of unknown offer %s ignored", oid)
                    continue
                self._filter(f, entry[0], entry[1], call["decline"].get("filters"))
        elif kind == "REVIVE":
            roles = call.get("revive", {}).get("roles") or [f.role]
            if f.role in roles:
                f.suppressed.discard(f.role)
                f.filters.clear()
                self._allocate(only=f)
        elif kind == "SUPPRESS":
            roles = call.get("suppress", {}).get("roles") or [f.role]
            f.suppressed.update(r for r in roles if r == f.role)
        elif kind == "KILL":
            self._kill(f, call["kill"])
        elif kind == "ACKNOWLEDGE":
            self._acknowledge(f, call["acknowledge"])
        elif kind == "RECONCILE":
            self._reconcile(f, call["reconcile"].get("tasks", []))
        else:
            logger.debug("Call %s accepted and ignored", kind)

    def _accept(self, f: _Framework, accept: dict[str, Any]) -> None:
        offer_ids = [o.get("value") for o in accept.get("offer_ids", [])]
        launches = [op for op in accept.get("operations", []) if op.get("type") in ("LAUNCH", "LAUNCH_GROUP")]
        tasks = [
            info
            for op in launches
            for info in (
                op.get("launch", {}).get("task_infos", [])
                or op.get("launch_group", {}).get("task_group", {}).get("tasks", [])
            )
        ]
        error = None
        if not offer_ids:
            error = "No offers specified"
        elif len(set(offer_ids)) != len(offer_ids):
            error = f"Duplicate offer {next(o for o in offer_ids if offer_ids.count(o) > 1)} in accept"
        else:
            for oid in offer_ids:
                if oid not in f.offers:
                    error = f"Offer {oid} is no longer valid"
                    break
            if error is None:
                nodes = {f.offers[oid][0].id for oid in offer_ids}
                if len(nodes) > 1:
                    first, other = (
                        offer_ids[0],
                        next(o for o in offer_ids if f.offers[o][0].id != f.offers[offer_ids[0]][0].id),
                    )
                    error = (
                        f"Aggregated offers must belong to one single agent. Offer {other} uses agent "
                        f"{f.offers[other][0].id} and offer {first} uses agent {f.offers[first][0].id}"
                    )
        if error is not None:
            for oid in offer_ids:
                f.offers.pop(oid, None)
            state = "TASK_DROPPED" if f.partition_aware else "TASK_LOST"
            for info in tasks:
                self._master_update(
                    f,
                    info.get("task_id", {}).get("value", ""),
                    state,
                    "REASON_INVALID_OFFERS",
                    f"Task launched with invalid offers: {error}",
                )
            return
        node = f.offers[offer_ids[0]][0]
        available = _Res()
        for oid in offer_ids:
            available = available + f.offers.pop(oid)[1]
        for op in accept.get("operations", []):
            if op.get("type") == "LAUNCH":
                for info in op.get("launch", {}).get("task_infos", []):
                    available = self._launch(f, node, info, available)
            elif op.get("type") == "LAUNCH_GROUP":
                for info in op.get("launch_group", {}).get("task_group", {}).get("tasks", []):
                    self._master_update(
                        f,
                        info["task_id"]["value"],
                        "TASK_ERROR",
                        "REASON_TASK_GROUP_INVALID",
                        "LAUNCH_GROUP is not supported by the simulator",
                        node.id,
                    )
            else:
                logger.debug("Operation %s dropped", op.get("type"))
        # Whatever the operations did not use counts as declined.
        self._filter(f, node, available, accept.get("filters"))

    def _task_error(self, f: _Framework, node: _Node, info: dict[str, Any], available: _Res) -> str | None:
        task_id = info["task_id"].get("value")
        problem = _id_error(task_id)
        if problem:
            return f"'TaskID.value' is invalid: {problem}"
        if task_id in f.tasks:
            return f"Task has duplicate ID: {task_id}"
        agent = info["agent_id"].get("value")
        if agent != node.id:
            return f"Task uses invalid agent {agent} while agent {node.id} is expected"
        grace = info.get("kill_policy", {}).get("grace_period", {}).get("nanoseconds", 0)
        if isinstance(grace, (int, float)) and grace < 0:
            return "Task's 'kill_policy.grace_period' must be non-negative"
        resources, problem = _parse_resources(info.get("resources", []))
        if problem:
            return problem
        if resources.empty():
            return "Task uses no resources"
        if ("command" in info) == ("executor" in info):
            return "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
        container = info.get("container")
        if container is not None:
            kind = container.get("type", "MESOS")
            if kind == "DOCKER":
                docker = container.get("docker")
                if not isinstance(docker, dict):
                    return "DockerInfo 'docker' is not set for DOCKER typed ContainerInfo"
                if not docker.get("image"):
                    return "DockerInfo 'image' must be set"
                if any(p.get("key") == "name" for p in docker.get("parameters", [])):
                    return "Parameter in DockerInfo must not be 'name'"
            elif kind == "MESOS" and "docker" in container:
                return "ContainerInfo 'docker' must not be set for MESOS typed ContainerInfo"
        if not available.contains(resources):
            return (
                f"Total resources {resources} required by task and its executor is more than available "
                f"{available}"
            )
        return None

    def _launch(self, f: _Framework, node: _Node, info: dict[str, Any], available: _Res) -> _Res:
        problem = self._task_error(f, node, info, available)
        if problem is not None:
            self._master_update(
                f, info["task_id"].get("value", ""), "TASK_ERROR", "REASON_TASK_INVALID", problem, node.id
            )
            return available
        resources, _ = _parse_resources(info["resources"])
        task = _Task(f.id, node, info, resources)
        image = task.image()
        if image in self._fail_images:
            task.fail_launch = f"{self._fail_message} ({image})"
        elif self._fail_next > 0:
            self._fail_next -= 1
            task.fail_launch = f"{self._fail_message} ({image})"
        if self._slow_delay > 0 and (self._slow_count is None or self._slow_count > 0):
            task.launch_delay = self._slow_delay
            if self._slow_count is not None:
                self._slow_count -= 1
        f.tasks[task.id] = task
        assert self._runner is not None
        self._runner.submit(lambda: self._start_container(task))
        return available - resources

    def _kill(self, f: _Framework, kill: dict[str, Any]) -> None:
        task_id = kill["task_id"].get("value")
        task = f.tasks.get(task_id)
        if task is None:
            # Unknown task: the master reconciles it explicitly.
            self._reconcile(
                f,
                [
                    {
                        "task_id": kill["task_id"],
                        **({"agent_id": kill["agent_id"]} if "agent_id" in kill else {}),
                    }
                ],
            )
            return
        agent_id = kill.get("agent_id", {}).get("value")
        if agent_id is not None and agent_id != task.node.id:
            return
        if task.terminal or task.killed or task.unreachable:
            return
        if task.agent is None:
            # Not running yet (staging, slow launch): killed during launch.
            task.killed = True
            self._agent_update(
                task, "TASK_KILLED", "REASON_TASK_KILLED_DURING_LAUNCH", "Task killed during launch"
            )
            return
        agent = task.agent
        task.agent = None
        task.killed = True

        def stop_then_report() -> None:
            with contextlib.suppress(Exception):
                agent.stop()
            with self._lock:
                if not task.terminal and task.framework_id in self._frameworks:
                    self._agent_update(task, "TASK_KILLED", None, "Container exited with status 143")

        assert self._runner is not None
        self._runner.submit(stop_then_report)

    def _acknowledge(self, f: _Framework, ack: dict[str, Any]) -> None:
        task = f.tasks.get(ack["task_id"].get("value"))
        if task is None or not task.pending or task.pending[0]["uuid"] != ack["uuid"]:
            logger.debug("Acknowledgement of unknown update ignored: %s", ack)
            return
        task.pending.popleft()
        self._cancel_retry(task)
        if task.pending:
            task.retry_interval = self.status_retry_interval
            self._forward(task)
        elif task.terminal:
            del f.tasks[task.id]
            f.completed.append(task)

    def _reconcile(self, f: _Framework, entries: list[dict[str, Any]]) -> None:
        def latest(task: _Task) -> None:
            extra: dict[str, Any] = {}
            if task.unreachable:
                extra["unreachable_time"] = {"nanoseconds": int(self.clock.time() * 1e9)}
            self._master_update(
                f,
                task.id,
                task.state,
                "REASON_RECONCILIATION",
                "Reconciliation: Latest task state",
                task.node.id,
                extra,
            )

        if not entries:
            for task in f.tasks.values():
                latest(task)
            return
        for entry in entries:
            task_id = entry["task_id"].get("value")
            known = f.tasks.get(task_id)
            if known is not None:
                latest(known)
                continue
            agent_id = entry.get("agent_id", {}).get("value")
            node = self._nodes.get(agent_id) if agent_id else None
            if node is not None and node.reachable:
                state, message = "TASK_GONE", "Reconciliation: Task is unknown to the agent"
            elif node is not None:
                state, message = "TASK_UNREACHABLE", "Reconciliation: Task is unreachable"
            else:
                state, message = "TASK_UNKNOWN", "Reconciliation: Task is unknown"
            if not f.partition_aware:
                state = "TASK_LOST"
            self._master_update(f, task_id, state, "REASON_RECONCILIATION", message, agent_id)


def _call_task_ids(call: Mapping[str, Any]) -> tuple[str, ...]:
    """The task ids a (validated) call names: its LAUNCH's tasks, KILL's, ACKNOWLEDGE's, RECONCILE's."""
    kind = call["type"]
    if kind == "ACCEPT":
        return tuple(
            str(info["task_id"].get("value", ""))
            for op in call["accept"].get("operations", [])
            if op.get("type") == "LAUNCH"
            for info in op.get("launch", {}).get("task_infos", [])
        )
    if kind in ("KILL", "ACKNOWLEDGE"):
        return (str(call[kind.lower()]["task_id"].get("value", "")),)
    if kind == "RECONCILE":
        return tuple(str(t["task_id"].get("value", "")) for t in call["reconcile"].get("tasks", []))
    return ()


# --- standalone -------------------------------------------------------------------------


def _parse_attributes(text: str) -> dict[str, str]:
    out = {}
    for item in text.split(";"):
        if item.strip():
            name, _, value = item.partition(":")
            out[name.strip()] = value.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m actors.sim.mesos``: serve until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m actors.sim.mesos", description="Simulated Mesos master.")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5050, help="port (0 picks a free one)")
    parser.add_argument("--agents", type=int, default=3, help="agent nodes")
    parser.add_argument("--cpus", type=float, default=8.0, help="CPUs per agent node")
    parser.add_argument("--mem", type=float, default=16384.0, help="memory per agent node, MB")
    parser.add_argument("--disk", type=float, default=100000.0, help="disk per agent node, MB")
    parser.add_argument("--attributes", default="", help='agent attributes, e.g. "rack:a;os:linux"')
    parser.add_argument("--principal", help="require framework authentication with this principal")
    parser.add_argument("--secret", help="the principal's secret")
    parser.add_argument("--heartbeat-interval", type=float, default=15.0, help="seconds between HEARTBEATs")
    parser.add_argument("--time-scale", type=float, default=1.0, help="simulated seconds per real second")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if (args.principal is None) != (args.secret is None):
        parser.error("--principal and --secret go together")
    clock = ScaledClock(args.time_scale) if args.time_scale != 1.0 else RealClock()
    sim = MesosSimulator(
        clock=clock,
        agents=args.agents,
        cpus=args.cpus,
        mem=args.mem,
        disk=args.disk,
        attributes=_parse_attributes(args.attributes),
        principal=args.principal,
        secret=args.secret,
        heartbeat_interval=args.heartbeat_interval,
        host=args.host,
        port=args.port,
    )
    return serve_until_signal(sim)


if __name__ == "__main__":
    raise SystemExit(main())
