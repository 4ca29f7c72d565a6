"""The project's one small exception family.

Every error that gocd-mesos raises on purpose is a :class:`GocdMesosError`.
Startup turns one into a log line and an exit status; actors turn one into a
message. Leaves exist only where somebody catches them.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "GoCDAuthError",
    "GoCDBadResponse",
    "GoCDConnectionError",
    "GoCDError",
    "GoCDNotFound",
    "GoCDServerError",
    "GoCDUnprocessable",
    "GocdMesosError",
    "MesosError",
]


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
    """A call to the GoCD server failed.

    ``method``, ``url`` (never with credentials) and ``status`` (None when no
    answer came) say which call; the message never holds a credential.
    """

    def __init__(self, message: str, *, method: str = "", url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.status = status


class GoCDConnectionError(GoCDError):
    """GoCD could not be reached: connection refused or reset, timeout, TLS or DNS failure."""


class GoCDAuthError(GoCDError):
    """GoCD refused our credentials (401) or our rights (403)."""


class GoCDNotFound(GoCDError):
    """GoCD answered 404: unknown agent or pipeline, or an API this server does not serve."""


class GoCDUnprocessable(GoCDError):
    """GoCD refused the request as it stands (400, 406, 409, 422), e.g. deleting an enabled agent."""


class GoCDServerError(GoCDError):
    """GoCD failed with a 5xx, including 503 in maintenance mode."""


class GoCDBadResponse(GoCDError):
    """GoCD's answer cannot be used: malformed XML or JSON, a redirect or an HTML page (misconfiguration)."""


class MesosError(GocdMesosError):
    """A call to the Mesos master failed, or the framework was refused."""
