"""The Scheduler adapter: each driver callback becomes one message to the bridge.

:class:`SchedulerAdapter` implements pymesos's Scheduler interface for both
drivers. It runs on the driver's thread, so it only converts the callback's
JSON into frozen values (:mod:`actors.mesos.offers`) and tells the bridge: no state,
no lock, no blocking, no ask, and no exception ever escapes (in pymesos one
would abort the IO thread). A callback that cannot be converted is logged and
dropped.

Sent to the bridge: :class:`~actors.messages.FrameworkRegistered`,
:class:`~actors.mesos.events.MesosDisconnected`,
:class:`~actors.mesos.events.MesosOffersReceived`,
:class:`~actors.mesos.events.MesosOfferRescinded`,
:class:`~actors.mesos.events.MesosStatusReceived`,
:class:`~actors.mesos.events.MesosAgentLost`,
:class:`~actors.mesos.events.MesosExecutorLost`,
:class:`~actors.mesos.events.MesosErrorReceived`. Heartbeats, inverse offers and
framework messages are only logged.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from actors.mesos.driver import Scheduler
from actors.mesos.events import (
    MesosAgentLost,
    MesosDisconnected,
    MesosErrorReceived,
    MesosExecutorLost,
    MesosOfferRescinded,
    MesosOffersReceived,
    MesosStatusReceived,
)
from actors.mesos.offers import parse_offer, parse_status
from actors.messages import FrameworkRegistered

__all__ = ["SchedulerAdapter"]

logger = logging.getLogger(__name__)


def _value(obj: Any) -> str:
    return str(obj.get("value", "")) if isinstance(obj, dict) else str(obj or "")


def _master(info: Any) -> str:
    if not isinstance(info, dict) or not info.get("hostname"):
        return ""
    return f"{info['hostname']}:{info.get('port', '')}".rstrip(":")


class SchedulerAdapter(Scheduler):
    """pymesos Scheduler callbacks -> messages told to ``bridge`` (an ActorRef)."""

    def __init__(self, bridge: Any) -> None:
        self._bridge = bridge

    def _tell(self, message: Any) -> None:
        try:
            self._bridge.tell(message)
        except Exception:
            # The bridge is stopping: the message has nobody to go to.
            logger.debug("Bridge gone; dropped %r", message)

    def registered(self, driver: Any, frameworkId: Any, masterInfo: Any) -> None:
        try:
            self._tell(
                FrameworkRegistered(
                    framework_id=_value(frameworkId), reregistered=False, master=_master(masterInfo)
                )
            )
        except Exception:
            logger.exception("registered callback failed")

    def reregistered(self, driver: Any, masterInfo: Any) -> None:
        try:
            framework_id = str(getattr(driver, "framework_id", "") or "")
            self._tell(
                FrameworkRegistered(framework_id=framework_id, reregistered=True, master=_master(masterInfo))
            )
        except Exception:
            logger.exception("reregistered callback failed")

    def disconnected(self, driver: Any) -> None:
        try:
            self._tell(MesosDisconnected())
        except Exception:
            logger.exception("disconnected callback failed")

    def processHeartBeat(self, driver: Any) -> None:
        with contextlib.suppress(Exception):
            logger.debug("Mesos heartbeat")

    def resourceOffers(self, driver: Any, offers: Any) -> None:
        try:
            parsed = []
            for offer in offers:
                try:
                    parsed.append(parse_offer(offer))
                except Exception:
                    logger.exception("Ignoring an offer that cannot be read: %r", offer)
            if parsed:
                self._tell(MesosOffersReceived(offers=tuple(parsed)))
        except Exception:
            logger.exception("resourceOffers callback failed")

    def inverseOffers(self, driver: Any, offers: Any) -> None:
        with contextlib.suppress(Exception):
            logger.info("Ignoring %d inverse offers (maintenance)", len(offers))

    def offerRescinded(self, driver: Any, offerId: Any) -> None:
        try:
            self._tell(MesosOfferRescinded(offer_id=_value(offerId)))
        except Exception:
            logger.exception("offerRescinded callback failed")

    def statusUpdate(self, driver: Any, status: Any) -> None:
        try:
            self._tell(MesosStatusReceived(status=parse_status(status)))
        except Exception:
            logger.exception("statusUpdate callback failed for %r", status)

    def frameworkMessage(self, driver: Any, executorId: Any, slaveId: Any, message: Any) -> None:
        with contextlib.suppress(Exception):
            logger.debug("Ignoring a framework message from executor %s", _value(executorId))

    def slaveLost(self, driver: Any, slaveId: Any) -> None:
        try:
            self._tell(MesosAgentLost(agent_id=_value(slaveId)))
        except Exception:
            logger.exception("slaveLost callback failed")

    def executorLost(self, driver: Any, executorId: Any, slaveId: Any, status: Any) -> None:
        try:
            self._tell(
                MesosExecutorLost(
                    executor_id=_value(executorId),
                    agent_id=_value(slaveId),
                    exit_status=int(status) if status is not None else -1,
                )
            )
        except Exception:
            logger.exception("executorLost callback failed")

    def error(self, driver: Any, message: Any) -> None:
        try:
            stopped = bool(getattr(driver, "aborted", False))
            self._tell(MesosErrorReceived(message=str(message), driver_stopped=stopped))
        except Exception:
            logger.exception("error callback failed")
