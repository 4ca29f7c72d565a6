"""The Mesos v1 scheduler HTTP driver, with pymesos's SchedulerDriver interface.

:class:`MesosSchedulerDriver` speaks ``/api/v1/scheduler`` with ``requests``:
one streaming SUBSCRIBE (RecordIO events inside HTTP chunks) on its own
thread, and every other call on a separate session carrying the
``Mesos-Stream-Id``. Its methods and the :class:`Scheduler` callbacks it calls
have pymesos 0.3.15's names and argument shapes (plain v1 JSON dicts), so the
bridge runs unchanged on either driver. Unlike pymesos it:

* runs every callback on its own thread and logs, never propagates, an
  exception raised by one: the framework is never torn down by a bug;
* only tears the framework down on an explicit ``stop(failover=False)``
  (``abort()`` and ``stop(failover=True)`` leave it and its tasks running);
* watches heartbeats: no event for ``heartbeat_misses`` heartbeat intervals
  drops the stream and resubscribes with the framework id;
* reconnects with exponential backoff and jitter, tries a comma-separated
  master list in turn, follows 307 to the leader, finds it through ZooKeeper
  for ``zk://`` (kazoo, the optional ``zookeeper`` extra), authenticates with
  HTTP basic and verifies TLS against a CA bundle;
* does not loop on ``ERROR "Framework has been removed"``: it backs off and,
  after a few refusals, reports it through ``error`` and stops.

Every wait and timer goes through the injected Clock; the streaming read
itself has a socket timeout, and ``stop()`` shuts the socket down so that a
stuck read never holds it up.

:func:`load_pymesos` imports the optional pymesos driver (main thread only)
and undoes its import side effects; :func:`driver_factory` picks one of the
two for ``[mesos] driver``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests

from actors.backoff import retry_delay
from actors.clock import Clock, RealClock, Timer
from actors.config import MesosSettings
from actors.exceptions import MesosError
from actors.mesos.masters import ZOOKEEPER_SCHEMES, parse_masters

__all__ = [
    "MesosSchedulerDriver",
    "Scheduler",
    "driver_factory",
    "load_pymesos",
    "pymesos_master",
]

logger = logging.getLogger(__name__)

#: The scheduler API endpoint on the leading master.
API_PATH = "/api/v1/scheduler"
#: Heartbeat interval assumed until SUBSCRIBED says otherwise (Mesos's constant).
DEFAULT_HEARTBEAT = 15.0
#: Refusals of a removed framework id tolerated (with backoff) before ``error``.
REMOVED_RETRIES = 3
#: Consecutive 307s followed before the attempt counts as failed.
MAX_REDIRECTS = 5
#: Seconds pymesos's calls and connect deadline are bounded by (its default is a day).
PYMESOS_TIMEOUT = 600.0

_RECORD_LENGTH = re.compile(rb"(\d+)\n")
_FATAL_STATUSES = {400, 401, 403, 405, 406, 415, 501}


class Scheduler:
    """pymesos's Scheduler interface: every callback, each doing nothing.

    Arguments are v1 JSON as plain dicts and lists (``agent_id``, never
    ``slave_id``), exactly as pymesos passes them with ``use_addict=False``.
    """

    def registered(self, driver: Any, frameworkId: dict[str, Any], masterInfo: dict[str, Any]) -> None:
        """First SUBSCRIBED of a driver that had no framework id."""

    def reregistered(self, driver: Any, masterInfo: dict[str, Any]) -> None:
        """SUBSCRIBED with a framework id we already had."""

    def disconnected(self, driver: Any) -> None:
        """The subscription stream ended."""

    def processHeartBeat(self, driver: Any) -> None:
        """A HEARTBEAT event."""

    def resourceOffers(self, driver: Any, offers: list[dict[str, Any]]) -> None:
        """An OFFERS event with at least one offer."""

    def inverseOffers(self, driver: Any, offers: list[dict[str, Any]]) -> None:
        """An INVERSE_OFFERS event."""

    def offerRescinded(self, driver: Any, offerId: dict[str, Any]) -> None:
        """A RESCIND event."""

    def inverseOfferRescinded(self, driver: Any, offerId: dict[str, Any]) -> None:
        """A RESCIND_INVERSE_OFFER event."""

    def statusUpdate(self, driver: Any, status: dict[str, Any]) -> None:
        """An UPDATE event's TaskStatus."""

    def operationStatusUpdate(self, driver: Any, status: dict[str, Any]) -> None:
        """An UPDATE_OPERATION_STATUS event's status."""

    def frameworkMessage(
        self,
        driver: Any,
        executorId: dict[str, Any],
        slaveId: dict[str, Any],
        message: str,
    ) -> None:
        """A MESSAGE event; ``message`` is the base64 text as received."""

    def slaveLost(self, driver: Any, slaveId: dict[str, Any]) -> None:
        """A FAILURE event without an executor: an agent node was lost."""

    def executorLost(
        self,
        driver: Any,
        executorId: dict[str, Any],
        slaveId: dict[str, Any],
        status: int,
    ) -> None:
        """A FAILURE event naming an executor."""

    def error(self, driver: Any, message: str) -> None:
        """An ERROR event, or the driver giving up."""


def _ids(offer_ids: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[Any]:
    return [offer_ids] if isinstance(offer_ids, Mapping) else list(offer_ids)


def _parse_masters(master_uri: str) -> tuple[str | None, tuple[str, ...]]:
    """(zk url or None, base URLs) of a master string, in config's forms or pymesos's."""
    try:
        masters = parse_masters(master_uri, pymesos_forms=True)
    except ValueError as e:
        raise MesosError(str(e)) from None
    if masters[0].startswith(ZOOKEEPER_SCHEMES):
        return masters[0], ()
    return None, masters


class _Outcome:
    """How one subscription attempt ended (the driver loop decides what next)."""

    ENDED = "ended"  # a subscribed stream ended (EOF, watchdog, network)
    FAILED = "failed"  # could not subscribe: unreachable, 5xx, bad stream
    REDIRECT = "redirect"
    REMOVED = "removed"
    FATAL = "fatal"

    def __init__(self, kind: str, detail: str = "", location: str = "") -> None:
        self.kind = kind
        self.detail = detail
        self.location = location


class MesosSchedulerDriver:
    """A v1 HTTP scheduler driver with pymesos 0.3.15's interface (see the module doc).

    The positional arguments are pymesos's. ``failover`` is accepted for
    compatibility and has no effect: this driver never tears down on its own.
    ``use_addict`` is not supported. ``timeout`` bounds each call, like
    pymesos; keyword-only arguments are this driver's own.
    """

    def __init__(
        self,
        sched: Any,
        framework: Mapping[str, Any],
        master_uri: str,
        use_addict: bool = False,
        implicit_acknowledgements: bool = True,
        principal: str | None = None,
        secret: str | None = None,
        failover: bool = False,
        timeout: float = 10.0,
        *,
        clock: Clock | None = None,
        verify: bool | str = True,
        heartbeat_misses: int = 5,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        connect_timeout: float = 10.0,
        stream_read_timeout: float | None = None,
        zk_client_factory: Callable[[str], Any] | None = None,
        session_factory: Callable[[], requests.Session] = requests.Session,
    ) -> None:
        if use_addict:
            raise ValueError("use_addict is not supported by the builtin driver")
        del failover  # see the class docstring
        self.sched = sched
        self.master_uri = master_uri
        self.implicit_acknowledgements = implicit_acknowledgements
        self._framework: dict[str, Any] = dict(framework)
        self._zk_url, self._masters = _parse_masters(master_uri)
        self._auth = (principal, secret) if principal is not None and secret is not None else None
        self._clock: Clock = clock or RealClock()
        self._verify = verify
        self._call_timeout = float(timeout)
        self._connect_timeout = float(connect_timeout)
        self._stream_read_timeout = stream_read_timeout
        self._heartbeat_misses = heartbeat_misses
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._session_factory = session_factory
        self._zk_client_factory = zk_client_factory
        if self._zk_url and zk_client_factory is None:
            self._zk_client_factory = _kazoo_client_factory()
        self._zk: Any = None
        self._random = random.Random()

        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._aborted = False
        self._call_lock = threading.Lock()
        self._calls: requests.Session | None = None
        #: Base URL of the master the current stream is on.
        self._leader: str | None = None
        self._stream_id: str | None = None
        self._sock: socket.socket | None = None
        self._stream_token = 0
        self._watchdog: Timer | None = None
        self._last_event = 0.0
        self._heartbeat = DEFAULT_HEARTBEAT

    # --- pymesos properties -------------------------------------------------------

    @property
    def framework_id(self) -> str | None:
        """The framework id as a plain string, once known."""
        fid = self._framework.get("id")
        return fid.get("value") if isinstance(fid, Mapping) else None

    @framework_id.setter
    def framework_id(self, value: str) -> None:
        self._framework["id"] = {"value": value}

    @property
    def connected(self) -> bool:
        """Whether a subscription stream is up (calls are sent only then)."""
        return self._stream_id is not None

    @property
    def aborted(self) -> bool:
        """Whether the driver gave up (fatal refusal, or abort())."""
        return self._aborted

    @property
    def master(self) -> str | None:
        """``host:port`` of the master the stream is on, or None."""
        return urlsplit(self._leader).netloc if self._leader else None

    @property
    def stream_id(self) -> str | None:
        """The current ``Mesos-Stream-Id``, or None."""
        return self._stream_id

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start subscribing on the driver's thread (no effect if running)."""
        if self._thread is not None and self._thread.is_alive():
            logger.warning("Mesos driver already started")
            return
        self._stopping.clear()
        self._aborted = False
        self._thread = threading.Thread(target=self._run, name="mesos-driver", daemon=True)
        self._thread.start()

    def stop(self, failover: bool = False) -> None:
        """Stop the driver; with ``failover=False`` also TEARDOWN the framework (kills every task)."""
        if not failover:
            self._teardown()
        self._stopping.set()
        self._drop_stream()
        zk, self._zk = self._zk, None
        if zk is not None:
            try:
                zk.stop()
                zk.close()
            except Exception:
                logger.debug("Closing the ZooKeeper client failed", exc_info=True)

    def abort(self) -> None:
        """Stop without TEARDOWN (unlike pymesos, whose abort tears down)."""
        self._aborted = True
        self.stop(failover=True)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the driver's thread to end."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def run(self) -> None:
        """``start()`` then ``join()``."""
        self.start()
        self.join()

    # --- calls ----------------------------------------------------------------------

    def _send(self, body: dict[str, Any]) -> None:
        """POST one call to the leader; silently dropped when not subscribed (as pymesos)."""
        with self._call_lock:
            leader, stream_id, fid = self._leader, self._stream_id, self.framework_id
            if leader is None or stream_id is None or not fid:
                logger.debug("Not subscribed; %s not sent", body.get("type"))
                return
            body = {**body, "framework_id": {"value": fid}}
            if self._calls is None:
                self._calls = self._new_session()
            try:
                resp = self._calls.post(
                    leader + API_PATH,
                    data=json.dumps(body).encode("utf-8"),
                    headers={"Content-Type": "application/json", "Mesos-Stream-Id": stream_id},
                    timeout=(self._connect_timeout, self._call_timeout),
                    allow_redirects=False,
                )
            except requests.RequestException as e:
                raise MesosError(f"{body['type']} to {urlsplit(leader).netloc} failed: {e}") from e
            if not 200 <= resp.status_code < 300:
                raise MesosError(
                    f"Mesos master answered {resp.status_code} to {body['type']}: {resp.text.strip()[:200]}"
                )

    def _teardown(self) -> None:
        if self.connected and self.framework_id:
            logger.info("Tearing down framework %s: Mesos kills all its tasks", self.framework_id)
            try:
                self._send({"type": "TEARDOWN"})
            except MesosError as e:
                logger.error("TEARDOWN failed: %s", e)
                return
            self._framework.pop("id", None)

    def acceptOffers(
        self,
        offer_ids: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        operations: Sequence[Mapping[str, Any]],
        filters: Mapping[str, Any] | None = None,
    ) -> None:
        """ACCEPT offers with operations; no operations is a DECLINE."""
        if not operations:
            self.declineOffer(offer_ids, filters)
            return
        accept: dict[str, Any] = {"offer_ids": _ids(offer_ids), "operations": list(operations)}
        if filters is not None:
            accept["filters"] = dict(filters)
        self._send({"type": "ACCEPT", "accept": accept})

    def launchTasks(
        self,
        offer_ids: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        tasks: Sequence[Mapping[str, Any]],
        filters: Mapping[str, Any] | None = None,
    ) -> None:
        """ACCEPT with one LAUNCH of ``tasks``; no tasks is a DECLINE."""
        if not tasks:
            self.declineOffer(offer_ids, filters)
            return
        self.acceptOffers(offer_ids, [{"type": "LAUNCH", "launch": {"task_infos": list(tasks)}}], filters)

    def declineOffer(
        self,
        offer_ids: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        filters: Mapping[str, Any] | None = None,
    ) -> None:
        """DECLINE one offer id or a list of them."""
        self._offers_call("DECLINE", "offer_ids", offer_ids, filters)

    def acceptInverseOffers(
        self,
        offer_ids: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        filters: Mapping[str, Any] | None = None,
    ) -> None:
        """ACCEPT_INVERSE_OFFERS."""
        self._offers_call("ACCEPT_INVERSE_OFFERS", "inverse_offer_ids", offer_ids, filters)

    def declineInverseOffer(
        self,
        offer_ids: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        filters: Mapping[str, Any] | None = None,
    ) -> None:
        """DECLINE_INVERSE_OFFERS."""
        self._offers_call("DECLINE_INVERSE_OFFERS", "inverse_offer_ids", offer_ids, filters)

    def _offers_call(
        self,
        call: str,
        ids_key: str,
        offer_ids: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        filters: Mapping[str, Any] | None,
    ) -> None:
        """Send ``call`` naming (inverse) offers, with the filters when given."""
        body: dict[str, Any] = {ids_key: _ids(offer_ids)}
        if filters is not None:
            body["filters"] = dict(filters)
        self._send({"type": call, call.lower(): body})

    def reviveOffers(self, roles: Sequence[str] = ()) -> None:
        """REVIVE: offers again, and every decline filter cleared."""
        body: dict[str, Any] = {"type": "REVIVE"}
        if roles:
            body["revive"] = {"roles": list(roles)}
        self._send(body)

    def suppressOffers(self, roles: Sequence[str] = ()) -> None:
        """SUPPRESS: no offers until REVIVE."""
        body: dict[str, Any] = {"type": "SUPPRESS"}
        if roles:
            body["suppress"] = {"roles": list(roles)}
        self._send(body)

    def killTask(self, task_id: Mapping[str, Any]) -> None:
        """KILL one task (``{"value": id}``)."""
        self._send({"type": "KILL", "kill": {"task_id": dict(task_id)}})

    def acknowledgeStatusUpdate(self, status: Mapping[str, Any]) -> None:
        """ACKNOWLEDGE a status; skipped when it has no ``uuid`` (master-made)."""
        if "uuid" not in status:
            return
        ack = {"agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}
        self._send({"type": "ACKNOWLEDGE", "acknowledge": ack})

    def acknowledgeOperationStatusUpdate(self, status: Mapping[str, Any]) -> None:
        """ACKNOWLEDGE_OPERATION_STATUS (skipped without ``uuid`` or ``operation_id``)."""
        if "uuid" in status and "operation_id" in status:
            self._send({"type": "ACKNOWLEDGE_OPERATION_STATUS", "acknowledge_operation_status": dict(status)})

    def reconcileTasks(self, tasks: Sequence[Mapping[str, Any]]) -> None:
        """RECONCILE: ``[]`` is implicit; entries keep ``agent_id`` when given (pymesos drops it)."""
        entries = []
        for task in tasks:
            entry = {"task_id": task["task_id"]}
            if "agent_id" in task:
                entry["agent_id"] = task["agent_id"]
            entries.append(entry)
        self._send({"type": "RECONCILE", "reconcile": {"tasks": entries}})

    def reconcileOperations(self, operations: Sequence[Mapping[str, Any]]) -> None:
        """RECONCILE_OPERATIONS."""
        self._send({"type": "RECONCILE_OPERATIONS", "reconcile_operations": {"operations": list(operations)}})

    def sendFrameworkMessage(
        self, executor_id: Mapping[str, Any], agent_id: Mapping[str, Any], data: str
    ) -> None:
        """MESSAGE to an executor; ``data`` is base64 text already."""
        self._send(
            {"type": "MESSAGE", "message": {"agent_id": agent_id, "executor_id": executor_id, "data": data}}
        )

    def requestResources(self, requests_: Sequence[Mapping[str, Any]]) -> None:
        """REQUEST (the built-in allocator ignores it)."""
        self._send({"type": "REQUEST", "request": {"requests": list(requests_)}})

    # --- the driver thread --------------------------------------------------------------

    def _new_session(self) -> requests.Session:
        session = self._session_factory()
        session.verify = self._verify
        if self._auth is not None:
            session.auth = self._auth
        session.headers["User-Agent"] = "gocd-mesos"
        return session

    def _backoff(self, attempt: int) -> float:
        """Seconds before the next subscription attempt: ``backoff_initial`` after attempt 0,
        doubling up to ``backoff_max``, with +-50% jitter."""
        return retry_delay(
            attempt + 1, self._backoff_initial, self._backoff_max, jitter=(0.5, 1.5), rng=self._random
        )

    def _run(self) -> None:
        attempt = 0
        removed = 0
        redirects = 0
        index = 0
        try:
            while not self._stopping.is_set():
                try:
                    base = self._pick_master(index)
                    outcome = (
                        self._subscribe(base)
                        if base
                        else _Outcome(_Outcome.FAILED, "no leading master known")
                    )
                except MesosError as e:
                    outcome = _Outcome(_Outcome.FAILED, str(e))
                except Exception as e:  # never let the thread die of a bug
                    logger.exception("Mesos driver error")
                    outcome = _Outcome(_Outcome.FAILED, str(e))
                if self._stopping.is_set():
                    break
                if outcome.kind == _Outcome.REDIRECT and redirects < MAX_REDIRECTS:
                    redirects += 1
                    self._leader = outcome.location
                    logger.info("Mesos master redirects to %s", urlsplit(outcome.location).netloc)
                    continue
                redirects = 0
                if outcome.kind == _Outcome.FATAL:
                    logger.error("Mesos refused the framework: %s", outcome.detail)
                    self._aborted = True
                    self._callback("error", outcome.detail)
                    return
                if outcome.kind == _Outcome.REMOVED:
                    removed += 1
                    if removed >= REMOVED_RETRIES:
                        self._aborted = True
                        self._callback("error", outcome.detail)
                        return
                else:
                    removed = 0
                if outcome.kind == _Outcome.ENDED:
                    attempt = 0
                else:
                    self._leader = None
                    index += 1
                delay = self._backoff(attempt)
                attempt += 1
                logger.info("Resubscribing to Mesos in %.1fs (%s)", delay, outcome.detail or outcome.kind)
                if self._clock.wait(self._stopping, delay):
                    break
        finally:
            self._stream_id = None
            self._cancel_watchdog()

    def _pick_master(self, index: int) -> str | None:
        if self._leader is not None:
            return self._leader
        if self._zk_url:
            return self._zk_leader()
        return self._masters[index % len(self._masters)]

    def _zk_leader(self) -> str | None:
        assert self._zk_url is not None and self._zk_client_factory is not None
        rest = self._zk_url.split("://", 1)[1]
        hosts, _, path = rest.partition("/")
        path = "/" + path.strip("/")
        if self._zk is None:
            self._zk = self._zk_client_factory(hosts)
            self._zk.start()
        try:
            children = self._zk.get_children(path)
            leader = zk_leader_node(children)
            if leader is None:
                return None
            data, _ = self._zk.get(f"{path.rstrip('/')}/{leader}")
            return zk_master_url(data)
        except Exception as e:
            raise MesosError(f"ZooKeeper master detection failed: {e}") from e

    def _subscribe(self, base: str) -> _Outcome:
        """One SUBSCRIBE: stream events until the stream ends, and say how it ended."""
        known_id = self.framework_id
        info = dict(self._framework)
        body: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
        if known_id:
            body["framework_id"] = {"value": known_id}
        session = self._new_session()
        read_timeout = self._stream_read_timeout or (self._heartbeat_misses + 1) * DEFAULT_HEARTBEAT
        try:
            try:
                resp = session.post(
                    base + API_PATH,
                    data=json.dumps(body).encode("utf-8"),
                    headers={"Content-Type": "application/json", "Accept": "application/json"},
                    stream=True,
                    timeout=(self._connect_timeout, read_timeout),
                    allow_redirects=False,
                )
            except requests.RequestException as e:
                return _Outcome(_Outcome.FAILED, f"{urlsplit(base).netloc} unreachable: {e}")
            with resp:
                return self._handle_response(base, resp, known_id)
        finally:
            session.close()

    def _handle_response(self, base: str, resp: requests.Response, known_id: str | None) -> _Outcome:
        where = urlsplit(base).netloc
        if resp.status_code == 307:
            location = resp.headers.get("Location", "")
            parts = urlsplit(location if "//" in location else "//" + location)
            if not parts.netloc:
                return _Outcome(_Outcome.FAILED, f"{where} sent a 307 without a usable Location")
            return _Outcome(
                _Outcome.REDIRECT, location=f"{parts.scheme or urlsplit(base).scheme}://{parts.netloc}"
            )
        if resp.status_code != 200:
            text = resp.text.strip()[:300]
            detail = f"SUBSCRIBE to {where} failed with HTTP {resp.status_code}: {text}"
            if resp.status_code == 401:
                detail = (
                    f"Mesos master {where} refused our credentials (HTTP 401): "
                    "check [mesos] principal and secret"
                )
            return _Outcome(
                _Outcome.FATAL if resp.status_code in _FATAL_STATUSES else _Outcome.FAILED, detail
            )
        if "chunked" not in resp.headers.get("Transfer-Encoding", "").lower():
            return _Outcome(_Outcome.FAILED, f"{where} answered SUBSCRIBE without a chunked stream")
        stream_id = resp.headers.get("Mesos-Stream-Id", "")
        self._sock = _socket_of(resp)
        self._stream_token += 1
        token = self._stream_token
        subscribed = False
        buffer = b""
        try:
            for chunk in resp.raw.read_chunked(None, decode_content=False):
                buffer += chunk
                while True:
                    match = _RECORD_LENGTH.match(buffer)
                    if match is None:
                        if buffer and not buffer[:1].isdigit():
                            raise MesosError(f"{where} sent bytes that are not RecordIO: {buffer[:20]!r}")
                        break
                    end = match.end() + int(match.group(1))
                    if len(buffer) < end:
                        break
                    record, buffer = buffer[match.end() : end], buffer[end:]
                    event = json.loads(record.decode("utf-8"))
                    self._touch(token)
                    etype = str(event.get("type", "")).upper()
                    if etype == "SUBSCRIBED":
                        subscribed = True
                        self._leader = base
                        self._stream_id = stream_id
                        self._on_subscribed(event.get("subscribed", {}), known_id, token)
                    elif etype == "ERROR":
                        message = str(event.get("error", {}).get("message", ""))
                        if not subscribed and "has been removed" in message:
                            return _Outcome(_Outcome.REMOVED, message)
                        if "failed over" in message:
                            self._aborted = True
                            self._stopping.set()
                        self._callback("error", message)
                    elif subscribed:
                        self._dispatch(etype, event)
                if self._stopping.is_set():
                    break
        except Exception as e:  # urllib3 ProtocolError, timeouts, a shut-down socket, bad JSON
            if not subscribed:
                return _Outcome(_Outcome.FAILED, f"stream from {where} broke: {e}")
            if self._stopping.is_set():
                logger.debug("Mesos event stream from %s closed on stop: %s", where, e)
            else:
                logger.warning("Mesos event stream from %s ended: %s", where, e)
        finally:
            self._stream_id = None
            self._sock = None
            self._cancel_watchdog()
            if subscribed:
                self._callback("disconnected")
        return _Outcome(_Outcome.ENDED if subscribed else _Outcome.FAILED, "stream ended")

    def _on_subscribed(self, subscribed: Mapping[str, Any], known_id: str | None, token: int) -> None:
        self.framework_id = str(subscribed.get("framework_id", {}).get("value", ""))
        self._heartbeat = float(subscribed.get("heartbeat_interval_seconds") or DEFAULT_HEARTBEAT)
        self._arm_watchdog(token)
        master = urlsplit(self._leader or "")
        info = dict(subscribed.get("master_info", {}))
        info.setdefault("hostname", master.hostname)
        info.setdefault("port", master.port)
        logger.info("Subscribed to Mesos master %s as framework %s", master.netloc, self.framework_id)
        if known_id:
            self._callback("reregistered", info)
        else:
            self._callback("registered", {"value": self.framework_id}, info)

    def _dispatch(self, etype: str, event: Mapping[str, Any]) -> None:
        key = etype.lower()
        if etype == "HEARTBEAT":
            self._callback("processHeartBeat")
            return
        if key not in event:
            logger.error("Missing %r in %s event", key, etype)
            return
        data = event[key]
        if etype == "OFFERS":
            if data.get("offers"):
                self._callback("resourceOffers", list(data["offers"]))
            if data.get("inverse_offers"):
                self._callback("inverseOffers", list(data["inverse_offers"]))
        elif etype == "INVERSE_OFFERS":
            self._callback("inverseOffers", list(data.get("inverse_offers", [])))
        elif etype == "RESCIND":
            self._callback("offerRescinded", data["offer_id"])
        elif etype == "RESCIND_INVERSE_OFFER":
            self._callback("inverseOfferRescinded", data["inverse_offer_id"])
        elif etype == "UPDATE":
            status = data["status"]
            self._callback("statusUpdate", status)
            if self.implicit_acknowledgements and "uuid" in status:
                try:
                    self.acknowledgeStatusUpdate(status)
                except MesosError as e:
                    logger.warning("Implicit acknowledgement failed: %s", e)
        elif etype == "UPDATE_OPERATION_STATUS":
            self._callback("operationStatusUpdate", data["status"])
            if self.implicit_acknowledgements:
                try:
                    self.acknowledgeOperationStatusUpdate(data["status"])
                except MesosError as e:
                    logger.warning("Implicit acknowledgement failed: %s", e)
        elif etype == "MESSAGE":
            self._callback(
                "frameworkMessage", data.get("executor_id"), data.get("agent_id"), data.get("data", "")
            )
        elif etype == "FAILURE":
            if "executor_id" in data:
                self._callback("executorLost", data["executor_id"], data.get("agent_id"), data.get("status"))
            else:
                self._callback("slaveLost", data.get("agent_id"))
        else:
            logger.debug("Ignoring %s event", etype)

    def _callback(self, name: str, *args: Any) -> None:
        method = getattr(self.sched, name, None)
        if method is None:
            return
        try:
            method(self, *args)
        except Exception:
            logger.exception("Scheduler callback %s raised; the framework carries on", name)

    # --- watchdog and socket ---------------------------------------------------------------

    def _touch(self, token: int) -> None:
        if token == self._stream_token:
            self._last_event = self._clock.now()

    def _arm_watchdog(self, token: int, delay: float | None = None) -> None:
        limit = self._heartbeat_misses * self._heartbeat
        self._watchdog = self._clock.call_later(limit if delay is None else delay, lambda: self._check(token))

    def _check(self, token: int) -> None:
        if token != self._stream_token or self._sock is None:
            return
        limit = self._heartbeat_misses * self._heartbeat
        quiet = self._clock.now() - self._last_event
        if quiet >= limit:
            logger.warning(
                "No event from Mesos for %.0fs (%d heartbeats); resubscribing", quiet, self._heartbeat_misses
            )
            self._drop_stream()
        else:
            self._arm_watchdog(token, limit - quiet)

    def _cancel_watchdog(self) -> None:
        timer, self._watchdog = self._watchdog, None
        if timer is not None:
            timer.cancel()

    def _drop_stream(self) -> None:
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _socket_of(resp: requests.Response) -> socket.socket | None:
    """The TCP socket under a streaming response, so another thread can shut it down."""
    raw = resp.raw
    for attr in ("_connection", "connection"):
        conn = getattr(raw, attr, None)
        sock = getattr(conn, "sock", None)
        if isinstance(sock, socket.socket):
            return sock
    try:
        sock = raw._fp.fp.raw._sock  # type: ignore[union-attr]
    except AttributeError:
        return None
    return sock if isinstance(sock, socket.socket) else None


# --- ZooKeeper ------------------------------------------------------------------


def zk_leader_node(children: Sequence[str]) -> str | None:
    """The leading master's znode: the ``json.info_*`` child with the lowest sequence number."""
    infos = [c for c in children if c.startswith("json.info_")]
    if not infos:
        return None
    return min(infos, key=lambda c: int(c.rsplit("_", 1)[1]))


def zk_master_url(data: bytes | str) -> str:
    """``http://ip:port`` from the JSON MasterInfo stored in a leader znode."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    address = json.loads(text)["address"]
    return f"http://{address['ip']}:{int(address['port'])}"


def _kazoo_client_factory() -> Callable[[str], Any]:
    try:
        from kazoo.client import KazooClient
    except ImportError:
        raise MesosError("a zk:// Mesos master needs kazoo: pip install 'gocd-mesos[zookeeper]'") from None

    def factory(hosts: str) -> Any:
        return KazooClient(hosts=hosts, timeout=10.0)

    return factory


# --- pymesos ----------------------------------------------------------------------


def load_pymesos() -> Any:
    """Import pymesos (in the main thread) and undo the side effects of its import.

    ``import pymesos`` installs a SIGINT handler (which fails outside the main
    thread) and adds a stderr handler to the ``pymesos`` logger at INFO. Once
    imported, this puts the previous SIGINT handler back and removes that
    handler, so that ``main()`` alone decides about signals and logging.
    pymesos itself is not modified. A later IO-thread abort still reaches the
    main thread through ``_thread.interrupt_main()``, i.e. as SIGINT.
    """
    if "pymesos" not in sys.modules and threading.current_thread() is not threading.main_thread():
        raise MesosError("pymesos must be imported in the main thread (it installs a SIGINT handler)")
    before = signal.getsignal(signal.SIGINT)
    try:
        import pymesos
    except ImportError as e:
        raise MesosError(
            "[mesos] driver = pymesos needs pymesos 0.3.15 installed (see README: pymesos on 3.10/3.11)"
        ) from e
    process = sys.modules.get("pymesos.process")
    handler = getattr(process, "_handle_sigint", None)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is handler:
        previous = before if before is not handler else getattr(process, "_prev_handler", None)
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    pm_logger = logging.getLogger("pymesos")
    for h in list(pm_logger.handlers):
        # pymesos's own stderr handler (nobody else adds one to this logger).
        if type(h) is logging.StreamHandler:
            pm_logger.removeHandler(h)
    pm_logger.setLevel(logging.NOTSET)
    return pymesos


def pymesos_master(masters: Sequence[str]) -> str:
    """The master string pymesos takes: ``host:port`` of the first master, or the ``zk://`` URL.

    pymesos follows 307 redirects to the leader itself but knows no lists or TLS.
    """
    first = masters[0]
    if first.startswith(ZOOKEEPER_SCHEMES):
        return first
    parts = urlsplit(first if "://" in first else "http://" + first)
    if parts.scheme == "https":
        raise MesosError("pymesos cannot talk to an https Mesos master; use [mesos] driver = builtin")
    return parts.netloc


def driver_factory(mesos: MesosSettings, clock: Clock) -> Callable[[Any, dict[str, Any]], Any]:
    """``factory(scheduler, framework_info) -> driver`` for ``[mesos] driver``.

    Both drivers get explicit acknowledgements (the bridge acks after it has
    forwarded an update) and never tear down on their own (pymesos with
    ``failover=True``). For pymesos, call this in the main thread: it imports
    pymesos here.
    """
    principal = mesos.principal or None
    secret = mesos.secret.reveal() if mesos.principal else None
    if mesos.driver == "pymesos":
        pymesos = load_pymesos()
        master = pymesos_master(mesos.masters)

        def make_pymesos(sched: Any, framework: dict[str, Any]) -> Any:
            return pymesos.MesosSchedulerDriver(
                sched,
                framework,
                master,
                use_addict=False,
                implicit_acknowledgements=False,
                principal=principal,
                secret=secret,
                failover=True,
                timeout=PYMESOS_TIMEOUT,
            )

        return make_pymesos
    verify: bool | str = mesos.ca_bundle if (mesos.verify_tls and mesos.ca_bundle) else mesos.verify_tls

    def make_builtin(sched: Any, framework: dict[str, Any]) -> Any:
        return MesosSchedulerDriver(
            sched,
            framework,
            ",".join(mesos.masters),
            implicit_acknowledgements=False,
            principal=principal,
            secret=secret,
            failover=True,
            clock=clock,
            verify=verify,
        )

    return make_builtin
