"""The status server: Tornado on an IOLoop thread of its own, reading the latest snapshot.

:class:`StatusServer` owns a :class:`~actors.http.model.StatusModel`, fed by
its :class:`StatusListener`, an actor the system subscribes as a listener
(its thread is the model's one writer), and serves from the model's latest
immutable snapshot only: a slow client never holds up an actor. The socket is bound when the server is
built, so a taken port fails in the caller's thread before any actor starts;
:meth:`~StatusServer.start` runs the IOLoop (Mopidy's HTTP frontend pattern),
:meth:`~StatusServer.stop` ends it and closes the socket.

Endpoints: ``/healthz`` (200 while every actor of the system is alive),
``/readyz`` (200 while subscribed to Mesos, GoCD was read within
``stale_after`` and the backlog source saw every waiting job's resources, the
body naming the problems; for an ``[ha]`` standby, which runs no actors until it
leads, 200 while its ZooKeeper connection is up), ``/metrics`` (Prometheus text, a registry per server) and
``/status`` (JSON, see :meth:`~actors.http.model.Snapshot.to_json`) and ``/``,
the status page for people (:mod:`actors.http.page`, ``templates/status.html``).
With ``[http] username`` and ``password_file`` or ``token_file`` set, every
endpoint but ``/healthz`` and the webhook asks for HTTP basic or bearer
credentials (401 with ``WWW-Authenticate: Basic realm="gocd-mesos"`` without them).
With ``[gocd] webhook_secret_file`` set, ``POST /hooks/gocd/<secret>`` and signed
``POST /hooks/gocd`` take GoCD's notifications (:mod:`actors.http.hooks`, its own
authentication); without it those paths are 404 like any unknown one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
import hmac
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pykka
import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from actors.clock import Clock
from actors.config import Profile, Secret
from actors.exceptions import GocdMesosError
from actors.http.hooks import HOOK_PATH, GoCDHook, mask_path
from actors.http.metrics import registry_for
from actors.http.model import Snapshot, StatusModel
from actors.http.page import page_context
from actors.messages import GoCDHint

__all__ = ["StatusServer"]

logger = logging.getLogger(__name__)

#: The page's templates, shipped as package data.
TEMPLATES = str(Path(__file__).parent / "templates")


class StatusListener(pykka.ThreadingActor):
    """Accepts every published message and folds it into its server's model; sends nothing."""

    def __init__(self, server: StatusServer) -> None:
        super().__init__()
        self._server = server

    def on_receive(self, message: Any) -> Any:
        self._server.on_message(message)
        return None


class StatusServer:
    """Serves a system's status over HTTP on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        clock: Clock,
        profiles: Iterable[Profile] = (),
        stale_after: float = 60.0,
        alive: Callable[[], Mapping[str, bool]] = dict,
        username: str = "",
        password: Secret | None = None,
        token: Secret | None = None,
        webhook_secret: Secret | None = None,
        on_hint: Callable[[GoCDHint], None] | None = None,
    ) -> None:
        self._clock = clock
        #: The webhook's secret (empty: no webhook) and where its hints go (see :meth:`hints_to`).
        self._webhook_secret = webhook_secret or Secret("")
        self._on_hint = on_hint
        self._username = username
        self._password = password or Secret("")
        self._token = token or Secret("")
        self._stale_after = stale_after
        self._alive = alive
        self._model = StatusModel(profiles)
        #: The latest snapshot; replaced (never changed) by the listener thread, read by the server's.
        self._latest: Snapshot = self._model.snapshot()
        #: This server's own metrics registry.
        self.registry = registry_for(lambda: self._latest, clock.now)
        try:
            self._sockets = tornado.netutil.bind_sockets(port, host or None)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise GocdMesosError(
                    f"[http] listen {host}:{port}: the port is already in use (another gocd-mesos?)"
                ) from None
            raise GocdMesosError(f"[http] listen {host}:{port}: {e.strerror or e}") from None
        self.host = host
        #: The port bound (the chosen one when asked for port 0).
        self.port: int = self._sockets[0].getsockname()[1]
        #: The listener actor to subscribe to the system; stopped with the server.
        self.listener: pykka.ActorRef[Any] = StatusListener.start(self)
        self._loop: tornado.ioloop.IOLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="StatusServer", daemon=True)

    @property
    def url(self) -> str:
        """``http://host:port/`` of the server (a wildcard host shown as 127.0.0.1)."""
        host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    def watch(self, alive: Callable[[], Mapping[str, bool]]) -> None:
        """Report ``alive()`` (actor name -> alive) in ``/healthz`` from now on: a server made
        before its system (an ``[ha]`` standby's) learns the system's actors once it leads."""
        self._alive = alive

    def hints_to(self, on_hint: Callable[[GoCDHint], None] | None) -> None:
        """Pass the webhook's hints to ``on_hint`` from now on (the system's GoCDPoller); with
        None, or before a call, the webhook answers 503: no poller takes them."""
        self._on_hint = on_hint

    def snapshot(self) -> Snapshot:
        """The latest status snapshot."""
        return self._latest

    def tell(self, message: Any) -> None:
        """Have ``message`` folded in, from any thread (through the listener); nothing once
        stopped. For publishers outside the system, such as :class:`actors.ha.Leadership`."""
        with contextlib.suppress(pykka.ActorDeadError):
            self.listener.tell(message)

    def on_message(self, message: Any) -> None:
        """Fold one published message in (the system's listener; one thread at a time)."""
        self._latest = self._model.apply(message, self._clock.now(), self._clock.time())

    def start(self) -> None:
        """Serve on a thread of its own; returns once the IOLoop runs (at once if it already does)."""
        if self._thread.is_alive():
            return
        self._thread.start()
        self._ready.wait()
        logger.info("Status server listening on %s", self.url)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the listener, stop serving and close the socket (also when never started)."""
        try:
            self.listener.stop(timeout=timeout)
        except pykka.ActorDeadError:
            pass
        except pykka.Timeout:
            logger.error("The status listener did not stop within %gs", timeout)
        if self._loop is not None:
            self._loop.add_callback(self._loop.stop)
            self._thread.join(timeout)
        elif not self._thread.is_alive():
            for sock in self._sockets:
                sock.close()

    # --- the IOLoop thread ---------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        self._loop = tornado.ioloop.IOLoop.current()
        server = tornado.httpserver.HTTPServer(self._application())
        server.add_sockets(self._sockets)
        self._ready.set()
        try:
            self._loop.start()
        finally:
            server.stop()
            self._loop.close(all_fds=True)
            for sock in self._sockets:
                sock.close()

    def _application(self) -> tornado.web.Application:
        args = {"server": self}
        routes: list[Any] = [
            (r"/healthz", _Health, args),
            (r"/readyz", _Ready, args),
            (r"/metrics", _Metrics, args),
            (r"/status", _Status, args),
            (r"/", _Page, args),
            (r"/favicon.ico", _NoIcon),
        ]
        if self._webhook_secret:
            hook = {"secret": self._webhook_secret, "clock": self._clock, "on_hint": self._hint}
            routes += [(rf"{HOOK_PATH}/([^/]+)", GoCDHook, hook), (HOOK_PATH, GoCDHook, hook)]
        return tornado.web.Application(
            routes,
            log_function=_log_request,
            template_path=TEMPLATES,
            # Every value in a template is HTML-escaped unless it says otherwise (none does).
            autoescape="xhtml_escape",
        )

    # --- what the handlers read ----------------------------------------------------------

    def _hint(self, hint: GoCDHint) -> None:
        on_hint = self._on_hint
        if on_hint is None:
            raise GocdMesosError("no GoCD poller takes notifications here")
        on_hint(hint)

    def authorized(self, header: str | None) -> bool:
        """Whether a request with this ``Authorization`` header may read a guarded endpoint."""
        return authorized(header, self._username, self._password, self._token)

    def health(self) -> tuple[bool, dict[str, Any]]:
        alive = dict(self._alive())
        if not self._latest.leading:
            # A standby runs no actors until it leads: the process answering is its health.
            return True, {"actors": alive, "role": "standby"}
        return bool(alive) and all(alive.values()), {"actors": alive}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        s, now = self._latest, self._clock.now()
        checks: dict[str, Any]
        if not s.leading:
            checks = {"standby": True, "zookeeper_connected": s.zookeeper_connected}
            return all(checks.values()), checks
        checks = {
            "mesos_subscribed": s.mesos_subscribed,
            "gocd_fresh": s.gocd_fresh(now, self._stale_after),
            "backlog_complete": not s.backlog_problems,
        }
        if s.role:
            checks["leader"] = True
        return all(checks.values()), {**checks, "backlog_problems": list(s.backlog_problems)}

    def status(self) -> dict[str, Any]:
        return self._latest.to_json(self._clock.now())

    def page(self) -> dict[str, Any]:
        return page_context(self._latest, self._clock.now())


def authorized(header: str | None, username: str, password: Secret, token: Secret) -> bool:
    """Whether ``header`` (an ``Authorization`` value, None when absent) carries the basic
    credentials ``username``:``password`` or the bearer ``token``; True when neither is set.

    Compared with :func:`hmac.compare_digest`, so the time taken says nothing of the secrets.
    """
    if not password and not token:
        return True
    scheme, _, value = (header or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic" and password:
        try:
            user, sep, given = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        # Both compared always: which of the two was wrong takes no different time.
        user_ok = hmac.compare_digest(user.encode(), username.encode())
        password_ok = hmac.compare_digest(given.encode(), password.reveal().encode())
        return bool(sep) and user_ok and password_ok
    if scheme.lower() == "bearer" and token:
        return hmac.compare_digest(value.encode(), token.reveal().encode())
    return False


def _log_request(handler: tornado.web.RequestHandler) -> None:
    logger.debug(
        "%s %s %d %.1fms",
        handler.request.method,
        mask_path(handler.request.path),
        handler.get_status(),
        1000 * handler.request.request_time(),
    )


class _Handler(tornado.web.RequestHandler):
    #: Whether the endpoint asks for the configured credentials (``[http] username``, token).
    guarded = True

    def initialize(self, server: StatusServer) -> None:
        self.server = server

    def prepare(self) -> None:
        if self.guarded and not self.server.authorized(self.request.headers.get("Authorization")):
            self.set_status(401)
            self.set_header("WWW-Authenticate", 'Basic realm="gocd-mesos"')
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish("401: credentials required\n")

    def send_json(self, document: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(document, indent=2, sort_keys=True) + "\n")


class _NoIcon(tornado.web.RequestHandler):
    """Browsers ask for /favicon.ico with every page: 204, there is none (a 404 is a console error)."""

    def get(self) -> None:
        self.set_status(204)


class _Health(_Handler):
    # Open always: a liveness probe (systemd, a load balancer) carries no credentials.
    guarded = False

    def get(self) -> None:
        ok, body = self.server.health()
        self.send_json({"ok": ok, **body}, 200 if ok else 503)


class _Ready(_Handler):
    def get(self) -> None:
        ok, body = self.server.readiness()
        self.send_json({"ok": ok, **body}, 200 if ok else 503)


class _Metrics(_Handler):
    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.server.registry))


class _Status(_Handler):
    def get(self) -> None:
        self.send_json(self.server.status())


class _Page(_Handler):
    def get(self) -> None:
        self.render("status.html", **self.server.page())
