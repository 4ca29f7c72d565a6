"""The status server of a system: ``/healthz``, ``/readyz``, ``/metrics``, ``/status`` and ``/``.

:mod:`actors.http.model` folds the published messages into immutable snapshots,
:mod:`actors.http.metrics` turns a snapshot into Prometheus metrics,
:mod:`actors.http.page` into the status page's values and charts, and
:mod:`actors.http.server` serves them with Tornado on a thread of its own.
"""

from actors.http.model import Snapshot, StatusModel
from actors.http.server import StatusServer

__all__ = ["Snapshot", "StatusModel", "StatusServer"]
