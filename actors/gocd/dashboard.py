"""What the dashboard backlog reads, as immutable values: pure parsers of four GoCD APIs.

Without the scheduled-jobs feed the backlog is rebuilt (``gocd-api.md`` part two) from
the dashboard (v4: which stages are Building or Failing, the pipeline to environment
map), the stage instance API (v3: the jobs of a stage run and their states), the
pipeline config API (v11: each job's resources and elastic profile, raw) and the
template API (v7: the stages of a templated pipeline). This module turns their JSON into
the values below, resolves GoCD's ``#{param}`` references, and splits the job names of
"run N instances" and "run on all agents" jobs. It does no HTTP (that is
:class:`~actors.gocd.client.GoCDClient`'s) and no scheduling logic (that is
:class:`~actors.gocd.backlog.DashboardSource`'s).

The parsers are tolerant of unknown fields and values, strict about structure: a
payload without the lists they read is a ValueError.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACTIVE_STAGE_STATUSES",
    "Dashboard",
    "DashboardPipeline",
    "DashboardStage",
    "JobConfig",
    "PipelineConfig",
    "PipelineInstance",
    "StageConfig",
    "StageJob",
    "StageKey",
    "TemplateConfig",
    "parse_dashboard",
    "parse_pipeline_config",
    "parse_stage_jobs",
    "parse_template_config",
    "resolve_params",
    "run_marker",
]

#: Dashboard stage statuses of a stage that may have jobs waiting for an agent (``gocd-api.md``
#: 8.3: any job Scheduled, Assigned, Preparing, Building or Completing; Failing once one failed).
ACTIVE_STAGE_STATUSES = frozenset({"Building", "Failing"})

_MARKER_RE = re.compile(r"^(?P<base>.+)-(?P<kind>runOnAll|runInstance)-(?P<n>\d+)$")


# --- values ------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class StageKey:
    """One run of a stage: what the stage instance API is asked for."""

    #: Pipeline name.
    pipeline: str
    #: Pipeline run counter (at least 1).
    pipeline_counter: int
    #: Stage name.
    stage: str
    #: Stage run counter (at least 1).
    stage_counter: int


@dataclass(frozen=True)
class DashboardStage:
    """The latest run of one stage of a pipeline instance, as the dashboard shows it."""

    #: Stage name.
    name: str
    #: Stage run counter (the dashboard sends a string; ``1`` for a stage that has not run).
    counter: int
    #: GoCD's StageState: ``Building``, ``Failing``, ``Passed``, ``Failed``, ``Cancelled`` or
    #: ``Unknown`` (not run yet, or waiting for a manual approval); unknown values kept as sent.
    status: str


@dataclass(frozen=True)
class PipelineInstance:
    """One pipeline run on the dashboard."""

    #: Pipeline run counter; ``-1`` for the placeholder of a pipeline being triggered.
    counter: int
    #: Its stages in config order: latest runs, then those that have not run.
    stages: tuple[DashboardStage, ...]


@dataclass(frozen=True)
class DashboardPipeline:
    """One pipeline the dashboard lists."""

    #: Pipeline name.
    name: str
    #: GoCD's per-process counter of the pipeline's dashboard entry: it moves on every stage
    #: event and config change of the pipeline (``gocd-api.md`` 8.4).
    last_updated: int
    #: The instances that have a Building or Failing stage, plus the newest; newest first.
    instances: tuple[PipelineInstance, ...]


@dataclass(frozen=True)
class Dashboard:
    """The dashboard as the backlog needs it."""

    #: Every pipeline the user may view (and no personal filter hides), in group order.
    pipelines: tuple[DashboardPipeline, ...]
    #: (pipeline, environment) for the pipelines in an environment.
    environments: tuple[tuple[str, str], ...] = ()

    def environment_of(self, pipeline: str) -> str | None:
        """The environment of ``pipeline`` (names compared as GoCD does, ignoring case); None
        when it is in none."""
        wanted = pipeline.casefold()
        return next((env for name, env in self.environments if name.casefold() == wanted), None)

    def active_stages(self) -> tuple[StageKey, ...]:
        """Every stage run that may have jobs waiting for an agent: the Building or Failing
        latest-run stages of real instances (not the ``-1`` placeholder), in dashboard order."""
        return tuple(
            StageKey(pipeline.name, instance.counter, stage.name, stage.counter)
            for pipeline in self.pipelines
            for instance in pipeline.instances
            if instance.counter > 0
            for stage in instance.stages
            if stage.status in ACTIVE_STAGE_STATUSES and stage.counter > 0
        )


@dataclass(frozen=True)
class StageJob:
    """One job of a stage run, as the stage instance API shows it."""

    #: Job name (``<job>-runOnAll-<n>`` / ``<job>-runInstance-<n>`` for those kinds).
    name: str
    #: GoCD's JobState: ``Scheduled`` (waiting for an agent), ``Assigned``, ``Building``, ...
    state: str
    #: When the job was (re)scheduled, epoch milliseconds; None when GoCD sent none.
    scheduled_date: int | None = None
    #: The agent of the job; while Scheduled, set only for a "run on all agents" job (the
    #: agent it is pinned to).
    agent_uuid: str | None = None


@dataclass(frozen=True)
class JobConfig:
    """One job of a stage in a pipeline config or template, raw (``#{param}`` unresolved)."""

    #: Job name.
    name: str
    #: Resources, as configured.
    resources: tuple[str, ...] = ()
    #: Elastic agent profile id; None for none.
    elastic_profile_id: str | None = None
    #: ``all`` (run on all agents), a count (run N instances) or None.
    run_instance_count: int | str | None = None


@dataclass(frozen=True)
class StageConfig:
    """One stage of a pipeline config or template."""

    #: Stage name.
    name: str
    #: Its jobs, in config order.
    jobs: tuple[JobConfig, ...] = ()

    def job(self, name: str) -> tuple[int, JobConfig] | None:
        """The job named ``name`` (ignoring case, as GoCD does) and its index; None if absent."""
        wanted = name.casefold()
        return next(((i, j) for i, j in enumerate(self.jobs) if j.name.casefold() == wanted), None)


@dataclass(frozen=True)
class PipelineConfig:
    """A pipeline's config as the pipeline config API shows it, raw."""

    #: Pipeline name.
    name: str
    #: The template it uses; None when it has stages of its own.
    template: str | None = None
    #: Its parameters, (name, value).
    parameters: tuple[tuple[str, str], ...] = ()
    #: Its stages; None for a templated pipeline (GoCD sends ``"stages": null``).
    stages: tuple[StageConfig, ...] | None = None


@dataclass(frozen=True)
class TemplateConfig:
    """A pipeline template as the template API shows it."""

    #: Template name.
    name: str
    #: Its stages; ``#{param}`` in them resolve with each pipeline's parameters.
    stages: tuple[StageConfig, ...] = ()


# --- parsers ------------------------------------------------------------------------


def _quote(obj: Any) -> str:
    return repr(str(obj)[:200])


def _list(obj: Any, key: str, where: str) -> list[Any]:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    if not isinstance(value, list):
        raise ValueError(f"no {key} list in {where}: {_quote(obj)}")
    return value


def _int(value: Any, what: str) -> int:
    """An integer sent as a number or as a string of digits (the dashboard's stage counters)."""
    if isinstance(value, bool):
        raise ValueError(f"{what} is not a number: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise ValueError(f"{what} is not a number: {value!r}")


def _name(obj: Any, where: str) -> str:
    name = obj.get("name") if isinstance(obj, Mapping) else None
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where} without a name: {_quote(obj)}")
    return name


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_dashboard(payload: Any) -> Dashboard:
    """The pipelines, their instances and stages, and the environments of a ``GET
    /go/api/dashboard`` answer (v4, ``gocd-api.md`` 8.3)."""
    embedded = payload.get("_embedded") if isinstance(payload, Mapping) else None
    if not isinstance(embedded, Mapping):
        raise ValueError("no _embedded object in the dashboard")
    pipelines = []
    for obj in _list(embedded, "pipelines", "the dashboard"):
        name = _name(obj, "a dashboard pipeline")
        instances = []
        inner = obj.get("_embedded")
        for instance in _list(inner, "instances", f"pipeline {name}") if inner is not None else []:
            stages_of = instance.get("_embedded") if isinstance(instance, Mapping) else None
            stages = tuple(
                DashboardStage(
                    name=_name(stage, f"a stage of pipeline {name}"),
                    counter=_int(stage.get("counter"), f"stage counter of pipeline {name}"),
                    status=str(stage.get("status") or "Unknown"),
                )
                for stage in _list(stages_of, "stages", f"an instance of pipeline {name}")
            )
            counter = _int(instance.get("counter"), f"instance counter of pipeline {name}")
            instances.append(PipelineInstance(counter=counter, stages=stages))
        updated = obj.get("last_updated_timestamp")
        pipelines.append(
            DashboardPipeline(
                name=name,
                last_updated=_int(updated, f"last_updated_timestamp of pipeline {name}") if updated else 0,
                instances=tuple(instances),
            )
        )
    environments: list[tuple[str, str]] = []
    for env in embedded.get("environments") or []:
        env_name = _name(env, "a dashboard environment")
        environments.extend(
            (pipeline, env_name) for pipeline in _list(env, "pipelines", f"environment {env_name}")
        )
    return Dashboard(pipelines=tuple(pipelines), environments=tuple(environments))


def parse_stage_jobs(payload: Any) -> tuple[StageJob, ...]:
    """The jobs of a ``GET /go/api/stages/:p/:pc/:s/:sc`` answer (v3, ``gocd-api.md`` 9.1),
    as sent (GoCD sorts them by name)."""
    jobs = []
    for obj in _list(payload, "jobs", "the stage instance"):
        name = _name(obj, "a job of the stage")
        date = obj.get("scheduled_date")
        jobs.append(
            StageJob(
                name=name,
                state=str(obj.get("state") or "Unknown"),
                scheduled_date=_int(date, f"scheduled_date of job {name}") if date is not None else None,
                agent_uuid=_optional_str(obj.get("agent_uuid")),
            )
        )
    return tuple(jobs)


def _job_config(obj: Any, where: str) -> JobConfig:
    name = _name(obj, f"a job of {where}")
    count = obj.get("run_instance_count")
    if isinstance(count, str) and count != "all":
        count = _int(count, f"run_instance_count of job {name}")
    elif not (count is None or count == "all" or (isinstance(count, int) and not isinstance(count, bool))):
        raise ValueError(f"run_instance_count of job {name} is neither a count nor 'all': {count!r}")
    resources = obj.get("resources") or []
    if not isinstance(resources, list):
        raise ValueError(f"resources of job {name} is not a list: {resources!r}")
    return JobConfig(
        name=name,
        resources=tuple(r.strip() for r in resources if isinstance(r, str) and r.strip()),
        elastic_profile_id=_optional_str(obj.get("elastic_profile_id")),
        run_instance_count=count,
    )


def _stages(stages: list[Any], where: str) -> tuple[StageConfig, ...]:
    out = []
    for stage in stages:
        name = _name(stage, f"a stage of {where}")
        jobs = _list(stage, "jobs", f"stage {name} of {where}")
        out.append(StageConfig(name=name, jobs=tuple(_job_config(j, f"stage {name}") for j in jobs)))
    return tuple(out)


def parse_pipeline_config(payload: Any) -> PipelineConfig:
    """A ``GET /go/api/admin/pipelines/:name`` answer (v11, ``gocd-api.md`` 10.1): raw, so a
    templated pipeline has ``template`` and no stages, and ``#{param}`` are unresolved."""
    name = _name(payload, "the pipeline config")
    template = _optional_str(payload.get("template"))
    parameters = []
    for param in payload.get("parameters") or []:
        if isinstance(param, Mapping) and isinstance(param.get("name"), str):
            value = param.get("value")
            parameters.append((param["name"], "" if value is None else str(value)))
    stages = None
    if template is None:
        stages = _stages(_list(payload, "stages", f"pipeline {name}"), f"pipeline {name}")
    return PipelineConfig(name=name, template=template, parameters=tuple(parameters), stages=stages)


def parse_template_config(payload: Any) -> TemplateConfig:
    """A ``GET /go/api/admin/templates/:name`` answer (v7, ``gocd-api.md`` 10.2)."""
    name = _name(payload, "the template")
    return TemplateConfig(
        name=name, stages=_stages(_list(payload, "stages", f"template {name}"), f"template {name}")
    )


# --- names and parameters -------------------------------------------------------------


def run_marker(name: str) -> tuple[str, int]:
    """The configured job name of a scheduled job and its instance number: ``<job>-runInstance-<n>``
    and ``<job>-runOnAll-<n>`` give ``(<job>, n)``, any other name ``(name, 0)``."""
    match = _MARKER_RE.match(name)
    return (match.group("base"), int(match.group("n"))) if match else (name, 0)


def resolve_params(text: str, params: Mapping[str, str]) -> str:
    """``text`` with GoCD's parameter references resolved as its ``ParamStateMachine`` does:
    ``#{NAME}`` becomes the value of parameter ``NAME`` (exact name), ``##`` a literal ``#``.

    ValueError, in GoCD's words, for a parameter ``params`` does not define, a ``#`` followed
    by anything else, or a ``#{`` never closed.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "#":
            out.append(ch)
            i += 1
            continue
        if i + 1 < n and text[i + 1] == "#":
            out.append("#")
            i += 2
            continue
        if i + 1 < n and text[i + 1] == "{":
            end = text.find("}", i + 2)
            if end < 0:
                raise ValueError(f"Incomplete param usage in '{text}'")
            name = text[i + 2 : end]
            if name not in params:
                raise ValueError(
                    f"Parameter '{name}' is not defined. All pipelines using this parameter directly or via "
                    "a template must define it."
                )
            out.append(params[name])
            i = end + 1
            continue
        raise ValueError(
            f"Error when processing params for '{text}', # must be followed by a parameter pattern or "
            "escaped by another #"
        )
    return "".join(out)
