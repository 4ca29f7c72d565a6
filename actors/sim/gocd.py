"""A GoCD server simulator on loopback, faithful to the wire of ``gocd-api.md``.

:class:`GoCDSimulator` serves, over real HTTP (stdlib ``ThreadingHTTPServer``
on 127.0.0.1), what gocd-mesos and GoCD agents use of a GoCD server, with the
real formats, status codes and quirks: the scheduled-jobs feed and the old
admin-only endpoint (chosen by the simulated version), the agents API v4-v7
with GoCD's exact-Accept rule, PATCH and DELETE rules and bodies, the agent job
run history (v1, GoCD >= 19.11.0), the pipeline config API (v11, for elastic
profiles), version and health, basic and bearer auth, maintenance mode, the
agents' registration handshake and remoting API.
It models jobs (scheduled, assigned by GoCD's own rule, :mod:`actors.sim.gocd_assignment`,
when an agent asks for work, completed when the agent reports) and agents (Pending,
Enabled, Disabled; LostContact after ``agent_timeout`` of silence). Time is
the injected Clock; nothing runs in the background: silence is judged lazily
from timestamps.

Simplifications (documented, not GoCD's): the agent remoting calls take and
give small JSON bodies of our own (see :meth:`GoCDSimulator._remoting`), not
GoCD's serialized Java objects; there are no pipeline permissions, templates,
config repos, job cancellation, rescheduling or reruns; agent resource names
are not validated.

Test controls (not GoCD's API) live under ``/_sim/`` and as Python methods:
``POST /_sim/jobs``, ``GET /_sim/state``, ``POST /_sim/faults``.

Run standalone with ``python -m actors.sim.gocd --port 8153``.
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import hmac
import json
import logging
import re
import socket
import struct
import sys
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape, quoteattr

from actors.clock import Clock, RealClock, ScaledClock
from actors.sim import serve_until_signal
from actors.sim.gocd_assignment import EnvironmentPipelineMatchers, find_matching_job, is_elastic

__all__ = ["GoCDSimulator", "main"]

logger = logging.getLogger(__name__)

#: GoCD's SparkPreFilter answer to a wrong Accept header (text/plain).
#: How many answered requests ``GoCDSimulator.requests`` keeps.
REQUEST_LOG = 10_000
NOT_FOUND_TEXT = "The url you are trying to reach appears to be incorrect."
#: GoCD's Rails "unresolved" page, for routes no controller serves (body unconfirmed).
NOT_FOUND_HTML = (
    "<!DOCTYPE html>\n<html>\n<head><title>404 - Not found</title></head>\n"
    f"<body><h1>{NOT_FOUND_TEXT}</h1></body>\n</html>\n"
)
NOT_AUTHENTICATED = "You are not authenticated!"
BAD_CREDENTIALS = (
    "Invalid credentials. Either your username and password are incorrect, or there is a problem with your "
    "browser cookies. Please check with your administrator."
)
BAD_TOKEN = "Invalid Personal Access Token."
BASIC_NOT_REQUIRED = (
    "Basic authentication credentials are not required, since security has been disabled on this server."
)
# The reference names only "the Bearer equivalent"; this wording is ours.
BEARER_NOT_REQUIRED = (
    "Bearer authentication credentials are not required, since security has been disabled on this server."
)
FORBIDDEN_ACTION = "You are not authorized to perform this action."
FORBIDDEN_RESOURCE = "You are not authorized to access this resource!"
MAINTENANCE_BODY = '{"message":"Server is in maintenance mode, please try later."}'
DELETE_REFUSED_ONE = (
    "Your request could not be processed. Failed to delete an agent, as it is not in a disabled state "
    "or is still building."
)
DELETE_REFUSED_MANY = (
    "Your request could not be processed. Could not delete any agents, as one or more agents might not "
    "be disabled or are still building."
)
BAD_CONFIG_STATE = "The value of `agent_config_state` can be one of `Enabled`, `Disabled` or null."
#: The agent job run history's 400 answers, from ``gocd@26.1.0:api/api-agent-job-history-v1/src/main/java/
#: com/thoughtworks/go/apiv1/agentjobhistory/AgentJobHistoryControllerV1.java`` (the same since 19.11.0;
#: the sort messages name ``column``/``order``, not the parameters, as GoCD does).
BAD_PAGE_SIZE = "The query parameter `page_size`, if specified must be a number between 10 and 100."
BAD_OFFSET = "The query parameter `offset`, if specified must be a number greater or equal to 0."
BAD_SORT_COLUMN = (
    "The query parameter `column` must be one of pipeline, stage, job, result, completed, duration"
)
BAD_SORT_ORDER = "The query parameter `order` must be one of ASC, DESC"
#: Deprecation headers of the Feeds API from 25.4.0 (``gocd-api.md`` 1.1); the Warning text is ours.
FEED_DEPRECATION_HEADERS = (
    ("X-GoCD-API-Deprecated-In", "v25.4.0"),
    ("X-GoCD-API-Removal-In", "v25.1.0"),
    ("X-GoCD-API-Deprecation-Info", "https://api.gocd.org/25.4.0/#api-changelog"),
    ("Warning", '299 GoCD/v25.4.0 "The Feeds API has been deprecated."'),
)
#: The twelve form fields of an agent's registration POST (``gocd-api.md`` 4.5).
REGISTRATION_FIELDS = (
    "hostname",
    "uuid",
    "location",
    "usablespace",
    "operatingSystem",
    "agentAutoRegisterKey",
    "agentAutoRegisterResources",
    "agentAutoRegisterEnvironments",
    "agentAutoRegisterHostname",
    "elasticAgentId",
    "elasticPluginId",
    "token",
)
_VND_RE = re.compile(r"^application/vnd\.go\.cd\.v(\d+)\+json$")
#: What Java's ``Integer.parseInt`` takes: a sign, then decimal digits (any script's, as Python's \d).
_JAVA_INT_RE = re.compile(r"^[+-]?\d+$")
_JOB_RUN_HISTORY = "/job_run_history"
_GENERIC_VND = "application/vnd.go.cd+json"
_RESET = object()


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def _csv(value: Any) -> list[str]:
    if isinstance(value, str):
        value = value.split(",")
    return [str(v).strip() for v in value or () if str(v).strip()]


def _jackson(obj: Any) -> bytes:
    """Pretty JSON the way the agents controllers write it (Jackson: ``"key" : value``)."""
    return (json.dumps(obj, indent=2, separators=(",", " : ")) + "\n").encode()


def _iso8601(wall: float) -> str:
    """Wall-clock seconds as GoCD's JSON dates: ISO-8601 UTC, whole seconds (``ISO8601Utils.format(date,
    false)`` in ``JsonOutputWriter.jsonDate``), e.g. ``2026-07-10T09:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))


def _java_int(text: str) -> int | None:
    """``text`` as Java's ``Integer.parseInt`` reads it, or None where that throws."""
    if not _JAVA_INT_RE.match(text):
        return None
    value = int(text)
    return value if -(2**31) <= value < 2**31 else None


def _gson(message: str, key: str = "message") -> bytes:
    """A pretty error body the way GoCD's Gson writes it."""
    return json.dumps({key: message}, indent=2).encode()


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Job:
    locator: str
    pipeline: str
    pipeline_counter: int
    stage: str
    name: str
    config_name: str
    resources: tuple[str, ...]
    environment: str | None
    elastic_profile_id: str | None
    duration_s: float
    variables: tuple[tuple[str, str, bool], ...]
    job_id: int
    scheduled_at: float
    state: str = "scheduled"
    assigned_at: float | None = None
    completed_at: float | None = None
    #: The agent running (or that ran) the job; GoCD's ``JobInstance.agentUuid``, which on a
    #: scheduled job pins it to one agent ("run on all agents": the simulator schedules none).
    agent_uuid: str | None = None
    #: ``Passed``, ``Failed`` or ``Cancelled`` once completed; ``Unknown`` before.
    result: str = "Unknown"
    #: GoCD's job state transitions, ``(state, clock time)``, oldest first.
    transitions: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class _Agent:
    uuid: str
    hostname: str
    ip: str
    config_state: str  # Pending | Enabled | Disabled
    runtime: str = "Idle"  # Idle | Building | Cancelled | Missing | Unknown (LostContact is computed)
    resources: list[str] = field(default_factory=list)
    environments: list[str] = field(default_factory=list)
    elastic_agent_id: str | None = None
    elastic_plugin_id: str | None = None
    free_space: int | None = None
    sandbox: str = ""
    operating_system: str = ""
    agent_version: str = "UNKNOWN"
    last_heard: float = 0.0
    cookie: str | None = None
    job: str | None = None


@dataclass
class _Fault:
    kind: str
    status: int
    delay_s: float
    count: int | None
    until: float | None
    path_prefix: str


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any
    body: bytes
    peer: str

    @property
    def accept(self) -> str:
        return self.headers.get("Accept", "") or ""

    def base(self) -> str:
        return f"http://{self.headers.get('Host', '127.0.0.1')}/go"


class GoCDSimulator:
    """A simulated GoCD server; see the module docstring.

    Security is on when ``username`` or ``token`` is given; that user (or the
    token's) is an admin when ``admin``. ``version`` picks the endpoints and
    API versions served (``gocd-api.md`` 1.1, 2.1).
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        version: str = "25.1.0",
        auto_register_key: str = "",
        username: str = "",
        password: str = "",
        token: str = "",
        admin: bool = True,
        agent_timeout: float = 300.0,
        max_pending: int = 100,
        environments: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the simulator listens on loopback only")
        self.clock = clock or RealClock()
        self.version = version
        self._version = _version_tuple(version)
        self.auto_register_key = auto_register_key
        self._users = {username: password} if username else {}
        self._token = token
        self.admin = admin
        self.agent_timeout = agent_timeout
        self.max_pending = max_pending
        self._host = host
        self._port = port
        self._token_key = uuidlib.uuid4().hex.encode()
        self._cond = threading.Condition(threading.RLock())
        self._jobs: list[_Job] = []
        self._counters: dict[str, int] = {}
        self._job_ids = iter(range(1001, 10**9))
        self._configs: dict[str, dict[str, dict[str, tuple[tuple[str, ...], str | None, int]]]] = {}
        self._agents: dict[str, _Agent] = {}
        #: Defined environments' names, lower-cased as ``CaseInsensitiveString`` compares them.
        self._environments = {e.lower() for e in environments}
        self._faults: list[_Fault] = []
        self._maintenance = False
        self._stopping = threading.Event()
        #: The last GoCD requests answered (at most REQUEST_LOG), as (method, path, status or None
        #: for a reset); bounded so that a long benchmark does not grow the simulator.
        self.requests: collections.deque[tuple[str, str, int | None]] = collections.deque(maxlen=REQUEST_LOG)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # --- lifecycle --------------------------------------------------------------

    def start(self) -> str:
        """Start serving; returns the base URL, ``http://127.0.0.1:<port>/go``."""
        handler = type("Handler", (_Handler,), {"sim": self})
        self._server = ThreadingHTTPServer((self._host, self._port), handler)
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            name=f"gocd-sim-{port}",
            kwargs={"poll_interval": 0.1},
            daemon=True,
        )
        self._thread.start()
        self.url = f"http://{self._host}:{port}/go"
        logger.info("GoCD simulator %s listening on %s", self.version, self.url)
        return self.url

    def stop(self) -> None:
        """Stop serving and release any answer held by a latency fault."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> GoCDSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- test controls ----------------------------------------------------------

    def schedule_jobs(
        self,
        pipeline: str,
        stage: str = "build",
        job: str = "job",
        count: int = 1,
        resources: Iterable[str] = (),
        environment: str | None = None,
        elastic_profile_id: str | None = None,
        duration_s: float = 30.0,
        variables: dict[str, str] | None = None,
        secure_variables: dict[str, str] | None = None,
    ) -> list[str]:
        """Trigger a new run of ``pipeline`` whose ``stage`` has ``count`` instances of ``job``.

        Each call is a new pipeline counter (stage counter 1). With ``count`` > 1
        the jobs are named ``<job>-runInstance-<n>`` as GoCD names "run N
        instances" jobs. Returns the build locators.
        """
        resources = tuple(r.strip() for r in resources if r.strip())
        if count < 1:
            raise ValueError("count must be at least 1")
        if resources and elastic_profile_id:
            raise ValueError("a job has resources or an elastic profile, never both")
        variables_ = tuple((k, v, False) for k, v in (variables or {}).items()) + tuple(
            (k, v, True) for k, v in (secure_variables or {}).items()
        )
        with self._cond:
            counter = self._counters.get(pipeline, 0) + 1
            self._counters[pipeline] = counter
            stages = self._configs.setdefault(pipeline, {})
            stages.setdefault(stage, {})[job] = (resources, elastic_profile_id, count)
            if environment:
                self._environments.add(environment.lower())
            now = self.clock.now()
            locators = []
            for n in range(1, count + 1):
                name = job if count == 1 else f"{job}-runInstance-{n}"
                locator = f"{pipeline}/{counter}/{stage}/1/{name}"
                self._jobs.append(
                    _Job(
                        locator=locator,
                        pipeline=pipeline,
                        pipeline_counter=counter,
                        stage=stage,
                        name=name,
                        config_name=job,
                        resources=resources,
                        environment=environment or None,
                        elastic_profile_id=elastic_profile_id or None,
                        duration_s=float(duration_s),
                        variables=variables_,
                        job_id=next(self._job_ids),
                        scheduled_at=now,
                        transitions=[("Scheduled", now)],
                    )
                )
                locators.append(locator)
            self._cond.notify_all()
        logger.info("Scheduled %d jobs of pipeline %s", count, pipeline)
        return locators

    def state(self) -> dict[str, Any]:
        """Jobs and agents as ``GET /_sim/state`` shows them (times in clock seconds)."""
        with self._cond:
            now = self._refresh()
            return {
                "jobs": [
                    {
                        "locator": j.locator,
                        "state": j.state,
                        "scheduled_at": j.scheduled_at,
                        "assigned_at": j.assigned_at,
                        "completed_at": j.completed_at,
                        "agent_uuid": j.agent_uuid,
                    }
                    for j in self._jobs
                ],
                "agents": [
                    {
                        "uuid": a.uuid,
                        "hostname": a.hostname,
                        "config_state": a.config_state,
                        "agent_state": self._agent_state(a, now),
                        "build_state": self._build_state(a, now),
                        "resources": sorted(a.resources),
                        "environments": sorted(a.environments),
                    }
                    for a in self._agents.values()
                ],
            }

    def inject_fault(
        self,
        kind: str,
        *,
        status: int = 500,
        delay_s: float = 0.0,
        count: int | None = None,
        seconds: float | None = None,
        path_prefix: str = "/go/api/",
    ) -> None:
        """Make matching requests fail: ``status`` (answer that status), ``latency``
        (answer ``delay_s`` clock seconds late), ``malformed`` (cut the body in
        half), ``reset`` (drop the connection).

        The fault lasts ``count`` requests and/or ``seconds`` of clock time
        (neither given: one request), for paths starting with ``path_prefix``
        (default: the API, so agents keep working). ``/_sim/`` is never faulted.
        """
        if kind not in ("status", "latency", "malformed", "reset"):
            raise ValueError(f"unknown fault kind {kind!r}")
        if count is None and seconds is None:
            count = 1
        with self._cond:
            until = self.clock.now() + seconds if seconds is not None else None
            self._faults.append(_Fault(kind, int(status), float(delay_s), count, until, path_prefix))

    def clear_faults(self) -> None:
        """Remove every fault."""
        with self._cond:
            self._faults.clear()

    def set_maintenance_mode(self, on: bool) -> None:
        """Maintenance mode: no job is assigned, every non-GET API call answers 503."""
        with self._cond:
            self._maintenance = on

    def add_agent(
        self,
        hostname: str,
        *,
        uuid: str | None = None,
        config_state: str = "Enabled",
        runtime: str = "Idle",
        resources: Iterable[str] = (),
        environments: Iterable[str] = (),
        elastic_agent_id: str | None = None,
        elastic_plugin_id: str | None = None,
        free_space: int | None = 10 * 1024**3,
        ip: str = "127.0.0.1",
        building: str | None = None,
    ) -> str:
        """Register an agent directly (no process behind it); returns its uuid.

        It counts as heard from now, so it turns LostContact after
        ``agent_timeout`` unless someone pings for it. ``building`` (a locator of
        a scheduled job) puts it to work on that job.
        """
        with self._cond:
            agent = _Agent(
                uuid=uuid or str(uuidlib.uuid4()),
                hostname=hostname,
                ip=ip,
                config_state=config_state,
                runtime="Unknown" if config_state == "Pending" else runtime,
                resources=[] if elastic_agent_id else sorted(_csv(list(resources))),
                environments=sorted(_csv(list(environments))),
                elastic_agent_id=elastic_agent_id,
                elastic_plugin_id=elastic_plugin_id,
                free_space=free_space,
                sandbox="/go-working-dir",
                operating_system="Linux",
                agent_version=self.version,
                last_heard=self.clock.now(),
            )
            self._agents[agent.uuid] = agent
            if building is not None:
                job = next((j for j in self._jobs if j.locator == building and j.state == "scheduled"), None)
                if job is None:
                    raise ValueError(f"no scheduled job {building!r}")
                self._assign(job, agent, self.clock.now())
            self._cond.notify_all()
            return agent.uuid

    def agent_token(self, uuid: str) -> str:
        """The token this server issues to ``uuid``: base64 HMAC-SHA256 (``gocd-api.md`` 4.5)."""
        digest = hmac.new(self._token_key, uuid.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> bool:
        """Block until ``predicate(self.state())`` holds (re-checked on every change); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.state()), timeout)

    # --- model ------------------------------------------------------------------

    def _refresh(self) -> float:
        """Drop pending agents silent for ``agent_timeout`` (GoCD forgets them); now."""
        now = self.clock.now()
        for uuid, agent in list(self._agents.items()):
            if agent.config_state == "Pending" and now - agent.last_heard > self.agent_timeout:
                del self._agents[uuid]
                logger.info(
                    "Dropped pending agent %s after %gs of silence", agent.hostname, self.agent_timeout
                )
        return now

    def _runtime(self, agent: _Agent, now: float) -> str:
        if agent.config_state == "Pending":
            return "Unknown"
        if now - agent.last_heard > self.agent_timeout:
            return "LostContact"
        return agent.runtime

    def _agent_state(self, agent: _Agent, now: float) -> str:
        runtime = self._runtime(agent, now)
        return "Building" if runtime == "Cancelled" else runtime

    def _build_state(self, agent: _Agent, now: float) -> str:
        runtime = self._runtime(agent, now)
        return "Unknown" if runtime in ("LostContact", "Missing", "Unknown") else runtime

    def _assign(self, job: _Job, agent: _Agent, now: float) -> None:
        job.state, job.assigned_at, job.agent_uuid = "building", now, agent.uuid
        job.transitions.append(("Assigned", now))
        agent.runtime, agent.job = "Building", job.locator
        logger.info("Assigned job %s to agent %s", job.locator, agent.hostname)

    def _next_job_for(self, agent: _Agent) -> _Job | None:
        """GoCD's ``BuildAssignmentService.assignWorkToAgent``: the job this agent gets, or None.

        Pending and disabled agents get nothing; in maintenance mode GoCD stops
        reloading its job list, which the simulator keeps simple as no work at all.
        """
        if self._maintenance or agent.config_state != "Enabled" or agent.runtime != "Idle":
            return None
        scheduled = [job for job in self._jobs if job.state == "scheduled"]
        return find_matching_job(agent, scheduled, EnvironmentPipelineMatchers(self._environments))

    def _take_fault(self, path: str) -> _Fault | None:
        with self._cond:
            now = self.clock.now()
            self._faults = [
                f
                for f in self._faults
                if (f.count is None or f.count > 0) and (f.until is None or now < f.until)
            ]
            for fault in self._faults:
                if path.startswith(fault.path_prefix):
                    if fault.count is not None:
                        fault.count -= 1
                    return fault
        return None

    # --- HTTP dispatch ----------------------------------------------------------

    def handle(self, request: _Request) -> _Response | object:
        """Answer one request (called on the server's handler threads)."""
        if request.path.startswith("/_sim/"):
            return self._control(request)
        fault = self._take_fault(request.path)
        response: _Response | None = None
        if fault is not None and fault.kind == "reset":
            self._log(request, None)
            return _RESET
        if fault is not None and fault.kind == "status":
            response = _Response(
                fault.status, _gson(f"Simulated fault: HTTP {fault.status}"), "application/json;charset=utf-8"
            )
            if 300 <= fault.status < 400:
                response.headers.append(("Location", f"{request.base()}/auth/login"))
        if fault is not None and fault.kind == "latency":
            self.clock.wait(self._stopping, fault.delay_s)
        if response is None:
            with self._cond:
                self._refresh()
                response = self._route(request)
                self._cond.notify_all()
        if fault is not None and fault.kind == "malformed" and response.body:
            response.body = response.body[: max(1, len(response.body) // 2)]
        self._log(request, response.status)
        return response

    def _log(self, request: _Request, status: int | None) -> None:
        with self._cond:
            self.requests.append((request.method, request.path, status))

    def _route(self, r: _Request) -> _Response:
        path = r.path
        if path == "/go/admin/agent/token" and r.method == "GET":
            return self._token_request(r)
        if path == "/go/admin/agent" and r.method == "POST":
            return self._register(r)
        if path.startswith("/go/remoting/api/agent/") and r.method == "POST":
            return self._remoting(r, path.rsplit("/", 1)[1])
        if path.startswith("/go/api/"):
            return self._api(r)
        return _html_404()

    # --- /go/api ------------------------------------------------------------------

    def _api(self, r: _Request) -> _Response:
        is_xml = r.path.endswith(".xml")
        user, problem = self._authenticate(r)
        if problem is not None:
            return self._unauthorized(r, problem, is_xml)
        public = r.path in ("/go/api/v1/health", "/go/api/version")
        if self._security_on() and user is None and not public:
            return self._unauthorized(r, NOT_AUTHENTICATED, is_xml)
        if self._maintenance and r.method not in ("GET", "HEAD"):
            return _Response(503, MAINTENANCE_BODY.encode(), "application/json;charset=utf-8")
        is_admin = not self._security_on() or self.admin
        if r.path == "/go/api/v1/health" and r.method == "GET" and self._version >= (17, 11):
            return _Response(200, b'{"health": "OK"}\n', "application/vnd.go.cd.v1+json;charset=utf-8")
        if r.path == "/go/api/feed/jobs/scheduled.xml" and self._version >= (20, 6):
            if r.method != "GET" or "vnd.go.cd" in r.accept:
                return _html_404()
            return self._feed(r)
        if r.path == "/go/api/jobs/scheduled.xml" and self._version < (20, 9):
            if r.method != "GET":
                return _html_404()
            if not is_admin:
                return _xml_error(403, "access-denied", FORBIDDEN_RESOURCE)
            return self._old_feed(r)
        if r.path.startswith("/go/api/feed/") or r.path == "/go/api/jobs/scheduled.xml":
            return _html_404()
        # SparkPreFilter: the whole Accept header must be a known API version.
        version = self._accepted_version(r.accept)
        if version is None:
            return _Response(404, NOT_FOUND_TEXT.encode(), "text/plain;charset=utf-8")
        if r.path == "/go/api/version" and r.method == "GET" and version == 1 and self._version >= (16, 6):
            return self._version_response(r)
        if r.path.startswith("/go/api/agents/") and r.path.endswith(_JOB_RUN_HISTORY):
            return self._job_run_history(r, version, is_admin)
        if r.path == "/go/api/agents" or r.path.startswith("/go/api/agents/"):
            served = self._agents_api_versions()
            if version == 0 and self._version >= (19, 8) and served:
                version = max(served)
            if version not in served:
                return _html_404()
            ctype = f"application/vnd.go.cd.v{version}+json;charset=utf-8"
            if r.method in ("PATCH", "DELETE") and not is_admin:
                return _Response(403, _gson(FORBIDDEN_ACTION), ctype)
            return self._agents_api(r, version, ctype)
        if r.path.startswith("/go/api/admin/pipelines/") and r.method == "GET":
            if version not in (0, 11):
                return _html_404()
            ctype = "application/vnd.go.cd.v11+json;charset=utf-8"
            if not is_admin:
                return _Response(403, _gson(FORBIDDEN_ACTION), ctype)
            return self._pipeline_config(r, unquote(r.path[len("/go/api/admin/pipelines/") :]), ctype)
        return _html_404()

    def _security_on(self) -> bool:
        return bool(self._users or self._token)

    def _authenticate(self, r: _Request) -> tuple[str | None, str | None]:
        """The signed-in user (or None) and a 401 message when the credentials are refused."""
        header = r.headers.get("Authorization", "") or ""
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        bearer_supported = self._version >= (19, 2)
        if scheme == "basic":
            if not self._security_on():
                return None, BASIC_NOT_REQUIRED
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except ValueError:
                return None, BAD_CREDENTIALS
            if user in self._users and hmac.compare_digest(self._users[user], password):
                return user, None
            return None, BAD_CREDENTIALS
        if scheme == "bearer" and bearer_supported:
            if not self._security_on():
                return None, BEARER_NOT_REQUIRED
            if self._token and hmac.compare_digest(self._token, value.strip()):
                return "token-user", None
            return None, BAD_TOKEN
        return None, None

    def _unauthorized(self, r: _Request, message: str, is_xml: bool) -> _Response:
        headers = []
        if r.headers.get("X-Requested-With", "") != "XMLHttpRequest":
            headers.append(("WWW-Authenticate", 'Basic realm="GoCD"'))
        if is_xml or "xml" in r.accept:
            response = _xml_error(401, "access-denied", message)
        else:
            ctype = r.accept if _VND_RE.match(r.accept) else "application/json"
            response = _Response(401, _gson(message), f"{ctype};charset=utf-8")
        response.headers.extend(headers)
        return response

    def _accepted_version(self, accept: str) -> int | None:
        """N for ``application/vnd.go.cd.vN+json`` (N in 1..11), 0 for the generic alias, else None."""
        if accept == _GENERIC_VND:
            return 0 if self._version >= (19, 8) else None
        match = _VND_RE.match(accept)
        if match and 1 <= int(match.group(1)) <= 11:
            return int(match.group(1))
        return None

    def _agents_api_versions(self) -> set[int]:
        v = self._version
        served = set()
        if (16, 10) <= v < (19, 9):
            served.add(4)
        if (19, 3) <= v < (19, 9):
            served.add(5)
        if (19, 9) <= v < (20, 8):
            served.add(6)
        if v >= (20, 5):
            served.add(7)
        return served

    def _version_response(self, r: _Request) -> _Response:
        sha = hashlib.sha1(self.version.encode()).hexdigest()
        build = "20001"
        body = {
            "_links": {
                "self": {"href": f"{r.base()}/api/version"},
                "doc": {"href": "https://api.gocd.org/#version"},
            },
            "version": self.version,
            "build_number": build,
            "git_sha": sha,
            "full_version": f"{self.version} ({build}-{sha})",
            "commit_url": f"https://github.com/gocd/gocd/commit/{sha}",
        }
        return _Response(200, _jackson(body), "application/vnd.go.cd.v1+json;charset=utf-8")

    # --- scheduled jobs ---------------------------------------------------------

    def _scheduled(self) -> list[_Job]:
        return [j for j in self._jobs if j.state == "scheduled"]

    def _job_xml(self, job: _Job, base: str, feed: bool) -> list[str]:
        locator = "/".join(
            quote(p, safe="") for p in (job.pipeline, str(job.pipeline_counter), job.stage, "1", job.name)
        )
        detail = f"{base}/tab/build/detail/{locator}"
        if feed:
            lines = [
                f"  <job name={quoteattr(job.name)}>",
                f'    <link rel="self" href={quoteattr(f"{base}/api/feed/pipelines/{locator}.xml")}/>',
                f'    <link rel="alternate" href={quoteattr(detail)} '
                f'title={quoteattr(job.name + " Job Detail")} type="text/html"/>',
            ]
        else:
            lines = [
                f'  <job name={quoteattr(job.name)} id="{job.job_id}">',
                f'    <link rel="self" href={quoteattr(detail)}/>',
            ]
        lines.append(f"    <buildLocator>{escape(locator)}</buildLocator>")
        if job.environment:
            lines.append(f"    <environment>{escape(job.environment)}</environment>")
        if job.resources:
            lines.append("    <resources>")
            lines.extend(f"      <resource><![CDATA[{res}]]></resource>" for res in job.resources)
            lines.append("    </resources>")
        if job.variables:
            lines.append("    <environmentVariables>")
            lines.extend(
                f"      <variable name={quoteattr(name)}>{escape('****' if secure else value)}</variable>"
                for name, value, secure in job.variables
            )
            lines.append("    </environmentVariables>")
        lines.append("  </job>")
        return lines

    def _feed(self, r: _Request) -> _Response:
        jobs = self._scheduled()
        head = '<?xml version="1.0" encoding="UTF-8"?>'
        if jobs:
            lines = [head, "<scheduledJobs>"]
            for job in jobs:
                lines.extend(self._job_xml(job, r.base(), feed=True))
            lines.append("</scheduledJobs>")
        else:
            lines = [head, "<scheduledJobs/>"]
        ctype = next(
            (
                t
                for t in ("application/xml", "text/xml", "application/rss+xml", "application/atom+xml")
                if t in r.accept
            ),
            "application/xml",
        )
        headers = list(FEED_DEPRECATION_HEADERS) if self._version >= (25, 4) else []
        return _Response(200, ("\n".join(lines) + "\n").encode(), f"{ctype};charset=utf-8", headers)

    def _old_feed(self, r: _Request) -> _Response:
        jobs = self._scheduled()
        lines = ["<scheduledJobs>"] if jobs else ["<scheduledJobs/>"]
        for job in jobs:
            lines.extend(self._job_xml(job, r.base(), feed=False))
        if jobs:
            lines.append("</scheduledJobs>")
        return _Response(200, ("\n".join(lines) + "\n").encode(), "application/xml;charset=utf-8")

    def _pipeline_config(self, r: _Request, name: str, ctype: str) -> _Response:
        stages = self._configs.get(name)
        if stages is None:
            return _Response(404, _gson(f"Pipeline with name '{name}' was not found!"), ctype)
        body = {
            "_links": {
                "self": {"href": f"{r.base()}/api/admin/pipelines/{quote(name, safe='')}"},
                "doc": {"href": f"https://api.gocd.org/{self.version}/#pipeline-config"},
                "find": {"href": f"{r.base()}/api/admin/pipelines/:pipeline_name"},
            },
            "label_template": "${COUNT}",
            "lock_behavior": "none",
            "name": name,
            "template": None,
            "group": "defaultGroup",
            "origin": {"type": "gocd"},
            "parameters": [],
            "environment_variables": [],
            "materials": [],
            "stages": [
                {
                    "name": stage,
                    "fetch_materials": True,
                    "clean_working_directory": False,
                    "never_cleanup_artifacts": False,
                    "approval": {"type": "success", "allow_only_on_success": False, "authorization": {}},
                    "environment_variables": [],
                    "jobs": [
                        {
                            "name": job,
                            "run_instance_count": count if count > 1 else None,
                            "timeout": None,
                            "environment_variables": [],
                            "resources": list(resources),
                            "tasks": [],
                            "tabs": [],
                            "artifacts": [],
                            "elastic_profile_id": profile,
                        }
                        for job, (resources, profile, count) in jobs.items()
                    ],
                }
                for stage, jobs in stages.items()
            ],
            "tracking_tool": None,
            "timer": None,
        }
        payload = _jackson(body)
        etag = '"' + hashlib.sha256(payload).hexdigest() + '"'
        return _Response(200, payload, ctype, [("ETag", etag)])

    # --- agents API -------------------------------------------------------------

    def _agent_json(self, agent: _Agent, base: str, version: int, now: float) -> dict[str, Any]:
        doc = f"https://api.gocd.org/{self.version}/#agents"
        obj: dict[str, Any] = {
            "_links": {
                "self": {"href": f"{base}/api/agents/{agent.uuid}"},
                "doc": {"href": doc},
                "find": {"href": f"{base}/api/agents/:uuid"},
            },
            "uuid": agent.uuid,
            "hostname": agent.hostname,
            "ip_address": agent.ip,
            "sandbox": agent.sandbox,
            "operating_system": agent.operating_system,
            "agent_config_state": agent.config_state,
            "agent_state": self._agent_state(agent, now),
        }
        if version >= 7:
            obj["agent_version"] = agent.agent_version
            obj["agent_bootstrapper_version"] = agent.agent_version
        environments = sorted(agent.environments)
        if version == 4:
            obj["environments"] = environments
        else:
            obj["environments"] = [{"name": e, "origin": self._origin(e, base)} for e in environments]
        obj["build_state"] = self._build_state(agent, now)
        obj["free_space"] = agent.free_space if agent.free_space is not None else "unknown"
        job = next((j for j in self._jobs if j.locator == agent.job), None)
        if job is not None and obj["build_state"] == "Building":
            obj["build_details"] = {
                "_links": {
                    "job": {"href": f"{base}/tab/build/detail/{job.locator}"},
                    "stage": {
                        "href": f"{base}/pipelines/{job.pipeline}/{job.pipeline_counter}/{job.stage}/1"
                    },
                    "pipeline": {"href": f"{base}/pipeline/activity/{job.pipeline}"},
                },
                "pipeline_name": job.pipeline,
                "stage_name": job.stage,
                "job_name": job.name,
            }
        if is_elastic(agent):
            obj["elastic_plugin_id"] = agent.elastic_plugin_id
            obj["elastic_agent_id"] = agent.elastic_agent_id
        else:
            obj["resources"] = sorted(agent.resources)
        return obj

    def _origin(self, environment: str, base: str) -> dict[str, Any]:
        if environment.lower() not in self._environments:
            return {"type": "unknown"}
        return {
            "type": "gocd",
            "_links": {
                "self": {"href": f"{base}/admin/config_xml"},
                "doc": {"href": f"https://api.gocd.org/{self.version}/#get-configuration"},
            },
        }

    def _agents_api(self, r: _Request, version: int, ctype: str) -> _Response:
        now = self.clock.now()
        base = r.base()
        uuid = unquote(r.path[len("/go/api/agents/") :]) if r.path.startswith("/go/api/agents/") else None
        body: Any = {}
        if r.method in ("PATCH", "DELETE") and r.body.strip():
            try:
                body = json.loads(r.body)
            except ValueError as e:
                return _Response(400, _gson(f"Payload data is not valid JSON: {e}", key="error"), ctype)
            if not isinstance(body, dict):
                return _Response(
                    400, _gson("Payload data is not valid JSON: not an object", key="error"), ctype
                )
        if uuid is None:
            if r.method == "GET":
                listing = {
                    "_links": {
                        "self": {"href": f"{base}/api/agents"},
                        "doc": {"href": f"https://api.gocd.org/{self.version}/#agents"},
                    },
                    "_embedded": {
                        "agents": [self._agent_json(a, base, version, now) for a in self._agents.values()]
                    },
                }
                return _Response(200, _jackson(listing), ctype)
            if r.method == "PATCH":
                return self._bulk_patch(body, ctype)
            if r.method == "DELETE":
                return self._delete(body.get("uuids"), ctype, bulk=True)
            return _html_404()
        agent = self._agents.get(uuid)
        if r.method in ("GET", "PATCH", "DELETE") and agent is None:
            return _Response(404, _gson(f"Agent with uuid '{uuid}' was not found!"), ctype)
        assert agent is not None
        if r.method == "GET":
            return _Response(200, _jackson(self._agent_json(agent, base, version, now)), ctype)
        if r.method == "PATCH":
            return self._patch(agent, body, base, version, ctype, now)
        if r.method == "DELETE":
            return self._delete([uuid], ctype, bulk=False)
        return _html_404()

    def _patch(
        self, agent: _Agent, body: dict[str, Any], base: str, version: int, ctype: str, now: float
    ) -> _Response:
        state = body.get("agent_config_state") or None
        changes = {k: body[k] for k in ("hostname", "resources", "environments") if body.get(k) is not None}
        if state is None and not changes:
            return _Response(
                400,
                _gson("Bad Request. No operation is specified in the request to be performed on agent."),
                ctype,
            )
        if state is not None and (not isinstance(state, str) or state.lower() not in ("enabled", "disabled")):
            return _Response(422, _gson(BAD_CONFIG_STATE), ctype)
        if agent.config_state == "Pending" and state is None:
            return _Response(
                400,
                _gson(
                    f"Pending agent [{agent.uuid}] must be explicitly enabled or disabled when performing "
                    "any operation on it."
                ),
                ctype,
            )
        if state is not None:
            self._set_config_state(agent, state.capitalize(), now)
        if "hostname" in changes:
            agent.hostname = str(changes["hostname"])
        if "resources" in changes:
            agent.resources = sorted(_csv(changes["resources"]))
        if "environments" in changes:
            agent.environments = sorted(_csv(changes["environments"]))
        return _Response(200, _jackson(self._agent_json(agent, base, version, now)), ctype)

    def _set_config_state(self, agent: _Agent, state: str, now: float) -> None:
        if agent.config_state == "Pending":
            # Approving (or disabling) a pending agent saves it as a registered agent.
            agent.runtime = "Idle"
        if agent.config_state != state:
            logger.info("Agent %s is now %s", agent.hostname, state)
        agent.config_state = state

    def _bulk_patch(self, body: dict[str, Any], ctype: str) -> _Response:
        uuids = body.get("uuids")
        if not isinstance(uuids, list) or not uuids:
            return _Response(422, _gson("Must specify agent 'uuids' for bulk update."), ctype)
        unknown = [u for u in uuids if u not in self._agents]
        if unknown:
            return _Response(
                404, _gson(f"Agents with uuids [{', '.join(map(str, unknown))}] were not found!"), ctype
            )
        state = body.get("agent_config_state") or None
        operations = body.get("operations") or {}
        envs = operations.get("environments") or {}
        res = operations.get("resources") or {}
        if state is None and not any(
            (envs.get("add"), envs.get("remove"), res.get("add"), res.get("remove"))
        ):
            return _Response(
                400,
                _gson("Bad Request. No operation is specified in the request to be performed on agents."),
                ctype,
            )
        if state is not None and (not isinstance(state, str) or state.lower() not in ("enabled", "disabled")):
            return _Response(422, _gson(BAD_CONFIG_STATE), ctype)
        agents = [self._agents[u] for u in uuids]
        pending = [a.uuid for a in agents if a.config_state == "Pending"]
        if pending and state is None:
            return _Response(
                400,
                _gson(
                    f"Pending agents [{', '.join(pending)}] must be explicitly enabled or disabled when "
                    "performing any operations on them."
                ),
                ctype,
            )
        elastic = [a.uuid for a in agents if is_elastic(a)]
        if elastic and (res.get("add") or res.get("remove")):
            return _Response(
                400,
                _gson(f"Resources on elastic agents with uuids [{', '.join(elastic)}] can not be updated."),
                ctype,
            )
        now = self.clock.now()
        for agent in agents:
            if state is not None:
                self._set_config_state(agent, state.capitalize(), now)
            agent.environments = sorted(
                (set(agent.environments) | set(_csv(envs.get("add")))) - set(_csv(envs.get("remove")))
            )
            agent.resources = sorted(
                (set(agent.resources) | set(_csv(res.get("add")))) - set(_csv(res.get("remove")))
            )
        return _Response(200, _gson(f"Updated agent(s) with uuid(s): [{', '.join(uuids)}]."), ctype)

    def _delete(self, uuids: Any, ctype: str, *, bulk: bool) -> _Response:
        if not isinstance(uuids, list) or not uuids:
            return _Response(400, _gson("Bad Request. No agent UUIDs were supplied to delete."), ctype)
        unknown = [u for u in uuids if u not in self._agents]
        if unknown:
            # The reference documents the single-agent text only; the bulk text is ours.
            return _Response(
                404, _gson(f"Agents with uuids [{', '.join(map(str, unknown))}] were not found!"), ctype
            )
        now = self.clock.now()
        agents = [self._agents[u] for u in uuids]
        refused = [
            a
            for a in agents
            if a.config_state != "Disabled" or self._runtime(a, now) in ("Building", "Cancelled")
        ]
        if refused:
            if self._version < (19, 9):
                return _Response(
                    406,
                    _gson(
                        f"Failed to delete {len(agents)} agent(s), as agent(s) might not be disabled "
                        "or are still building."
                    ),
                    ctype,
                )
            return _Response(422, _gson(DELETE_REFUSED_MANY if bulk else DELETE_REFUSED_ONE), ctype)
        for agent in agents:
            del self._agents[agent.uuid]
            logger.info("Deleted agent %s", agent.hostname)
        return _Response(200, _gson(f"Deleted {len(agents)} agent(s)."), ctype)

    # --- agent job run history ----------------------------------------------------

    def _job_run_history(self, r: _Request, version: int, is_admin: bool) -> _Response:
        """``GET /go/api/agents/:uuid/job_run_history`` (``gocd-api.md`` 9.3), as
        ``AgentJobHistoryControllerV1`` answers it (read at ``gocd@19.11.0`` and ``@26.1.0``).

        Its before filter checks admin rights first (403, for any method). ``index`` then
        reads offset, page_size, sort_column and sort_order in that order, each bad value a
        400 with that parameter's message (before the agent is looked up, so an unknown
        agent with a bad parameter gets the 400); only then does an unknown agent get 404.
        An offset past the end is no error: the page is empty and pagination echoes it.
        """
        uuid = unquote(r.path[len("/go/api/agents/") : -len(_JOB_RUN_HISTORY)])
        if self._version < (19, 11) or version not in (0, 1) or not uuid or "/" in uuid:
            # No route: no controller serves the path before 19.11.0, and v1 is its only version.
            return _html_404()
        ctype = "application/vnd.go.cd.v1+json;charset=utf-8"
        if not is_admin:
            return _Response(403, _gson(FORBIDDEN_ACTION), ctype)
        if r.method != "GET":
            return _html_404()

        def param(name: str, default: str) -> str:
            # Spark's queryParamOrDefault: the first value; present but empty is "", not the default.
            values = r.query.get(name)
            return values[0] if values else default

        offset = _java_int(param("offset", "0"))
        if offset is None or offset < 0:
            return _Response(400, _gson(BAD_OFFSET), ctype)
        page_size = _java_int(param("page_size", "50"))
        if page_size is None or not 10 <= page_size <= 100:
            return _Response(400, _gson(BAD_PAGE_SIZE), ctype)
        column = param("sort_column", "completed")
        if column not in _HISTORY_SORT_KEYS:
            return _Response(400, _gson(BAD_SORT_COLUMN), ctype)
        order = param("sort_order", "DESC")
        if order not in ("ASC", "DESC"):
            return _Response(400, _gson(BAD_SORT_ORDER), ctype)
        if uuid not in self._agents:
            # EntityType.Agent.notFoundMessage(uuid); a deleted agent's history goes with it.
            return _Response(404, _gson(f"Agent with uuid '{uuid}' was not found!"), ctype)
        # totalCompletedJobsOnAgent counts `state = 'Completed' OR ignored` rows of the agent:
        # ignored rows are jobs rescheduled away from it, which this simulator never makes.
        done = sorted(
            (j for j in self._jobs if j.agent_uuid == uuid and j.state == "completed"), key=lambda j: j.job_id
        )
        # ORDER BY the column, then the build id ascending (a stable sort keeps it in either order).
        done.sort(key=_HISTORY_SORT_KEYS[column], reverse=order == "DESC")
        base = r.base()
        body = {
            "_links": {
                "doc": {"href": f"https://api.gocd.org/{self.version}/#agent-job-run-history"},
                "self": {"href": f"{base}/api/agents/{uuid}{_JOB_RUN_HISTORY}"},
                "find": {"href": f"{base}/api/agents/:uuid"},
            },
            "uuid": uuid,
            "jobs": [self._history_job_json(job) for job in done[offset : offset + page_size]],
            "pagination": {"page_size": page_size, "offset": offset, "total": len(done)},
        }
        return _Response(200, _jackson(body), ctype)

    def _history_job_json(self, job: _Job) -> dict[str, Any]:
        """One job of the history, as ``AgentJobHistoryRepresenter`` writes it."""
        return {
            "job_state_transitions": [
                {"state_change_time": self._iso(at), "state": state} for state, at in job.transitions
            ],
            "job_name": job.name,
            "stage_name": job.stage,
            "stage_counter": "1",
            "pipeline_name": job.pipeline,
            "pipeline_counter": job.pipeline_counter,
            "result": job.result,
            "rerun": False,
        }

    def _iso(self, at: float) -> str:
        """Clock time ``at`` as GoCD's ISO-8601 date, on the clock's wall time."""
        return _iso8601(self.clock.time() - self.clock.now() + at)

    # --- agent registration and remoting ----------------------------------------

    def _token_request(self, r: _Request) -> _Response:
        if "uuid" not in r.query:
            return _missing_parameter("uuid")
        uuid = r.query["uuid"][0].strip()
        if not uuid:
            return _Response(409, b"UUID cannot be blank.", "text/plain;charset=utf-8")
        if uuid in self._agents:
            return _Response(
                409, b"A token has already been issued for this agent.", "text/plain;charset=utf-8"
            )
        return _Response(200, self.agent_token(uuid).encode(), "text/plain;charset=utf-8")

    def _register(self, r: _Request) -> _Response:
        form = {
            k: v[0] for k, v in parse_qs(r.body.decode("utf-8", "replace"), keep_blank_values=True).items()
        }
        for name in REGISTRATION_FIELDS:
            if name not in form:
                return _missing_parameter(name)
        uuid = form["uuid"].strip()
        if not uuid or not hmac.compare_digest(form["token"], self.agent_token(uuid)):
            return _Response(403, b"Not a valid token.", "text/plain;charset=utf-8")
        agent_id, plugin_id = form["elasticAgentId"].strip(), form["elasticPluginId"].strip()
        if agent_id and plugin_id:
            # Elastic agents need a single-use ephemeral key, which only plugins get.
            return _Response(
                422,
                b"Elastic agent registration requires an auto-register agent key to be setup on the server.",
                "text/plain;charset=utf-8",
            )
        auto = bool(self.auto_register_key) and hmac.compare_digest(
            form["agentAutoRegisterKey"], self.auto_register_key
        )
        if bool(agent_id) != bool(plugin_id):
            return _Response(
                422,
                b"Elastic agents must submit both elasticAgentId and elasticPluginId.",
                "text/plain;charset=utf-8",
            )
        try:
            usable = int(form["usablespace"])
        except ValueError:
            message = (
                f'Error occurred during agent registration process: For input string: "{form["usablespace"]}"'
            )
            return _Response(422, message.encode(), "text/plain;charset=utf-8")
        now = self.clock.now()
        agent = self._agents.get(uuid)
        hostname = form["hostname"]
        if auto and (agent is None or agent.config_state == "Pending"):
            hostname = form["agentAutoRegisterHostname"].strip() or hostname
            agent = _Agent(
                uuid=uuid,
                hostname=hostname,
                ip=r.peer,
                config_state="Enabled",
                resources=sorted(_csv(form["agentAutoRegisterResources"])),
                environments=sorted(_csv(form["agentAutoRegisterEnvironments"])),
            )
            self._agents[uuid] = agent
            logger.info("Agent %s auto-registered (Enabled)", hostname)
        elif agent is None:
            pending = sum(1 for a in self._agents.values() if a.config_state == "Pending")
            if pending >= self.max_pending:
                message = (
                    "Error occurred during agent registration process: "
                    f"Max pending agents allowed {self.max_pending}, limit reached"
                )
                return _Response(422, message.encode(), "text/plain;charset=utf-8")
            agent = _Agent(uuid=uuid, hostname=hostname, ip=r.peer, config_state="Pending", runtime="Unknown")
            self._agents[uuid] = agent
            logger.info("Agent %s is pending approval", hostname)
        agent.last_heard = now
        agent.free_space = usable
        agent.sandbox = form["location"]
        agent.operating_system = form["operatingSystem"]
        agent.agent_version = self.version
        status = 202 if agent.config_state == "Pending" else 200
        return _Response(status, b"", "application/json")

    def _remoting(self, r: _Request, op: str) -> _Response:
        """The agents' remoting API, with GoCD's auth rules and our own small JSON bodies.

        Requests: ``ping`` ``{"runtime_status", "free_space"}``; ``get_work``
        ``{}``; ``report_current_status``/``report_completing`` ``{"locator",
        "job_state"}``; ``report_completed`` ``{"locator", "result"}``;
        ``is_ignored`` ``{"locator"}``. Answers: ``get_cookie`` a JSON string;
        ``get_work`` ``{"work": null}`` or ``{"work": {"locator", "pipeline",
        "stage", "job", "duration_s"}}``; ``is_ignored`` ``false``; others ``{}``.
        """
        uuid = (r.headers.get("X-Agent-GUID", "") or "").strip()
        token = (r.headers.get("Authorization", "") or "").strip()
        agent = self._agents.get(uuid)
        if (
            not uuid
            or not token
            or agent is None
            or agent.config_state == "Pending"
            or not hmac.compare_digest(token, self.agent_token(uuid))
        ):
            return _Response(403, b"", "")
        try:
            body = json.loads(r.body) if r.body.strip() else {}
        except ValueError:
            return _Response(400, _gson("Payload data is not valid JSON", key="error"), "application/json")
        body = body if isinstance(body, dict) else {}
        now = self.clock.now()
        agent.last_heard = now
        ctype = "application/vnd.go.cd+json;charset=utf-8"
        if op == "get_cookie":
            agent.cookie = str(uuidlib.uuid4())
            return _Response(200, json.dumps(agent.cookie).encode(), ctype)
        if op == "ping":
            if isinstance(body.get("free_space"), int):
                agent.free_space = body["free_space"]
            if agent.runtime in ("Missing", "Unknown"):
                agent.runtime = "Building" if agent.job else "Idle"
            return _Response(200, b"{}", ctype)
        if op == "get_work":
            if agent.runtime in ("Missing", "Unknown"):
                agent.runtime = "Building" if agent.job else "Idle"
            job = self._next_job_for(agent)
            if job is None:
                return _Response(200, b'{"work": null}', ctype)
            self._assign(job, agent, now)
            work = {
                "locator": job.locator,
                "pipeline": job.pipeline,
                "stage": job.stage,
                "job": job.name,
                "duration_s": job.duration_s,
            }
            return _Response(200, json.dumps({"work": work}).encode(), ctype)
        if op in ("report_current_status", "report_completing"):
            job = self._running_job(uuid, body.get("locator"))
            state = body.get("job_state")
            if (
                job is not None
                and state in ("Preparing", "Building", "Completing")
                and job.transitions[-1][0] != state
            ):
                job.transitions.append((state, now))
            return _Response(200, b"{}", ctype)
        if op == "report_completed":
            job = self._running_job(uuid, body.get("locator"))
            if job is not None:
                job.state, job.completed_at = "completed", now
                result = body.get("result")
                job.result = result if result in ("Passed", "Failed", "Cancelled") else "Unknown"
                job.transitions.append(("Completed", now))
                logger.info("Job %s completed on agent %s", job.locator, agent.hostname)
            if agent.job == body.get("locator"):
                agent.job, agent.runtime = None, "Idle"
            return _Response(200, b"{}", ctype)
        if op == "is_ignored":
            return _Response(200, b"false", ctype)
        return _html_404()

    def _running_job(self, uuid: str, locator: Any) -> _Job | None:
        """The job ``locator`` if agent ``uuid`` is running it."""
        job = next((j for j in self._jobs if j.locator == locator), None)
        return job if job is not None and job.agent_uuid == uuid and job.state == "building" else None

    # --- /_sim/ -------------------------------------------------------------------

    def _control(self, r: _Request) -> _Response:
        ctype = "application/json"
        try:
            body = json.loads(r.body) if r.body.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            if r.path == "/_sim/state" and r.method == "GET":
                return _Response(200, json.dumps(self.state(), indent=2).encode(), ctype)
            if r.path == "/_sim/jobs" and r.method == "POST":
                locators = self.schedule_jobs(
                    pipeline=str(body["pipeline"]),
                    stage=str(body.get("stage", "build")),
                    job=str(body.get("job", "job")),
                    count=int(body.get("count", 1)),
                    resources=[str(x) for x in body.get("resources") or ()],
                    environment=body.get("environment"),
                    elastic_profile_id=body.get("elastic_profile_id"),
                    duration_s=float(body.get("duration_s", 30.0)),
                    variables=body.get("variables"),
                    secure_variables=body.get("secure_variables"),
                )
                return _Response(200, json.dumps({"locators": locators}).encode(), ctype)
            if r.path == "/_sim/faults" and r.method == "POST":
                self.inject_fault(
                    str(body["kind"]),
                    status=int(body.get("status", 500)),
                    delay_s=float(body.get("delay_s", 0.0)),
                    count=int(body["count"]) if body.get("count") is not None else None,
                    seconds=float(body["seconds"]) if body.get("seconds") is not None else None,
                    path_prefix=str(body.get("path_prefix", "/go/api/")),
                )
                return _Response(200, b'{"ok": true}', ctype)
        except (KeyError, TypeError, ValueError) as e:
            return _Response(400, _gson(f"Bad control request: {e!r}"), ctype)
        return _Response(404, _gson(f"No control endpoint {r.method} {r.path}"), ctype)


#: The history's sort columns (``JobInstanceService.JobHistoryColumns``) and what they order by.
#: Strings compare by code point here; GoCD's database may collate them otherwise.
_HISTORY_SORT_KEYS: dict[str, Callable[[_Job], Any]] = {
    "pipeline": lambda j: j.pipeline,
    "stage": lambda j: j.stage,
    "job": lambda j: j.name,
    "result": lambda j: j.result,
    "completed": lambda j: j.completed_at,
    "duration": lambda j: (j.completed_at or 0.0) - j.scheduled_at,
}


def _html_404() -> _Response:
    return _Response(404, NOT_FOUND_HTML.encode(), "text/html;charset=utf-8")


def _missing_parameter(name: str) -> _Response:
    # Spring's required-parameter answer; the exact body is unconfirmed (gocd-api.md 4.5).
    text = f"Required request parameter '{name}' for method parameter type String is not present"
    return _Response(400, text.encode(), "text/plain;charset=utf-8")


def _xml_error(status: int, root: str, message: str) -> _Response:
    body = f"<{root}>\n  <message>{escape(message)}</message>\n</{root}>\n"
    return _Response(status, body.encode(), "application/xml;charset=utf-8")


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP requests into :meth:`GoCDSimulator.handle` calls."""

    sim: GoCDSimulator
    protocol_version = "HTTP/1.1"
    server_version = "Jetty(9.4.z)"
    sys_version = ""
    # Idle keep-alive connections end after this many real seconds.
    timeout = 30

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle and delayed ACKs
        # add 40 ms to every answer on loopback.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = _Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
            peer=self.client_address[0],
        )
        try:
            response = self.sim.handle(request)
        except Exception:
            logger.exception("Simulator failed on %s %s", self.command, parts.path)
            response = _Response(500, _gson("Shoot! This is unexpected."), "application/json")
        if response is _RESET:
            # SO_LINGER 0: closing sends a TCP RST instead of a FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        assert isinstance(response, _Response)
        self.send_response(response.status)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


def main(argv: list[str] | None = None) -> int:
    """``python -m actors.sim.gocd``: serve until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m actors.sim.gocd", description="A simulated GoCD server.")
    parser.add_argument("--port", type=int, default=8153, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--auto-register-key", default="", help="the agents' auto-register key")
    parser.add_argument("--username", default="", help="turn security on with this (admin) user")
    parser.add_argument("--password", default="", help="that user's password")
    parser.add_argument("--token", default="", help="turn security on with this personal access token")
    parser.add_argument("--version", default="25.1.0", help="the GoCD version to simulate")
    parser.add_argument("--time-scale", type=float, default=1.0, help="simulated seconds per real second")
    parser.add_argument(
        "--agent-timeout", type=float, default=300.0, help="seconds of silence before LostContact"
    )
    args = parser.parse_args(argv)
    if args.password and not args.username:
        parser.error("--password needs --username")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    clock = ScaledClock(args.time_scale) if args.time_scale != 1.0 else RealClock()
    sim = GoCDSimulator(
        clock=clock,
        version=args.version,
        auto_register_key=args.auto_register_key,
        username=args.username,
        password=args.password,
        token=args.token,
        agent_timeout=args.agent_timeout,
        port=args.port,
    )
    return serve_until_signal(sim)


if __name__ == "__main__":
    sys.exit(main())
