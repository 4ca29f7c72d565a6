"""Mesos master addresses: the one parser of ``[mesos] master`` and of a driver's master string.

A master string names either ZooKeeper (``zk://host:2181,host2:2181/mesos``), where the
driver finds the leading master, or one or more masters (``http(s)://host:port``, comma-
separated), which the driver tries in turn. Config validates ``[mesos] master`` with
:func:`parse_masters`; the builtin driver parses its ``master_uri`` with it too, also
accepting the forms pymesos's master string takes (``host:port``, ``zoo://``). This module
imports nothing of the daemon, so that config and the driver can both use it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["ZOOKEEPER_SCHEMES", "parse_masters"]

#: How a master string that names ZooKeeper starts (``zoo://`` only in pymesos's forms).
ZOOKEEPER_SCHEMES = ("zk://", "zoo://")


def parse_masters(text: str, *, pymesos_forms: bool = False) -> tuple[str, ...]:
    """The masters ``text`` names: ``(zk_url,)`` for ZooKeeper, else the masters' base URLs
    (``scheme://host:port``) in order.

    With ``pymesos_forms`` a master may also be a bare ``host:port`` (meaning http) and
    ZooKeeper may be spelled ``zoo://``. ValueError says what is wrong.
    """
    text = text.strip()
    if text.startswith(ZOOKEEPER_SCHEMES if pymesos_forms else ("zk://",)):
        hosts, _, path = text.split("://", 1)[1].partition("/")
        if not hosts or not path:
            raise ValueError(f'"{text}" is not a zk:// URL (use zk://host:2181,host2:2181/mesos)')
        return (text,)
    masters = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        parts = urlsplit(item if "://" in item or not pymesos_forms else f"http://{item}")
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
            raise ValueError(
                f'"{item}" is not a Mesos master (use http(s)://host:port, a comma-separated list, or zk://…/mesos)'
            )
        masters.append(f"{parts.scheme}://{parts.netloc}")
    if not masters:
        raise ValueError("no Mesos master given")
    return tuple(masters)
