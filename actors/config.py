"""Load and validate the INI configuration into read-only Settings.

The file is read with configobj and checked against ``config.spec`` (shipped
beside this module). Every problem in one file is reported at once, each as
``<file>: [section] key: problem``, in one :class:`~actors.exceptions.ConfigError`;
unknown keys are rejected with a did-you-mean. What comes out is a tree of
frozen dataclasses: actors never see a ConfigObj.

Secrets (GoCD password and token, the agents' auto-register key, the Mesos
framework secret, the status server's password and token, the GoCD webhook's
secret) come from the file
itself, from a ``*_file`` next to it, or from an environment variable; never
from the command line. They are held in
:class:`Secret`, whose ``repr`` and ``str`` never show the value.
"""

from __future__ import annotations

import dataclasses
import difflib
import getpass
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import configobj
import validate

from actors.exceptions import ConfigError
from actors.mesos.masters import parse_masters

__all__ = [
    "AgentSettings",
    "Constraint",
    "GoCDSettings",
    "HaSettings",
    "HttpSettings",
    "JudgeSettings",
    "LoggingSettings",
    "MesosSettings",
    "Profile",
    "Secret",
    "Settings",
    "StateSettings",
    "Volume",
    "format_value",
    "from_dict",
    "load",
    "loads",
    "parse_duration",
    "parse_memsize",
    "profile_for_task",
    "render",
]

#: Environment variables that may hold secrets when the file names none.
SECRET_ENV = {
    ("gocd", "password"): "GOCD_MESOS_GOCD_PASSWORD",
    ("gocd", "token"): "GOCD_MESOS_GOCD_TOKEN",
    ("agents", "auto_register_key"): "GOCD_MESOS_AUTO_REGISTER_KEY",
    ("mesos", "secret"): "GOCD_MESOS_MESOS_SECRET",
}


class Secret:
    """A secret string that never shows itself in a repr, str or log line."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: only for the wire."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('****')" if self._value else "Secret('')"

    __str__ = __repr__


# --- typed settings ---------------------------------------------------------


@dataclass(frozen=True)
class GoCDSettings:
    """How to reach and read the GoCD server."""

    #: Base URL of the server, ending in ``/go`` (no trailing slash).
    url: str
    #: User for basic auth; empty for none.
    username: str = ""
    #: Password for basic auth.
    password: Secret = field(default_factory=lambda: Secret(""))
    #: Bearer personal access token (GoCD >= 19.2); exclusive with basic auth.
    token: Secret = field(default_factory=lambda: Secret(""))
    #: Verify the server's TLS certificate.
    verify_tls: bool = True
    #: PEM file of CA certificates to trust instead of the system's; empty for none.
    ca_bundle: str = ""
    #: Seconds before one HTTP request is abandoned.
    timeout: float = 10.0
    #: Seconds between two polls of the backlog (and of the agents, unless ``agents_interval``).
    poll_interval: float = 10.0
    #: Upper bound, in seconds, of the poll interval while GoCD is failing.
    max_backoff: float = 300.0
    #: Where the job backlog is read: ``feed`` (the scheduled-jobs feed, deprecated in GoCD
    #: 25.4.0), ``dashboard`` (the dashboard, stage instance, pipeline config and template
    #: APIs; GoCD 20.9.0 or later, group-admin or super-admin for the resources), or ``auto``
    #: (the feed while GoCD serves it, then the dashboard for good).
    backlog: str = "auto"
    #: Seconds between two reads of the agents list (the heavy request of a big server), at
    #: least ``poll_interval``: a poll in between reuses the last list. None: every poll.
    agents_interval: float | None = None
    #: Secret of the webhook GoCD's notification plugins post to (``/hooks/gocd/<secret>``, or
    #: ``/hooks/gocd`` signed with it), from ``webhook_secret_file``; empty: no webhook.
    webhook_secret: Secret = field(default_factory=lambda: Secret(""))

    @property
    def agents_every(self) -> float:
        """Seconds between two reads of the agents list: ``agents_interval``, or ``poll_interval``."""
        return max(self.agents_interval or 0.0, self.poll_interval)


@dataclass(frozen=True)
class MesosSettings:
    """How to register the framework with the Mesos master."""

    #: Masters to try in order (``http(s)://host:port``), or one ``zk://`` URL.
    masters: tuple[str, ...]
    #: Framework name shown in the Mesos UI.
    framework_name: str = "gocd-mesos"
    #: Mesos role the framework subscribes with.
    role: str = "*"
    #: Unix user tasks run as; defaults to the user running the daemon.
    user: str = ""
    #: Principal for framework authentication; empty for none.
    principal: str = ""
    #: Secret for framework authentication (HTTP basic with the principal).
    secret: Secret = field(default_factory=lambda: Secret(""))
    #: Seconds Mesos keeps our tasks alive while the daemon is away.
    failover_timeout: float = 7 * 86400.0
    #: Ask agents to checkpoint our tasks so they survive an agent restart.
    checkpoint: bool = True
    #: Which scheduler driver to use: ``builtin`` or ``pymesos``.
    driver: str = "builtin"
    #: Seconds an offer we decline is not offered to us again.
    refuse_seconds: float = 30.0
    #: Verify the master's TLS certificate (https masters).
    verify_tls: bool = True
    #: PEM file of CA certificates for https masters; empty for the system's.
    ca_bundle: str = ""


@dataclass(frozen=True)
class AgentSettings:
    """What every launched GoCD agent is told."""

    #: The GoCD URL agents connect to, ending in ``/go``.
    go_server_url: str
    #: The server's agent auto-register key; agents that send it register Enabled.
    auto_register_key: Secret
    #: Prefix of every agent hostname (and Mesos task id) we create.
    hostname_prefix: str = "gocd-mesos-"
    #: Seconds a launched task may take to show up as a GoCD agent.
    register_timeout: float = 300.0


@dataclass(frozen=True)
class Constraint:
    """One Mesos attribute rule: ``attribute:OPERATOR:value``."""

    #: Agent attribute name, e.g. ``os`` or ``rack``.
    attribute: str
    #: ``IS`` (equals), ``LIKE`` (regex full match) or ``UNLIKE`` (no match).
    operator: str
    #: Value or regular expression the attribute is compared with.
    value: str

    def __str__(self) -> str:
        return f"{self.attribute}:{self.operator}:{self.value}"


@dataclass(frozen=True)
class Volume:
    """A host path mounted into the agent container."""

    #: Absolute path on the Mesos agent host.
    host_path: str
    #: Absolute path inside the container.
    container_path: str
    #: ``RW`` or ``RO``.
    mode: str = "RW"

    def __str__(self) -> str:
        return f"{self.host_path}:{self.container_path}:{self.mode.lower()}"


@dataclass(frozen=True)
class Profile:
    """One kind of GoCD agent we can launch, and how many of them."""

    #: Name of the profile (the INI subsection), used in labels and logs.
    name: str
    #: Docker image of the agent, e.g. ``gocd/gocd-agent-ubuntu-24.04:v25.1.0``.
    image: str
    #: CPUs per agent task.
    cpus: float = 1.0
    #: Memory per agent task, in MB.
    mem: float = 2048.0
    #: Disk per agent task, in MB (0 asks for none).
    disk: float = 0.0
    #: GoCD resources the agent advertises.
    resources: tuple[str, ...] = ()
    #: GoCD environments the agent joins.
    environments: tuple[str, ...] = ()
    #: Agents kept even when idle.
    min: int = 0
    #: Agents never exceeded.
    max: int = 10
    #: Seconds an agent may stay idle before it is drained: by default about as long as an agent
    #: takes to start, so an idle agent costs at most what starting a fresh one would.
    idle_timeout: float = 30.0
    #: Jobs after which an agent is retired: 0 reuses it forever, 1 is a fresh agent per job.
    max_jobs: int = 0
    #: Mesos attribute rules an offer must satisfy.
    constraints: tuple[Constraint, ...] = ()
    #: ``docker`` (Docker containerizer) or ``mesos`` (Mesos containerizer, Docker image).
    containerizer: str = "docker"
    #: Pull the image even when the agent host has it.
    force_pull: bool = False
    #: Container network: ``host``, ``bridge``, ``none`` or ``user``.
    network: str = "host"
    #: Name of the user-defined (CNI or Docker) network, with ``network = user``.
    network_name: str = ""
    #: Host paths mounted into the container.
    volumes: tuple[Volume, ...] = ()
    #: Extra environment variables of the agent, as sorted (name, value) pairs.
    env: tuple[tuple[str, str], ...] = ()

    @property
    def slug(self) -> str:
        """The part of a task id that names this profile: ``<hostname_prefix><slug>-<8 hex>``.

        The name in lower case, each run of other characters than ``a-z0-9`` made
        one dash, no dash at either end, cut to 20 characters; ``agent`` if
        nothing is left. gocd-mesos tells its agents' profiles apart by it, so
        no two profiles of one configuration may share it.
        """
        return _task_slug(self.name)


_SLUG_RE = re.compile(r"[^a-z0-9]+")


def _task_slug(name: str) -> str:
    """:attr:`Profile.slug` of a profile called ``name``."""
    return _SLUG_RE.sub("-", name.lower()).strip("-")[:20] or "agent"


#: What follows the slug in a task id: a dash and 8 random lower-case hex digits.
_TASK_SUFFIX_RE = re.compile(r"^(?P<slug>.+)-[0-9a-f]{8}$")


def profile_for_task(task_id: str, prefix: str, profiles: Iterable[Profile]) -> Profile | None:
    """The profile whose agents are named like ``task_id`` (``<prefix><slug>-<8 hex>``).

    None if ``task_id`` lacks ``prefix`` or the ``-<8 hex>`` suffix, or no profile
    has that slug.
    """
    if not task_id.startswith(prefix):
        return None
    match = _TASK_SUFFIX_RE.match(task_id[len(prefix) :])
    if match is None:
        return None
    return next((p for p in profiles if p.slug == match.group("slug")), None)


@dataclass(frozen=True)
class JudgeSettings:
    """How the backlog judge scales."""

    #: Launches asked for in one decision, over all profiles.
    max_launch_per_cycle: int = 100
    #: Whether idle agents are drained at all.
    scale_down: bool = True
    #: Seconds after which GoCD data is too old to scale down on.
    stale_after: float = 60.0
    #: Seconds of the first pause after a profile's launch fails.
    backoff_initial: float = 30.0
    #: Upper bound, in seconds, of that pause after repeated failures.
    backoff_max: float = 600.0
    #: Name of the scaling policy: ``default``, ``ancestor`` or ``static``
    #: (see ``actors.fleet.judge.POLICIES``).
    policy: str = "default"


@dataclass(frozen=True)
class StateSettings:
    """Where persisted state lives."""

    #: Directory of the state files (framework id, fleet).
    dir: str = "/var/lib/gocd-mesos"


@dataclass(frozen=True)
class HaSettings:
    """High availability: leader election in ZooKeeper (see :mod:`actors.ha`)."""

    #: ``host:port[,host:port...]/path`` of the election and the shared framework id;
    #: "" runs a single daemon without ZooKeeper.
    zookeeper: str = ""


@dataclass(frozen=True)
class HttpSettings:
    """The status API, page and metrics endpoint."""

    #: Host the status server binds to.
    host: str = "127.0.0.1"
    #: Port the status server binds to (0 picks a free one).
    port: int = 9404
    #: User name of HTTP basic auth on every endpoint but ``/healthz``; "" for none.
    username: str = ""
    #: Password of that user (from ``password_file``).
    password: Secret = field(default_factory=lambda: Secret(""))
    #: Bearer token accepted on every endpoint but ``/healthz`` (from ``token_file``); empty for none.
    token: Secret = field(default_factory=lambda: Secret(""))

    @classmethod
    def parse(cls, text: str) -> HttpSettings:
        """From ``host:port`` as ``[http] listen`` takes it; ValueError says what is wrong."""
        try:
            host, port = _check_listen(text)
        except validate.ValidateError as e:
            raise ValueError(str(e)) from None
        return cls(host=host, port=port)


@dataclass(frozen=True)
class LoggingSettings:
    """Log level and format."""

    #: Level name: DEBUG, INFO, WARNING or ERROR.
    level: str = "INFO"
    #: ``text`` or ``json`` (one object per line).
    format: str = "text"


@dataclass(frozen=True)
class Settings:
    """The whole validated configuration."""

    gocd: GoCDSettings
    mesos: MesosSettings
    agents: AgentSettings
    #: Agent profiles in file order.
    profiles: tuple[Profile, ...]
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    state: StateSettings = field(default_factory=StateSettings)
    ha: HaSettings = field(default_factory=HaSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    #: Path of the file these settings came from ("" when built in code).
    source: str = ""
    #: The secret files named, as (``[section] key``, absolute path) pairs: the daemon warns
    #: at start-up about one that group or others may read.
    secret_files: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], source: str = "<settings>", environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Settings built in code, checked as an INI file is (see :func:`from_dict`)."""
        return from_dict(data, source, environ)

    def profile(self, name: str) -> Profile:
        """The profile called ``name``; KeyError if there is none."""
        for profile in self.profiles:
            if profile.name == name:
                return profile
        raise KeyError(name)


# --- value parsers (also used by the checks) --------------------------------

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_MEMSIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt])?i?b?\s*$", re.IGNORECASE)
_MEMSIZE_UNITS = {"k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0 * 1024}


def _finite(number: float, value: object) -> float:
    """``number`` if it is finite: inf and nan pass ``float()`` and ``> 0`` but break
    timers and arithmetic (a run of digits, or a large one times a unit, is inf too)."""
    if not math.isfinite(number):
        raise ValueError(f'"{value}" is not a finite number')
    return number


def parse_duration(value: str | float | int) -> float:
    """Seconds in ``30s``, ``5m``, ``1h``, ``7d``, ``250ms`` or a bare number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if _finite(float(value), value) < 0:
            raise ValueError(f"{value!r} is negative")
        return float(value)
    match = _DURATION_RE.match(str(value))
    if not match:
        raise ValueError(f'"{value}" is not a duration (use e.g. 30s, 5m, 1h, 7d)')
    return _finite(float(match.group(1)) * _DURATION_UNITS[(match.group(2) or "s").lower()], value)


def parse_memsize(value: str | float | int) -> float:
    """Megabytes in ``512M``, ``2G``, ``1T``, ``64K`` or a bare number of MB."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if _finite(float(value), value) < 0:
            raise ValueError(f"{value!r} is negative")
        return float(value)
    match = _MEMSIZE_RE.match(str(value))
    if not match:
        raise ValueError(f'"{value}" is not a memory size (use e.g. 512M, 2G)')
    return _finite(float(match.group(1)) * _MEMSIZE_UNITS[(match.group(2) or "m").lower()], value)


class _Invalid(validate.ValidateError):
    """A check's own message, shown as is."""


def _at_least(value: Any, number: float, bound: str | None, parse: Callable[[str], float], too: str) -> None:
    if bound is not None and number < parse(bound):
        raise _Invalid(f'"{value}" is {too} (must be at least {bound})')


def _above(value: Any, number: float, bound: str | None, parse: Callable[[str], float], too: str) -> None:
    if bound is not None and not number > parse(bound):
        raise _Invalid(f'"{value}" is {too} (must be greater than {bound})')


def _check_duration(value: Any, at_least: str | None = None, above: str | None = None) -> float:
    """A duration; ``at_least`` or ``above`` (durations too) bound it from below, and no
    duration is longer than :data:`LONGEST_DURATION` (timers past it overflow the platform's
    time, and no setting means that long)."""
    try:
        seconds = parse_duration(value)
    except ValueError as e:
        raise _Invalid(str(e)) from None
    _at_least(value, seconds, at_least, parse_duration, "too short")
    _above(value, seconds, above, parse_duration, "too short")
    if seconds > LONGEST_DURATION:
        raise _Invalid(f'"{value}" is too long (must be at most 365d)')
    return seconds


#: The longest duration any setting takes, in seconds (365 days).
LONGEST_DURATION = 365 * 86400.0


def _check_memsize(value: Any, above: str | None = None) -> float:
    """A memory size; ``above`` (a memory size too) bounds it from below."""
    try:
        megabytes = parse_memsize(value)
    except ValueError as e:
        raise _Invalid(str(e)) from None
    _above(value, megabytes, above, parse_memsize, "too small")
    return megabytes


def _check_integer(value: Any, min: Any = None, max: Any = None) -> int:
    """configobj's ``integer``, with the allowed range in its messages."""
    try:
        return int(validate.is_integer(value, min, max))
    except validate.VdtValueTooSmallError:
        raise _Invalid(f'"{value}" is too small (must be at least {min})') from None
    except validate.VdtValueTooBigError:
        raise _Invalid(f'"{value}" is too big (must be at most {max})') from None


def _check_option(value: Any, *options: str) -> str:
    """configobj's ``option``, naming the valid values in its message."""
    try:
        return str(validate.is_option(value, *options))
    except validate.VdtValueError:
        raise _Invalid(f'"{value}" is not one of: {", ".join(options)}') from None


def _check_positive_float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _Invalid(f'"{value}" is not a number') from None
    if not math.isfinite(number):
        raise _Invalid(f'"{value}" is not a finite number')
    if not number > 0:
        raise _Invalid(f'"{value}" must be greater than 0')
    return number


def _check_go_url(value: Any) -> str:
    text = str(value).strip()
    if text == "":
        return ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Invalid(f'"{text}" is not an http(s) URL')
    if parts.query or parts.fragment:
        raise _Invalid(f'"{text}" must not have a query or fragment')
    path = parts.path.rstrip("/")
    if not path.endswith("/go"):
        raise _Invalid(f'"{text}" must end in /go (e.g. https://gocd.example.com:8154/go)')
    return f"{parts.scheme}://{parts.netloc}{path}"


def _check_mesos_master(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        value = ",".join(value)  # configobj splits an unquoted comma-separated value
    try:
        return parse_masters(str(value))
    except ValueError as e:
        raise _Invalid(str(e)) from None


def _check_listen(value: Any) -> tuple[str, int]:
    text = str(value).strip()
    match = re.match(r"^(\[[0-9A-Fa-f:.]+\]|[^:\[\]]*):(\d+)$", text)
    if not match or int(match.group(2)) > 65535:
        raise _Invalid(f'"{text}" is not host:port (e.g. 127.0.0.1:9404)')
    host = match.group(1).strip("[]") or "0.0.0.0"
    return host, int(match.group(2))


def _check_zookeeper(value: Any) -> str:
    if isinstance(value, list):
        value = ",".join(value)  # configobj splits an unquoted comma-separated value
    text = str(value).strip()
    if not text:
        return ""
    hosts, slash, path = text.partition("/")
    ok = (
        slash
        and path.strip("/")
        and all(re.match(r"^[^\s:/,]+:\d{1,5}$", host.strip()) for host in hosts.split(","))
    )
    if not ok:
        raise _Invalid(f'"{text}" is not host:port[,host:port...]/path (e.g. zk1:2181,zk2:2181/gocd-mesos)')
    return ",".join(host.strip() for host in hosts.split(",")) + "/" + path.strip("/")


def _check_name(value: Any) -> str:
    text = str(value).strip()
    if not text:
        raise _Invalid("must not be empty")
    return text


_ROLE_RE = re.compile(r"^(\*|[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*)$")


def _check_role(value: Any) -> str:
    text = str(value).strip()
    if not _ROLE_RE.match(text) or text in (".", ".."):
        raise _Invalid(f'"{text}" is not a valid Mesos role')
    return text


_HOSTNAME_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9\-]*$")


def _check_hostname_prefix(value: Any) -> str:
    text = str(value).strip()
    if not _HOSTNAME_PREFIX_RE.match(text) or len(text) > 40:
        raise _Invalid(f'"{text}" must be lower-case letters, digits and dashes, at most 40 characters')
    return text


CHECKS = {
    "duration": _check_duration,
    "memsize": _check_memsize,
    "integer": _check_integer,
    "option": _check_option,
    "positive_float": _check_positive_float,
    "go_url": _check_go_url,
    "mesos_master": _check_mesos_master,
    "listen": _check_listen,
    "zookeeper": _check_zookeeper,
    "name": _check_name,
    "role": _check_role,
    "hostname_prefix": _check_hostname_prefix,
}


# --- loading ----------------------------------------------------------------


def spec_lines() -> list[str]:
    """The configspec shipped with the package, as lines."""
    return resources.files("actors").joinpath("config.spec").read_text("utf-8").splitlines()


def _where(path: list[str] | tuple[str, ...], key: str | None) -> str:
    if not path:
        return f"[{key}]" if key else "[]"
    head = f"[{path[0]}]" + "".join(f"[{part}]" for part in path[1:])
    return f"{head} {key}" if key else head


def _problem_text(error: Any) -> str:
    if error is False:
        return "missing (required)"
    if isinstance(error, validate.VdtValueTooSmallError):
        return f"{error.args[0].split(' is too small')[0]} is too small".replace("the value ", "")
    if isinstance(error, validate.VdtTypeError):
        return str(error).replace("the value ", "").replace(" is of the wrong type.", " is of the wrong type")
    text = str(error)
    return text[0].lower() + text[1:] if text else "invalid"


def _spec_keys(spec: Any, path: tuple[str, ...]) -> list[str]:
    section = spec
    for part in path:
        if part in section:
            section = section[part]
        elif "__many__" in section:
            section = section["__many__"]
        else:
            return []
    if not isinstance(section, Mapping):
        return []
    return [k for k in section if k != "__many__"]


def load(path: str, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, validate and convert the INI file at ``path``.

    Raises ConfigError listing every problem found.
    """
    environ = os.environ if environ is None else environ
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: cannot read: not UTF-8 text (byte {e.start}: {e.reason})") from None
    return loads(lines, path, environ)


def loads(lines: list[str], path: str = "<config>", environ: Mapping[str, str] | None = None) -> Settings:
    """Like :func:`load`, from lines already read; ``path`` names them in errors."""
    try:
        cfg = configobj.ConfigObj(lines, configspec=_spec(), interpolation=False, encoding="utf-8")
    except configobj.ConfigObjError as e:
        raise ConfigError(f"{path}: {e}") from None
    return _validated(cfg, path, os.environ if environ is None else environ)


def from_dict(
    data: Mapping[str, Any], source: str = "<settings>", environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings built in code: ``data`` has the INI file's sections and keys, nested
    (``{"gocd": {"url": ...}, "profiles": {"linux": {"image": ..., "max": 5}}}``), with
    values as the INI spells them or as Python values (numbers, booleans, lists).

    Checked exactly as a file is, with the same messages (``source`` stands for the
    file's name in them); raises ConfigError listing every problem.
    """
    try:
        cfg = configobj.ConfigObj(_as_ini_values(data), configspec=_spec(), interpolation=False)
    except (configobj.ConfigObjError, TypeError, ValueError) as e:
        raise ConfigError(f"{source}: {e}") from None
    return _validated(cfg, source, os.environ if environ is None else environ)


def _as_ini_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with each value as the INI file would give it to the checks."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out[str(key)] = _as_ini_values(value)
        elif isinstance(value, bool):
            out[str(key)] = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            out[str(key)] = [str(item) for item in value]
        elif isinstance(value, Secret):
            out[str(key)] = value.reveal()
        else:
            out[str(key)] = str(value)
    return out


def _spec() -> Any:
    return configobj.ConfigObj(spec_lines(), list_values=False, _inspec=True, encoding="utf-8")


def _validated(cfg: Any, path: str, environ: Mapping[str, str]) -> Settings:
    """Check ``cfg`` against its spec; the Settings, or ConfigError with every problem."""
    spec = cfg.configspec
    problems: list[str] = []
    result = cfg.validate(validate.Validator(CHECKS), preserve_errors=True)
    errors = configobj.flatten_errors(cfg, result) if result is not True else []
    for section_path, key, error in errors:
        if key is None:
            problems.append(f"{path}: {_where(section_path, None)}: section missing")
        else:
            problems.append(f"{path}: {_where(section_path, key)}: {_problem_text(error)}")
    for section_path, name in configobj.get_extra_values(cfg):
        known = _spec_keys(spec, tuple(section_path))
        hint = difflib.get_close_matches(name, known, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        kind = "unknown section" if isinstance(_get(cfg, section_path).get(name), Mapping) else "unknown key"
        problems.append(f"{path}: {_where(section_path, name)}: {kind}{suggestion}")

    invalid = {(*section_path, key) if key else tuple(section_path) for section_path, key, _ in errors}
    settings = _convert(cfg, path, environ, problems, invalid)
    if problems or settings is None:
        raise ConfigError(problems)
    return settings


def _get(cfg: Any, section_path: Any) -> Any:
    for part in section_path:
        cfg = cfg[part]
    return cfg


def _secret(
    section: Mapping[str, Any],
    sec_name: str,
    key: str,
    file_key: str,
    path: str,
    environ: Mapping[str, str],
    problems: list[str],
    inline: bool = True,
) -> Secret:
    value = section.get(key, "") if inline else ""
    filename = section.get(file_key, "")
    # A list (an unquoted comma) failed the key's string check, which is reported already.
    value = value if isinstance(value, str) else ""
    filename = filename if isinstance(filename, str) else ""
    if value and filename:
        problems.append(f"{path}: [{sec_name}] {key}: set both {key} and {file_key}; keep one")
        return Secret("")
    if filename:
        if not os.path.isabs(filename):
            filename = os.path.join(os.path.dirname(os.path.abspath(path)), filename)
        try:
            with open(filename, encoding="utf-8") as f:
                value = f.read().strip()
        except OSError as e:
            problems.append(f"{path}: [{sec_name}] {file_key}: cannot read {filename}: {e.strerror or e}")
            return Secret("")
        except ValueError as e:  # a NUL in the name; UnicodeDecodeError: not UTF-8 text
            problems.append(f"{path}: [{sec_name}] {file_key}: cannot read {filename!r}: {e}")
            return Secret("")
        if not value:
            problems.append(f"{path}: [{sec_name}] {file_key}: {filename} is empty")
    env = SECRET_ENV.get((sec_name, key))
    if not value and env:
        value = environ.get(env, "")
    return Secret(value)


_CONSTRAINT_OPS = ("IS", "LIKE", "UNLIKE")
#: What a webhook secret may be: URL-safe (RFC 3986 unreserved), long enough not to be guessed.
_WEBHOOK_SECRET_RE = re.compile(r"[A-Za-z0-9._~-]{16,}")


def _parse_constraint(text: str) -> Constraint:
    parts = text.split(":", 2)
    if len(parts) != 3 or not parts[0]:
        raise ValueError(f'"{text}" is not attribute:OPERATOR:value (e.g. os:LIKE:linux)')
    attribute, operator, value = parts[0].strip(), parts[1].strip().upper(), parts[2].strip()
    if operator not in _CONSTRAINT_OPS:
        raise ValueError(f'"{text}": operator must be one of {", ".join(_CONSTRAINT_OPS)}')
    if operator in ("LIKE", "UNLIKE"):
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f'"{text}": bad regular expression: {e}') from None
    return Constraint(attribute, operator, value)


def _parse_volume(text: str) -> Volume:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.startswith("/") for p in parts[:2]):
        raise ValueError(f'"{text}" is not /host/path:/container/path[:ro|rw]')
    mode = parts[2].upper() if len(parts) == 3 else "RW"
    if mode not in ("RO", "RW"):
        raise ValueError(f'"{text}": mode must be ro or rw')
    return Volume(parts[0], parts[1], mode)


_PROFILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_ENV = ("GO_SERVER_URL", "AGENT_AUTO_REGISTER_")


def _convert(
    cfg: Any,
    path: str,
    environ: Mapping[str, str],
    problems: list[str],
    invalid: set[tuple[str, ...]],
) -> Settings | None:
    """Cross-key checks and conversion. ``invalid`` holds the path of every key
    (section path + key) that failed its check already: such a key still holds
    its text, so a cross-key check only looks at keys that passed theirs."""
    g, m, a, j = cfg["gocd"], cfg["mesos"], cfg["agents"], cfg["judge"]

    def valid(*key_path: str) -> bool:
        return key_path not in invalid

    password = _secret(g, "gocd", "password", "password_file", path, environ, problems)
    token = _secret(g, "gocd", "token", "token_file", path, environ, problems)
    if token and (g["username"] or password):
        problems.append(f"{path}: [gocd] token: use either a token or username/password, not both")
    if g["username"] and not password:
        problems.append(
            f"{path}: [gocd] password: username is set but no password "
            f"(password, password_file or ${SECRET_ENV[('gocd', 'password')]})"
        )
    if password and not g["username"]:
        problems.append(f"{path}: [gocd] username: password is set but no username")
    if valid("gocd", "ca_bundle") and g["ca_bundle"] and not os.path.isfile(g["ca_bundle"]):
        problems.append(f"{path}: [gocd] ca_bundle: {g['ca_bundle']} is not a file")
    webhook_secret = _secret(
        g, "gocd", "webhook_secret", "webhook_secret_file", path, environ, problems, inline=False
    )
    if webhook_secret and not _WEBHOOK_SECRET_RE.fullmatch(webhook_secret.reveal()):
        problems.append(
            f"{path}: [gocd] webhook_secret_file: the secret must be at least 16 characters of A-Z, "
            "a-z, 0-9, '-', '_', '.' or '~' (it is part of the webhook's URL); e.g. openssl rand -hex 32"
        )

    secret = _secret(m, "mesos", "secret", "secret_file", path, environ, problems, inline=False)
    if secret and not m["principal"]:
        problems.append(f"{path}: [mesos] principal: a secret is set but no principal")
    if m["principal"] and not secret:
        problems.append(
            f"{path}: [mesos] secret_file: principal is set but no secret "
            f"(secret_file or ${SECRET_ENV[('mesos', 'secret')]})"
        )
    if valid("mesos", "ca_bundle") and m["ca_bundle"] and not os.path.isfile(m["ca_bundle"]):
        problems.append(f"{path}: [mesos] ca_bundle: {m['ca_bundle']} is not a file")

    key = _secret(a, "agents", "auto_register_key", "auto_register_key_file", path, environ, problems)
    if not key and not any("auto_register_key" in p for p in problems):
        problems.append(
            f"{path}: [agents] auto_register_key: missing (required: auto_register_key, "
            f"auto_register_key_file or ${SECRET_ENV[('agents', 'auto_register_key')]})"
        )

    h = cfg["http"]
    http_password = _secret(h, "http", "password", "password_file", path, environ, problems, inline=False)
    http_token = _secret(h, "http", "token", "token_file", path, environ, problems, inline=False)
    if h["username"] and not h["password_file"]:
        problems.append(f"{path}: [http] password_file: username is set but no password_file")
    if h["password_file"] and not h["username"]:
        problems.append(f"{path}: [http] username: password_file is set but no username")

    profiles = []
    for name in cfg["profiles"].sections:
        bad = {sp[2] for sp in invalid if sp[:2] == ("profiles", name) and len(sp) > 2}
        profiles.append(_convert_profile(name, cfg["profiles"][name], path, problems, bad))
    if not cfg["profiles"].sections:
        problems.append(f"{path}: [profiles]: no agent profile (add one, e.g. [[linux]] with image = …)")
    first_with: dict[str, str] = {}  # slug -> the first well-named profile that has it
    for name in (n for n in cfg["profiles"].sections if _PROFILE_NAME_RE.match(n)):
        slug = _task_slug(name)
        if slug not in first_with:
            first_with[slug] = name
            continue
        problems.append(
            f'{path}: [profiles][{name}]: same task id slug "{slug}" as [profiles][{first_with[slug]}]; '
            "gocd-mesos recognises a profile's agents from the slug in their task id (the name in lower "
            "case, other characters than a-z and 0-9 as '-', at most 20 characters), so rename one"
        )

    agents_set = g["agents_interval"] is not None and valid("gocd", "agents_interval")
    if agents_set and valid("gocd", "poll_interval") and g["agents_interval"] < g["poll_interval"]:
        problems.append(
            f"{path}: [gocd] agents_interval: {g['agents_interval']:g}s is shorter than poll_interval "
            f"({g['poll_interval']:g}s): the agents are read at most once a poll (leave it out to "
            "read them at every poll)"
        )
    if valid("judge", "stale_after"):
        # With poll_interval invalid (and reported) compare with 0, so that
        # stale_after = 0 is reported in this same run.
        poll_ok = valid("gocd", "poll_interval")
        poll = g["poll_interval"] if poll_ok else 0.0
        if not j["stale_after"] > poll:
            shown = f" ({poll:g}s)" if poll_ok else ""
            problems.append(
                f"{path}: [judge] stale_after: {j['stale_after']:g}s must be greater than [gocd] "
                f"poll_interval{shown}: GoCD data ages that much between two polls, so it would "
                "count as stale in normal operation"
            )
        elif agents_set and not j["stale_after"] > g["agents_interval"]:
            problems.append(
                f"{path}: [judge] stale_after: {j['stale_after']:g}s must be greater than [gocd] "
                f"agents_interval ({g['agents_interval']:g}s): the agents list ages that much between "
                "two reads, so it would count as stale in normal operation"
            )
    backoffs_ok = valid("judge", "backoff_initial") and valid("judge", "backoff_max")
    if backoffs_ok and j["backoff_max"] < j["backoff_initial"]:
        problems.append(
            f"{path}: [judge] backoff_max: {j['backoff_max']:g}s is smaller than backoff_initial "
            f"({j['backoff_initial']:g}s); must be at least backoff_initial"
        )
    if problems or invalid:
        return None
    secret_files = tuple(
        (f"[{name}] {key}", os.path.join(os.path.dirname(os.path.abspath(path)), section[key]))
        for name, section, key in (
            ("gocd", g, "password_file"),
            ("gocd", g, "token_file"),
            ("gocd", g, "webhook_secret_file"),
            ("mesos", m, "secret_file"),
            ("agents", a, "auto_register_key_file"),
            ("http", h, "password_file"),
            ("http", h, "token_file"),
        )
        if section[key]
    )
    listen_host, listen_port = cfg["http"]["listen"]
    return Settings(
        gocd=GoCDSettings(
            url=g["url"],
            username=g["username"],
            password=password,
            token=token,
            verify_tls=g["verify_tls"],
            ca_bundle=g["ca_bundle"],
            timeout=g["timeout"],
            poll_interval=g["poll_interval"],
            max_backoff=max(g["max_backoff"], g["poll_interval"]),
            backlog=g["backlog"],
            agents_interval=g["agents_interval"],
            webhook_secret=webhook_secret,
        ),
        mesos=MesosSettings(
            masters=m["master"],
            framework_name=m["framework_name"],
            role=m["role"],
            user=m["user"] or _current_user(),
            principal=m["principal"],
            secret=secret,
            failover_timeout=m["failover_timeout"],
            checkpoint=m["checkpoint"],
            driver=m["driver"],
            refuse_seconds=m["refuse_seconds"],
            verify_tls=m["verify_tls"],
            ca_bundle=m["ca_bundle"],
        ),
        agents=AgentSettings(
            go_server_url=a["go_server_url"] or g["url"],
            auto_register_key=key,
            hostname_prefix=a["hostname_prefix"],
            register_timeout=a["register_timeout"],
        ),
        profiles=tuple(p for p in profiles if p is not None),
        judge=JudgeSettings(
            max_launch_per_cycle=j["max_launch_per_cycle"],
            scale_down=j["scale_down"],
            stale_after=j["stale_after"],
            backoff_initial=j["backoff_initial"],
            backoff_max=j["backoff_max"],
            policy=j["policy"],
        ),
        state=StateSettings(dir=cfg["state"]["dir"]),
        ha=HaSettings(zookeeper=cfg["ha"]["zookeeper"]),
        http=HttpSettings(
            host=listen_host,
            port=listen_port,
            username=h["username"],
            password=http_password,
            token=http_token,
        ),
        logging=LoggingSettings(level=cfg["logging"]["level"].upper(), format=cfg["logging"]["format"]),
        source=path,
        secret_files=secret_files,
    )


def _current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a bare container
        return "root"


def _convert_profile(name: str, p: Any, path: str, problems: list[str], bad: set[str]) -> Profile | None:
    """The profile ``name``, or None after adding its problems; keys in ``bad``
    failed their checks already and still hold their text."""
    where = f"{path}: [profiles][{name}]"
    before = len(problems)
    if not _PROFILE_NAME_RE.match(name):
        problems.append(
            f"{where}: profile name must be ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, at most 63 characters"
        )
    if not bad & {"min", "max"} and p["min"] > p["max"]:
        problems.append(f"{where} min: {p['min']} is greater than max ({p['max']})")
    constraints = []
    for text in p["constraints"]:
        try:
            constraints.append(_parse_constraint(text))
        except ValueError as e:
            problems.append(f"{where} constraints: {e}")
    volumes = []
    for text in p["volumes"]:
        try:
            volumes.append(_parse_volume(text))
        except ValueError as e:
            problems.append(f"{where} volumes: {e}")
    env = dict(p.get("env", {}))
    for var in env:
        if not _ENV_NAME_RE.match(var):
            problems.append(f"{where}[env] {var}: not a valid environment variable name")
        elif var.startswith(_RESERVED_ENV) or var.startswith("GO_EA_"):
            problems.append(f"{where}[env] {var}: set by gocd-mesos itself; remove it")
    if not bad & {"network", "network_name"}:
        if p["network"] == "user" and not p["network_name"].strip():
            problems.append(f"{where} network_name: required with network = user")
        if p["network_name"].strip() and p["network"] != "user":
            problems.append(f"{where} network_name: only used with network = user")
    resources_ = tuple(r.strip() for r in p["resources"] if r.strip())
    environments = tuple(e.strip() for e in p["environments"] if e.strip())
    for value in resources_ + environments:
        if "," in value:
            problems.append(f"{where}: {value!r} contains a comma")
    if len(problems) > before or bad:
        return None
    return Profile(
        name=name,
        image=p["image"].strip(),
        cpus=p["cpus"],
        mem=p["mem"],
        disk=p["disk"],
        resources=resources_,
        environments=environments,
        min=p["min"],
        max=p["max"],
        idle_timeout=p["idle_timeout"],
        max_jobs=p["max_jobs"],
        constraints=tuple(constraints),
        containerizer=p["containerizer"],
        force_pull=p["force_pull"],
        network=p["network"],
        network_name=p["network_name"].strip(),
        volumes=tuple(volumes),
        env=tuple(sorted((k, str(v)) for k, v in env.items())),
    )


def format_value(value: Any) -> str:
    """A setting's value as the INI file spells it, a secret masked (``****``)."""
    if value is None:
        return "(not set)"
    if isinstance(value, Secret):
        return "****" if value else "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value) if value else "(none)"
    return str(value) if value != "" else "(not set)"


def render(settings: Settings) -> str:
    """The effective configuration as text, secrets masked: for ``--check-config``.

    Durations are in seconds, memory and disk in MB.
    """
    out = [f"# effective configuration from {settings.source or '(built in code)'}"]
    out.append("# durations in seconds, mem and disk in MB; secrets masked")
    for section in ("gocd", "mesos", "agents", "judge", "state", "ha", "http", "logging"):
        out.append(f"\n[{section}]")
        for f_ in dataclasses.fields(getattr(settings, section)):
            out.append(f"{f_.name} = {format_value(getattr(getattr(settings, section), f_.name))}")
    out.append("\n[profiles]")
    for profile in settings.profiles:
        out.append(f"  [[{profile.name}]]")
        for f_ in dataclasses.fields(profile):
            if f_.name in ("name", "env"):
                continue
            out.append(f"  {f_.name} = {format_value(getattr(profile, f_.name))}")
        if profile.env:
            out.append("    [[[env]]]")
            out.extend(f"    {k} = {v}" for k, v in profile.env)
    return "\n".join(out) + "\n"
