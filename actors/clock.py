"""Time for the whole project: one Clock interface and the Ticker.

Every timer, timeout, idle time, backoff and grace period in gocd-mesos reads
the injected :class:`Clock`, never :func:`time.time` or :func:`time.sleep`
directly. Three clocks implement it:

* :class:`RealClock` follows the machine's monotonic clock (the daemon);
* :class:`ScaledClock` runs ``scale`` times faster than real time (the
  sandbox, simulators and benchmarks cover hours in minutes);
* :class:`ManualClock` only moves when a test calls :meth:`ManualClock.advance`,
  which fires due timers in order on the caller's thread.

:class:`Ticker` tells an actor the same message every interval; it is how
polling becomes a message. :func:`tell_later` tells one message once, after a
delay (a debounced read).
"""

from __future__ import annotations

import abc
import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka

__all__ = ["Clock", "ManualClock", "RealClock", "ScaledClock", "Ticker", "Timer", "tell_later"]

logger = logging.getLogger(__name__)


class Timer:
    """Handle of a callback scheduled with :meth:`Clock.call_later`."""

    __slots__ = ("_cancelled", "callback", "due")

    def __init__(self, due: float, callback: Callable[[], Any]) -> None:
        #: Clock time (seconds) at which the callback runs.
        self.due = due
        #: What runs; exceptions are logged, never propagated.
        self.callback = callback
        self._cancelled = False

    def cancel(self) -> None:
        """Make sure the callback does not run (no effect once it has run)."""
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled

    def _run(self) -> None:
        if self._cancelled:
            return
        try:
            self.callback()
        except Exception:
            logger.exception("Timer callback %r failed", self.callback)


class Clock(abc.ABC):
    """Monotonic time, waiting and timers, as one injectable object."""

    @abc.abstractmethod
    def now(self) -> float:
        """Monotonic time in seconds; only differences are meaningful."""

    @abc.abstractmethod
    def time(self) -> float:
        """Wall-clock time in seconds since the epoch, for display and reports."""

    @abc.abstractmethod
    def wait(self, event: threading.Event | None, seconds: float) -> bool:
        """Block for up to ``seconds`` of clock time, or until ``event`` is set.

        Returns whether the event is set (always False without an event).
        """

    @abc.abstractmethod
    def call_later(self, delay: float, callback: Callable[[], Any]) -> Timer:
        """Run ``callback`` once ``delay`` seconds of clock time have passed.

        Callbacks run on a timer thread (real and scaled clocks) or on the
        thread that advances the clock (manual clock); they must not block.
        """

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` of clock time."""
        self.wait(None, seconds)


class _TimerThread:
    """One daemon thread running a clock's timers from a heap, in due order."""

    def __init__(self, clock: Clock, to_real: Callable[[float], float], name: str) -> None:
        self._clock = clock
        self._to_real = to_real
        self._name = name
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, timer: Timer) -> None:
        with self._cond:
            heapq.heappush(self._heap, (timer.due, next(self._seq), timer))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                due = self._heap[0][0]
                remaining = due - self._clock.now()
                if remaining > 0:
                    self._cond.wait(self._to_real(remaining))
                    continue
                _, _, timer = heapq.heappop(self._heap)
            timer._run()


class ScaledClock(Clock):
    """A clock that runs ``scale`` times faster than the machine's clock.

    ``now()`` starts at the machine's monotonic time when the clock is made, so
    a scale of 1 behaves exactly like :class:`RealClock`. A clock made with
    another's :attr:`origin` and scale reads the same time, in another process
    of the machine too (the benchmarks run the daemon beside its simulators so).
    """

    def __init__(self, scale: float = 1.0, *, origin: tuple[float, float] | None = None) -> None:
        if not scale > 0:
            raise ValueError(f"time scale must be positive, not {scale!r}")
        #: Simulated seconds per real second.
        self.scale = float(scale)
        self._mono0, self._wall0 = origin if origin is not None else (time.monotonic(), time.time())
        self._timers = _TimerThread(self, self._to_real, f"clock-timers-x{self.scale:g}")

    @property
    def origin(self) -> tuple[float, float]:
        """The machine's monotonic and wall time when this clock started."""
        return self._mono0, self._wall0

    def _to_real(self, seconds: float) -> float:
        return max(0.0, seconds) / self.scale

    def now(self) -> float:
        return self._mono0 + (time.monotonic() - self._mono0) * self.scale

    def time(self) -> float:
        return self._wall0 + (time.monotonic() - self._mono0) * self.scale

    def wait(self, event: threading.Event | None, seconds: float) -> bool:
        real = self._to_real(seconds)
        if event is None:
            time.sleep(real)
            return False
        return event.wait(real)

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Timer:
        timer = Timer(self.now() + max(0.0, delay), callback)
        self._timers.add(timer)
        return timer

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale:g})"


class RealClock(ScaledClock):
    """The machine's monotonic clock: what the daemon runs on."""

    def __init__(self) -> None:
        super().__init__(1.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ManualClock(Clock):
    """A clock that moves only when told to: the tests' clock.

    :meth:`advance` fires every timer that falls due, in due order, on the
    calling thread, with :meth:`now` set to each timer's due time while it
    runs. Threads blocked in :meth:`wait` wake when the clock passes their
    deadline.
    """

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._wall_offset = float(wall_start) - float(start)
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        with self._cond:
            return self._now

    def time(self) -> float:
        return self.now() + self._wall_offset

    def wait(self, event: threading.Event | None, seconds: float) -> bool:
        with self._cond:
            deadline = self._now + seconds
            while self._now < deadline:
                if event is not None and event.is_set():
                    return True
                # An Event cannot wake this condition, so look at it often;
                # this is the tests' clock, never the daemon's.
                self._cond.wait(0.01 if event is not None else None)
        return event.is_set() if event is not None else False

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Timer:
        with self._cond:
            timer = Timer(self._now + max(0.0, delay), callback)
            heapq.heappush(self._heap, (timer.due, next(self._seq), timer))
            return timer

    def pending(self) -> int:
        """How many timers are scheduled and not cancelled."""
        with self._cond:
            return sum(1 for _, _, t in self._heap if not t.cancelled)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing due timers in order."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._cond:
            target = self._now + seconds
        while True:
            with self._cond:
                if self._heap and self._heap[0][0] <= target:
                    due, _, timer = heapq.heappop(self._heap)
                    self._now = max(self._now, due)
                    self._cond.notify_all()
                else:
                    self._now = target
                    self._cond.notify_all()
                    return
            timer._run()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(now={self._now:g})"


class Ticker:
    """Tells ``message`` to an actor every ``interval`` seconds of clock time.

    An actor starts its ticker in ``on_start`` and cancels it in ``on_stop``.
    :meth:`set_interval` changes the period from the next tick on (a poller
    backing off). A dead actor cancels the ticker quietly: that is shutdown.
    """

    def __init__(
        self,
        clock: Clock,
        interval: float,
        actor_ref: pykka.ActorRef[Any],
        message: Any,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"ticker interval must be positive, not {interval!r}")
        self._clock = clock
        self._interval = float(interval)
        self._ref = actor_ref
        self._message = message
        self._lock = threading.Lock()
        self._timer: Timer | None = None
        self._cancelled = False

    @property
    def interval(self) -> float:
        """Seconds between ticks."""
        return self._interval

    def start(self, delay: float = 0.0) -> Ticker:
        """Send the first message after ``delay`` seconds, then every interval."""
        with self._lock:
            self._cancelled = False
            self._schedule(delay)
        return self

    def set_interval(self, interval: float, *, restart: bool = True) -> None:
        """Use ``interval`` from now on; with ``restart``, the next tick is one
        new interval from now rather than at the old due time."""
        if not interval > 0:
            raise ValueError(f"ticker interval must be positive, not {interval!r}")
        with self._lock:
            self._interval = float(interval)
            if restart and not self._cancelled and self._timer is not None:
                self._timer.cancel()
                self._schedule(self._interval)

    def cancel(self) -> None:
        """Stop ticking; idempotent."""
        with self._lock:
            self._cancelled = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _schedule(self, delay: float) -> None:
        self._timer = self._clock.call_later(delay, self._tick)

    def _tick(self) -> None:
        with self._lock:
            if self._cancelled:
                return
            self._schedule(self._interval)
        try:
            self._ref.tell(self._message)
        except pykka.ActorDeadError:
            self.cancel()


def tell_later(clock: Clock, delay: float, actor_ref: pykka.ActorRef[Any], message: Any) -> Timer:
    """Tell ``message`` to an actor once, ``delay`` seconds of clock time from now.

    The one-shot sibling of :class:`Ticker`: cancel the returned :class:`Timer` to
    take it back (an actor does in ``on_stop``). A dead actor is shrugged off: that is
    shutdown.
    """

    def tell() -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            actor_ref.tell(message)

    return clock.call_later(delay, tell)
