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

#: Where each name of the API lives, as (module, attribute; None: the module itself).
#: ``import actors`` loads none of them (the simulators import ``actors`` for its
#: version and must stay independent of the daemon); the first use of one loads it.
_API: dict[str, tuple[str, str | None]] = {
    "Clock": ("actors.clock", "Clock"),
    "ManualClock": ("actors.clock", "ManualClock"),
    "RealClock": ("actors.clock", "RealClock"),
    "ScaledClock": ("actors.clock", "ScaledClock"),
    "Profile": ("actors.config", "Profile"),
    "Settings": ("actors.config", "Settings"),
    "load_settings": ("actors.config", "load"),
    "ConfigError": ("actors.exceptions", "ConfigError"),
    "GoCDError": ("actors.exceptions", "GoCDError"),
    "GocdMesosError": ("actors.exceptions", "GocdMesosError"),
    "MesosError": ("actors.exceptions", "MesosError"),
    "Exit": ("actors.system", "Exit"),
    "System": ("actors.system", "System"),
    "start": ("actors.system", "start"),
    "messages": ("actors.messages", None),
}


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'actors' has no attribute {name!r}")
    module_name, attribute = _API[name]
    module = import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
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
