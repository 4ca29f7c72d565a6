"""High availability: one leader among daemons, elected in ZooKeeper, and the shared framework id.

With ``[ha] zookeeper = host:port[,...]/path`` every daemon of the same
configuration runs a :class:`Leadership`: a kazoo client and kazoo's ``Lock``
recipe (the one under its ``Election``) on ``<path>/election``. The daemon
whose lock node is first leads; the others wait in the queue, started but
acting on nothing. Only the leader starts a system (see :mod:`actors.system`),
so only it subscribes to Mesos, launches, kills or changes GoCD agents. The
framework id lives in ``<path>/framework_id`` (:class:`ZooKeeperFrameworkId`),
so a standby that takes over subscribes with the same id, Mesos hands it the
running tasks, and the registry adopts them through its usual reconciliation
with Mesos and GoCD; ``fleet.json`` stays per daemon.

A leader stops acting as soon as it cannot be sure it still leads: on the
connection state SUSPENDED (the link to ZooKeeper broke; the session, and with
it the lock, may expire at any moment) or LOST, :meth:`Leadership.watch`'s
callback ends the system at once. It never resumes in the same process: the
daemon exits non-zero and its supervisor (systemd's ``Restart=on-failure``)
starts a fresh one that queues again and acts only once ZooKeeper grants it
the lock anew. So nothing of an old term (queued launches, plans, a half-read
backlog) survives into a term it may not own, and "resumes only when it is sure
it still leads" holds by construction. Another daemon can only be granted the
lock once the old session has expired on the server (its session timeout),
and the old leader stops within moments of SUSPENDED, well inside that time.
Writes of the framework id are fenced: they are a ZooKeeper transaction that
checks the writer's lock node still exists.

Published (to the callables given as ``listeners``):
:class:`~actors.messages.LeadershipChanged` when this daemon queues as a
standby, when its connection to ZooKeeper breaks or comes back while a standby,
when it becomes the leader and when it stops leading. The CLI makes the status
server before campaigning and listens with it, so a standby serves ``/status``,
``/metrics`` and ``/readyz`` as a standby.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from actors.clock import Clock, RealClock
from actors.exceptions import GocdMesosError
from actors.messages import LeadershipChanged

__all__ = ["ELECTION_NODE", "FRAMEWORK_ID_NODE", "Leadership", "ZooKeeperFrameworkId", "split_zookeeper"]

logger = logging.getLogger(__name__)

#: Child of the configured path holding the election's lock nodes.
ELECTION_NODE = "election"
#: Child of the configured path holding the framework id (UTF-8).
FRAMEWORK_ID_NODE = "framework_id"


def split_zookeeper(zookeeper: str) -> tuple[str, str]:
    """``("h1:2181,h2:2181", "/path")`` of a checked ``[ha] zookeeper`` value."""
    hosts, _, path = zookeeper.partition("/")
    return hosts, "/" + path.strip("/")


def _default_client(hosts: str, timeout: float) -> Any:
    try:
        from kazoo.client import KazooClient
    except ImportError:
        raise GocdMesosError("[ha] zookeeper needs kazoo: pip install 'gocd-mesos[zookeeper]'") from None
    return KazooClient(hosts=hosts, timeout=timeout)


class Leadership:
    """This daemon's place in the election: campaign, watch, hand over.

    ``campaign()`` blocks until this daemon leads (True) or ``cancel()`` was
    called (False; safe from a signal handler). ``watch(on_lost)`` then calls
    ``on_lost(reason)`` once, from kazoo's thread, when leadership becomes
    uncertain (SUSPENDED or LOST); at once if it already has. ``close()``
    leaves the election, so a standby takes over without waiting for the
    session to expire.
    """

    def __init__(
        self,
        zookeeper: str,
        *,
        identifier: str = "",
        session_timeout: float = 10.0,
        listeners: Iterable[Callable[[LeadershipChanged], Any]] = (),
        clock: Clock | None = None,
        client_factory: Callable[[str, float], Any] | None = None,
    ) -> None:
        hosts, self.path = split_zookeeper(zookeeper)
        #: Names this daemon in its lock node ("host:pid" by default).
        self.identifier = identifier or f"{socket.gethostname()}:{os.getpid()}"
        self._session_timeout = session_timeout
        self._listeners = tuple(listeners)
        self._clock = clock or RealClock()
        self._client = (client_factory or _default_client)(hosts, session_timeout)
        self._lock: Any = None
        self._leading = False
        self._lost_reason = ""
        self._on_lost: Callable[[str], None] | None = None
        self._guard = threading.Lock()
        self._cancelled = False

    @property
    def leader(self) -> bool:
        """True from winning the election until leadership became uncertain or was given up."""
        return self._leading

    @property
    def framework_ids(self) -> ZooKeeperFrameworkId:
        """The framework id store shared by the daemons of this election."""
        return ZooKeeperFrameworkId(self._client, f"{self.path}/{FRAMEWORK_ID_NODE}", fence=self._lock_node)

    def campaign(self) -> bool:
        """Connect, queue in the election and block until this daemon leads (True) or is
        cancelled (False). Raises GocdMesosError when ZooKeeper cannot be reached."""
        try:
            self._client.start(timeout=self._session_timeout)
        except Exception as e:
            raise GocdMesosError(f"Cannot connect to ZooKeeper for [ha]: {e}") from e
        self._client.add_listener(self._state_changed)
        self._lock = self._client.Lock(f"{self.path}/{ELECTION_NODE}", self.identifier)
        holders = self._contenders()
        logger.info(
            "Waiting to lead in ZooKeeper %s as %s%s",
            self.path,
            self.identifier,
            f" (leader now: {holders[0]})" if holders else "",
        )
        self._publish(False)
        if self._cancelled:
            return False
        try:
            if not self._lock.acquire(blocking=True):
                return False
        except Exception as e:
            if self._cancelled:
                return False
            raise GocdMesosError(f"Leader election in ZooKeeper failed: {e}") from e
        with self._guard:
            self._leading = True
        logger.info("Leading in ZooKeeper %s as %s", self.path, self.identifier)
        self._publish(True)
        # A suspension between winning and the line above went unheeded by _state_changed.
        if self._client.state != "CONNECTED":
            self._stop_leading("the ZooKeeper connection is suspended: no longer sure to lead")
        return True

    def cancel(self) -> None:
        """Stop campaigning: a ``campaign()`` under way returns False."""
        self._cancelled = True
        if self._lock is not None:
            self._lock.cancel()

    def watch(self, on_lost: Callable[[str], None]) -> None:
        """Call ``on_lost(reason)`` once when leadership becomes uncertain (at once if it has)."""
        with self._guard:
            reason = self._lost_reason
            self._on_lost = None if reason else on_lost
        if reason:
            on_lost(reason)

    def close(self) -> None:
        """Leave the election and disconnect without blocking: a standby takes over at
        once, or once the session expires if ZooKeeper is unreachable."""
        self.cancel()
        was_leading = self._stop_leading("")
        # No lock.release(): it would block until ZooKeeper answers, which it may never
        # do after SUSPENDED. Closing the session deletes the lock node at once when
        # connected; otherwise the server does when the session expires.
        try:
            self._client.stop()
            self._client.close()
        except Exception as e:
            logger.debug("Closing the ZooKeeper client failed: %s", e)
        if was_leading:
            logger.info("Gave up leading in ZooKeeper %s", self.path)

    # --- kazoo's thread ----------------------------------------------------------------

    def _state_changed(self, state: str) -> None:
        # Runs on kazoo's connection thread: must not block or call ZooKeeper.
        if not self._leading:
            if not self._cancelled:
                self._publish(False, connected=state == "CONNECTED")
            return
        if state in ("SUSPENDED", "LOST"):
            self._stop_leading(
                "lost the ZooKeeper session: no longer sure to lead"
                if state == "LOST"
                else "the ZooKeeper connection is suspended: no longer sure to lead"
            )

    def _stop_leading(self, reason: str) -> bool:
        with self._guard:
            if not self._leading:
                return False
            self._leading = False
            self._lost_reason = reason
            on_lost, self._on_lost = self._on_lost, None
        if reason:
            logger.error("Stopped leading: %s", reason)
        self._publish(False)
        if on_lost is not None and reason:
            on_lost(reason)
        return True

    def _publish(self, leader: bool, *, connected: bool = True) -> None:
        message = LeadershipChanged(leader=leader, since=self._clock.now(), zookeeper_connected=connected)
        for listener in self._listeners:
            try:
                listener(message)
            except Exception:
                logger.exception("Listener %r failed on LeadershipChanged", listener)

    def _lock_node(self) -> str | None:
        lock = self._lock
        if lock is None or not self._leading or not getattr(lock, "node", None):
            return None
        return f"{lock.path}/{lock.node}"

    def _contenders(self) -> list[str]:
        try:
            return list(self._lock.contenders())
        except Exception:
            return []


class ZooKeeperFrameworkId:
    """The framework id in a ZooKeeper node, written only while ``fence()`` names our lock node.

    The :class:`~actors.mesos.bridge.FrameworkIdStore` of a daemon with ``[ha]``.
    Errors are :class:`~actors.exceptions.GocdMesosError`.
    """

    def __init__(self, client: Any, node: str, *, fence: Callable[[], str | None]) -> None:
        self._client = client
        #: Path of the node.
        self.node = node
        self._fence = fence

    def read(self) -> str | None:
        from kazoo.exceptions import KazooException, NoNodeError

        try:
            data, _ = self._client.get(self.node)
        except NoNodeError:
            return None
        except (KazooException, OSError) as e:
            raise GocdMesosError(f"Cannot read the framework id from ZooKeeper {self.node}: {e}") from e
        return data.decode("utf-8").strip() or None

    def write(self, framework_id: str) -> None:
        self._change(framework_id.encode("utf-8"))

    def remove(self) -> None:
        self._change(None)

    def _change(self, data: bytes | None) -> None:
        from kazoo.exceptions import KazooException

        lock_node = self._fence()
        if lock_node is None:
            raise GocdMesosError(f"Not the leader: {self.node} left unchanged")
        try:
            self._client.ensure_path(self.node.rsplit("/", 1)[0] or "/")
            exists = self._client.exists(self.node) is not None
            transaction = self._client.transaction()
            transaction.check(lock_node, 0)  # a lock node is never modified: version 0 while it exists
            if data is None:
                if not exists:
                    return
                transaction.delete(self.node)
            elif exists:
                transaction.set_data(self.node, data)
            else:
                transaction.create(self.node, data)
            results = transaction.commit()
        except (KazooException, OSError) as e:
            raise GocdMesosError(f"Cannot change the framework id in ZooKeeper {self.node}: {e}") from e
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise GocdMesosError(f"Cannot change the framework id in ZooKeeper {self.node}: {failed[0]!r}")

    def __str__(self) -> str:
        return f"ZooKeeper {self.node}"
