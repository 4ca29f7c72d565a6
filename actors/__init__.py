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

from actors import messages
from actors.clock import Clock, ManualClock, RealClock, ScaledClock
from actors.config import Profile, Settings
from actors.config import load as load_settings
from actors.exceptions import ConfigError, GoCDError, GocdMesosError, MesosError
from actors.system import Exit, System, start

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
