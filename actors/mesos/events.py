"""What the Mesos driver reports, as the scheduler adapter tells it to the MesosBridge.

Private to the Mesos package: the values of an offer and a task status, and one
event per driver callback. They are frozen dataclasses like the public
messages (:mod:`actors.messages`), but nothing outside :mod:`actors.mesos`
sends or receives them, so they may change with the driver. A (re)subscription
is told as the public :class:`~actors.messages.FrameworkRegistered` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "MesosAgentLost",
    "MesosAttribute",
    "MesosDisconnected",
    "MesosErrorReceived",
    "MesosExecutorLost",
    "MesosOffer",
    "MesosOfferRescinded",
    "MesosOffersReceived",
    "MesosResource",
    "MesosStatusReceived",
    "MesosTaskStatus",
]


@dataclass(frozen=True)
class MesosResource:
    """One resource of an offer, in the old (non-MULTI_ROLE) format."""

    #: Resource name: ``cpus``, ``mem`` (MB), ``disk`` (MB), ``ports``, ``gpus``, ...
    name: str
    #: ``*`` for unreserved, else the role it is reserved for.
    role: str = "*"
    #: Amount of a SCALAR resource (cpus in CPUs, mem and disk in MB); 0 for other types.
    scalar: float = 0.0
    #: Inclusive (begin, end) pairs of a RANGES resource.
    ranges: tuple[tuple[int, int], ...] = ()
    #: Items of a SET resource.
    items: frozenset[str] = frozenset()
    #: True for a dynamic reservation (the bridge leaves those alone).
    dynamic: bool = False


@dataclass(frozen=True)
class MesosAttribute:
    """One attribute of a Mesos agent (node), e.g. ``rack:a``."""

    #: Attribute name.
    name: str
    #: ``TEXT``, ``SCALAR``, ``SET`` or ``RANGES``.
    type: str
    #: Value of a TEXT attribute.
    text: str = ""
    #: Value of a SCALAR attribute.
    scalar: float = 0.0
    #: Items of a SET attribute (or ``begin-end`` strings of a RANGES one).
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class MesosOffer:
    """One resource offer: the unused resources of one Mesos agent node."""

    #: Offer id, valid for one ACCEPT or DECLINE.
    id: str
    #: Mesos agent (node) id.
    agent_id: str
    #: Hostname of the agent node.
    hostname: str
    #: Offered resources.
    resources: tuple[MesosResource, ...] = ()
    #: Attributes of the agent node.
    attributes: tuple[MesosAttribute, ...] = ()


@dataclass(frozen=True)
class MesosTaskStatus:
    """One TaskStatus from an UPDATE event."""

    #: Task id.
    task_id: str
    #: ``TASK_*`` state name.
    state: str
    #: Mesos agent (node) id; "" if the status has none.
    agent_id: str = ""
    #: ``SOURCE_MASTER``, ``SOURCE_AGENT`` or ``SOURCE_EXECUTOR``; "" if none.
    source: str = ""
    #: ``REASON_*`` name; "" if none.
    reason: str = ""
    #: Human-readable message; "" if none.
    message: str = ""
    #: Base64 uuid of a reliable update, which must be acknowledged; "" for master-made ones.
    uuid: str = ""
    #: Status labels as (key, value) pairs.
    labels: tuple[tuple[str, str], ...] = ()
    #: Wall-clock seconds since the epoch at which Mesos made the status; None if absent.
    timestamp: float | None = None


@dataclass(frozen=True)
class MesosDisconnected:
    """The driver lost its subscription stream (``disconnected`` callback)."""


@dataclass(frozen=True)
class MesosOffersReceived:
    """New offers arrived (``resourceOffers`` callback)."""

    #: The offers, in the order the master sent them.
    offers: tuple[MesosOffer, ...]


@dataclass(frozen=True)
class MesosOfferRescinded:
    """The master took an offer back (``offerRescinded`` callback)."""

    #: Offer id.
    offer_id: str


@dataclass(frozen=True)
class MesosStatusReceived:
    """A task status arrived (``statusUpdate`` callback)."""

    #: The status.
    status: MesosTaskStatus


@dataclass(frozen=True)
class MesosAgentLost:
    """A Mesos agent node was lost (``slaveLost`` callback)."""

    #: Mesos agent (node) id.
    agent_id: str


@dataclass(frozen=True)
class MesosExecutorLost:
    """An executor exited (``executorLost`` callback)."""

    #: Executor id.
    executor_id: str
    #: Mesos agent (node) id.
    agent_id: str
    #: The executor's exit status.
    exit_status: int


@dataclass(frozen=True)
class MesosErrorReceived:
    """The master sent an ERROR, or the driver gave up (``error`` callback)."""

    #: The error text.
    message: str
    #: Whether the driver had stopped itself when it reported the error.
    driver_stopped: bool = False
