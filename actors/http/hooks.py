"""The GoCD webhook: notification plugins' POSTs turned into hints for the poller.

GoCD's notification plugins forward what the server tells them (reference
``gocd-api.md`` section 12): ``stage-status`` when a stage is scheduled, re-run or
completed, and ``agent-status`` when an agent changes state. Two plugins are
understood, each on its own path of the status server:

* ``POST /hooks/gocd/<secret>``: digitalocean/gocd-webhook-notification-plugin,
  which forwards GoCD's v3 bodies verbatim and cannot sign, so the secret is in
  the URL it is configured with;
* ``POST /hooks/gocd`` with ``X-Hub-Signature: sha256=<hex HMAC-SHA256(secret,
  body)>``: kzrbill/gocd-plugin-webhooker, which re-serialises v1 ``stage-status``
  bodies (nulls dropped) and signs them.

:func:`parse_notification` (pure) turns a body into a
:class:`~actors.messages.GoCDHint` or says in a ValueError what is wrong with it;
:class:`GoCDHook` answers at once (GoCD's plugins wait for the answer on their one
listener thread): 200 ``{}`` once the hint is told, 401 for a wrong secret or
signature, 413 for a body over :data:`MAX_BODY`, 400 for what is not a
notification, 503 when no poller takes hints (the system is stopping), each with a
short JSON ``{"error": ...}``. A notification only ever
hints: the poller reads GoCD sooner, and what it reads decides. The secret never
appears in a log line: the hook's path is logged as ``/hooks/gocd/****``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import tornado.web

from actors.clock import Clock
from actors.config import Secret
from actors.messages import GoCDHint

__all__ = [
    "HOOK_PATH",
    "MAX_BODY",
    "GoCDHook",
    "mask_path",
    "parse_notification",
    "signature_matches",
]

logger = logging.getLogger(__name__)

#: The webhook's path; ``<HOOK_PATH>/<secret>`` for plugins that cannot sign.
HOOK_PATH = "/hooks/gocd"
#: The largest body taken, in bytes (GoCD's notifications are a few kB).
MAX_BODY = 1024 * 1024
#: A chunked body is cut off (400, connection closed) past this many bytes; up to it, a body
#: over MAX_BODY is read to its end and answered 413.
_CUT_OFF = 4 * MAX_BODY
#: The stage states of a completed stage (GoCD's StageState).
_COMPLETED = frozenset({"Passed", "Failed", "Cancelled"})
_SECRET_IN_PATH = re.compile(rf"^{re.escape(HOOK_PATH)}/.*")


def mask_path(path: str) -> str:
    """``path`` as log lines may show it: the webhook's secret replaced by ``****``."""
    return _SECRET_IN_PATH.sub(f"{HOOK_PATH}/****", path)


def signature_matches(secret: Secret, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (``X-Hub-Signature``, None when absent) is ``sha256=`` and the hex
    HMAC-SHA256 of ``body`` keyed with ``secret``; compared in constant time."""
    if not secret or header is None:
        return False
    scheme, sep, given = header.strip().partition("=")
    if not sep or scheme.strip().lower() != "sha256":
        return False
    expected = hmac.new(secret.reveal().encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given.strip().lower().encode("utf-8", "replace"), expected.encode("ascii"))


def _path_secret_matches(secret: Secret, given: str) -> bool:
    return bool(secret) and hmac.compare_digest(
        given.encode("utf-8", "replace"), secret.reveal().encode("utf-8")
    )


# --- the bodies ----------------------------------------------------------------------------


def parse_notification(body: bytes, received_at: float) -> GoCDHint:
    """The hint a notification body gives, received at clock time ``received_at``.

    A ``stage-status`` body of notification API v1 to v4 (``pipeline`` with ``name``,
    ``counter``, and ``stage`` with ``name``, ``counter``, ``state``, ``jobs`` of ``name``
    and ``state``) is a ``backlog`` hint; an ``agent-status`` body (``uuid``,
    ``agent_state``, optionally ``build_state``, ``agent_config_state``, ``host_name``) an
    ``agents`` hint. Other fields are not looked at. Counters are strings of digits, as
    GoCD sends them (numbers are taken too). Raises ValueError saying what is wrong.
    """
    try:
        document = json.loads(body)
    except RecursionError:
        raise ValueError("not JSON: nested too deeply") from None
    except ValueError as e:  # also UnicodeDecodeError
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(document, dict):
        raise ValueError(f"not a notification: a JSON {_kind(document)}, not an object")
    if "pipeline" in document:
        return _stage_hint(document, received_at)
    if "uuid" in document:
        return _agent_hint(document, received_at)
    raise ValueError("not a notification: neither stage-status (pipeline) nor agent-status (uuid)")


def _stage_hint(document: Mapping[str, Any], received_at: float) -> GoCDHint:
    pipeline = _object(document, "pipeline", "")
    name = _text(pipeline, "name", "pipeline.")
    counter = _counter(pipeline, "counter", "pipeline.")
    stage = _object(pipeline, "stage", "pipeline.")
    stage_name = _text(stage, "name", "pipeline.stage.")
    stage_counter = _counter(stage, "counter", "pipeline.stage.")
    state = _text(stage, "state", "pipeline.stage.")
    if "result" in stage:
        _text(stage, "result", "pipeline.stage.")
    jobs = stage.get("jobs")
    if not isinstance(jobs, list):
        raise ValueError(f"pipeline.stage.jobs: {_missing_or(jobs, 'a list')}")
    job_states = []
    for i, job in enumerate(jobs):
        if not isinstance(job, dict):
            raise ValueError(f"pipeline.stage.jobs[{i}]: {_missing_or(job, 'an object')}")
        _text(job, "name", f"pipeline.stage.jobs[{i}].")
        job_states.append(_text(job, "state", f"pipeline.stage.jobs[{i}]."))
    if state in _COMPLETED:
        what = state.lower()
    elif jobs and all(s == "Scheduled" for s in job_states):
        what = "scheduled"
    else:
        what = state.lower()
    return GoCDHint(
        kind="backlog",
        received_at=received_at,
        detail=_printable(f"{name}/{counter}/{stage_name}/{stage_counter} {what}"),
    )


def _agent_hint(document: Mapping[str, Any], received_at: float) -> GoCDHint:
    uuid = _text(document, "uuid", "")
    agent_state = _text(document, "agent_state", "")
    optional = {}
    for key in ("build_state", "agent_config_state", "host_name"):
        if key in document:
            optional[key] = _text(document, key, "", empty=True)
    build_state = optional.get("build_state", "")
    state = agent_state if build_state in ("", agent_state) else f"{agent_state}/{build_state}"
    return GoCDHint(
        kind="agents",
        received_at=received_at,
        detail=_printable(f"agent {optional.get('host_name') or uuid} {state}"),
    )


def _object(parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise ValueError(f"{where}{key}: {_missing_or(value, 'an object')}")
    return value


def _text(parent: Mapping[str, Any], key: str, where: str, *, empty: bool = False) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or (not value and not empty):
        raise ValueError(f"{where}{key}: {_missing_or(value, 'a string' if empty else 'a non-empty string')}")
    return value


def _counter(parent: Mapping[str, Any], key: str, where: str) -> str:
    value = parent.get(key)
    if isinstance(value, str) and value.isdecimal() and value.isascii():
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    raise ValueError(f"{where}{key}: {_missing_or(value, 'a counter (a string of digits)')}")


def _missing_or(value: Any, wanted: str) -> str:
    if value is None:
        return f"missing or null, not {wanted}"
    if isinstance(value, str):
        return f"the string {_printable(value)[:40]!r}, not {wanted}"
    kind = _kind(value)
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}, not {wanted}"


def _kind(value: Any) -> str:
    """A JSON value's kind, as JSON names it."""
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "number", float: "number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _printable(text: str, limit: int = 200) -> str:
    """``text`` safe for one log line: non-printable characters as ``?``, at most ``limit`` long."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


# --- the handler ---------------------------------------------------------------------------


@tornado.web.stream_request_body
class GoCDHook(tornado.web.RequestHandler):
    """``POST /hooks/gocd/<secret>`` and signed ``POST /hooks/gocd``: tells a GoCDHint.

    Outside the status server's basic or bearer auth (GoCD's plugins cannot send it): the
    path's secret or the signature is the authentication. The body is streamed so that
    its size is checked before it is read (``Content-Length``) and as it is read (a
    chunked body).
    """

    def initialize(self, secret: Secret, clock: Clock, on_hint: Callable[[GoCDHint], None]) -> None:
        self._secret = secret
        self._clock = clock
        self._on_hint = on_hint
        self._chunks: list[bytes] = []
        self._size = 0

    def prepare(self) -> None:
        try:
            length = int(self.request.headers.get("Content-Length", "0"))
        except ValueError:
            length = 0  # Tornado refuses the request itself
        if length > MAX_BODY:
            # Answered before a byte is read; Tornado then closes the connection instead of
            # reading the body (allowed up to the claimed length, so it adds no answer of its own).
            self.request.connection.set_max_body_size(length)  # type: ignore[union-attr]
            self._error(413, f"body over {MAX_BODY} bytes")
            return
        self.request.connection.set_max_body_size(_CUT_OFF)  # type: ignore[union-attr]

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size <= MAX_BODY:
            self._chunks.append(chunk)

    def post(self, path_secret: str | None = None) -> None:
        if self._size > MAX_BODY:
            self._error(413, f"body over {MAX_BODY} bytes")
            return
        body = b"".join(self._chunks)
        if path_secret is not None:
            if not _path_secret_matches(self._secret, path_secret):
                self._error(401, "wrong secret in the path")
                return
        elif not signature_matches(self._secret, body, self.request.headers.get("X-Hub-Signature")):
            self._error(401, "missing or wrong X-Hub-Signature (sha256=<hex HMAC-SHA256 of the body>)")
            return
        try:
            hint = parse_notification(body, self._clock.now())
        except ValueError as e:
            logger.debug("Refused a GoCD notification: %s", e)
            self._error(400, str(e))
            return
        try:
            self._on_hint(hint)
        except Exception as e:
            logger.warning("A GoCD notification could not be passed on: %s", e)
            self._error(503, "no GoCD poller is running to take it")
            return
        self._json(200, {})

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        # A path argument that is not UTF-8 is a wrong secret like any other, not a 400 that
        # Tornado would log with the value.
        return value.decode("utf-8", "replace")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Tornado's own errors (405 for a GET, ...) in the webhook's JSON too.
        if status_code == 405:
            self.set_header("Allow", "POST")
        self._json(status_code, {"error": self._reason})

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # Tornado's version logs the request's URI, that is the secret.
        if not isinstance(value, tornado.web.HTTPError):
            logger.error("Webhook %s failed", mask_path(self.request.path), exc_info=(typ, value, tb))

    def _request_summary(self) -> str:
        return f"{self.request.method} {mask_path(self.request.path)} ({self.request.remote_ip})"

    def _error(self, status: int, reason: str) -> None:
        self._json(status, {"error": reason})

    def _json(self, status: int, document: Mapping[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(document) + "\n")
