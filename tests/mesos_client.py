"""A bare v1 scheduler client for testing the Mesos simulator without the driver.

It reads the SUBSCRIBE stream from a raw socket (so the tests see the exact
bytes), splits HTTP chunks and RecordIO records strictly, and queues events.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
from typing import Any

import requests

API = "/api/v1/scheduler"


class StreamClient:
    """One subscription: ``events`` (a queue) plus helpers to send calls on it."""

    def __init__(
        self,
        base_url: str,
        framework_info: dict[str, Any] | None = None,
        *,
        framework_id: str | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.base = base_url
        self.auth = auth
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.raw_chunks: list[bytes] = []
        info = dict(framework_info or {"user": "gocd", "name": "test", "failover_timeout": 3600.0})
        body: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
        if framework_id:
            info["id"] = {"value": framework_id}
            body["framework_id"] = {"value": framework_id}
        host, port = base_url.split("//")[1].split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        data = json.dumps(body).encode()
        headers = [
            f"POST {API} HTTP/1.1",
            f"Host: {host}:{port}",
            "Content-Type: application/json",
            "Accept: application/json",
            "Connection: close",
            f"Content-Length: {len(data)}",
        ]
        if auth:
            import base64

            headers.append(
                "Authorization: Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            )
        self.sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode() + data)
        self.file = self.sock.makefile("rb")
        status_line = self.file.readline().decode()
        self.status = int(status_line.split()[1])
        self.headers: dict[str, str] = {}
        while True:
            line = self.file.readline().decode().strip()
            if not line:
                break
            key, _, value = line.partition(":")
            self.headers[key.strip().lower()] = value.strip()
        self.stream_id = self.headers.get("mesos-stream-id")
        self.framework_id: str | None = framework_id
        self.ended = threading.Event()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                size_line = self.file.readline()
                if not size_line:
                    break
                size = int(size_line.strip(), 16)
                if size == 0:
                    self.file.readline()
                    break
                chunk = self.file.read(size)
                assert self.file.read(2) == b"\r\n"
                self.raw_chunks.append(chunk)
                length, _, rest = chunk.partition(b"\n")
                assert int(length) == len(rest), f"record length {length!r} != {len(rest)} bytes"
                event = json.loads(rest)
                if event["type"] == "SUBSCRIBED":
                    self.framework_id = event["subscribed"]["framework_id"]["value"]
                self.events.put(event)
        except (OSError, ValueError):
            pass
        finally:
            self.ended.set()
            self.events.put(None)

    def next(self, kind: str, timeout: float = 5.0, skip: tuple[str, ...] = ("HEARTBEAT",)) -> dict[str, Any]:
        """The next event of ``kind`` (other kinds in ``skip`` are passed over; others fail)."""
        while True:
            event = self.events.get(timeout=timeout)
            assert event is not None, f"stream ended while waiting for {kind}"
            if event["type"] == kind:
                return event
            assert event["type"] in skip, f"expected {kind}, got {event}"

    def call(self, body: dict[str, Any], **kw: Any) -> requests.Response:
        body = {**body, "framework_id": {"value": self.framework_id}}
        headers = {"Content-Type": "application/json", "Mesos-Stream-Id": self.stream_id or ""}
        headers.update(kw.pop("headers", {}))
        return requests.post(
            self.base + API, data=json.dumps(body), headers=headers, auth=self.auth, timeout=10, **kw
        )

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def task_info(
    task_id: str,
    agent_id: str,
    *,
    cpus: float = 1,
    mem: float = 256,
    image: str = "gocd/agent:v1",
    go_server_url: str = "http://127.0.0.1:8153/go",
    **extra: Any,
) -> dict[str, Any]:
    info = {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": {"value": agent_id},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}, "role": "*"},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}, "role": "*"},
        ],
        "command": {
            "shell": False,
            "environment": {
                "variables": [
                    {"name": "GO_SERVER_URL", "value": go_server_url},
                    {"name": "AGENT_AUTO_REGISTER_HOSTNAME", "value": task_id},
                ]
            },
        },
        "container": {"type": "DOCKER", "docker": {"image": image, "network": "HOST"}},
        "labels": {"labels": [{"key": "gocd-mesos.profile", "value": "small"}]},
    }
    info.update(extra)
    return info


def launch(offer_id: str, *infos: dict[str, Any], refuse: float | None = None) -> dict[str, Any]:
    accept: dict[str, Any] = {
        "offer_ids": [{"value": offer_id}],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": list(infos)}}],
    }
    if refuse is not None:
        accept["filters"] = {"refuse_seconds": refuse}
    return {"type": "ACCEPT", "accept": accept}


class FakeAgents:
    """An agent_factory recording every simulated GoCD agent it makes."""

    def __init__(self) -> None:
        self.made: list[FakeAgent] = []
        self.lock = threading.Condition()

    def __call__(self, env: dict[str, str], hostname: str, clock: Any) -> FakeAgent:
        agent = FakeAgent(env, hostname, self)
        with self.lock:
            self.made.append(agent)
        return agent

    def wait(self, predicate, timeout: float = 5.0) -> None:
        with self.lock:
            assert self.lock.wait_for(lambda: predicate(self.made), timeout), f"agents: {self.made!r}"


class FakeAgent:
    def __init__(self, env: dict[str, str], hostname: str, owner: FakeAgents) -> None:
        self.env = dict(env)
        self.hostname = hostname
        self.owner = owner
        self.started = False
        self.stopped = False

    def start(self) -> None:
        with self.owner.lock:
            self.started = True
            self.owner.lock.notify_all()

    def stop(self) -> None:
        with self.owner.lock:
            self.stopped = True
            self.owner.lock.notify_all()

    def __repr__(self) -> str:
        return f"FakeAgent({self.env.get('AGENT_AUTO_REGISTER_HOSTNAME')}, started={self.started}, stopped={self.stopped})"
