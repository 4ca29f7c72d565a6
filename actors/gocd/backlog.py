"""Where the job backlog is read: the backlog sources behind one interface.

A :class:`BacklogSource` reads the jobs waiting for an agent, in the order GoCD
hands them out, and says afterwards which GoCD reads that took (``timings``),
which read failed (``endpoint``), where the jobs came from (``name``) and what
it could not see (``problems``). ``[gocd] backlog`` picks one (:func:`make_backlog`):

* :class:`FeedSource` (``feed``): GoCD's scheduled-jobs feed, falling back to
  the old admin-only endpoint of GoCD <= 20.8, with elastic profiles from the
  pipeline configs. One request per poll; deprecated in GoCD 25.4.0 without a
  replacement, and due to go.
* :class:`DashboardSource` (``dashboard``): the feed's list rebuilt from the
  dashboard, stage instance, pipeline config and template APIs (GoCD >= 20.9.0),
  as ``gocd-api.md`` 11.1 lays it out. One request per poll plus one per
  Building or Failing stage, plus a conditional one per pipeline config that
  changed. The resources need a super-admin or a pipeline-group admin; a job
  whose resources it cannot read is marked (``resources_unknown``) rather than
  guessed.
* :class:`AutoSource` (``auto``): the feed while GoCD serves it; once both feed
  endpoints answer 404, the dashboard, from that very poll on and for good.

HTTP is the client's (:class:`~actors.gocd.client.GoCDClient`) and parsing the
pure functions' of :mod:`actors.gocd.dashboard`; this module holds the
algorithm and its caches. A source runs on the poller's thread only.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from actors.clock import Clock
from actors.exceptions import GoCDAuthError, GoCDBadResponse, GoCDError, GoCDNotFound, GoCDServerError
from actors.gocd.client import GoCDClient
from actors.gocd.dashboard import (
    Dashboard,
    PipelineConfig,
    StageConfig,
    StageJob,
    StageKey,
    TemplateConfig,
    resolve_params,
    run_marker,
)
from actors.messages import ScheduledJob

__all__ = [
    "BACKLOG_SOURCES",
    "CONFIG_RETRY_SECONDS",
    "AutoSource",
    "BacklogSource",
    "DashboardSource",
    "FeedSource",
    "make_backlog",
]

logger = logging.getLogger(__name__)

#: The values of ``[gocd] backlog``.
BACKLOG_SOURCES = ("auto", "feed", "dashboard")
#: Seconds before a pipeline config or template that could not be read (403, 404) is asked
#: for again, unless the pipeline's dashboard entry changes first.
CONFIG_RETRY_SECONDS = 300.0
#: Polls in a row a stage may answer 500 before a WARNING says its jobs are an older poll's.
STAGE_FAILURES_WARNED = 3

#: The permission each config read needs, for messages (``gocd-api.md`` 10.1, 10.2).
NEEDS_CONFIG = "a super-admin, or an admin of the pipeline's group"
NEEDS_TEMPLATE = (
    "a super-admin, an admin or viewer of the template, or a group admin where the template "
    "allows group admins"
)

R = TypeVar("R")


class BacklogSource(Protocol):
    """Reads the jobs waiting for an agent; says what the read took and could not see."""

    @property
    def name(self) -> str:
        """Where the last read's jobs came from: ``feed`` or ``dashboard``."""
        ...

    @property
    def problems(self) -> tuple[str, ...]:
        """What the last read could not see, one line each for operators; empty when nothing."""
        ...

    @property
    def timings(self) -> tuple[tuple[str, float], ...]:
        """(endpoint, wall-clock seconds) of each GoCD read the last read made."""
        ...

    @property
    def endpoint(self) -> str:
        """The GoCD read under way, or the one that failed last: ``scheduled_jobs``,
        ``dashboard``, ``stage``, ``pipeline_config`` or ``template``."""
        ...

    def read(self) -> tuple[ScheduledJob, ...]:
        """The jobs waiting for an agent, in the order GoCD gives them out (scheduled time,
        then build id). Raises :class:`~actors.exceptions.GoCDError` when GoCD cannot tell
        (never an empty backlog it did not see)."""
        ...


class _TimedReads:
    """What a source says of the GoCD reads of its last backlog read: each timed, the last one
    named (the :class:`BacklogSource` ``timings`` and ``endpoint``)."""

    def __init__(self) -> None:
        self._timings: list[tuple[str, float]] = []
        self._endpoint = ""

    @property
    def timings(self) -> tuple[tuple[str, float], ...]:
        return tuple(self._timings)

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def _begin(self) -> None:
        """A backlog read starts: forget the last one's reads."""
        self._timings = []
        self._endpoint = ""

    def _call(self, endpoint: str, function: Callable[..., R], *args: Any) -> R:
        """``function(*args)``, one GoCD read of ``endpoint``, timed (failed or not)."""
        self._endpoint = endpoint
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            self._timings.append((endpoint, time.perf_counter() - started))


# --- the feed -----------------------------------------------------------------------


class FeedSource(_TimedReads):
    """GoCD's scheduled-jobs feed (``gocd-api.md`` 1), with elastic profiles from the
    pipeline configs (:meth:`~actors.gocd.client.GoCDClient.with_elastic_profiles`)."""

    name = "feed"
    problems: tuple[str, ...] = ()

    def __init__(self, client: GoCDClient) -> None:
        super().__init__()
        self._client = client

    def read(self) -> tuple[ScheduledJob, ...]:
        self._begin()
        try:
            # One timing for the feed and the pipeline configs it needed, as always.
            return self._call(
                "scheduled_jobs", lambda: self._client.with_elastic_profiles(self._client.scheduled_jobs())
            )
        except GoCDNotFound as e:
            raise GoCDNotFound(
                f"{e}; GoCD serves no scheduled-jobs feed (its Feeds API is deprecated since 25.4.0): "
                "[gocd] backlog = auto or dashboard reads the dashboard instead",
                method=e.method,
                url=e.url,
                status=e.status,
            ) from None


# --- the dashboard ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Config:
    """A pipeline's config as last read, or why it could not be."""

    #: The pipeline's ``last_updated_timestamp`` on the dashboard when it was read.
    seen: int
    #: The config; None when it could not be read.
    config: PipelineConfig | None = None
    #: Its ETag, for If-None-Match.
    etag: str | None = None
    #: Why it could not be read, for operators; None when it was.
    problem: str | None = None
    #: Clock time after which a config that could not be read is asked for again.
    retry_at: float = 0.0


@dataclass(frozen=True)
class _Template:
    """A template as last read, or why it could not be."""

    #: The template; None when it could not be read.
    config: TemplateConfig | None = None
    #: Its ETag, for If-None-Match.
    etag: str | None = None
    #: Why it could not be read, for operators; None when it was.
    problem: str | None = None
    #: Clock time after which a template that could not be read is asked for again.
    retry_at: float = 0.0


#: How waiting jobs sort: the feed's order (scheduled time, then build id) rebuilt
#: (``gocd-api.md`` 11.1): scheduled date, pipeline, its counter, stage, its counter, the job's
#: index in its stage's config, its run-instance number, then its name.
_SortKey = tuple[float, str, int, str, int, float, int, str]
#: A waiting job, its sort key, and the problem that left its resources unknown, if any.
_Entry = tuple[_SortKey, ScheduledJob, "str | None"]


@dataclass(frozen=True)
class _JobSpec:
    """What the config says of one waiting job."""

    #: The job's index in its stage's config (inf when not found).
    order: float = math.inf
    #: Resources, params resolved.
    resources: frozenset[str] = frozenset()
    #: Elastic profile id, params resolved; None for none.
    elastic_profile_id: str | None = None
    #: Why the above are unknown; None when they are known.
    unknown: str | None = None
    #: The same, when it is a problem for operators to fix (a permission, a parameter).
    problem: str | None = None


class DashboardSource(_TimedReads):
    """The feed's list rebuilt from the dashboard, stage instance, pipeline config and template
    APIs (``gocd-api.md`` 11.1).

    Every read: the dashboard (``If-None-Match``; 304 reuses the last one; 202, GoCD still
    building it after a start, keeps the last backlog, or before any is a GoCDError); for each
    Building or Failing latest-run stage of a real instance (not the ``-1`` placeholder), the
    stage instance, whose ``Scheduled`` jobs wait for an agent (a 500, which GoCD <= 25.4
    answers right after scheduling, keeps that stage's jobs of the last read, so nothing
    scales down on it); for each pipeline with a waiting job, its config, cached and
    revalidated with ``If-None-Match`` only when its dashboard ``last_updated_timestamp``
    moved, and its template (v7) when it has one; resources and elastic profile with the
    pipeline's ``#{param}`` resolved; the environment from the dashboard. URLs are built from
    the configured base URL, never from the ``_links`` of the answers (their host is the one
    the request reached, not the one behind a proxy).

    A 403 on a config or template, a config that is gone, or a parameter the pipeline does not
    define leaves the jobs concerned ``resources_unknown`` and is a problem (logged once).
    """

    name = "dashboard"

    def __init__(self, client: GoCDClient, *, clock: Clock) -> None:
        super().__init__()
        self._client = client
        self._clock = clock
        self._etag: str | None = None
        self._dashboard: Dashboard | None = None
        self._result: tuple[ScheduledJob, ...] | None = None
        self._problems: tuple[str, ...] = ()
        #: The waiting jobs of each active stage at the last read.
        self._stages: dict[StageKey, tuple[_Entry, ...]] = {}
        #: Failed reads in a row of each stage that keeps its older jobs.
        self._stage_failures: dict[StageKey, int] = {}
        self._configs: dict[str, _Config] = {}
        self._templates: dict[str, _Template] = {}
        #: Templates read (or revalidated) during the read under way.
        self._templates_fresh: set[str] = set()
        #: Problems already logged, by key.
        self._logged: set[str] = set()

    @property
    def problems(self) -> tuple[str, ...]:
        return self._problems

    @property
    def base_url(self) -> str:
        """The GoCD base URL, ending in ``/go``."""
        return self._client.base_url

    def read(self) -> tuple[ScheduledJob, ...]:
        self._begin()
        self._templates_fresh = set()
        dashboard = self._read_dashboard()
        if dashboard is None:
            # 202 after a GoCD start: no data, which is no news; the last backlog stands.
            assert self._result is not None
            return self._result
        updated = {p.name: p.last_updated for p in dashboard.pipelines}
        stages: dict[StageKey, tuple[_Entry, ...]] = {}
        problems: list[str] = []
        for key in dashboard.active_stages():
            jobs = self._read_stage(key, problems)
            if jobs is None:
                # GoCD failed on this stage this time: its jobs of the last read stand.
                stages[key] = self._stages.get(key, ())
                continue
            environment = dashboard.environment_of(key.pipeline)
            stages[key] = tuple(
                self._entry(key, job, self._spec(key, job.name, updated.get(key.pipeline, 0)), environment)
                for job in jobs
                if job.state == "Scheduled"
            )
        self._stages = stages
        self._forget(dashboard)
        entries = sorted(entry for entries in stages.values() for entry in entries)
        problems.extend(problem for _, _, problem in entries if problem is not None)
        self._problems = tuple(dict.fromkeys(problems))
        self._result = tuple(job for _, job, _ in entries)
        return self._result

    # -- the dashboard --

    def _read_dashboard(self) -> Dashboard | None:
        answer = self._call("dashboard", self._client.dashboard, self._etag)
        if answer.status == 202:
            if self._result is None:
                url = self._client.base_url + "/api/dashboard"
                raise GoCDServerError(
                    f"GET {url} failed: GoCD is still building its dashboard after a start (202): "
                    "no backlog yet",
                    method="GET",
                    url=url,
                    status=202,
                )
            logger.info("GoCD is rebuilding its dashboard (202); the backlog of the last poll stands")
            return None
        if answer.status == 304 and self._dashboard is not None:
            return self._dashboard
        if answer.value is None:
            url = self._client.base_url + "/api/dashboard"
            raise GoCDBadResponse(
                f"GET {url} failed: GoCD answered {answer.status} with no dashboard",
                method="GET",
                url=url,
                status=answer.status,
            )
        self._dashboard, self._etag = answer.value, answer.etag
        return answer.value

    def _forget(self, dashboard: Dashboard) -> None:
        """Drop what is cached of pipelines the dashboard no longer lists, and of stages no
        longer active."""
        names = {p.name for p in dashboard.pipelines}
        for name in set(self._configs) - names:
            del self._configs[name]
        used = {c.config.template for c in self._configs.values() if c.config and c.config.template}
        for name in set(self._templates) - used:
            del self._templates[name]
        for key in set(self._stage_failures) - set(self._stages):
            del self._stage_failures[key]

    # -- stages --

    def _read_stage(self, key: StageKey, problems: list[str]) -> tuple[StageJob, ...] | None:
        """The stage's jobs, () when it is gone, or None when GoCD failed on it this time (500)."""
        args = (key.pipeline, key.pipeline_counter, key.stage, key.stage_counter)
        try:
            jobs = self._call("stage", self._client.stage_jobs, *args)
        except GoCDServerError as e:
            if e.status != 500:
                raise
            failures = self._stage_failures[key] = self._stage_failures.get(key, 0) + 1
            kept = len(self._stages.get(key, ()))
            log = logger.warning if failures == STAGE_FAILURES_WARNED else logger.debug
            log(
                "GoCD failed to list the jobs of stage %s (500, %d poll(s) in a row); its %d waiting job(s) "
                "of an earlier poll stand",
                _stage_name(key),
                failures,
                kept,
            )
            return None
        except GoCDNotFound:
            logger.debug("Stage %s is gone (404)", _stage_name(key))
            return ()
        except GoCDAuthError as e:
            if e.status != 403:
                raise
            who = self._client.who()
            text = f"{who} may not view pipeline {key.pipeline} (403): its waiting jobs are not seen"
            problems.append(text)
            self._log_once(f"stage-403:{key.pipeline}", text)
            return ()
        self._stage_failures.pop(key, None)
        return jobs

    def _entry(self, key: StageKey, job: StageJob, spec: _JobSpec, environment: str | None) -> _Entry:
        instance = run_marker(job.name)[1]
        locator = "/".join(
            (key.pipeline, str(key.pipeline_counter), key.stage, str(key.stage_counter), job.name)
        )
        path = "/".join(
            quote(str(p), safe="")
            for p in (key.pipeline, key.pipeline_counter, key.stage, key.stage_counter, job.name)
        )
        scheduled = job.scheduled_date / 1000.0 if job.scheduled_date is not None else None
        sort_key: _SortKey = (
            job.scheduled_date if job.scheduled_date is not None else math.inf,
            key.pipeline,
            key.pipeline_counter,
            key.stage,
            key.stage_counter,
            spec.order,
            instance,
            job.name,
        )
        waiting = ScheduledJob(
            locator=locator,
            pipeline=key.pipeline,
            pipeline_counter=key.pipeline_counter,
            stage=key.stage,
            stage_counter=key.stage_counter,
            name=job.name,
            environment=environment,
            resources=spec.resources,
            url=f"{self._client.base_url}/tab/build/detail/{path}",
            elastic_profile_id=spec.elastic_profile_id,
            pinned_agent=job.agent_uuid,
            scheduled_at=scheduled,
            resources_unknown=spec.unknown,
        )
        return sort_key, waiting, spec.problem

    # -- configs --

    def _spec(self, key: StageKey, job_name: str, updated: int) -> _JobSpec:
        """What the current config says of job ``job_name`` of the stage run ``key``."""
        entry, revalidated = self._config(key.pipeline, updated)
        if entry.problem is not None:
            return _JobSpec(unknown=entry.problem, problem=entry.problem)
        assert entry.config is not None
        config = entry.config
        stages = config.stages
        if config.template is not None:
            template = self._template(config.template, revalidated)
            if template.problem is not None:
                return _JobSpec(unknown=template.problem, problem=template.problem)
            assert template.config is not None
            stages = template.config.stages
        stage = _stage_config(stages or (), key.stage)
        # The job by its own name, else by the configured name of a run-instance/run-on-all job.
        found = (stage.job(job_name) or stage.job(run_marker(job_name)[0])) if stage is not None else None
        if found is None:
            # GoCD cancels a scheduled job whose stage or job left the config (gocd-api.md 10.3).
            return _JobSpec(
                unknown=f"job {job_name} of stage {key.stage} is not in the current config of pipeline "
                f"{key.pipeline}"
            )
        order, job = found
        params = dict(config.parameters)
        try:
            resources = frozenset(resolve_params(r, params) for r in job.resources)
            elastic = resolve_params(job.elastic_profile_id, params) if job.elastic_profile_id else None
        except ValueError as e:
            text = f"pipeline {key.pipeline}, job {job.name}: {e}"
            self._log_once(f"param:{text}", f"Resources unknown: {text}")
            return _JobSpec(order=order, unknown=text, problem=text)
        return _JobSpec(
            order=order, resources=frozenset(r for r in resources if r), elastic_profile_id=elastic or None
        )

    def _config(self, pipeline: str, updated: int) -> tuple[_Config, bool]:
        """The pipeline's config, and whether it was (re)read now: the cached one while its
        dashboard entry has not changed, else revalidated with If-None-Match (one that could
        not be read is asked for again after :data:`CONFIG_RETRY_SECONDS` too)."""
        now = self._clock.now()
        cached = self._configs.get(pipeline)
        if (
            cached is not None
            and cached.seen == updated
            and (cached.problem is None or now < cached.retry_at)
        ):
            return cached, False
        etag = cached.etag if cached is not None and cached.config is not None else None
        try:
            answer = self._call("pipeline_config", self._client.pipeline_config, pipeline, etag)
        except (GoCDAuthError, GoCDNotFound) as e:
            if isinstance(e, GoCDAuthError) and e.status != 403:
                raise
            entry = _Config(
                seen=updated, problem=self._config_problem(pipeline, e), retry_at=now + CONFIG_RETRY_SECONDS
            )
            self._configs[pipeline] = entry
            return entry, True
        config = cached.config if answer.status == 304 and cached is not None else answer.value
        if config is None:
            raise GoCDBadResponse(
                f"GoCD answered {answer.status} with no config of pipeline {pipeline}",
                method="GET",
                status=answer.status,
            )
        entry = _Config(seen=updated, config=config, etag=answer.etag)
        self._configs[pipeline] = entry
        return entry, True

    def _config_problem(self, pipeline: str, error: GoCDError) -> str:
        if isinstance(error, GoCDAuthError):
            text = (
                f"{self._client.who()} may not read the config of pipeline {pipeline} (403): the resources "
                f"and elastic profiles of its jobs are unknown; the dashboard backlog needs {NEEDS_CONFIG}"
            )
            self._log_once("config-403", text)
            return text
        text = f"cannot read the config of pipeline {pipeline}: {error}"
        self._log_once(f"config-404:{pipeline}", text)
        return text

    def _template(self, name: str, revalidate: bool) -> _Template:
        """The template: the cached one, unless a pipeline using it was just (re)read
        (``revalidate``: a template save moves those pipelines' dashboard entries; it is then
        revalidated, once per backlog read) or it could not be read and is due again."""
        now = self._clock.now()
        cached = self._templates.get(name)
        if (
            cached is not None
            and (not revalidate or name in self._templates_fresh)
            and (cached.problem is None or now < cached.retry_at)
        ):
            return cached
        etag = cached.etag if cached is not None and cached.config is not None else None
        self._templates_fresh.add(name)
        try:
            answer = self._call("template", self._client.template_config, name, etag)
        except (GoCDAuthError, GoCDNotFound) as e:
            if isinstance(e, GoCDAuthError) and e.status != 403:
                raise
            entry = _Template(problem=self._template_problem(name, e), retry_at=now + CONFIG_RETRY_SECONDS)
            self._templates[name] = entry
            return entry
        template = cached.config if answer.status == 304 and cached is not None else answer.value
        if template is None:
            raise GoCDBadResponse(
                f"GoCD answered {answer.status} with no template {name}", method="GET", status=answer.status
            )
        entry = _Template(config=template, etag=answer.etag)
        self._templates[name] = entry
        return entry

    def _template_problem(self, name: str, error: GoCDError) -> str:
        if isinstance(error, GoCDAuthError):
            text = (
                f"{self._client.who()} may not read template {name} (403): the resources and elastic "
                "profiles of the jobs of the pipelines using it are unknown; reading a template needs "
                f"{NEEDS_TEMPLATE}"
            )
            self._log_once("template-403", text)
            return text
        text = f"cannot read template {name}: {error}"
        self._log_once(f"template-404:{name}", text)
        return text

    def _log_once(self, key: str, text: str) -> None:
        if key not in self._logged:
            self._logged.add(key)
            logger.warning("%s", text)
        else:
            logger.debug("%s", text)


def _stage_name(key: StageKey) -> str:
    return f"{key.pipeline}/{key.pipeline_counter}/{key.stage}/{key.stage_counter}"


def _stage_config(stages: Iterable[StageConfig], name: str) -> StageConfig | None:
    wanted = name.casefold()
    return next((s for s in stages if s.name.casefold() == wanted), None)


# --- auto ----------------------------------------------------------------------------


class AutoSource:
    """The feed while GoCD serves it; the dashboard once both feed endpoints answer 404.

    The switch happens within the poll that found the feed gone (the dashboard is read at
    once, so that poll's snapshot is whole) and only once the dashboard could be read (a
    wrong ``[gocd] url`` answers 404 everywhere: no switch then, and the poll fails as
    before). It is said in one WARNING and is for good: the feed is not asked again.
    """

    def __init__(self, feed: FeedSource, dashboard: DashboardSource) -> None:
        self._feed = feed
        self._dashboard = dashboard
        self._current: FeedSource | DashboardSource = feed
        #: The source whose reads the last read ended with (for its endpoint).
        self._last: FeedSource | DashboardSource = feed
        #: The feed's reads of the poll that switched, counted with the dashboard's.
        self._feed_timings: tuple[tuple[str, float], ...] = ()

    @property
    def name(self) -> str:
        return self._current.name

    @property
    def problems(self) -> tuple[str, ...]:
        return self._current.problems

    @property
    def timings(self) -> tuple[tuple[str, float], ...]:
        if self._last is self._feed:
            return self._feed.timings
        return self._feed_timings + self._dashboard.timings

    @property
    def endpoint(self) -> str:
        return self._last.endpoint

    @property
    def switched(self) -> bool:
        """Whether the feed was found gone and the dashboard is read instead."""
        return self._current is self._dashboard

    def read(self) -> tuple[ScheduledJob, ...]:
        self._feed_timings = ()
        if self._current is self._dashboard:
            return self._dashboard.read()
        self._last = self._feed
        try:
            return self._feed.read()
        except GoCDNotFound as gone:
            self._feed_timings, self._last = self._feed.timings, self._dashboard
            try:
                jobs = self._dashboard.read()
            except GoCDError as e:
                logger.debug(
                    "GoCD's scheduled-jobs feed is gone (%s), and its dashboard cannot be read: %s", gone, e
                )
                raise
            self._current = self._dashboard
            logger.warning(
                "GoCD at %s serves no scheduled-jobs feed any more (404): reading the backlog from its "
                "dashboard, stage instance and pipeline config APIs from now on",
                self._dashboard.base_url,
            )
            return jobs


def make_backlog(kind: str, client: GoCDClient, clock: Clock) -> BacklogSource:
    """The source ``[gocd] backlog`` names: ``auto``, ``feed`` or ``dashboard``."""
    if kind == "feed":
        return FeedSource(client)
    if kind == "dashboard":
        return DashboardSource(client, clock=clock)
    if kind == "auto":
        return AutoSource(FeedSource(client), DashboardSource(client, clock=clock))
    raise ValueError(f"[gocd] backlog: {kind!r} is not one of: {', '.join(BACKLOG_SOURCES)}")
