"""The reload (SIGHUP): read the configuration file again and apply what may change live.

The agent profiles (``[profiles]``: min, max, idle_timeout, image, resources,
constraints, ... and profiles added or removed), the ``[judge]`` settings and
``[logging]`` apply at once: :meth:`actors.system.System.reload` tells the
actors :class:`~actors.messages.SettingsChanged`. ``[gocd]``, ``[mesos]``,
``[agents]``, ``[state]`` and ``[http]`` hold connections, credentials and the
state dir; a change there is logged as a WARNING that it needs a restart, and
left alone. A file with any problem changes nothing: every problem is logged
at ERROR and the settings in use stay.

:func:`changes` is the pure part (what differs, as operators read it);
:func:`reload` reads, logs and applies.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from actors import config
from actors.config import LoggingSettings, Settings, format_value
from actors.exceptions import ConfigError

__all__ = ["RESTART_SECTIONS", "changes", "reload"]

logger = logging.getLogger(__name__)

#: Sections a reload does not apply: a change there needs a restart.
RESTART_SECTIONS = ("gocd", "mesos", "agents", "state", "http")


def _differences(old: Any, new: Any) -> list[str]:
    """``key old -> new`` for each field of two dataclasses of one kind that differs."""
    return [
        f"{f.name} {format_value(getattr(old, f.name))} -> {format_value(getattr(new, f.name))}"
        for f in dataclasses.fields(old)
        if getattr(old, f.name) != getattr(new, f.name)
    ]


def changes(old: Settings, new: Settings) -> tuple[list[str], list[str]]:
    """What differs between ``old`` and ``new``: (changes a reload applies, one line each;
    sections it does not apply, each as ``[section] key, key``). No values of the
    restart sections are shown: they hold secrets."""
    live: list[str] = []
    old_profiles = {p.name: p for p in old.profiles}
    new_profiles = {p.name: p for p in new.profiles}
    for name, profile in new_profiles.items():
        if name not in old_profiles:
            live.append(f"profile {name} added")
        elif profile != old_profiles[name]:
            live.append(f"profile {name}: {'; '.join(_differences(old_profiles[name], profile))}")
    live.extend(
        f"profile {name} removed (its agents are drained)"
        for name in old_profiles
        if name not in new_profiles
    )
    live.extend(f"[judge] {what}" for what in _differences(old.judge, new.judge))
    live.extend(f"[logging] {what}" for what in _differences(old.logging, new.logging))
    restart = []
    for section in RESTART_SECTIONS:
        before, after = getattr(old, section), getattr(new, section)
        keys = [
            f.name for f in dataclasses.fields(before) if getattr(before, f.name) != getattr(after, f.name)
        ]
        if keys:
            restart.append(f"[{section}] {', '.join(keys)}")
    return live, restart


def reload(
    path: str,
    current: Settings,
    system: Any,
    apply_logging: Callable[[LoggingSettings], None],
) -> Settings:
    """Read ``path`` again and apply to ``system`` (a :class:`~actors.system.System`) what may
    change live; ``apply_logging`` sets up logging for new ``[logging]`` settings. Returns
    the settings now in use: ``current`` with the new profiles, judge and logging settings,
    or ``current`` itself when the file has problems."""
    try:
        new = config.load(path)
    except ConfigError as e:
        for problem in e.problems:
            logger.error("%s", problem)
        logger.error(
            "Reload of %s refused: %d configuration problem(s); the settings in use stay",
            path,
            len(e.problems),
        )
        return current
    live, restart = changes(current, new)
    for section in restart:
        logger.warning("Reload: %s changed; that needs a restart, not applied", section)
    if new.logging != current.logging:
        apply_logging(new.logging)
    if new.profiles != current.profiles or new.judge != current.judge:
        system.reload(new)
    for what in live:
        logger.info("Reload: %s", what)
    if not live:
        logger.info("Reload of %s: nothing to apply", path)
    return dataclasses.replace(current, profiles=new.profiles, judge=new.judge, logging=new.logging)
