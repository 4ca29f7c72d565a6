"""The one entry point, actors.start(): its handle, its listeners, two systems in a process."""

from __future__ import annotations

import dataclasses
import threading

import pykka
import pytest

import actors
from actors.config import StateSettings
from actors.exceptions import GocdMesosError
from actors.messages import ScalePlan
from tests.conftest import RecordingRef


def _plans(ms):
    return [m for m in ms if isinstance(m, ScalePlan)]


def test_start_returns_a_running_system_and_stop_ends_it_in_order(system):
    s = system()
    events = RecordingRef()
    handle = actors.start(s.settings, clock=s.clock, listeners=(events,))
    try:
        assert set(handle.refs) == {"AgentRegistry", "Judge", "MesosBridge", "GoCDPoller"}
        assert handle.registry is handle.refs["AgentRegistry"] and handle.poller.is_alive()
        events.wait_until(lambda ms: len(_plans(ms)) >= 1, what="a first plan")
        assert handle.wait(timeout=0.1) == actors.Exit(-1, "still running")
    finally:
        ended = handle.stop()
    assert ended == actors.Exit(0)
    assert handle.stop() == ended and handle.wait() == ended
    assert not any(ref.is_alive() for ref in handle.refs.values())


def test_two_systems_in_one_process_do_not_interfere(system, tmp_path):
    first, second = system(), system()
    second.settings = dataclasses.replace(second.settings, state=StateSettings(dir=str(tmp_path / "state2")))
    one = actors.start(first.settings, clock=first.clock)
    two = actors.start(second.settings, clock=second.clock)
    try:
        assert one.stop() == actors.Exit(0)
        assert all(ref.is_alive() for ref in two.refs.values()), "stopping one stopped the other"
        assert two.wait(timeout=0.1).status == -1
    finally:
        assert two.stop() == actors.Exit(0)


def test_a_callable_listener_that_raises_or_blocks_stalls_and_kills_nothing(system):
    s = system()
    s.gocd.schedule_jobs("app", count=1, resources=["linux"], duration_s=5)
    released = threading.Event()
    blocked: list[object] = []
    seen = RecordingRef()

    def raises(message):
        raise RuntimeError("listener bug")

    def blocks(message):
        blocked.append(message)
        released.wait(30)

    handle = actors.start(s.settings, clock=s.clock, listeners=(raises, blocks, seen.tell))
    try:
        # The plans go on while one listener raises on every message and another is stuck on its first.
        seen.wait_until(lambda ms: len(_plans(ms)) >= 3, what="three plans")
        assert len(blocked) == 1
        assert all(ref.is_alive() for ref in handle.refs.values())
    finally:
        released.set()
        assert handle.stop() == actors.Exit(0)


def test_unsubscribe_stops_the_messages(system):
    s = system()
    first, second = RecordingRef(), RecordingRef()
    handle = actors.start(s.settings, clock=s.clock, listeners=(first,))
    try:
        first.wait_until(lambda ms: len(_plans(ms)) >= 1, what="a plan")
        handle.subscribe(second.tell)
        handle.unsubscribe(first)
        second.wait_until(lambda ms: len(_plans(ms)) >= 2, what="two plans for the new listener")
        after = len(first.messages)
        second.wait_until(lambda ms: len(_plans(ms)) >= 4, what="two more plans")
        assert len(first.messages) == after
    finally:
        handle.stop()


def test_a_system_that_cannot_start_raises_and_leaves_nothing_running(system, tmp_path, caplog):
    s = system()
    (tmp_path / "a-file").write_text("")
    settings = dataclasses.replace(s.settings, state=StateSettings(dir=str(tmp_path / "a-file" / "state")))
    before = set(pykka.ActorRegistry.get_all())
    with pytest.raises(GocdMesosError, match="AgentRegistry died while starting"):
        actors.start(settings, clock=s.clock)
    assert set(pykka.ActorRegistry.get_all()) <= before
