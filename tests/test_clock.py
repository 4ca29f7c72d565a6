"""The clocks and the Ticker."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from actors.clock import ManualClock, RealClock, ScaledClock, Ticker, tell_later
from actors.messages import Poll


def test_manual_clock_fires_timers_in_due_order(clock: ManualClock):
    fired: list[tuple[str, float]] = []
    clock.call_later(5, lambda: fired.append(("b", clock.now())))
    clock.call_later(1, lambda: fired.append(("a", clock.now())))
    clock.call_later(9, lambda: fired.append(("c", clock.now())))
    start = clock.now()
    clock.advance(6)
    assert fired == [("a", start + 1), ("b", start + 5)]
    assert clock.now() == start + 6
    clock.advance(3)
    assert [name for name, _ in fired] == ["a", "b", "c"]


def test_manual_clock_cancel_and_pending(clock: ManualClock):
    fired = []
    timer = clock.call_later(1, lambda: fired.append(1))
    assert clock.pending() == 1
    timer.cancel()
    assert clock.pending() == 0
    clock.advance(2)
    assert fired == []


def test_manual_clock_timer_scheduled_by_a_timer_fires_in_same_advance(clock: ManualClock):
    fired = []
    clock.call_later(1, lambda: clock.call_later(1, lambda: fired.append(clock.now())))
    start = clock.now()
    clock.advance(5)
    assert fired == [start + 2]


def test_manual_clock_failing_callback_does_not_stop_others(clock: ManualClock):
    fired = []

    def boom():
        raise RuntimeError("boom")

    clock.call_later(1, boom)
    clock.call_later(2, lambda: fired.append(True))
    clock.advance(3)
    assert fired == [True]


def test_manual_clock_cannot_go_backwards(clock: ManualClock):
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_manual_clock_wait_wakes_when_time_passes(clock: ManualClock):
    woke = threading.Event()

    def sleeper():
        clock.sleep(10)
        woke.set()

    thread = threading.Thread(target=sleeper)
    thread.start()
    clock.advance(5)
    assert not woke.wait(0.05)
    clock.advance(5)
    thread.join(5)
    assert woke.is_set()


def test_manual_clock_wait_returns_when_event_set(clock: ManualClock):
    event = threading.Event()
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(clock.wait(event, 100)))
    thread.start()
    event.set()
    thread.join(5)
    assert result == [True]


def test_scaled_clock_runs_faster():
    fast = ScaledClock(1000)
    event = threading.Event()
    start = fast.now()
    fast.call_later(50, event.set)  # 50 simulated seconds = 50 ms
    assert event.wait(5)
    assert fast.now() - start >= 50
    with pytest.raises(ValueError):
        ScaledClock(0)


def test_a_scaled_clock_with_the_same_origin_reads_the_same_time_in_another_process():
    clock = ScaledClock(60)
    code = (
        "import sys; from actors.clock import ScaledClock; "
        f"c = ScaledClock(60, origin={clock.origin!r}); print(c.now(), c.time())"
    )
    before, wall_before = clock.now(), clock.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    after, wall_after = clock.now(), clock.time()
    now, wall = map(float, out.split())
    assert before <= now <= after
    assert wall_before <= wall <= wall_after


def test_real_clock_timer_and_wait():
    clock = RealClock()
    event = threading.Event()
    clock.call_later(0.01, event.set)
    assert clock.wait(event, 5) is True
    assert abs(clock.time() - __import__("time").time()) < 1


def test_ticker_tells_every_interval(clock: ManualClock, recorder):
    ticker = Ticker(clock, 10, recorder, Poll()).start()
    clock.advance(0)
    assert len(recorder.of(Poll)) == 1
    clock.advance(35)
    assert len(recorder.of(Poll)) == 4
    ticker.cancel()
    clock.advance(100)
    assert len(recorder.of(Poll)) == 4
    assert clock.pending() == 0


def test_ticker_set_interval_backs_off_and_recovers(clock: ManualClock, recorder):
    ticker = Ticker(clock, 10, recorder, Poll()).start(delay=10)
    clock.advance(10)
    assert len(recorder.of(Poll)) == 1
    ticker.set_interval(60)
    clock.advance(59)
    assert len(recorder.of(Poll)) == 1
    clock.advance(1)
    assert len(recorder.of(Poll)) == 2
    ticker.set_interval(10)
    clock.advance(10)
    assert len(recorder.of(Poll)) == 3
    assert ticker.interval == 10


def test_ticker_stops_quietly_when_actor_is_dead(clock: ManualClock, recorder):
    Ticker(clock, 1, recorder, Poll()).start()
    recorder.dead = True
    clock.advance(5)
    assert clock.pending() == 0


def test_ticker_rejects_bad_interval(clock: ManualClock, recorder):
    with pytest.raises(ValueError):
        Ticker(clock, 0, recorder, Poll())


def test_tell_later_tells_once_after_the_delay(clock: ManualClock, recorder):
    start = clock.now()
    tell_later(clock, 0.5, recorder, Poll())
    clock.advance(0.4)
    assert recorder.messages == []
    clock.advance(0.1)
    assert recorder.messages == [Poll()] and clock.now() == start + 0.5
    clock.advance(100)
    assert recorder.messages == [Poll()]
    assert clock.pending() == 0


def test_tell_later_can_be_cancelled_and_shrugs_off_a_dead_actor(clock: ManualClock, recorder):
    tell_later(clock, 1, recorder, Poll()).cancel()
    clock.advance(2)
    assert recorder.messages == []
    tell_later(clock, 1, recorder, Poll())
    recorder.dead = True
    clock.advance(2)  # no exception, nothing logged as a failure
    assert clock.pending() == 0
