"""The project's one small exception family.

Every error that gocd-mesos raises on purpose is a :class:`GocdMesosError`.
Startup turns one into a log line and an exit status; actors turn one into a
message. Leaves exist only where somebody catches them.
"""

from __future__ import annotations

__all__ = ["ConfigError", "GoCDError", "GocdMesosError", "MesosError"]


class GocdMesosError(Exception):
    """Root of every error gocd-mesos raises on purpose."""


class ConfigError(GocdMesosError):
    """The configuration file or command line is invalid.

    ``problems`` holds every problem found, one line each, already formatted
    as ``<file>: [section] key: problem``.
    """

    def __init__(self, problems: list[str] | tuple[str, ...] | str) -> None:
        if isinstance(problems, str):
            problems = (problems,)
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("\n".join(self.problems))


class GoCDError(GocdMesosError):
    """A call to the GoCD server failed."""


class MesosError(GocdMesosError):
    """A call to the Mesos master failed, or the framework was refused."""
