"""The simulated GoCD server's notification plugin: webhooks POSTed as GoCD's plugins send them.

:class:`NotificationEmitter` plays one notification plugin installed on the
simulated server (``gocd-api.md`` 12.1-12.3), in one of two styles:

* ``do``: digitalocean/gocd-webhook-notification-plugin v1.1.8. It declares
  notification API 3.0, subscribes to ``stage-status`` and ``agent-status`` and
  forwards GoCD's v3 body verbatim: POST to each endpoint of the kind in turn,
  ``Content-Type``/``Accept: application/json``, the JDK's ``User-Agent:
  Java/...``, no auth, 30 s connect and read timeouts, no retries; a non-2xx
  answer or an I/O error is a failure.
* ``webhooker``: kzrbill/gocd-plugin-webhooker. It declares API 1.0, subscribes
  to ``stage-status`` only, and re-serialises the v1 body without nulls, dates as
  ``yyyy-MM-dd'T'HH:mm:ss.SSS'Z'``, signed with ``X-Hub-Signature:
  sha256=<hex HMAC-SHA256(secret, body)>``; it checks no status code, only that
  the answer is JSON (Unirest's ``asJson``).

Delivery is GoCD's: one queue and one listener thread per plugin, messages in
order, each dropped unsent when it waited longer than the 2-minute TTL (clock
time) for its turn. Failures are counted and logged, never raised into the
simulator. The body builders at the bottom turn the pipeline model
(:mod:`actors.sim.gocd_pipelines`) into GoCD's bodies; the simulator calls
them at the moment of the event, as GoCD snapshots the stage.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from actors.clock import Clock
from actors.sim.gocd_pipelines import StageRun, git_url

__all__ = ["Delivery", "NotificationEmitter"]

logger = logging.getLogger(__name__)

#: ``plugins.notification.message.ttl.millis``: a message older than this (clock seconds) is not sent.
MESSAGE_TTL_S = 120.0
#: How many deliveries :attr:`NotificationEmitter.deliveries` keeps.
DELIVERY_LOG = 1000
STAGE_STATUS = "stage-status"
AGENT_STATUS = "agent-status"
#: The JDK default User-Agent of ``HttpURLConnection`` (the DO plugin sets none of its own).
JAVA_USER_AGENT = "Java/17.0.16"
#: Unirest 1.4.9's own User-Agent (believed; the library was not read).
UNIREST_USER_AGENT = "unirest-java/1.3.11"
#: Real-time socket timeouts, (connect, read): HttpURLConnection as the DO plugin sets it; Unirest's
#: defaults (10 s, 60 s) for the webhooker (unconfirmed).
TIMEOUTS = {"do": (30.0, 30.0), "webhooker": (10.0, 60.0)}


@dataclass(frozen=True)
class Delivery:
    """One message's fate at one endpoint, as the delivery log keeps it."""

    #: ``stage-status`` or ``agent-status``.
    kind: str
    #: The endpoint; empty for a message that expired before its turn.
    url: str
    #: The HTTP status answered, or None (I/O error, or expired).
    status: int | None
    #: Whether the plugin counted it a success.
    ok: bool
    #: What went wrong, or None.
    error: str | None
    #: The bytes POSTed (or that would have been).
    body: bytes
    #: The request headers sent, (name, value), in order.
    headers: tuple[tuple[str, str], ...]
    #: Clock time the event happened (the message was queued).
    queued_at: float
    #: Clock time its turn came.
    sent_at: float


@dataclass(frozen=True)
class _Message:
    kind: str
    body: bytes
    queued_at: float


class NotificationEmitter:
    """One notification plugin: a queue and its listener thread (see the module docstring).

    :meth:`configure` installs it (endpoints, style, secret), :meth:`start` and
    :meth:`stop` run its thread; the simulator calls :meth:`stage_status` and
    :meth:`agent_status` under its own lock, and they only queue.
    """

    def __init__(self, clock: Clock, *, ttl_s: float = MESSAGE_TTL_S) -> None:
        self.clock = clock
        self.ttl_s = ttl_s
        self.style = "do"
        self.stage_urls: tuple[str, ...] = ()
        self.agent_urls: tuple[str, ...] = ()
        self.secret = ""
        #: Counts of messages sent (per endpoint), failed (per endpoint) and expired (per message).
        self.sent = 0
        self.failed = 0
        self.expired = 0
        #: The last deliveries (at most DELIVERY_LOG), oldest first.
        self.deliveries: collections.deque[Delivery] = collections.deque(maxlen=DELIVERY_LOG)
        self._queue: collections.deque[_Message] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: http.client.HTTPConnection | None = None

    # --- configuration and life cycle -----------------------------------------------

    def configure(
        self,
        stage_urls: Sequence[str] = (),
        agent_urls: Sequence[str] = (),
        style: str = "do",
        secret: str = "",
    ) -> None:
        """Install the plugin with these endpoints (none: uninstall); queued messages stay queued."""
        if style not in TIMEOUTS:
            raise ValueError(f"style must be 'do' or 'webhooker', not {style!r}")
        for url in (*stage_urls, *agent_urls):
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise ValueError(f"not an http(s) URL: {url!r}")
        if style == "webhooker" and agent_urls:
            raise ValueError("the webhooker plugin subscribes to stage-status only")
        if style == "webhooker" and len(stage_urls) > 1:
            raise ValueError("the webhooker plugin posts to one api_url")
        with self._cond:
            self.style, self.secret = style, secret
            self.stage_urls, self.agent_urls = tuple(stage_urls), tuple(agent_urls)
        logger.info(
            "Notification plugin (%s style): %d stage-status and %d agent-status endpoints",
            style,
            len(stage_urls),
            len(agent_urls),
        )

    @property
    def wants_stages(self) -> bool:
        """Whether the plugin subscribes to stage-status (has somewhere to send it)."""
        return bool(self.stage_urls)

    @property
    def wants_agents(self) -> bool:
        """Whether the plugin subscribes to agent-status (only the DigitalOcean one does)."""
        return bool(self.agent_urls) and self.style == "do"

    def start(self, name: str) -> None:
        """Start the listener thread."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the listener thread promptly, cutting off a POST in flight."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
            connection = self._connection
        if connection is not None and connection.sock is not None:
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def wait_for(self, predicate: Callable[[list[Delivery]], bool], timeout: float = 10.0) -> bool:
        """Block until ``predicate(list of deliveries)`` holds; False on timeout (a test's helper)."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(list(self.deliveries)), timeout)

    # --- events ------------------------------------------------------------------------

    def stage_status(self, v3: dict[str, Any], v1: dict[str, Any]) -> None:
        """Queue a stage-status notification, given GoCD's v3 and v1 bodies of it."""
        if not self.wants_stages:
            return
        body = _gson(webhooker_body(v1) if self.style == "webhooker" else v3).encode()
        self._put(_Message(STAGE_STATUS, body, self.clock.now()))

    def agent_status(self, body: dict[str, Any]) -> None:
        """Queue an agent-status notification (DO style only)."""
        if self.wants_agents:
            self._put(_Message(AGENT_STATUS, _gson(body).encode(), self.clock.now()))

    def _put(self, message: _Message) -> None:
        with self._cond:
            self._queue.append(message)
            self._cond.notify_all()

    # --- the listener thread ----------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                while not self._queue and not self._stopping.is_set():
                    self._cond.wait()
                if self._stopping.is_set():
                    return
                message = self._queue.popleft()
                style, secret = self.style, self.secret
                urls = self.stage_urls if message.kind == STAGE_STATUS else self.agent_urls
            try:
                self._deliver(message, urls, style, secret)
            except Exception:
                logger.exception("Notification delivery failed unexpectedly")

    def _deliver(self, message: _Message, urls: Sequence[str], style: str, secret: str) -> None:
        now = self.clock.now()
        if now - message.queued_at > self.ttl_s:
            logger.warning(
                "Dropped a %s notification that waited %.0fs (TTL %.0fs)",
                message.kind,
                now - message.queued_at,
                self.ttl_s,
            )
            self._record(
                Delivery(message.kind, "", None, False, "expired", message.body, (), message.queued_at, now),
                expired=True,
            )
            return
        for url in urls:
            if self._stopping.is_set():
                return
            headers = self._headers(message.body, style, secret)
            status, ok, error = self._post(url, message.body, headers, style)
            if not ok:
                logger.warning("Notification %s to %s failed: %s", message.kind, url, error or status)
            self._record(
                Delivery(message.kind, url, status, ok, error, message.body, headers, message.queued_at, now)
            )

    @staticmethod
    def _headers(body: bytes, style: str, secret: str) -> tuple[tuple[str, str], ...]:
        if style == "webhooker":
            signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            return (
                ("X-Hub-Signature", f"sha256={signature}"),
                ("Content-Type", "application/json"),
                ("Accept", "application/json"),
                ("User-Agent", UNIREST_USER_AGENT),
                ("Accept-Encoding", "gzip"),
            )
        return (
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
            ("User-Agent", JAVA_USER_AGENT),
        )

    def _post(
        self, url: str, body: bytes, headers: tuple[tuple[str, str], ...], style: str
    ) -> tuple[int | None, bool, str | None]:
        """POST once; (status, the plugin's verdict, error text)."""
        parts = urlsplit(url)
        connect_s, read_s = TIMEOUTS[style]
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = kind(parts.hostname or "", parts.port, timeout=connect_s)
        with self._cond:
            self._connection = connection
        try:
            connection.connect()
            assert connection.sock is not None
            connection.sock.settimeout(read_s)
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
            connection.putrequest("POST", target, skip_accept_encoding=True)
            for name, value in headers:
                connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException) as e:
            return None, False, f"{type(e).__name__}: {e}"
        finally:
            connection.close()
            with self._cond:
                self._connection = None
        if style == "webhooker":
            try:
                if answer.strip():
                    json.loads(answer)
            except ValueError as e:
                return response.status, False, f"the answer is not JSON: {e}"
            return response.status, True, None
        return response.status, 200 <= response.status < 300, None

    def _record(self, delivery: Delivery, *, expired: bool = False) -> None:
        with self._cond:
            self.deliveries.append(delivery)
            if expired:
                self.expired += 1
            elif delivery.ok:
                self.sent += 1
            else:
                self.failed += 1
            self._cond.notify_all()


# --- bodies ----------------------------------------------------------------------------


def _gson(obj: Any) -> str:
    """JSON the way GoCD's (and the plugins') Gson writes it: compact, and HTML-safe
    (Gson escapes ``< > & = '`` as ``\\u003c`` and so on by default)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for ch in "<>&='":
        text = text.replace(ch, f"\\u{ord(ch):04x}")
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _notify_date(wall: float | None) -> str:
    """``Dates.formatIso8601UtcCompactOffsetWithMillis``: ``yyyy-MM-dd'T'HH:mm:ss.SSS+0000``, "" for null."""
    if wall is None:
        return ""
    ms = round(wall * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}+0000"


def _v1_date(wall: float | None) -> str:
    """The v1/v2 date format at 26.1.0: ``yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`` UTC, "" for null."""
    return _notify_date(wall).replace("+0000", "Z")


def _build_cause(
    pipeline: str, counter: int, triggered_wall: float, fmt: Callable[[float | None], str]
) -> list[Any]:
    """The pipeline's one git material and a made-up modification (GitMaterial.getAttributes(false))."""
    revision = hashlib.sha1(f"{pipeline}/{counter}".encode()).hexdigest()
    return [
        {
            "material": {
                "git-configuration": {"shallow-clone": False, "branch": "master", "url": git_url(pipeline)},
                "type": "git",
            },
            "changed": True,
            "modifications": [{"revision": revision, "modified-time": fmt(triggered_wall - 30), "data": {}}],
        }
    ]


def stage_status_bodies(
    stage: StageRun, group: str, triggered_at: float, wall: Callable[[float], float], *, just_scheduled: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """GoCD's v3 and v1 ``stage-status`` bodies of ``stage`` now (``StageConverter``).

    Right after scheduling the in-memory stage has no ``lastTransitionedTime`` yet
    (a DB trigger fills it), so ``last-transition-time`` is "" then.
    """
    last = None if just_scheduled else stage.last_transition()

    def w(at: float | None) -> float | None:
        return None if at is None else wall(at)

    def jobs(v3: bool) -> list[dict[str, Any]]:
        out = []
        for job in stage.live_jobs:
            fmt = _notify_date if v3 else _v1_date
            entry: dict[str, Any] = {"name": job.name, "schedule-time": fmt(w(job.scheduled_at))}
            if v3:
                entry["assign-time"] = fmt(w(job.assigned_at))
            entry.update(
                {
                    "complete-time": fmt(w(job.completed_at)),
                    "state": job.job_state,
                    "result": job.result,
                    "agent-uuid": job.agent_uuid,
                }
            )
            out.append(entry)
        return out

    def body(v3: bool) -> dict[str, Any]:
        fmt = _notify_date if v3 else _v1_date
        pipeline: dict[str, Any] = {"name": stage.pipeline, "counter": str(stage.pipeline_counter)}
        if v3:
            pipeline["label"] = str(stage.pipeline_counter)
        pipeline.update(
            {
                "group": group,
                "build-cause": _build_cause(stage.pipeline, stage.pipeline_counter, wall(triggered_at), fmt),
                "stage": {
                    "name": stage.name,
                    "counter": str(stage.counter),
                    "approval-type": stage.approval_type,
                    "approved-by": stage.approved_by,
                    "state": stage.state,
                    "result": stage.result,
                    "create-time": fmt(wall(stage.created_at)),
                    "last-transition-time": fmt(w(last)),
                    "jobs": jobs(v3),
                },
            }
        )
        return {"pipeline": pipeline}

    return body(True), body(False)


#: The fields the webhooker's ``StatusRequest`` class keeps, in its declaration order (nested
#: dicts: their own fields; None: kept as parsed).
_WEBHOOKER_FIELDS: dict[str, Any] = {
    "pipeline": {
        "name": None,
        "counter": None,
        "group": None,
        "build-cause": {
            "material": None,
            "changed": None,
            "modifications": {"revision": None, "modified-time": "date", "data": None},
        },
        "stage": {
            "name": None,
            "counter": None,
            "approval-type": None,
            "approved-by": None,
            "state": None,
            "result": None,
            "create-time": "date",
            "last-transition-time": "date",
            "jobs": {
                "name": None,
                "schedule-time": "date",
                "complete-time": "date",
                "state": None,
                "result": None,
                "agent-uuid": None,
            },
        },
    }
}


def webhooker_body(v1: dict[str, Any]) -> dict[str, Any]:
    """What the webhooker POSTs: the v1 body parsed into its ``StatusRequest`` class and written
    back with Gson (unknown fields and nulls dropped; a "" date parses as null)."""

    def keep(value: Any, fields: Any) -> Any:
        if isinstance(value, list):
            return [keep(v, fields) for v in value]
        if not isinstance(fields, dict) or not isinstance(value, dict):
            return value
        out = {}
        for name, sub in fields.items():
            item = value.get(name)
            if item is None or (sub == "date" and item == ""):
                continue
            out[name] = item if sub == "date" else keep(item, sub)
        return out

    result = keep(v1, _WEBHOOKER_FIELDS)
    assert isinstance(result, dict)
    return result


def agent_status_body(
    *,
    uuid: str,
    hostname: str,
    elastic: bool,
    ip: str,
    operating_system: str,
    free_space: int | None,
    config_state: str,
    agent_state: str,
    build_state: str,
    wall_now: float,
) -> dict[str, Any]:
    """GoCD's v3/v4 ``agent-status`` body (``AgentConverter``); ``transition_time`` is when it was made."""
    return {
        "uuid": uuid,
        "host_name": hostname,
        "is_elastic": elastic,
        "ip_address": ip,
        "operating_system": operating_system,
        "free_space": "Unknown" if free_space is None else _display_size(free_space),
        "agent_config_state": config_state,
        "agent_state": agent_state,
        "build_state": build_state,
        "transition_time": _notify_date(wall_now),
    }


def _display_size(size: int) -> str:
    """``FileSizeUtils.byteCountToDisplaySize``: ``512 bytes``, ``1 byte``, ``10.0 GB``."""
    if size < 1024:
        return f"{size} {'bytes' if size > 1 else 'byte'}"
    exp = 0
    value = float(size)
    while value >= 1024 and exp < 8:
        value /= 1024
        exp += 1
    return f"{size / 1024**exp:.1f} {'KMGTPEZY'[exp - 1]}B"
