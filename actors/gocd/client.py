"""The GoCD API client: one session, a timeout on every call, XML and JSON to values.

:class:`GoCDClient` owns every HTTP call gocd-mesos makes to the GoCD server
(``gocd-api.md`` sections 1, 2, 3, 5 and 9.3): the scheduled-jobs backlog (the
feed, falling back to the old admin-only endpoint of GoCD <= 20.8), the
pipeline configs that tell elastic jobs apart, the agents API (v7, falling back
to v6, v5 and v4 for old servers), agent changes, how many jobs an agent has
finished (its job run history, GoCD >= 19.11.0), the version and the health
check.
It turns every failure into a :class:`~actors.exceptions.GoCDError` leaf that
carries ``method``, ``url`` and ``status`` and never a credential, and returns
immutable values (the message dataclasses). It keeps a little state (which
endpoint and API version worked, a per-pipeline cache) and is not thread-safe:
it runs only on the poller's thread.

The parsers (:func:`parse_scheduled_jobs`, :func:`parse_agents`, ...) are pure
functions, tolerant of unknown fields and enum values, strict about structure.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, NoReturn, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import requests
import requests.auth

from actors import __version__
from actors.clock import Clock
from actors.config import GoCDSettings, Secret
from actors.exceptions import (
    GoCDAuthError,
    GoCDBadResponse,
    GoCDConnectionError,
    GoCDError,
    GoCDNotFound,
    GoCDServerError,
    GoCDUnprocessable,
)
from actors.gocd.dashboard import (
    Dashboard,
    PipelineConfig,
    StageJob,
    TemplateConfig,
    parse_dashboard,
    parse_pipeline_config,
    parse_stage_jobs,
    parse_template_config,
)
from actors.messages import BuildDetails, GoAgent, ScheduledJob

__all__ = [
    "AGENTS_API_VERSIONS",
    "JOB_HISTORY_SINCE",
    "Fetched",
    "GoCDClient",
    "base_job_name",
    "make_session",
    "parse_agent",
    "parse_agents",
    "parse_job_history_total",
    "parse_pipeline_elastic_profiles",
    "parse_scheduled_jobs",
    "parse_xml",
    "version_tuple",
    "vnd",
]

logger = logging.getLogger(__name__)

#: The scheduled-jobs feed (GoCD >= 20.1; deprecated in 25.4.0).
FEED_JOBS_PATH = "/api/feed/jobs/scheduled.xml"
#: The old admin-only scheduled-jobs API (GoCD <= 20.8).
OLD_JOBS_PATH = "/api/jobs/scheduled.xml"
#: Agents API versions tried, newest first (``gocd-api.md`` 2.1).
AGENTS_API_VERSIONS = (7, 6, 5, 4)
#: Pipeline config API version that has ``elastic_profile_id`` on jobs (GoCD >= 20.8.0).
PIPELINE_CONFIG_API_VERSION = 11
#: Dashboard API version (GoCD 19.5.0 to now, ``gocd-api.md`` 8.1).
DASHBOARD_API_VERSION = 4
#: Stage instance API version (GoCD >= 20.9.0, ``gocd-api.md`` 9.1).
STAGE_API_VERSION = 3
#: Template config API version (GoCD >= 20.2.0, ``gocd-api.md`` 10.2).
TEMPLATE_API_VERSION = 7
#: First GoCD release with the agent job run history API (``gocd-api.md`` 9.3).
JOB_HISTORY_SINCE = (19, 11, 0)
#: Jobs per page asked of the job run history: GoCD's smallest, since only the total is read.
JOB_HISTORY_PAGE_SIZE = 10
#: Seconds a pipeline's elastic profiles are trusted before they are read again.
ELASTIC_CACHE_SECONDS = 300.0
#: Longest piece of a GoCD error body quoted in an exception.
_MAX_QUOTE = 200

_RUN_MARKER_RE = re.compile(r"^(?P<base>.+)-(?:runOnAll|runInstance)-\d+$")


def vnd(version: int) -> str:
    """The exact Accept value of GoCD API version ``version`` (GoCD wants nothing else)."""
    return f"application/vnd.go.cd.v{version}+json"


T = TypeVar("T")


@dataclass(frozen=True)
class Fetched(Generic[T]):
    """The answer to a conditional GET: a new value, or "not modified", or "not ready yet"."""

    #: 200 (``value`` is new), 304 (not modified since ``If-None-Match``: ``value`` is None)
    #: or 202 (the dashboard is still being built after GoCD started: ``value`` is None).
    status: int
    #: The parsed answer on 200; None otherwise.
    value: T | None = None
    #: The ``ETag`` to send back as ``If-None-Match``, exactly as GoCD sent it; None if none.
    etag: str | None = None


# --- session ------------------------------------------------------------------


class _BasicAuth(requests.auth.AuthBase):
    """HTTP basic auth whose password stays a Secret until the wire."""

    def __init__(self, username: str, password: Secret) -> None:
        self._username = username
        self._password = password

    def header(self) -> str:
        raw = f"{self._username}:{self._password.reveal()}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self.header()
        return request

    def __repr__(self) -> str:
        return f"_BasicAuth({self._username!r}, ****)"


class _BearerAuth(requests.auth.AuthBase):
    """A GoCD personal access token (GoCD >= 19.2)."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def header(self) -> str:
        return f"Bearer {self._token.reveal()}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self.header()
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(****)"


class _NoAuth(requests.auth.AuthBase):
    """No credentials, and none from ``~/.netrc``: GoCD answers 401 to credentials
    sent while its security is off."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request

    def __repr__(self) -> str:
        return "_NoAuth()"


def make_session(settings: GoCDSettings) -> requests.Session:
    """The one session of a client: auth (none, basic or bearer), Accept, User-Agent, TLS."""
    session = requests.Session()
    session.headers["User-Agent"] = f"gocd-mesos/{__version__}"
    # Every call sets its own exact Accept; this default is the agents API's.
    session.headers["Accept"] = vnd(AGENTS_API_VERSIONS[0])
    if settings.token:
        session.auth = _BearerAuth(settings.token)
    elif settings.username:
        session.auth = _BasicAuth(settings.username, settings.password)
    else:
        session.auth = _NoAuth()
    session.verify = settings.ca_bundle or settings.verify_tls
    return session


# --- parsing: pure --------------------------------------------------------------


class _NoDoctypeBuilder(ET.TreeBuilder):
    """A tree builder that refuses any DOCTYPE, hence any ENTITY declaration."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise ValueError(f"XML with a DOCTYPE ({name}) is refused: entity declarations are not expanded")


def parse_xml(data: bytes | str) -> ET.Element:
    """Parse ``data`` without DTDs or entity declarations; ValueError on any problem."""
    parser = ET.XMLParser(target=_NoDoctypeBuilder())
    try:
        parser.feed(data)
        root: ET.Element = parser.close()
    except ET.ParseError as e:
        raise ValueError(f"malformed XML: {e}") from None
    except LookupError as e:  # expat's answer to an encoding name Python does not know
        raise ValueError(f"malformed XML: {e}") from None
    return root


def _text(element: ET.Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def parse_scheduled_jobs(data: bytes | str) -> tuple[ScheduledJob, ...]:
    """The jobs of a ``scheduled.xml`` answer, either shape (``gocd-api.md`` 1.2), in order.

    The feed's job page is its ``alternate`` link; the old endpoint's is ``self``
    (and it has ``job@id``). ValueError when the document is not a job list.
    """
    root = parse_xml(data)
    if root.tag != "scheduledJobs":
        raise ValueError(f"expected <scheduledJobs>, got <{root.tag}>")
    jobs = []
    for element in root.findall("job"):
        locator = _text(element.find("buildLocator"))
        parts = locator.split("/")
        if len(parts) != 5 or not all(parts):
            raise ValueError(f"job {element.get('name')!r} has no valid buildLocator: {locator!r}")
        pipeline, pipeline_counter, stage, stage_counter, job_name = (unquote(p) for p in parts)
        try:
            counters = int(pipeline_counter), int(stage_counter)
        except ValueError:
            raise ValueError(f"buildLocator {locator!r} has non-numeric counters") from None
        links = {link.get("rel"): link.get("href", "") for link in element.findall("link")}
        raw_id = element.get("id")
        environment = _text(element.find("environment"))
        jobs.append(
            ScheduledJob(
                locator="/".join((pipeline, str(counters[0]), stage, str(counters[1]), job_name)),
                pipeline=pipeline,
                pipeline_counter=counters[0],
                stage=stage,
                stage_counter=counters[1],
                name=element.get("name") or job_name,
                environment=environment or None,
                resources=frozenset(
                    name for name in (_text(r) for r in element.findall("resources/resource")) if name
                ),
                variables=tuple(
                    (v.get("name", ""), v.text or "")
                    for v in element.findall("environmentVariables/variable")
                ),
                url=links.get("alternate") or links.get("self") or "",
                job_id=int(raw_id) if raw_id and raw_id.isdigit() else None,
            )
        )
    return tuple(jobs)


def _names(value: Any) -> tuple[str, ...]:
    """Strings from a list of strings, a list of ``{"name": …}`` objects or a comma-separated string."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return ()
    names = []
    for item in value:
        if isinstance(item, Mapping):
            item = item.get("name")
        if isinstance(item, str) and item.strip():
            names.append(item.strip())
    return tuple(names)


def _environments(value: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """An agent's environments: those GoCD joins it to, and the names stored on it that no
    environment defines (origin type ``unknown``, ``gocd-api.md`` 2.2), which GoCD ignores.
    Names without an origin (a plain list) are taken as defined."""
    if not isinstance(value, list):
        return _names(value), ()
    defined: list[Any] = []
    undefined: list[Any] = []
    for item in value:
        origin = item.get("origin") if isinstance(item, Mapping) else None
        unknown = isinstance(origin, Mapping) and origin.get("type") == "unknown"
        (undefined if unknown else defined).append(item)
    return _names(defined), _names(undefined)


def _href(links: Any, rel: str) -> str:
    if isinstance(links, Mapping) and isinstance(links.get(rel), Mapping):
        return str(links[rel].get("href", ""))
    return ""


def _str(value: Any, default: str = "") -> str:
    return default if value is None else str(value)


def _optional_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def parse_agent(obj: Any) -> GoAgent:
    """One agent object of the agents API, v4 to v7 (``gocd-api.md`` 2.2).

    Unknown fields are ignored and unknown enum values kept as sent;
    ``free_space: "unknown"`` becomes None. ValueError when ``obj`` is not an
    agent object (not an object, or no uuid).
    """
    if not isinstance(obj, Mapping) or not isinstance(obj.get("uuid"), str) or not obj["uuid"]:
        raise ValueError(f"not an agent object: {str(obj)[:_MAX_QUOTE]!r}")
    free_space = obj.get("free_space")
    environments, undefined = _environments(obj.get("environments", []))
    details = obj.get("build_details")
    build_details = None
    if isinstance(details, Mapping):
        build_details = BuildDetails(
            pipeline=_str(details.get("pipeline_name")),
            stage=_str(details.get("stage_name")),
            job=_str(details.get("job_name")),
            job_url=_href(details.get("_links"), "job"),
        )
    return GoAgent(
        uuid=obj["uuid"],
        hostname=_str(obj.get("hostname")),
        config_state=_str(obj.get("agent_config_state"), "Unknown"),
        agent_state=_str(obj.get("agent_state"), "Unknown"),
        build_state=_str(obj.get("build_state"), "Unknown"),
        ip_address=_str(obj.get("ip_address")),
        resources=_names(obj.get("resources", [])),
        environments=environments,
        undefined_environments=undefined,
        elastic_agent_id=_optional_str(obj.get("elastic_agent_id")),
        elastic_plugin_id=_optional_str(obj.get("elastic_plugin_id")),
        free_space=free_space if isinstance(free_space, int) and not isinstance(free_space, bool) else None,
        sandbox=_str(obj.get("sandbox")),
        operating_system=_str(obj.get("operating_system")),
        agent_version=_str(obj.get("agent_version")),
        build_details=build_details,
    )


def parse_agents(payload: Any) -> tuple[GoAgent, ...]:
    """The agents of a ``GET /go/api/agents`` answer (``_embedded.agents``), in listed order."""
    embedded = payload.get("_embedded") if isinstance(payload, Mapping) else None
    agents = embedded.get("agents") if isinstance(embedded, Mapping) else None
    if not isinstance(agents, list):
        raise ValueError("no _embedded.agents list in the agents answer")
    return tuple(parse_agent(agent) for agent in agents)


def parse_job_history_total(payload: Any) -> int:
    """How many jobs an agent has finished: ``pagination.total`` of its job run history
    (``GET /go/api/agents/:uuid/job_run_history``, ``gocd-api.md`` 9.3).

    ValueError when the answer has no such count (a non-negative integer).
    """
    pagination = payload.get("pagination") if isinstance(payload, Mapping) else None
    total = pagination.get("total") if isinstance(pagination, Mapping) else None
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise ValueError(f"no pagination.total count in the job run history: {str(payload)[:_MAX_QUOTE]!r}")
    return total


def version_tuple(version: str) -> tuple[int, ...]:
    """GoCD's ``25.1.0`` as ``(25, 1, 0)``, to compare releases; ``()`` when it holds no number."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def base_job_name(name: str) -> str:
    """The configured job name of ``<job>-runInstance-<n>`` / ``<job>-runOnAll-<n>`` jobs."""
    match = _RUN_MARKER_RE.match(name)
    return match.group("base") if match else name


def parse_pipeline_elastic_profiles(payload: Any) -> dict[tuple[str, str], str | None]:
    """``(stage, job)`` (case-folded, as GoCD compares names) to ``elastic_profile_id`` from a
    pipeline config answer (``GET /go/api/admin/pipelines/:name``, v11) or, for a templated
    pipeline, its template's (``GET /go/api/admin/templates/:name``, v7: the same stages)."""
    stages = payload.get("stages") if isinstance(payload, Mapping) else None
    if not isinstance(stages, list):
        raise ValueError("no stages list in the pipeline config")
    profiles: dict[tuple[str, str], str | None] = {}
    for stage in stages:
        if not isinstance(stage, Mapping) or not isinstance(stage.get("jobs"), list):
            continue
        for job in stage["jobs"]:
            if isinstance(job, Mapping) and isinstance(job.get("name"), str):
                key = (str(stage.get("name", "")).casefold(), job["name"].casefold())
                profiles[key] = _optional_str(job.get("elastic_profile_id"))
    return profiles


# --- the client -------------------------------------------------------------------


class GoCDClient:
    """Every call gocd-mesos makes to GoCD, over one injected session."""

    def __init__(
        self,
        settings: GoCDSettings,
        *,
        clock: Clock,
        session: requests.Session | None = None,
    ) -> None:
        parts = urlsplit(settings.url.rstrip("/"))
        if parts.username or parts.password:
            logger.warning("Ignoring credentials in the GoCD url: set [gocd] username and password instead")
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        #: Base URL, ending in ``/go``, without credentials.
        self.base_url = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        self._settings = settings
        self._clock = clock
        self._session = session if session is not None else make_session(settings)
        self._timeout = settings.timeout
        self._secrets = self._secret_texts(settings)
        self._jobs_path: str | None = None
        self._agents_version: int | None = None
        self._warned_deprecation = False
        self._warned_elastic = False
        self._pipelines: dict[str, tuple[float, dict[tuple[str, str], str | None] | None]] = {}

    @staticmethod
    def _secret_texts(settings: GoCDSettings) -> tuple[str, ...]:
        texts = [settings.password.reveal(), settings.token.reveal()]
        if settings.username:
            texts.append(_BasicAuth(settings.username, settings.password).header().split(" ", 1)[1])
        return tuple(t for t in texts if t)

    def close(self) -> None:
        """Close the session's connections."""
        self._session.close()

    # -- reading --

    def server_version(self) -> str:
        """GoCD's version, e.g. ``25.1.0`` (``GET /go/api/version``)."""
        obj = self._json("GET", "/api/version", self._call("GET", "/api/version", accept=vnd(1)))
        if not isinstance(obj, Mapping) or not isinstance(obj.get("version"), str):
            self._fail(GoCDBadResponse, "GET", "/api/version", 200, "no version in the answer")
        return str(obj["version"])

    def health(self) -> str:
        """GoCD's own health word, ``OK`` when healthy (``GET /go/api/v1/health``)."""
        obj = self._json("GET", "/api/v1/health", self._call("GET", "/api/v1/health", accept=vnd(1)))
        if not isinstance(obj, Mapping) or "health" not in obj:
            self._fail(GoCDBadResponse, "GET", "/api/v1/health", 200, "no health in the answer")
        return str(obj["health"])

    def scheduled_jobs(self) -> tuple[ScheduledJob, ...]:
        """The jobs waiting for an agent, in scheduled order, without elastic profiles.

        Reads the feed, or on 404 the old admin-only endpoint (GoCD <= 20.8),
        and remembers which one answered.
        """
        paths = [FEED_JOBS_PATH, OLD_JOBS_PATH]
        if self._jobs_path == OLD_JOBS_PATH:
            paths.reverse()
        for index, path in enumerate(paths):
            response = self._send("GET", path, accept="application/xml")
            if response.status_code == 404 and index + 1 < len(paths):
                continue
            if response.status_code == 403 and path == OLD_JOBS_PATH:
                self._fail(
                    GoCDAuthError,
                    "GET",
                    path,
                    403,
                    f"{self._who()} may not read the scheduled jobs: before 20.9 GoCD lets only admins do so",
                )
            self._check(response, "GET", path)
            if path != self._jobs_path:
                logger.info("Reading GoCD's scheduled jobs from %s%s", self.base_url, path)
                self._jobs_path = path
            self._warn_deprecation(response)
            try:
                return parse_scheduled_jobs(response.content)
            except ValueError as e:
                self._fail(GoCDBadResponse, "GET", path, response.status_code, str(e))
        raise AssertionError("unreachable")  # pragma: no cover

    def with_elastic_profiles(self, jobs: Iterable[ScheduledJob]) -> tuple[ScheduledJob, ...]:
        """``jobs`` with ``elastic_profile_id`` set from their pipelines' configs (a templated
        pipeline's from its template).

        Only jobs without resources can be elastic. Configs are cached for
        :data:`ELASTIC_CACHE_SECONDS`; a config that cannot be read (not an
        admin, old server, GoCD failing) leaves the profile None and is logged
        once. Never raises GoCDError.
        """
        result = []
        for job in jobs:
            if job.resources or job.elastic_profile_id is not None:
                result.append(job)
                continue
            profiles = self._pipeline_profiles(job.pipeline)
            key = (job.stage.casefold(), base_job_name(job.name).casefold())
            profile = profiles.get(key) if profiles else None
            result.append(replace(job, elastic_profile_id=profile) if profile else job)
        return tuple(result)

    def _pipeline_profiles(self, pipeline: str) -> dict[tuple[str, str], str | None] | None:
        now = self._clock.now()
        cached = self._pipelines.get(pipeline)
        if cached is not None and now < cached[0]:
            return cached[1]
        path = f"/api/admin/pipelines/{quote(pipeline, safe='')}"
        profiles: dict[tuple[str, str], str | None] | None
        try:
            response = self._call("GET", path, accept=vnd(PIPELINE_CONFIG_API_VERSION))
            payload = self._json("GET", path, response)
            template = payload.get("template") if isinstance(payload, Mapping) else None
            if isinstance(template, str) and template:
                # A templated pipeline's config has "stages": null; its jobs are the template's.
                path = f"/api/admin/templates/{quote(template, safe='')}"
                response = self._call("GET", path, accept=vnd(TEMPLATE_API_VERSION))
                payload = self._json("GET", path, response)
            try:
                profiles = parse_pipeline_elastic_profiles(payload)
            except ValueError as e:
                self._fail(GoCDBadResponse, "GET", path, response.status_code, str(e))
        except GoCDError as e:
            profiles = None
            if not self._warned_elastic:
                self._warned_elastic = True
                logger.warning(
                    "Cannot read pipeline configs to tell elastic jobs apart (%s); "
                    "jobs without resources are taken for normal jobs",
                    e,
                )
            else:
                logger.debug("Cannot read the config of pipeline %s: %s", pipeline, e)
        self._pipelines[pipeline] = (now + ELASTIC_CACHE_SECONDS, profiles)
        return profiles

    def dashboard(self, etag: str | None = None) -> Fetched[Dashboard]:
        """The dashboard (``GET /go/api/dashboard``, v4, ``gocd-api.md`` 8): 200 with the
        pipelines the user may view, 304 when ``etag`` still matches, 202 while GoCD is still
        building it after a start (no data yet: not an empty dashboard)."""
        path = "/api/dashboard"
        response = self._send("GET", path, accept=vnd(DASHBOARD_API_VERSION), etag=etag)
        if response.status_code in (202, 304):
            return Fetched(response.status_code, None, response.headers.get("ETag") or etag)
        return self._fetched(path, response, parse_dashboard)

    def stage_jobs(
        self, pipeline: str, pipeline_counter: int, stage: str, stage_counter: int
    ) -> tuple[StageJob, ...]:
        """The jobs of one stage run (``GET /go/api/stages/:p/:pc/:s/:sc``, v3, GoCD >= 20.9.0,
        ``gocd-api.md`` 9.1), sorted by name as GoCD sends them.

        GoCDServerError on a 500, which GoCD <= 25.4 answers for a stage scheduled a moment
        ago; GoCDNotFound when the pipeline or its run is gone; GoCDBadResponse when GoCD
        serves no such API (a 404 that is not JSON: GoCD before 20.9.0), so that a missing
        API is never taken for a stage without jobs.
        """
        path = "/api/stages/" + "/".join(
            quote(str(part), safe="") for part in (pipeline, pipeline_counter, stage, stage_counter)
        )
        response = self._send("GET", path, accept=vnd(STAGE_API_VERSION))
        self._served(response, path, f"v{STAGE_API_VERSION} stage instance API", "20.9.0")
        self._check(response, "GET", path)
        try:
            return parse_stage_jobs(self._json("GET", path, response))
        except ValueError as e:
            self._fail(GoCDBadResponse, "GET", path, response.status_code, str(e))

    def pipeline_config(self, name: str, etag: str | None = None) -> Fetched[PipelineConfig]:
        """A pipeline's raw config (``GET /go/api/admin/pipelines/:name``, v11, GoCD >= 20.8.0,
        ``gocd-api.md`` 10.1), or 304 when ``etag`` still matches.

        GoCDAuthError (403) unless the user is a super-admin or an admin of the pipeline's
        group; GoCDNotFound when the pipeline is not in the config; GoCDBadResponse when GoCD
        serves no such API (a 404 that is not JSON).
        """
        path = f"/api/admin/pipelines/{quote(name, safe='')}"
        return self._conditional(path, PIPELINE_CONFIG_API_VERSION, etag, parse_pipeline_config, "20.8.0")

    def template_config(self, name: str, etag: str | None = None) -> Fetched[TemplateConfig]:
        """A pipeline template (``GET /go/api/admin/templates/:name``, v7, GoCD >= 20.2.0,
        ``gocd-api.md`` 10.2), or 304 when ``etag`` still matches.

        GoCDAuthError (403) unless the user is a super-admin, an admin or viewer of the
        template, or a group admin where the template allows group admins.
        """
        path = f"/api/admin/templates/{quote(name, safe='')}"
        return self._conditional(path, TEMPLATE_API_VERSION, etag, parse_template_config, "20.2.0")

    def _conditional(
        self, path: str, version: int, etag: str | None, parse: Callable[[Any], T], since: str
    ) -> Fetched[T]:
        response = self._send("GET", path, accept=vnd(version), etag=etag)
        if response.status_code == 304:
            return Fetched(304, None, response.headers.get("ETag") or etag)
        self._served(response, path, f"v{version} of this API", since)
        return self._fetched(path, response, parse)

    def _served(self, response: requests.Response, path: str, api: str, since: str) -> None:
        """GoCDBadResponse when GoCD serves no such API here: a 404 that is not JSON (GoCD's
        text/plain or HTML page, not its JSON "not found"), never to be taken for a missing
        agent, stage or pipeline."""
        if response.status_code == 404 and "json" not in _content_type(response):
            self._fail(
                GoCDBadResponse,
                "GET",
                path,
                404,
                f"GoCD serves no {api} here (it came in GoCD {since}; check [gocd] url)",
            )

    def _fetched(self, path: str, response: requests.Response, parse: Callable[[Any], T]) -> Fetched[T]:
        self._check(response, "GET", path)
        try:
            value = parse(self._json("GET", path, response))
        except ValueError as e:
            self._fail(GoCDBadResponse, "GET", path, response.status_code, str(e))
        return Fetched(response.status_code, value, response.headers.get("ETag"))

    def agents(self) -> tuple[GoAgent, ...]:
        """Every agent GoCD knows (``GET /go/api/agents``)."""
        response = self._agents_call("GET", "/api/agents")
        payload = self._json("GET", "/api/agents", response)
        try:
            return parse_agents(payload)
        except ValueError as e:
            self._fail(GoCDBadResponse, "GET", "/api/agents", response.status_code, str(e))

    def agent(self, uuid: str) -> GoAgent:
        """One agent (``GET /go/api/agents/:uuid``); GoCDNotFound when GoCD does not know it."""
        return self._agent_answer("GET", uuid)

    def completed_job_count(self, uuid: str) -> int:
        """How many jobs GoCD has finished on the agent, from its job run history
        (``GET /go/api/agents/:uuid/job_run_history``, v1, admins only, GoCD >= 19.11.0).

        This is GoCD's ``pagination.total``: the agent's Completed jobs, whatever their
        result, plus those rescheduled away from it (``totalCompletedJobsOnAgent``); never
        the job it is building. GoCDNotFound when GoCD does not know the agent (a deleted
        agent's history goes with it); GoCDBadResponse when GoCD serves no such API (a
        404 page that is not JSON: GoCD before 19.11.0, or a wrong ``[gocd] url``), so that
        a missing API is never taken for a missing agent.
        """
        path = f"/api/agents/{quote(uuid, safe='')}/job_run_history"
        response = self._send("GET", f"{path}?page_size={JOB_HISTORY_PAGE_SIZE}", accept=vnd(1))
        self._served(response, path, "agent job run history", "19.11.0")
        self._check(response, "GET", path)
        try:
            return parse_job_history_total(self._json("GET", path, response))
        except ValueError as e:
            self._fail(GoCDBadResponse, "GET", path, response.status_code, str(e))

    # -- changing --

    def enable_agent(
        self,
        uuid: str,
        hostname: str | None = None,
        resources: Sequence[str] | None = None,
        environments: Sequence[str] | None = None,
    ) -> GoAgent:
        """Set the agent Enabled (approves a Pending one); the agent as GoCD returns it.

        ``hostname``, ``resources`` and ``environments`` (each None: unchanged) are set in
        the same PATCH; the lists replace the agent's.
        """
        body: dict[str, Any] = {"agent_config_state": "Enabled"}
        if hostname is not None:
            body["hostname"] = hostname
        if resources is not None:
            body["resources"] = list(resources)
        if environments is not None:
            body["environments"] = list(environments)
        return self._agent_answer("PATCH", uuid, body)

    def disable_agent(self, uuid: str) -> GoAgent:
        """Set the agent Disabled: it finishes its job and takes no new one."""
        return self._agent_answer("PATCH", uuid, {"agent_config_state": "Disabled"})

    def set_agents_config_state(self, uuids: Sequence[str], state: str) -> str:
        """Bulk PATCH ``agent_config_state`` (``Enabled``/``Disabled``); GoCD's message.

        All or nothing: GoCDNotFound when any uuid is unknown.
        """
        if not uuids:
            raise ValueError("no agent uuids given")
        body = {"uuids": list(uuids), "agent_config_state": state}
        return self._message("PATCH", "/api/agents", self._agents_call("PATCH", "/api/agents", body))

    def delete_agent(self, uuid: str) -> str:
        """Delete one agent; GoCD's message.

        GoCDUnprocessable (422, or 406 on GoCD <= 19.8) when it is not Disabled
        or still building; GoCDNotFound when GoCD does not know it.
        """
        path = f"/api/agents/{quote(uuid, safe='')}"
        return self._message("DELETE", path, self._agents_call("DELETE", path))

    def delete_agents(self, uuids: Sequence[str]) -> str:
        """Delete agents at once (all or nothing); GoCD's message."""
        if not uuids:
            raise ValueError("no agent uuids given")
        body = {"uuids": list(uuids)}
        return self._message("DELETE", "/api/agents", self._agents_call("DELETE", "/api/agents", body))

    # -- plumbing --

    def _agent_answer(self, method: str, uuid: str, body: Mapping[str, Any] | None = None) -> GoAgent:
        path = f"/api/agents/{quote(uuid, safe='')}"
        response = self._agents_call(method, path, body)
        try:
            return parse_agent(self._json(method, path, response))
        except ValueError as e:
            self._fail(GoCDBadResponse, method, path, response.status_code, str(e))

    def _agents_call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> requests.Response:
        """Call the agents API with the version that worked, else each from v7 down.

        A 404 that is not JSON means "no such API version here" (GoCD's
        text/plain or HTML page); a JSON 404 is GoCD's "agent not found".
        """
        versions = list(AGENTS_API_VERSIONS)
        if self._agents_version is not None:
            versions.remove(self._agents_version)
            versions.insert(0, self._agents_version)
        response = None
        for version in versions:
            response = self._send(method, path, accept=vnd(version), body=body)
            if response.status_code == 404 and "json" not in _content_type(response):
                continue
            self._check(response, method, path)
            if version != self._agents_version:
                logger.info("Using GoCD's agents API v%s at %s", version, self.base_url)
                self._agents_version = version
            return response
        assert response is not None
        self._fail(
            GoCDNotFound,
            method,
            path,
            404,
            "GoCD serves none of the agents API versions "
            f"v{AGENTS_API_VERSIONS[0]}..v{AGENTS_API_VERSIONS[-1]} here: check [gocd] url",
        )

    def _call(
        self, method: str, path: str, *, accept: str, body: Mapping[str, Any] | None = None
    ) -> requests.Response:
        response = self._send(method, path, accept=accept, body=body)
        self._check(response, method, path)
        return response

    def _send(
        self,
        method: str,
        path: str,
        *,
        accept: str,
        body: Mapping[str, Any] | None = None,
        etag: str | None = None,
    ) -> requests.Response:
        """One request (conditional with ``If-None-Match: etag``, sent back exactly as GoCD
        gave it); raises GoCDConnectionError when no answer comes, never a requests error."""
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        data = None
        if method != "GET":
            # Harmless everywhere, needed by some modifying calls (gocd-api.md 2.4).
            headers["X-GoCD-Confirm"] = "true"
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        try:
            return self._session.request(
                method,
                self.base_url + path,
                headers=headers,
                data=data,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            what = f"no answer within {self._timeout:g}s"
        except requests.exceptions.SSLError:
            what = "TLS failed (certificate not trusted? see [gocd] verify_tls and ca_bundle)"
        except requests.ConnectionError as e:
            what = _connection_reason(e)
        except requests.RequestException as e:
            # requests' own texts may hold the URL or headers: only the class name goes on.
            what = f"request failed ({type(e).__name__})"
        self._fail(GoCDConnectionError, method, path, None, what)

    def _check(self, response: requests.Response, method: str, path: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            if "text/html" in _content_type(response):
                self._fail(
                    GoCDBadResponse,
                    method,
                    path,
                    status,
                    "GoCD answered an HTML page, not the API: check that [gocd] url ends in /go "
                    "and that no login proxy stands in front",
                )
            return
        said = self._gocd_says(response)
        if 300 <= status < 400:
            # Only the path: a Location may carry a host with credentials or a token in its query.
            target = urlsplit(response.headers.get("Location", "")).path
            self._fail(
                GoCDBadResponse,
                method,
                path,
                status,
                f"GoCD redirected ({status}) to {target or '?'}: check that [gocd] url ends in /go "
                "and that no login proxy stands in front",
            )
        if status == 401:
            self._fail(GoCDAuthError, method, path, status, f"GoCD refused {self._who()} (401): {said}")
        if status == 403:
            self._fail(GoCDAuthError, method, path, status, f"{self._who()} may not do this (403): {said}")
        if status == 404:
            self._fail(GoCDNotFound, method, path, status, f"not found (404): {said}")
        if status >= 500:
            self._fail(GoCDServerError, method, path, status, f"GoCD failed ({status}): {said}")
        if 400 <= status < 500:
            self._fail(
                GoCDUnprocessable, method, path, status, f"GoCD refused the request ({status}): {said}"
            )
        self._fail(GoCDBadResponse, method, path, status, f"unexpected status {status}: {said}")

    def who(self) -> str:
        """Who the client calls GoCD as, for messages: ``user 'name'``, ``the access token``, or
        an anonymous request."""
        return self._who()

    def _who(self) -> str:
        if self._settings.token:
            return "the access token"
        if self._settings.username:
            return f"user {self._settings.username!r}"
        return "an anonymous request (no credentials configured)"

    @staticmethod
    def _gocd_says(response: requests.Response) -> str:
        """GoCD's error message (JSON ``message``/``error``, XML ``<message>``, or text)."""
        text = response.text.strip()
        ctype = _content_type(response)
        if "json" in ctype:
            try:
                obj = json.loads(text)
            except (ValueError, RecursionError):
                obj = None
            if isinstance(obj, Mapping):
                text = str(obj.get("message") or obj.get("error") or text)
        elif "xml" in ctype:
            with contextlib.suppress(ValueError):
                text = _text(parse_xml(text).find(".//message")) or text
        elif "html" in ctype:
            text = "an HTML page"
        text = " ".join(text.split())
        return (text[:_MAX_QUOTE] + "…" if len(text) > _MAX_QUOTE else text) or "(empty answer)"

    def _json(self, method: str, path: str, response: requests.Response) -> Any:
        try:
            return json.loads(response.content)
        except ValueError as e:
            self._fail(GoCDBadResponse, method, path, response.status_code, f"malformed JSON ({e})")
        except RecursionError:
            # json's C decoder recurses per level: a body nested thousands deep (a broken
            # proxy's, a hostile server's) is no answer either, and must not kill the poller.
            self._fail(
                GoCDBadResponse, method, path, response.status_code, "malformed JSON (nested too deep)"
            )

    def _message(self, method: str, path: str, response: requests.Response) -> str:
        obj = self._json(method, path, response)
        return str(obj.get("message", "")) if isinstance(obj, Mapping) else ""

    def _warn_deprecation(self, response: requests.Response) -> None:
        deprecated_in = response.headers.get("X-GoCD-API-Deprecated-In")
        if deprecated_in and not self._warned_deprecation:
            self._warned_deprecation = True
            after = {
                "auto": (
                    "gocd-mesos reads the backlog from the dashboard once the feed is gone "
                    "([gocd] backlog = auto)"
                ),
                "feed": "set [gocd] backlog = auto or dashboard before GoCD removes it",
            }
            logger.warning(
                "GoCD deprecated its scheduled-jobs feed in %s (removal announced for %s, see %s); %s",
                deprecated_in,
                response.headers.get("X-GoCD-API-Removal-In", "?"),
                response.headers.get("X-GoCD-API-Deprecation-Info", "the GoCD changelog"),
                after.get(self._settings.backlog, "gocd-mesos reads the backlog from the dashboard"),
            )

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "****")
        return text

    def _fail(self, kind: type[GoCDError], method: str, path: str, status: int | None, what: str) -> NoReturn:
        url = self.base_url + path
        raise kind(self._scrub(f"{method} {url} failed: {what}"), method=method, url=url, status=status)


def _content_type(response: requests.Response) -> str:
    return response.headers.get("Content-Type", "").lower()


#: Words in a connection error, and what they mean to an operator.
_CONNECTION_REASONS = (
    ("refused", "connection refused (is GoCD running, and is [gocd] url right?)"),
    ("reset", "connection reset by GoCD"),
    ("aborted", "connection reset by GoCD"),
    ("RemoteDisconnected", "GoCD closed the connection without answering"),
    ("Name or service not known", "host name not found"),
    ("nodename nor servname", "host name not found"),
    ("getaddrinfo", "host name not found"),
    ("timed out", "connection timed out"),
)


def _connection_reason(error: requests.ConnectionError) -> str:
    """A fixed phrase for a connection error: requests' text may carry the URL."""
    text = repr(error)
    for word, reason in _CONNECTION_REASONS:
        if word in text:
            return reason
    return "cannot connect"
