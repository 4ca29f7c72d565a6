"""What every gocd-mesos actor shares: the ping, the death notice, publishing.

:class:`BaseActor` is the thin common shell of the role actors. It answers
:class:`Ping` (how ``app.run`` confirms an actor is up), logs messages nobody
handles, and when the actor dies of an exception it first calls the
``stop_hook`` it was given, so that the main thread stops the daemon instead of
running on without a piece, and only then releases what the actor holds.
:class:`Publisher` keeps an actor's subscribers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pykka

__all__ = ["BaseActor", "Ping", "Publisher"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ping:
    """Are you alive? Answered with ``"pong"`` (only ever asked, never told)."""


class Publisher:
    """The subscribers of an actor, each told every published message.

    A dead subscriber is dropped quietly: it is shutting down.
    """

    def __init__(self, subscribers: tuple[Any, ...] | list[Any] = ()) -> None:
        self._subscribers: list[Any] = list(subscribers)

    def add(self, subscriber: Any) -> None:
        """Tell ``subscriber`` (an ActorRef or anything with ``tell``) from now on."""
        if subscriber not in self._subscribers:
            self._subscribers.append(subscriber)

    def publish(self, message: Any) -> None:
        """Tell ``message`` to every subscriber."""
        for subscriber in list(self._subscribers):
            try:
                subscriber.tell(message)
            except pykka.ActorDeadError:
                self._subscribers.remove(subscriber)

    def __len__(self) -> int:
        return len(self._subscribers)


class BaseActor(pykka.ThreadingActor):
    """A pykka thread actor that answers Ping and reports its own death.

    A subclass releases what ``on_start`` acquired in ``on_stop`` and leaves
    ``on_failure`` alone: pykka skips ``on_stop`` after a crash, so
    ``on_failure`` here calls it, after the death is reported.
    """

    def __init__(self, *, stop_hook: Callable[[str], None] | None = None) -> None:
        super().__init__()
        #: Called with a reason when this actor dies of an exception.
        self._stop_hook = stop_hook

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Ping):
            return "pong"
        logger.warning("%s got a message it does not handle: %r", type(self).__name__, message)
        return None

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        name = type(self).__name__
        # With a stop hook, the system's one ERROR line ("Stopped because ...") names the
        # cause; the traceback is for whoever digs deeper. Without one, this is the ERROR.
        logger.log(
            logging.WARNING if self._stop_hook is not None else logging.ERROR,
            "%s crashed: %s",
            name,
            exception_value,
            exc_info=(exception_type, exception_value, traceback)  # type: ignore[arg-type]
            if exception_type
            else None,
        )
        # Report first: a release that fails too (the state dir it saves to is
        # gone, say) must not keep the daemon from learning of the death.
        if self._stop_hook is not None:
            self._stop_hook(f"{name} crashed: {exception_value}")
        try:
            self.on_stop()
        except Exception as e:
            logger.warning("%s could not release its resources after crashing: %s", name, e)
