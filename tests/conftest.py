"""Shared fixtures: a manual clock, a recording actor ref, and actor cleanup."""

from __future__ import annotations

import logging
import socket
import struct
import threading
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors.clock import ManualClock

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CONFIG = str(ROOT / "etc" / "gocd-mesos.ini")


class RecordingRef:
    """Stands in for an ActorRef: records every message told to it."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.dead = False
        self._cond = threading.Condition()

    def tell(self, message: Any) -> None:
        if self.dead:
            raise pykka.ActorDeadError("recording ref is dead")
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def of(self, kind: type) -> list[Any]:
        """The recorded messages of one type."""
        with self._cond:
            return [m for m in self.messages if isinstance(m, kind)]

    def wait_until(self, predicate: Any, timeout: float = 30.0, what: str = "condition") -> list[Any]:
        """Block until ``predicate(messages)`` holds, re-checked on every new message."""
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate(list(self.messages)), timeout)
            assert ok, f"{what} not reached within {timeout}s"
            return list(self.messages)

    def wait_for(self, kind: type, count: int = 1, timeout: float = 10.0) -> list[Any]:
        """Block until ``count`` messages of ``kind`` arrived (for threaded tests)."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: len([m for m in self.messages if isinstance(m, kind)]) >= count, timeout
            )
            assert ok, f"no {count} x {kind.__name__} within {timeout}s; got {self.messages!r}"
            return [m for m in self.messages if isinstance(m, kind)]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def recorder() -> RecordingRef:
    return RecordingRef()


#: Credentials the tests configure; no log line of the whole suite may contain one.
WATCHED_SECRETS = (
    "pw-S3cr3t-9f1c77",
    "tok-0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b",
    "admin-secret",
    # The GoCD webhook's secret (it travels in the hook's URL path).
    "whk-7e3a91c4b2d05f68a1c3e9b7d4f20a56",
)


class SecretWatch(logging.Handler):
    """Sees every log record of the session, formatted with its traceback, and keeps leaks."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(message)s"))
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a broken log call is not a leak
            return
        for secret in WATCHED_SECRETS:
            if secret in text:
                self.leaks.append(text[:300])


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log():
    """Every log line of the suite, at DEBUG and with tracebacks, is searched for the credentials."""
    watch = SecretWatch()
    root = logging.getLogger()
    level = root.level
    root.addHandler(watch)
    root.setLevel(logging.DEBUG)
    yield watch
    root.removeHandler(watch)
    root.setLevel(level)
    assert watch.leaks == [], f"credentials in log lines: {watch.leaks[:5]}"


@pytest.fixture(autouse=True)
def stop_all_actors():
    """No test leaves an actor running."""
    yield
    pykka.ActorRegistry.stop_all(timeout=10)


@pytest.fixture
def system(tmp_path):
    """Makes whole systems (both simulators and a daemon, see tests.e2e_support); stops them all."""
    from tests.e2e_support import make_system

    made = []

    def factory(**kw):
        s = make_system(tmp_path, **kw)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.stop()


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A ZooKeeper server on loopback for the whole session (skips if none is installed)."""
    from tests.zookeeper_support import SKIP_REASON, ZooKeeperServer, zookeeper_jar

    pytest.importorskip("kazoo", reason="kazoo not installed (pip install -e '.[test,zookeeper]')")
    jar = zookeeper_jar()
    if jar is None:
        pytest.skip(SKIP_REASON)
    server = ZooKeeperServer(jar, tmp_path_factory.mktemp("zookeeper"))
    server.start()
    yield server
    server.stop()


def join_request_handlers() -> None:
    """Wait for every HTTP request handler thread of a simulator to end."""
    for handler in [t for t in threading.enumerate() if "process_request_thread" in t.name]:
        handler.join(10)


def reset_mid_request(host: str, port: int, request: bytes) -> None:
    """Send ``request`` and read its answer, then start another request and reset the
    connection (RST) while the server reads it, as a SIGKILLed client with a keep-alive
    connection does; returns once the server's handlers are done with it."""
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(request)
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        s.sendall(b"GET /ver")  # the server reads the rest of this line when the RST comes
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
    join_request_handlers()
