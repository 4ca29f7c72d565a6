"""gocd-mesos: autoscale GoCD build agents on Apache Mesos from the job backlog.

The public surface for ops tooling that embeds gocd-mesos:

* :func:`start` starts a system (the four actors wired as the daemon runs them)
  and returns its :class:`System` handle: refs, ``subscribe``/``unsubscribe``,
  ``wait()`` and ``stop()``, which return an :class:`Exit`;
* :class:`Settings` (and :func:`load_settings`, :func:`settings_from_dict`) is
  the configuration, from an INI file or built in code;
* :mod:`actors.messages` are the messages the actors publish to listeners;
* :mod:`actors.fleet.judge` holds the scaling policies;
* :class:`GocdMesosError` and its leaves are the errors.

The actors' packages (:mod:`actors.gocd`, :mod:`actors.mesos`,
:mod:`actors.fleet`) are imported when a system starts, not on ``import actors``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from importlib import import_module
from typing import Any

#: Where each name of the API lives: ``import actors`` loads none of them (the
#: simulators import ``actors`` for its version and must stay independent of the
#: daemon), the first use of one loads its module.
_API = {
    "Clock": "actors.clock",
    "ManualClock": "actors.clock",
    "RealClock": "actors.clock",
    "ScaledClock": "actors.clock",
    "Profile": "actors.config",
    "Settings": "actors.config",
    "load_settings": "actors.config:load",
    "ConfigError": "actors.exceptions",
    "GoCDError": "actors.exceptions",
    "GocdMesosError": "actors.exceptions",
    "MesosError": "actors.exceptions",
    "Exit": "actors.system",
    "System": "actors.system",
    "start": "actors.system",
    "messages": "actors.messages:",
}


def __getattr__(name: str) -> Any:
    where = _API.get(name)
    if where is None:
        raise AttributeError(f"module 'actors' has no attribute {name!r}")
    module, _, attribute = where.partition(":")
    if where.endswith(":"):
        value: Any = import_module(module)
    else:
        value = getattr(import_module(module), attribute or name)
    globals()[name] = value
    return value


__all__ = [
    "Clock",
    "ConfigError",
    "Exit",
    "GoCDError",
    "GocdMesosError",
    "ManualClock",
    "MesosError",
    "Profile",
    "RealClock",
    "ScaledClock",
    "Settings",
    "System",
    "__version__",
    "load_settings",
    "messages",
    "start",
]
