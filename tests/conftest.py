"""Shared fixtures: a manual clock, a recording actor ref, and actor cleanup."""

from __future__ import annotations

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


@pytest.fixture(autouse=True)
def stop_all_actors():
    """No test leaves an actor running."""
    yield
    pykka.ActorRegistry.stop_all(timeout=10)
