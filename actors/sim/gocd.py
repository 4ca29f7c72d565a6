"""A GoCD server simulator on loopback, faithful to the wire of ``gocd-api.md``.

:class:`GoCDSimulator` serves, over real HTTP (stdlib ``ThreadingHTTPServer``
on 127.0.0.1), what gocd-mesos and GoCD agents use of a GoCD server, with the
real formats, status codes and quirks: the scheduled-jobs feed and the old
admin-only endpoint (chosen by the simulated version; both gone from 26.2.0 or
with ``feed=False``/:meth:`~GoCDSimulator.remove_feed`), the agents API v4-v7
with GoCD's exact-Accept rule, PATCH and DELETE rules and bodies, the agent job
run history (v1, GoCD >= 19.11.0), the dashboard (v4, per-user ETag and 304,
202 while warming up), the stage instance API (v3, with the <= 25.4.0 500 on a
stage without a transition time), the pipeline config (v11), template (v7) and
environments (v3) APIs with their ETags, version and health, basic and bearer
auth, maintenance mode, the agents' registration handshake and remoting API,
and a notification plugin's webhooks (:mod:`actors.sim.gocd_notify`).

It models pipelines (:mod:`actors.sim.gocd_pipelines`: groups, templates with
parameters, ordered stages with success or manual approval, run-N-instances
and run-on-all-agents jobs, environments), their runs (a triggered pipeline
schedules its first stage; a stage whose jobs all pass schedules the next
automatic one), jobs (assigned by GoCD's own rule, :mod:`actors.sim.gocd_assignment`,
when an agent asks for work, completed when the agent reports) and agents
(Pending, Enabled, Disabled; LostContact after ``agent_timeout`` of silence).
Time is the injected Clock; nothing runs in the background but the
notification plugin's delivery thread: silence is judged lazily from
timestamps.

Simplifications (documented, not GoCD's): the agent remoting calls take and
give small JSON bodies of our own (see :meth:`GoCDSimulator._remoting`), not
GoCD's serialized Java objects; one signed-in user (with per-group view,
operate and admin rights when not an admin) rather than roles; no config repos,
locks, timers, job reruns or pipeline instance API; the dashboard cache is
updated synchronously (GoCD's lags by an unconfirmed amount); agent resource
names are not validated.

Test controls (not GoCD's API) live under ``/_sim/`` and as Python methods:
``POST /_sim/jobs``, ``/_sim/templates``, ``/_sim/pipelines``,
``/_sim/pipelines/<name>/trigger``, ``/_sim/notify``, ``DELETE /_sim/feed``,
``GET /_sim/state``, ``GET /_sim/notifications``, ``POST /_sim/faults``.

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
import math
import re
import socket
import struct
import sys
import threading
import uuid as uuidlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape, quoteattr

from actors.clock import Clock, RealClock, ScaledClock
from actors.sim import QuietRequestHandler, serve_until_signal
from actors.sim.gocd_assignment import (
    EnvironmentPipelineMatchers,
    find_matching_job,
    has_all_resources,
    is_elastic,
)
from actors.sim.gocd_notify import NotificationEmitter, agent_status_body, stage_status_bodies
from actors.sim.gocd_pipelines import (
    DEFAULT_FILTER,
    JobConfig,
    JobInstance,
    PipelineConfig,
    PipelineConfigs,
    PipelineRun,
    StageConfig,
    StageRun,
    TemplateConfig,
    _iso8601,
    dashboard_json,
    environment_json,
    instance_names,
    null_stage_json,
    pipeline_config_json,
    stage_instance_json,
    template_config_json,
)

__all__ = ["GoCDSimulator", "JobConfig", "StageConfig", "main"]

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
#: The dashboard's answer until it has built its cache once (``DashboardControllerV4.BEING_PROCESSED``).
DASHBOARD_PROCESSING = "Dashboard is being processed, this may take a few seconds. Please check back later."
#: The message of the 500 the stage API answers on GoCD <= 25.4.0 for a stage with no transition time
#: yet (``RoutesHelper.unhandledException`` of the wrapped NullPointerException, gocd/gocd#12672).
STAGE_NPE = (
    "java.lang.RuntimeException: java.lang.NullPointerException: Cannot invoke "
    '"java.sql.Timestamp.getTime()" because the return value of '
    '"com.thoughtworks.go.domain.Stage.getLastTransitionedTime()" is null'
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


def _java_int(text: str) -> int | None:
    """``text`` as Java's ``Integer.parseInt`` reads it, or None where that throws."""
    if not _JAVA_INT_RE.match(text):
        return None
    value = int(text)
    return value if -(2**31) <= value < 2**31 else None


def _gson(message: str, key: str = "message") -> bytes:
    """A pretty error body the way GoCD's Gson writes it."""
    return json.dumps({key: message}, indent=2).encode()


def _if_none_match(r: _Request) -> str | None:
    """``ControllerMethods.preconditionHeader``: If-None-Match without its surrounding quotes and
    a ``--gzip``/``--deflate`` suffix (Jetty's gzip handler appends it). ``W/"..."`` and lists
    stay as they are, so they never equal an ETag."""
    value = r.headers.get("If-None-Match")
    if value is None:
        return None
    value = re.sub(r'^"(.*)"$', r"\1", value)
    return re.sub(r"(.*)(--(gzip|deflate))", r"\1", value)


def _not_modified_or(r: _Request, etag: str, response: _Response) -> _Response:
    """304 with an empty body when If-None-Match names ``etag``; else ``response`` with a quoted ETag."""
    if _if_none_match(r) == etag:
        return _Response(304, b"", "", [("ETag", f'"{etag}"')])
    response.headers.append(("ETag", f'"{etag}"'))
    return response


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)


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
    #: (config state, agent state, build state) last sent in an agent-status notification.
    notified: tuple[str, str, str] | None = None
    #: Clock time it first became Enabled (auto-registered, approved or added so); None before.
    registered_at: float | None = None


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
    token's) is an admin when ``admin``. A non-admin user views every pipeline
    group unless :meth:`set_group_permissions` says otherwise. ``version`` picks
    the endpoints and API versions served (``gocd-api.md`` 1.1, 2.1); the Feeds
    API is gone from 26.2.0 on, or with ``feed=False``. The dashboard answers 202
    for ``dashboard_warmup_s`` clock seconds after :meth:`start`. A just-scheduled
    stage has no ``last_transitioned_time`` for ``stage_transition_lag_s`` clock
    seconds (GoCD's DB trigger fills it after the insert): the stage API answers
    500 for it then on GoCD <= 25.4.0 and leaves the field out on 26.1.0+.
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
        feed: bool = True,
        dashboard_warmup_s: float = 0.0,
        stage_transition_lag_s: float = 0.0,
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
        self.dashboard_warmup_s = dashboard_warmup_s
        self.stage_transition_lag_s = stage_transition_lag_s
        self._host = host
        self._port = port
        self._token_key = uuidlib.uuid4().hex.encode()
        self._cond = threading.Condition(threading.RLock())
        #: Every job instance (build), in insert order: build ids increase along it.
        self._jobs: list[JobInstance] = []
        self._job_ids = iter(range(1001, 10**9))
        #: The stage run each job (by build id) belongs to.
        self._stage_of: dict[int, StageRun] = {}
        #: The latest scheduled date handed out, in whole ms: each job gets a later one.
        self._last_ms = 0
        self._config = PipelineConfigs(environments)
        #: Pipeline instances per pipeline (lower-cased name), oldest first.
        self._runs: dict[str, list[PipelineRun]] = {}
        #: Paused pipelines: (paused by, reason, clock time).
        self._paused: dict[str, tuple[str, str, float]] = {}
        #: The dashboard cache's ``TimeStampBasedCounter``: starts at the start time in ms, +1 per rebuild.
        self._dashboard_counter = int(self.clock.time() * 1000)
        self._last_updated: dict[str, int] = {}
        #: Personal dashboard filters per user: (name, "blacklist"|"whitelist", pipelines), in order.
        self._filters: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {}
        self._feed = feed and self._version < (26, 2)
        self._dashboard_ready_at = 0.0
        self._wall_offset = self.clock.time() - self.clock.now()
        self._agents: dict[str, _Agent] = {}
        self._faults: list[_Fault] = []
        self._maintenance = False
        self._stopping = threading.Event()
        #: The notification plugin (idle until :meth:`notify` gives it endpoints).
        self.notifier = NotificationEmitter(self.clock)
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
        self._dashboard_ready_at = self.clock.now() + self.dashboard_warmup_s
        self.notifier.start(f"gocd-sim-{port}-notify")
        self.url = f"http://{self._host}:{port}/go"
        logger.info("GoCD simulator %s listening on %s", self.version, self.url)
        return self.url

    def stop(self) -> None:
        """Stop serving and the notification thread; release any answer held by a latency fault."""
        self._stopping.set()
        self.notifier.stop()
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

    # --- test controls: pipelines ------------------------------------------------

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

        A shortcut over the pipeline model: ``job`` is defined (or redefined) in
        ``stage`` of the pipeline's own config (created in ``defaultGroup`` if
        new; other jobs and stages stay), the pipeline moves into ``environment``
        when one is given, and a new pipeline counter runs that one job of that
        stage only (stage counter 1), ending there. With ``count`` > 1 the jobs
        are named ``<job>-runInstance-<n>`` as GoCD names "run N instances" jobs.
        Returns the build locators.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        job_config = JobConfig(
            name=job,
            resources=tuple(resources),
            elastic_profile_id=elastic_profile_id or None,
            run_instance_count=count if count > 1 else None,
            duration_s=float(duration_s),
            variables=tuple((variables or {}).items()),
            secure_variables=tuple((secure_variables or {}).items()),
        )
        with self._cond:
            old = self._config.find(pipeline)
            new = self._config.with_job(pipeline, stage, job_config)
            if new != old:
                self._save_pipeline(new)
            if environment:
                self._move_to_environment(new.name, environment)
            stage_config = self._config.stage(new, stage)
            assert stage_config is not None
            run = self._new_run(new, partial=True)
            scheduled = self._schedule_stage(run, stage_config, "changes", only_job=job_config.name)
            self._cond.notify_all()
        logger.info("Scheduled %d jobs of pipeline %s", len(scheduled.jobs), pipeline)
        return [j.locator for j in scheduled.jobs]

    def define_template(self, name: str, stages: Sequence[StageConfig | Mapping[str, Any]]) -> None:
        """Define (or redefine) template ``name``; its jobs' resources may use ``#{param}``.

        Redefining it is a template save: the pipelines using it get a new
        dashboard ``last_updated_timestamp``. Raises ValueError when a pipeline
        using it lacks a parameter it now needs.
        """
        template = TemplateConfig(name, tuple(StageConfig.of(s) for s in stages))
        with self._cond:
            for pipeline in self._config.save_template(template):
                self._config_changed(pipeline)
            self._cond.notify_all()
        logger.info("Defined template %s", name)

    def define_pipeline(
        self,
        name: str,
        *,
        group: str = "defaultGroup",
        stages: Sequence[StageConfig | Mapping[str, Any]] | None = None,
        template: str | None = None,
        parameters: Mapping[str, str] | None = None,
        environment: str | None = None,
    ) -> None:
        """Define (or redefine) pipeline ``name`` in ``group``: its own ``stages`` or a ``template``,
        ``parameters`` for ``#{param}`` references, and the ``environment`` it is in (None: none).

        Raises ValueError for a config GoCD would refuse (an unknown template,
        an undefined parameter, both or neither of stages and template).
        Redefining a pipeline cancels its scheduled jobs whose stage or job the
        new config lacks (``BuildAssignmentService.onConfigChange``).
        """
        config = PipelineConfig(
            name=name,
            group=group,
            stages=None if stages is None else tuple(StageConfig.of(s) for s in stages),
            template=template,
            parameters=tuple((str(k), str(v)) for k, v in (parameters or {}).items()),
        )
        with self._cond:
            self._save_pipeline(config)
            self._move_to_environment(config.name, environment)
            self._cond.notify_all()
        logger.info("Defined pipeline %s in group %s", name, group)

    def trigger_pipeline(self, name: str, *, by: str = "changes") -> list[str]:
        """Run pipeline ``name`` anew: the next pipeline counter, its first stage scheduled.

        ``by`` is who approved the first stage (``changes``: a material change).
        Returns the locators of the scheduled jobs. Raises ValueError for an
        unknown or paused pipeline, or a run-on-all job no agent can run
        (GoCD's ``CannotScheduleException``).
        """
        with self._cond:
            config = self._config.pipeline(name)
            if config.name.lower() in self._paused:
                raise ValueError(f"pipeline {config.name!r} is paused")
            first = self._config.stages(config)[0]
            self._stage_jobs(config.name, first)  # fail before a counter is spent
            run = self._new_run(config, partial=False)
            stage = self._schedule_stage(run, first, by)
            self._cond.notify_all()
        logger.info("Triggered pipeline %s/%d", config.name, run.counter)
        return [j.locator for j in stage.jobs]

    def run_stage(self, pipeline: str, counter: int, stage: str, *, by: str = "admin") -> list[str]:
        """Schedule ``stage`` in instance ``counter`` of ``pipeline``, as a user running it: a manual
        stage's approval, or a re-run (the next stage counter). Returns the locators.

        GoCD's checks (``SchedulingCheckerService.canScheduleStage``) raise ValueError: a paused
        pipeline, a stage still running, a previous stage that has not run, or one that has not
        passed when this stage allows only on success.
        """
        with self._cond:
            config = self._config.pipeline(pipeline)
            run = self._run(config.name, counter)
            stages = self._config.stages(config)
            names = [s.name.lower() for s in stages]
            if stage.lower() not in names:
                raise ValueError(f"pipeline {config.name!r} has no stage {stage!r}")
            stage_config = stages[names.index(stage.lower())]
            if config.name.lower() in self._paused:
                raise ValueError(f"pipeline {config.name!r} is paused")
            latest = run.latest(stage_config.name)
            if latest is not None and not latest.completed:
                raise ValueError(f"stage {latest.locator} is still running")
            if names.index(stage.lower()) > 0:
                previous = run.latest(stages[names.index(stage.lower()) - 1].name)
                if previous is None:
                    raise ValueError(
                        f"the stage before {stage_config.name!r} has not run in {run.name}/{counter}"
                    )
                if stage_config.allow_only_on_success and previous.result != "Passed":
                    raise ValueError(f"stage {previous.locator} has not passed ({previous.result})")
            scheduled = self._schedule_stage(run, stage_config, by)
            self._cond.notify_all()
        return [j.locator for j in scheduled.jobs]

    def cancel_stage(self, pipeline: str, counter: int, stage: str, *, by: str = "admin") -> None:
        """Cancel the latest run of ``stage`` in instance ``counter`` (if it is still running): every
        job not yet completed ends ``Cancelled`` (an agent building one is told so at its next report)."""
        with self._cond:
            run = self._run(self._config.pipeline(pipeline).name, counter)
            target = next((s for s in reversed(run.stages) if s.name.lower() == stage.lower()), None)
            if target is None:
                raise ValueError(f"stage {stage!r} has not run in {run.name}/{counter}")
            if target.completed:
                return  # GoCD: nothing to cancel
            now = self.clock.now()
            for job in target.live_jobs:
                if job.state in ("scheduled", "building"):
                    self._cancel_job(job, now)
            target.cancelled_by = by
            self._stage_changed(target, scheduled=False)
            self._cond.notify_all()

    def reschedule_job(self, locator: str) -> None:
        """Reschedule an assigned or building job as GoCD does when its agent is lost
        (``ScheduleService.rescheduleJob``): the row becomes ``Rescheduled`` and hidden, a new row
        (new build id, no agent: even a run-on-all pin is cleared) is ``Scheduled``. No stage
        event: the dashboard's timestamp does not move and no notification is sent."""
        with self._cond:
            old = self._job(locator)
            if old is None or old.state != "building":
                raise ValueError(f"no assigned or building job {locator!r}")
            now = self.clock.now()
            self._transition(old, "Rescheduled", now)
            old.state = "rescheduled"
            agent = self._agents.get(old.agent_uuid or "")
            if agent is not None and agent.job == old.locator:
                agent.job, agent.runtime = None, "Idle"
            at = self._stamp(now)
            new = JobInstance(
                locator=old.locator,
                pipeline=old.pipeline,
                pipeline_counter=old.pipeline_counter,
                stage=old.stage,
                name=old.name,
                config_name=old.config_name,
                resources=old.resources,
                environment=old.environment,
                elastic_profile_id=old.elastic_profile_id,
                duration_s=old.duration_s,
                variables=old.variables,
                job_id=next(self._job_ids),
                scheduled_at=at,
                transitions=[("Scheduled", at)],
                stage_counter=old.stage_counter,
            )
            stage = self._stage_of[old.job_id]
            stage.jobs.append(new)
            self._stage_of[new.job_id] = stage
            self._jobs.append(new)
            logger.info("Rescheduled job %s", locator)
            self._cond.notify_all()

    def set_job_resources(self, pipeline: str, stage: str, job: str, resources: Iterable[str]) -> None:
        """Edit one job's resources in a pipeline's own config (a config save): the config API
        shows them at once, the feed keeps the job plan of jobs already scheduled (``gocd-api.md`` 10.3)."""
        with self._cond:
            self._save_pipeline(self._config.with_job_resources(pipeline, stage, job, resources))
            self._cond.notify_all()

    def set_pipeline_environment(self, pipeline: str, environment: str | None) -> None:
        """Move a pipeline into ``environment`` (defined if new) or out of any (None). An environment
        save does not rebuild the dashboard's pipelines; its ``environments`` list changes."""
        with self._cond:
            self._move_to_environment(self._config.pipeline(pipeline).name, environment)
            self._cond.notify_all()

    def pause_pipeline(self, pipeline: str, reason: str = "", *, by: str = "admin") -> None:
        """Pause a pipeline: no new instance, no automatic next stage; the dashboard shows it."""
        with self._cond:
            name = self._config.pipeline(pipeline).name
            self._paused[name.lower()] = (by, reason, self.clock.now())
            self._touch(name)
            self._cond.notify_all()

    def unpause_pipeline(self, pipeline: str) -> None:
        """Unpause a pipeline."""
        with self._cond:
            name = self._config.pipeline(pipeline).name
            self._paused.pop(name.lower(), None)
            self._touch(name)
            self._cond.notify_all()

    def set_group_permissions(
        self, group: str, *, view: bool = True, operate: bool = False, admin: bool = False
    ) -> None:
        """What the non-admin user may do in ``group`` (its ``<authorization>``; admin implies the
        rest). A security change rebuilds every pipeline's dashboard entry."""
        with self._cond:
            entry = self._config.groups.get(group.lower())
            if entry is None:
                raise ValueError(f"no pipeline group {group!r}")
            entry.view, entry.operate, entry.admin = view or operate or admin, operate or admin, admin
            for config in self._config.pipelines.values():
                self._touch(config.name)
            self._cond.notify_all()

    def set_personal_filter(
        self,
        pipelines: Iterable[str],
        *,
        kind: str = "blacklist",
        name: str = "Default",
        user: str | None = None,
    ) -> None:
        """Save a personal dashboard filter for ``user`` (default: the configured user): a
        ``blacklist`` hides ``pipelines``, a ``whitelist`` shows only them. A filter of the same
        name is replaced; the first filter is the one used when ``viewName`` names none. The API
        applies no "state" setting. With security off an API client sends no cookie, so filters
        never apply then: this raises ValueError."""
        if kind not in ("blacklist", "whitelist"):
            raise ValueError("kind must be 'blacklist' or 'whitelist'")
        if not self._security_on():
            raise ValueError("personal filters belong to signed-in users; turn security on")
        owner = user or self._default_user()
        entry = (name, kind, tuple(pipelines))
        with self._cond:
            # A user's saved selections start from the defaults, whose "Default" filter stays first.
            filters = list(self._filters.get(owner, [DEFAULT_FILTER]))
            at = next((i for i, f in enumerate(filters) if f[0].lower() == name.lower()), None)
            if at is None:
                filters.append(entry)
            else:
                filters[at] = entry
            self._filters[owner] = filters
            self._cond.notify_all()

    def remove_feed(self) -> None:
        """Take the Feeds API away, as a GoCD release without it: ``/go/api/feed/**`` and the old
        ``/go/api/jobs/scheduled.xml`` answer 404 from now on."""
        with self._cond:
            self._feed = False
        logger.info("The Feeds API is gone")

    def notify(
        self,
        stage_urls: Sequence[str] = (),
        agent_urls: Sequence[str] = (),
        style: str = "do",
        secret: str = "",
    ) -> None:
        """Install a notification plugin that POSTs to these endpoints (see :mod:`actors.sim.gocd_notify`):
        ``do`` style (the DigitalOcean plugin: v3 stage-status and agent-status bodies verbatim) or
        ``webhooker`` (stage-status only, re-serialised, signed with ``secret``). No endpoints: none."""
        with self._cond:
            self.notifier.configure(stage_urls, agent_urls, style, secret)
            now = self.clock.now()
            for agent in self._agents.values():
                agent.notified = self._agent_status(agent, now)

    # --- test controls ----------------------------------------------------------

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
                        "registered_at": a.registered_at,
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
                registered_at=None if config_state == "Pending" else self.clock.now(),
                last_heard=self.clock.now(),
            )
            self._agents[agent.uuid] = agent
            # Set up as already known: no agent-status notification for appearing.
            agent.notified = self._agent_status(agent, agent.last_heard)
            if building is not None:
                job = self._job(building)
                if job is None or job.state != "scheduled":
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

    def _agent_status(self, agent: _Agent, now: float) -> tuple[str, str, str]:
        return agent.config_state, self._agent_state(agent, now), self._build_state(agent, now)

    def _notice_agents(self, now: float) -> None:
        """Send agent-status for every registered agent whose status changed since the last one
        sent (``AgentStatusChangeNotifier``). Silence is judged lazily, so LostContact is noticed
        at the next request the simulator answers."""
        if not self.notifier.wants_agents:
            return
        for agent in self._agents.values():
            if agent.config_state == "Pending":
                continue
            status = self._agent_status(agent, now)
            if status == agent.notified:
                continue
            agent.notified = status
            self.notifier.agent_status(
                agent_status_body(
                    uuid=agent.uuid,
                    hostname=agent.hostname,
                    elastic=is_elastic(agent),
                    ip=agent.ip,
                    operating_system=agent.operating_system,
                    free_space=agent.free_space,
                    config_state=status[0],
                    agent_state=status[1],
                    build_state=status[2],
                    wall_now=self._wall(now),
                )
            )

    def _wall(self, at: float) -> float:
        """Clock time ``at`` as wall-clock seconds."""
        return self._wall_offset + at

    def _stamp(self, now: float) -> float:
        """A job's scheduled date: now, but at least 1 ms after the previous job's (GoCD saves a
        stage's jobs in one loop on the wall clock, a few ms apart), so dates increase with build ids."""
        ms = max(math.ceil(now * 1000 - 1e-6), self._last_ms + 1)
        self._last_ms = ms
        return ms / 1000

    @staticmethod
    def _transition(job: JobInstance, state: str, now: float) -> float:
        """Record a job state transition, never before the job's previous one; its time."""
        at = max(now, job.transitions[-1][1]) if job.transitions else now
        job.transitions.append((state, at))
        return at

    def _job(self, locator: Any) -> JobInstance | None:
        """The live row of job ``locator``: a rescheduled job's newest."""
        return next((j for j in reversed(self._jobs) if j.locator == locator), None)

    def _run(self, pipeline: str, counter: int) -> PipelineRun:
        runs = self._runs.get(pipeline.lower(), [])
        if not 1 <= counter <= len(runs):
            raise ValueError(f"no instance {pipeline}/{counter}")
        return runs[counter - 1]

    def _default_user(self) -> str:
        return next(iter(self._users), None) or "token-user"

    def _touch(self, pipeline: str) -> None:
        """Rebuild a pipeline's dashboard entry: its ``last_updated_timestamp`` is the counter's next."""
        self._dashboard_counter += 1
        self._last_updated[pipeline.lower()] = self._dashboard_counter

    def _save_pipeline(self, config: PipelineConfig) -> None:
        """Save a pipeline config (an entity save): stored, its dashboard entry rebuilt, its
        scheduled jobs the new config lacks cancelled."""
        self._config.save_pipeline(config)
        self._config_changed(config.name)

    def _config_changed(self, pipeline: str) -> None:
        self._touch(pipeline)
        stages = {s.name: s for s in self._config.stages(self._config.pipeline(pipeline))}
        now = self.clock.now()
        changed: dict[int, StageRun] = {}  # by id(): one event per stage
        for job in self._jobs:
            if job.pipeline.lower() != pipeline.lower() or job.state != "scheduled":
                continue
            stage = stages.get(job.stage)
            if stage is None or stage.job(job.config_name) is None:
                logger.info("Cancelled job %s: its config is gone", job.locator)
                self._cancel_job(job, now)
                stage_run = self._stage_of[job.job_id]
                changed[id(stage_run)] = stage_run
        for stage_run in changed.values():
            self._stage_changed(stage_run, scheduled=False)

    def _move_to_environment(self, pipeline: str, environment: str | None) -> None:
        """Move a pipeline between environments; its jobs' environment follows (the feed and
        assignment read the current config)."""
        before = self._config.environment_of(pipeline)
        self._config.move(pipeline, environment)
        env = self._config.environment_of(pipeline)
        if env is before:
            return
        for job in self._jobs:
            if job.pipeline.lower() == pipeline.lower():
                job.environment = env.name if env else None

    def _new_run(self, config: PipelineConfig, *, partial: bool) -> PipelineRun:
        runs = self._runs.setdefault(config.name.lower(), [])
        run = PipelineRun(config.name, len(runs) + 1, self.clock.now(), partial=partial)
        runs.append(run)
        return run

    def _stage_jobs(
        self, pipeline: str, stage: StageConfig, only_job: str | None = None
    ) -> list[tuple[JobConfig, str, str | None]]:
        """The job instances a stage becomes (``InstanceFactory.createJobInstances``): (config, name,
        pinned agent), in config job order then instance order. A run-on-all job runs once on each
        enabled registered agent the pipeline may use (``EnvironmentConfigService.agentsForPipeline``)
        that has its resources; with none it cannot be scheduled (ValueError)."""
        plan: list[tuple[JobConfig, str, str | None]] = []
        for job in stage.jobs:
            if only_job is not None and job.name != only_job:
                continue
            if job.run_instance_count != "all":
                plan.extend((job, name, None) for name in instance_names(job))
                continue
            agents = [
                a.uuid for a in self._agents_for_pipeline(pipeline) if has_all_resources(a, job.resources)
            ]
            if not agents:
                raise ValueError(
                    f"Could not find matching agents to run job [{job.name}] of stage [{stage.name}]."
                )
            plan.extend(zip([job] * len(agents), instance_names(job, len(agents)), agents, strict=True))
        return plan

    def _agents_for_pipeline(self, pipeline: str) -> list[_Agent]:
        """Registered, not disabled agents of the pipeline's environment, or of no defined environment."""
        env = self._config.environment_of(pipeline)
        registered = [a for a in self._agents.values() if a.config_state == "Enabled"]
        if env is not None:
            return [a for a in registered if env.name.lower() in (e.strip().lower() for e in a.environments)]
        defined = self._config.environments
        return [a for a in registered if not any(e.strip().lower() in defined for e in a.environments)]

    def _schedule_stage(
        self, run: PipelineRun, stage: StageConfig, approved_by: str, *, only_job: str | None = None
    ) -> StageRun:
        """Schedule a run of ``stage`` in ``run``: its jobs ``Scheduled`` with their job plans (the
        resolved config now), a stage event (dashboard, notification)."""
        plan = self._stage_jobs(run.name, stage, only_job)
        now = self.clock.now()
        previous = run.latest(stage.name)
        if previous is not None:
            previous.latest_run = False
        counter = previous.counter + 1 if previous is not None else 1
        env = self._config.environment_of(run.name)
        stage_run = StageRun(
            pipeline=run.name,
            pipeline_counter=run.counter,
            name=stage.name,
            counter=counter,
            approval_type=stage.approval,
            approved_by=approved_by,
            created_at=now,
            fetch_materials=stage.fetch_materials,
            clean_working_directory=stage.clean_working_directory,
        )
        for job_config, name, pin in plan:
            at = self._stamp(now)
            job = JobInstance(
                locator=f"{stage_run.locator}/{name}",
                pipeline=run.name,
                pipeline_counter=run.counter,
                stage=stage.name,
                name=name,
                config_name=job_config.name,
                resources=job_config.resources,
                environment=env.name if env else None,
                elastic_profile_id=job_config.elastic_profile_id,
                duration_s=job_config.duration_s,
                variables=tuple((k, v, False) for k, v in job_config.variables)
                + tuple((k, v, True) for k, v in job_config.secure_variables),
                job_id=next(self._job_ids),
                scheduled_at=at,
                agent_uuid=pin,
                transitions=[("Scheduled", at)],
                stage_counter=counter,
            )
            stage_run.jobs.append(job)
            self._stage_of[job.job_id] = stage_run
            self._jobs.append(job)
        run.stages.append(stage_run)
        logger.info("Scheduled stage %s (%d jobs)", stage_run.locator, len(stage_run.jobs))
        self._stage_changed(stage_run, scheduled=True)
        return stage_run

    def _stage_changed(self, stage: StageRun, *, scheduled: bool) -> None:
        """A stage status event (``StageService`` listeners): the dashboard entry is rebuilt; a
        stage-status notification goes out when the stage was scheduled (``isScheduled``/``isReRun``)
        or completed; a passed stage schedules the next automatic one."""
        self._touch(stage.pipeline)
        if scheduled or stage.completed:
            config = self._config.find(stage.pipeline)
            run = self._run(stage.pipeline, stage.pipeline_counter)
            v3, v1 = stage_status_bodies(
                stage,
                config.group if config else "",
                run.triggered_at,
                self._wall,
                just_scheduled=scheduled,
            )
            self.notifier.stage_status(v3, v1)
        if stage.state == "Passed":
            self._schedule_next(stage)

    def _schedule_next(self, stage: StageRun) -> None:
        """``ScheduleService.automaticallyTriggerRelevantStagesFollowingCompletionOf``: after a passed
        stage, the next stage of the current config runs if its approval is ``success``, the
        pipeline is not paused and that stage is not running already."""
        run = self._run(stage.pipeline, stage.pipeline_counter)
        config = self._config.find(stage.pipeline)
        if run.partial or config is None or config.name.lower() in self._paused:
            return
        stages = self._config.stages(config)
        names = [s.name for s in stages]
        if stage.name not in names or names.index(stage.name) + 1 >= len(stages):
            return
        following = stages[names.index(stage.name) + 1]
        if following.approval != "success":
            return
        latest = run.latest(following.name)
        if latest is not None and not latest.completed:
            # triggerNextStageInPipeline: a stage still running (run by hand meanwhile) is not
            # scheduled again (isStageActive).
            return
        try:
            self._schedule_stage(run, following, "changes")
        except ValueError as e:
            logger.warning(
                "Could not schedule stage %s of %s/%d: %s", following.name, run.name, run.counter, e
            )

    def _cancel_job(self, job: JobInstance, now: float) -> None:
        agent = self._agents.get(job.agent_uuid or "") if job.state == "building" else None
        if agent is not None and agent.job == job.locator:
            agent.runtime = "Cancelled"
        job.state, job.result = "completed", "Cancelled"
        job.completed_at = self._transition(job, "Completed", now)

    def _assign(self, job: JobInstance, agent: _Agent, now: float) -> None:
        job.state, job.agent_uuid = "building", agent.uuid
        job.assigned_at = self._transition(job, "Assigned", now)
        agent.runtime, agent.job = "Building", job.locator
        logger.info("Assigned job %s to agent %s", job.locator, agent.hostname)

    def _complete(self, job: JobInstance, result: str, now: float) -> None:
        """The agent reported ``job`` completed: a stage event, and its stage's end if it was the last."""
        job.state = "completed"
        job.result = result if result in ("Passed", "Failed", "Cancelled") else "Unknown"
        job.completed_at = self._transition(job, "Completed", now)
        self._stage_changed(self._stage_of[job.job_id], scheduled=False)

    def _next_job_for(self, agent: _Agent) -> JobInstance | None:
        """GoCD's ``BuildAssignmentService.assignWorkToAgent``: the job this agent gets, or None.

        Pending and disabled agents get nothing; in maintenance mode GoCD stops
        reloading its job list, which the simulator keeps simple as no work at all.
        """
        if self._maintenance or agent.config_state != "Enabled" or agent.runtime != "Idle":
            return None
        return find_matching_job(
            agent, self._scheduled(), EnvironmentPipelineMatchers(self._config.environments)
        )

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
                now = self._refresh()
                self._notice_agents(now)
                response = self._route(request)
                self._notice_agents(self.clock.now())
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
        is_feed = r.path.startswith("/go/api/feed/") or r.path == "/go/api/jobs/scheduled.xml"
        if is_feed and not self._feed:
            # No controller any more, and no exemption from the Accept rule: SparkPreFilter's 404.
            return _Response(404, NOT_FOUND_TEXT.encode(), "text/plain;charset=utf-8")
        if r.path == "/go/api/feed/jobs/scheduled.xml" and self._version >= (20, 6):
            if r.method != "GET" or "vnd.go.cd" in r.accept:
                return _html_404()
            return self._feed_xml(r, is_admin)
        if r.path == "/go/api/jobs/scheduled.xml" and self._version < (20, 9):
            if r.method != "GET":
                return _html_404()
            if not is_admin:
                return _xml_error(403, "access-denied", FORBIDDEN_RESOURCE)
            return self._old_feed(r)
        if is_feed:
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
        user = user or "anonymous"
        if r.path == "/go/api/dashboard" and r.method == "GET" and self._serves(version, 4, (19, 5)):
            return self._dashboard(r, user, is_admin)
        if r.path.startswith("/go/api/stages/") and r.method == "GET" and self._serves(version, 3, (20, 9)):
            parts = [unquote(p) for p in r.path[len("/go/api/stages/") :].split("/")]
            if len(parts) == 4 and all(parts):
                return self._stage_instance(r, parts, is_admin)
        if (
            r.path.startswith("/go/api/admin/pipelines/")
            and r.method == "GET"
            and self._serves(version, 11, (20, 8))
        ):
            return self._pipeline_config(r, unquote(r.path[len("/go/api/admin/pipelines/") :]), is_admin)
        if (
            r.path.startswith("/go/api/admin/templates/")
            and r.method == "GET"
            and self._serves(version, 7, (20, 2))
        ):
            return self._template_config(r, unquote(r.path[len("/go/api/admin/templates/") :]), is_admin)
        environments = r.path == "/go/api/admin/environments" or r.path.startswith(
            "/go/api/admin/environments/"
        )
        if environments and r.method == "GET" and self._serves(version, 3, (19, 9)):
            return self._environments_api(r, user, is_admin)
        return _html_404()

    def _serves(self, version: int, served: int, since: tuple[int, int]) -> bool:
        """Whether this GoCD has the API version ``served`` (since ``since``) and Accept asked for it
        (or for the generic alias, which means the latest version)."""
        return self._version >= since and version in (0, served)

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

    def _scheduled(self) -> list[JobInstance]:
        """Every job waiting for an agent, by scheduled date then build id (``scheduledPlanIds``)."""
        return sorted(
            (j for j in self._jobs if j.state == "scheduled"), key=lambda j: (j.scheduled_at, j.job_id)
        )

    def _job_xml(self, job: JobInstance, base: str, feed: bool) -> list[str]:
        locator = "/".join(
            quote(p, safe="")
            for p in (job.pipeline, str(job.pipeline_counter), job.stage, str(job.stage_counter), job.name)
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

    def _feed_xml(self, r: _Request, is_admin: bool) -> _Response:
        jobs = self._scheduled()
        if not is_admin and self._version >= (20, 9):
            # Only jobs of pipelines the user may view; a pipeline no longer in config counts as
            # viewable (SecurityService.hasViewPermissionForPipeline's "insecure default").
            jobs = [j for j in jobs if self._may_view(j.pipeline, is_admin)]
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

    # --- permissions ----------------------------------------------------------------

    def _may_view(self, pipeline: str, is_admin: bool) -> bool:
        group = self._config.group_of(pipeline)
        return is_admin or group is None or group.view

    # --- dashboard ------------------------------------------------------------------

    def _dashboard(self, r: _Request, user: str, is_admin: bool) -> _Response:
        """``GET /go/api/dashboard`` v4 (``DashboardControllerV4``, ``gocd-api.md`` 8)."""
        ctype = "application/vnd.go.cd.v4+json;charset=utf-8"
        now = self.clock.now()
        if now < self._dashboard_ready_at:
            return _Response(202, _jackson({"message": DASHBOARD_PROCESSING}), ctype)
        etag, body = dashboard_json(
            self._config,
            self._runs,
            last_updated=self._last_updated,
            paused=self._paused,
            filters=(self._filters.get(user) if self._security_on() else None) or [DEFAULT_FILTER],
            view=(r.query.get("viewName") or [""])[0].strip() or "Default",
            user=user,
            is_admin=is_admin,
            base=r.base(),
            version=self.version,
            wall=self._wall,
            now=now,
        )
        return _not_modified_or(r, etag, _Response(200, _jackson(body), ctype))

    # --- stage instance ---------------------------------------------------------------

    def _stage_instance(self, r: _Request, parts: list[str], is_admin: bool) -> _Response:
        """``GET /go/api/stages/:p/:pc/:s/:sc`` v3 (``StageInstanceControllerV3``, ``gocd-api.md`` 9.1)."""
        ctype = "application/vnd.go.cd.v3+json;charset=utf-8"
        pipeline, pipeline_counter, stage, stage_counter = parts
        config = self._config.find(pipeline)
        if self._security_on():
            # The before filter (checkPipelineViewPermissionsAnd403) answers first.
            if config is None:
                return _Response(404, _gson(f"Pipeline with name '{pipeline}' was not found!"), ctype)
            if not self._may_view(pipeline, is_admin):
                return _Response(403, _gson(FORBIDDEN_ACTION), ctype)
        counter = _java_int(pipeline_counter)
        if counter is None:
            # Integer.parseInt's NumberFormatException, unhandled.
            return _Response(500, _gson(f'For input string: "{pipeline_counter}"', key="error"), ctype)
        if config is None:
            return _Response(404, _gson(f"Not Found {{ Pipeline '{pipeline}' not found }}"), ctype)
        runs = self._runs.get(pipeline.lower(), [])
        if not 1 <= counter <= len(runs):
            return _Response(
                404,
                _gson(f"Not Found {{ Pipeline '{pipeline}' with counter '{pipeline_counter}' not found }}"),
                ctype,
            )
        number = _java_int(stage_counter)
        if number is None:
            return _Response(500, _gson(f'For input string: "{stage_counter}"', key="error"), ctype)
        run = runs[counter - 1]
        found = next((s for s in run.stages if s.name.lower() == stage.lower() and s.counter == number), None)
        now = self.clock.now()
        if found is None:
            # The DAO's NullStage has no lastTransitionedTime: the same NPE up to 25.4.0.
            if self._version < (26, 1):
                return _Response(500, _gson(STAGE_NPE, key="error"), ctype)
            return _Response(200, _jackson(null_stage_json(stage, self._wall(now))), ctype)
        body = stage_instance_json(found, self._wall, omit_null_transition=self._version >= (26, 1))
        if now - found.created_at < self.stage_transition_lag_s:
            body.pop("last_transitioned_time", None)
            if self._version < (26, 1):
                return _Response(500, _gson(STAGE_NPE, key="error"), ctype)
        return _Response(200, _jackson(body), ctype)

    # --- config APIs ---------------------------------------------------------------

    def _pipeline_config(self, r: _Request, name: str, is_admin: bool) -> _Response:
        """``GET /go/api/admin/pipelines/:name`` v11: super-admins and the group's admins."""
        ctype = "application/vnd.go.cd.v11+json;charset=utf-8"
        config = self._config.find(name)
        if config is None:
            return _Response(404, _gson(f"Pipeline with name '{name}' was not found!"), ctype)
        group = self._config.groups[config.group.lower()]
        if not (is_admin or group.admin):
            return _Response(403, _gson(FORBIDDEN_ACTION), ctype)
        body = _jackson(pipeline_config_json(config, r.base(), self.version))
        # EntityHashingService: the pipeline's own config and group, not its template's stages.
        etag = hashlib.sha256(json.dumps([config.group, repr(config)]).encode()).hexdigest()
        return _not_modified_or(r, etag, _Response(200, body, ctype))

    def _template_config(self, r: _Request, name: str, is_admin: bool) -> _Response:
        """``GET /go/api/admin/templates/:name`` v7: super-admins, and group admins (templates let
        them view by default, ``allowGroupAdmins``); template admins and view users are not modelled."""
        ctype = "application/vnd.go.cd.v7+json;charset=utf-8"
        template = self._config.templates.get(name.lower())
        group_admin = any(g.admin for g in self._config.groups.values())
        if template is None:
            return _Response(404, _gson(f"Template with name '{name}' was not found!"), ctype)
        if not (is_admin or group_admin):
            return _Response(403, _gson(FORBIDDEN_ACTION), ctype)
        body = _jackson(template_config_json(template, r.base(), self.version))
        etag = hashlib.sha256(repr(template).encode()).hexdigest()
        return _not_modified_or(r, etag, _Response(200, body, ctype))

    def _environments_api(self, r: _Request, user: str, is_admin: bool) -> _Response:
        """``GET /go/api/admin/environments[/:name]`` v3 (``EnvironmentsControllerV3``): the index
        lists what the user may view (super-admins: all; others, without environment policies: none)
        and ignores If-None-Match; one environment needs view permission, then has ETag and 304."""
        ctype = "application/vnd.go.cd.v3+json;charset=utf-8"
        base = r.base()
        if r.path == "/go/api/admin/environments":
            envs = (
                sorted(self._config.environments.values(), key=lambda e: e.name.lower()) if is_admin else []
            )
            body = {
                "_links": {
                    "self": {"href": f"{base}/api/admin/environments"},
                    "doc": {"href": "https://api.gocd.org/current/#environment-config"},
                },
                "_embedded": {
                    "environments": [environment_json(e.name, e.pipelines, base, self.version) for e in envs]
                },
            }
            etag = hashlib.sha256(repr([(e.name, e.pipelines) for e in envs]).encode()).hexdigest()
            return _Response(200, _jackson(body), ctype, [("ETag", f'"{etag}"')])
        name = unquote(r.path[len("/go/api/admin/environments/") :])
        if not is_admin:
            message = f"User '{user}' does not have permissions to view '{name}' environment(s)."
            return _Response(403, _gson(message), ctype)
        env = self._config.environments.get(name.lower())
        if env is None:
            return _Response(404, _gson(f"Environment with name '{name}' was not found!"), ctype)
        etag = hashlib.sha256(repr((env.name, env.pipelines)).encode()).hexdigest()
        return _not_modified_or(
            r,
            etag,
            _Response(200, _jackson(environment_json(env.name, env.pipelines, base, self.version)), ctype),
        )

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
        job = self._job(agent.job)
        if job is not None and obj["build_state"] == "Building":
            obj["build_details"] = {
                "_links": {
                    "job": {"href": f"{base}/tab/build/detail/{job.locator}"},
                    "stage": {"href": f"{base}/pipelines/{job.locator.rsplit('/', 1)[0]}"},
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
        if environment.lower() not in self._config.environments:
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
        if state == "Enabled" and agent.registered_at is None:
            agent.registered_at = now

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
        # ignored rows are jobs rescheduled away from it (reschedule_job).
        done = sorted(
            (j for j in self._jobs if j.agent_uuid == uuid and j.state in ("completed", "rescheduled")),
            key=lambda j: j.job_id,
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

    def _history_job_json(self, job: JobInstance) -> dict[str, Any]:
        """One job of the history, as ``AgentJobHistoryRepresenter`` writes it."""
        return {
            "job_state_transitions": [
                {"state_change_time": self._iso(at), "state": state} for state, at in job.transitions
            ],
            "job_name": job.name,
            "stage_name": job.stage,
            "stage_counter": str(job.stage_counter),
            "pipeline_name": job.pipeline,
            "pipeline_counter": job.pipeline_counter,
            "result": job.result,
            "rerun": False,
        }

    def _iso(self, at: float) -> str:
        """Clock time ``at`` as GoCD's ISO-8601 date, on the clock's wall time."""
        return _iso8601(self._wall(at))

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
                registered_at=now,
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
                self._transition(job, state, now)
            return _Response(200, b"{}", ctype)
        if op == "report_completed":
            job = self._running_job(uuid, body.get("locator"))
            if agent.job == body.get("locator"):
                agent.job, agent.runtime = None, "Idle"
            if job is not None:
                self._complete(job, str(body.get("result")), now)
                logger.info("Job %s completed on agent %s", job.locator, agent.hostname)
            return _Response(200, b"{}", ctype)
        if op == "is_ignored":
            return _Response(200, b"false", ctype)
        return _html_404()

    def _running_job(self, uuid: str, locator: Any) -> JobInstance | None:
        """The job ``locator`` if agent ``uuid`` is running it."""
        job = self._job(locator)
        return job if job is not None and job.agent_uuid == uuid and job.state == "building" else None

    # --- /_sim/ -------------------------------------------------------------------

    def _notifications(self) -> dict[str, Any]:
        """The notification plugin's counters and delivery log, as ``GET /_sim/notifications`` shows them."""
        n = self.notifier
        return {
            "sent": n.sent,
            "failed": n.failed,
            "expired": n.expired,
            "deliveries": [
                {
                    "kind": d.kind,
                    "url": d.url,
                    "status": d.status,
                    "ok": d.ok,
                    "error": d.error,
                    "body": d.body.decode(),
                    "headers": [list(h) for h in d.headers],
                    "queued_at": d.queued_at,
                    "sent_at": d.sent_at,
                }
                for d in list(n.deliveries)
            ],
        }

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
            if r.path == "/_sim/templates" and r.method == "POST":
                self.define_template(str(body["name"]), list(body["stages"]))
                return _Response(200, b'{"ok": true}', ctype)
            if r.path == "/_sim/pipelines" and r.method == "POST":
                self.define_pipeline(
                    str(body["name"]),
                    group=str(body.get("group", "defaultGroup")),
                    stages=body.get("stages"),
                    template=body.get("template"),
                    parameters=body.get("parameters"),
                    environment=body.get("environment"),
                )
                return _Response(200, b'{"ok": true}', ctype)
            if r.path.startswith("/_sim/pipelines/") and r.path.endswith("/trigger") and r.method == "POST":
                name = unquote(r.path[len("/_sim/pipelines/") : -len("/trigger")])
                locators = self.trigger_pipeline(name)
                return _Response(200, json.dumps({"locators": locators}).encode(), ctype)
            if r.path == "/_sim/feed" and r.method == "DELETE":
                self.remove_feed()
                return _Response(200, b'{"ok": true}', ctype)
            if r.path == "/_sim/notify" and r.method == "POST":
                self.notify(
                    stage_urls=[str(u) for u in body.get("stage_urls") or ()],
                    agent_urls=[str(u) for u in body.get("agent_urls") or ()],
                    style=str(body.get("style", "do")),
                    secret=str(body.get("secret", "")),
                )
                return _Response(200, b'{"ok": true}', ctype)
            if r.path == "/_sim/notifications" and r.method == "GET":
                return _Response(200, json.dumps(self._notifications(), indent=2).encode(), ctype)
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
_HISTORY_SORT_KEYS: dict[str, Callable[[JobInstance], Any]] = {
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


class _Handler(QuietRequestHandler):
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
    parser.add_argument("--no-feed", action="store_true", help="serve no Feeds API (as GoCD 26.2.0+)")
    parser.add_argument(
        "--dashboard-warmup", type=float, default=0.0, help="seconds the dashboard answers 202 after start"
    )
    parser.add_argument(
        "--notify-stage-url",
        action="append",
        default=[],
        help="POST stage-status notifications here (repeatable)",
    )
    parser.add_argument(
        "--notify-agent-url",
        action="append",
        default=[],
        help="POST agent-status notifications here (repeatable)",
    )
    parser.add_argument(
        "--notify-style", choices=("do", "webhooker"), default="do", help="which notification plugin to play"
    )
    parser.add_argument("--notify-secret", default="", help="the webhooker plugin's HMAC secret")
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
        feed=not args.no_feed,
        dashboard_warmup_s=args.dashboard_warmup,
        port=args.port,
    )
    if args.notify_stage_url or args.notify_agent_url:
        sim.notify(args.notify_stage_url, args.notify_agent_url, args.notify_style, args.notify_secret)
    return serve_until_signal(sim)


if __name__ == "__main__":
    sys.exit(main())
