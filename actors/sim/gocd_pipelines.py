"""The simulated GoCD server's pipelines: their configuration, their runs, and how both look on the wire.

:class:`actors.sim.gocd.GoCDSimulator` keeps its pipeline state in the objects
defined here and answers the config, stage and dashboard APIs with the
representers at the bottom of this module. What is modelled, from GoCD's source
(``gocd/gocd`` at 26.1.0; ``gocd-api.md`` part two):

* configuration: templates, pipelines (their own stages or a template's, with
  ``parameters``), ordered stages (approval ``success`` or ``manual``), jobs with
  ``resources`` (which may hold ``#{param}`` references, ``##`` for a literal
  ``#``: :func:`resolve_params`, GoCD's ``ParamStateMachine``), an elastic profile,
  ``run_instance_count`` (None, N, or ``"all"``) and a simulated duration;
* runs: a pipeline instance (:class:`PipelineRun`) holds stage runs
  (:class:`StageRun`), which hold job instances (:class:`JobInstance`, one row of
  GoCD's ``builds`` table, with its state transitions). A stage's state is
  derived from its jobs as ``StageState.findByBuilds`` derives it.

Names of GoCD's own classes appear in docstrings so that each rule can be
checked against the source.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

__all__ = [
    "Environment",
    "JobConfig",
    "JobInstance",
    "PipelineConfig",
    "PipelineConfigs",
    "PipelineGroup",
    "PipelineRun",
    "StageConfig",
    "StageRun",
    "TemplateConfig",
    "resolve_params",
]

#: GoCD's name markers of the jobs one job config turns into (``RunOnAllAgentsJobTypeConfig.MARKER``,
#: ``RunMultipleInstanceJobTypeConfig.MARKER``).
RUN_ON_ALL = "runOnAll"
RUN_INSTANCE = "runInstance"
#: ``Integer.MAX_VALUE`` milliseconds: how far in the future ``NullStageHistoryItem`` puts a
#: stage that has not run (the dashboard's ``scheduled_at`` of a future stage).
NOT_RUN_OFFSET_S = (2**31 - 1) / 1000.0
#: The default personal dashboard filters (``Filters.defaults()``: one wildcard "Default" filter),
#: as (name, "blacklist"|"whitelist", pipelines).
DEFAULT_FILTER: tuple[str, str, tuple[str, ...]] = ("Default", "blacklist", ())
#: Job states a job may be in while its stage is active (``JobState.isBuilding`` or
#: ``isAssignedOrScheduled``).
ACTIVE_JOB_STATES = frozenset({"Scheduled", "Assigned", "Preparing", "Building", "Completing"})


def _iso8601(wall: float) -> str:
    """Wall-clock seconds as GoCD's JSON dates: ISO-8601 UTC, whole seconds (``ISO8601Utils.format(date,
    false)`` in ``JsonOutputWriter.jsonDate``), e.g. ``2026-07-10T09:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))


def _ms(wall: float) -> int:
    """Wall-clock seconds as epoch milliseconds (``Date.getTime()``)."""
    return round(wall * 1000)


# --- configuration -------------------------------------------------------------------


def resolve_params(text: str, params: Mapping[str, str]) -> str:
    """``text`` with GoCD's parameter references resolved (``ParamStateMachine``, ``ParamResolver``).

    ``#{NAME}`` is the value of parameter NAME, ``##`` a literal ``#``; any other
    ``#`` or an unclosed ``#{`` is an invalid pattern, and an unknown parameter an
    error: GoCD refuses such a config, so this raises ValueError.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "#":
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if nxt == "#":
            out.append("#")
            i += 2
        elif nxt == "{":
            end = text.find("}", i + 2)
            if end < 0:
                raise ValueError(f"Incomplete param usage in {text!r}")
            name = text[i + 2 : end]
            if name not in params:
                raise ValueError(
                    f"Parameter '{name}' is not defined. All pipelines using this parameter directly "
                    "or via a template must define it."
                )
            out.append(params[name])
            i = end + 1
        else:
            raise ValueError(f"Error when processing params for {text!r} used in field 'resources'")
    return "".join(out)


def _pairs(values: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> tuple[tuple[str, str], ...]:
    if values is None:
        return ()
    items = values.items() if isinstance(values, Mapping) else values
    return tuple((str(k), str(v)) for k, v in items)


@dataclass(frozen=True)
class JobConfig:
    """One job of a stage's config (GoCD's ``JobConfig``), as tests define it.

    ``run_instance_count`` is None (one instance, named as the job), an int N
    (``<name>-runInstance-1..N``) or ``"all"`` (``<name>-runOnAll-<n>``, one per
    enabled agent with its resources, each pinned to that agent). ``resources``
    and ``elastic_profile_id`` exclude each other. ``duration_s`` is how long a
    simulated agent "runs" it (clock seconds; not GoCD config).
    """

    name: str
    resources: tuple[str, ...] = ()
    elastic_profile_id: str | None = None
    run_instance_count: int | str | None = None
    duration_s: float = 30.0
    #: Plain environment variables, (name, value), in order.
    variables: tuple[tuple[str, str], ...] = ()
    #: Secure environment variables, (name, value): the feed shows ``****``, the config API encrypts them.
    secure_variables: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "resources", tuple(r.strip() for r in self.resources if r.strip()))
        if not self.name or "/" in self.name:
            raise ValueError(f"invalid job name {self.name!r}")
        if self.resources and self.elastic_profile_id:
            raise ValueError("a job has resources or an elastic profile, never both")
        count = self.run_instance_count
        if not (
            count is None
            or count == "all"
            or (isinstance(count, int) and not isinstance(count, bool) and count >= 1)
        ):
            raise ValueError(f"run_instance_count must be None, a positive int or 'all', not {count!r}")

    @classmethod
    def of(cls, spec: JobConfig | str | Mapping[str, Any]) -> JobConfig:
        """A JobConfig from itself, a bare name, or a JSON-like mapping of the same fields."""
        if isinstance(spec, JobConfig):
            return spec
        if isinstance(spec, str):
            return cls(spec)
        return cls(
            name=str(spec["name"]),
            resources=tuple(str(r) for r in spec.get("resources") or ()),
            elastic_profile_id=spec.get("elastic_profile_id") or None,
            run_instance_count=spec.get("run_instance_count"),
            duration_s=float(spec.get("duration_s", 30.0)),
            variables=_pairs(spec.get("variables")),
            secure_variables=_pairs(spec.get("secure_variables")),
        )


@dataclass(frozen=True)
class StageConfig:
    """One stage of a pipeline's or template's config (GoCD's ``StageConfig``).

    ``approval`` is ``success`` (runs when the previous stage passes) or
    ``manual`` (waits for :meth:`GoCDSimulator.run_stage`).
    """

    name: str
    jobs: tuple[JobConfig, ...]
    approval: str = "success"
    allow_only_on_success: bool = False
    fetch_materials: bool = True
    clean_working_directory: bool = False
    never_cleanup_artifacts: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "jobs", tuple(JobConfig.of(j) for j in self.jobs))
        if not self.name or "/" in self.name:
            raise ValueError(f"invalid stage name {self.name!r}")
        if self.approval not in ("success", "manual"):
            raise ValueError(f"approval must be 'success' or 'manual', not {self.approval!r}")
        if not self.jobs:
            raise ValueError(f"stage {self.name!r} needs at least one job")
        names = [j.name.lower() for j in self.jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"stage {self.name!r} has two jobs of the same name")

    @classmethod
    def of(cls, spec: StageConfig | Mapping[str, Any]) -> StageConfig:
        """A StageConfig from itself or a JSON-like mapping (``jobs`` as JobConfig specs)."""
        if isinstance(spec, StageConfig):
            return spec
        return cls(
            name=str(spec["name"]),
            jobs=tuple(JobConfig.of(j) for j in spec["jobs"]),
            approval=str(spec.get("approval", "success")),
            allow_only_on_success=bool(spec.get("allow_only_on_success", False)),
            fetch_materials=bool(spec.get("fetch_materials", True)),
            clean_working_directory=bool(spec.get("clean_working_directory", False)),
            never_cleanup_artifacts=bool(spec.get("never_cleanup_artifacts", False)),
        )

    def job(self, name: str) -> JobConfig | None:
        """The job config named ``name`` (case-insensitive, as ``CaseInsensitiveString``)."""
        return next((j for j in self.jobs if j.name.lower() == name.lower()), None)


def _stages(stages: Iterable[StageConfig | Mapping[str, Any]]) -> tuple[StageConfig, ...]:
    result = tuple(StageConfig.of(s) for s in stages)
    if not result:
        raise ValueError("at least one stage is needed")
    names = [s.name.lower() for s in result]
    if len(set(names)) != len(names):
        raise ValueError("two stages of the same name")
    return result


@dataclass(frozen=True)
class TemplateConfig:
    """A pipeline template (GoCD's ``PipelineTemplateConfig``), whose resources may hold ``#{param}``."""

    name: str
    stages: tuple[StageConfig, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", _stages(self.stages))


@dataclass(frozen=True)
class PipelineConfig:
    """A pipeline's raw config (GoCD's ``PipelineConfig`` before ``preprocessAndValidate``).

    Exactly one of ``stages`` and ``template`` is set; ``parameters`` resolve the
    ``#{param}`` references of either.
    """

    name: str
    group: str
    stages: tuple[StageConfig, ...] | None
    template: str | None
    parameters: tuple[tuple[str, str], ...] = ()
    label_template: str = "${COUNT}"

    def __post_init__(self) -> None:
        if (self.stages is None) == (self.template is None):
            raise ValueError("a pipeline has its own stages or a template, not both and not neither")
        if self.stages is not None:
            object.__setattr__(self, "stages", _stages(self.stages))

    @property
    def params(self) -> dict[str, str]:
        return dict(self.parameters)


def resolved_stages(
    config: PipelineConfig, templates: Mapping[str, TemplateConfig]
) -> tuple[StageConfig, ...]:
    """The pipeline's stages as GoCD runs them: the template's if it has one, ``#{param}`` resolved.

    Raises ValueError (GoCD refuses the config) for an unknown template, an
    invalid pattern or an undefined parameter.
    """
    if config.template is not None:
        template = templates.get(config.template.lower())
        if template is None:
            raise ValueError(f"Template '{config.template}' does not exist")
        stages = template.stages
    else:
        assert config.stages is not None
        stages = config.stages
    params = config.params
    resolved = []
    for stage in stages:
        jobs = tuple(
            JobConfig(
                name=job.name,
                resources=tuple(resolve_params(r, params) for r in job.resources),
                elastic_profile_id=job.elastic_profile_id,
                run_instance_count=job.run_instance_count,
                duration_s=job.duration_s,
                variables=job.variables,
                secure_variables=job.secure_variables,
            )
            for job in stage.jobs
        )
        resolved.append(
            StageConfig(
                name=stage.name,
                jobs=jobs,
                approval=stage.approval,
                allow_only_on_success=stage.allow_only_on_success,
                fetch_materials=stage.fetch_materials,
                clean_working_directory=stage.clean_working_directory,
                never_cleanup_artifacts=stage.never_cleanup_artifacts,
            )
        )
    return tuple(resolved)


def _with_jobs(stage: StageConfig, jobs: Sequence[JobConfig]) -> StageConfig:
    return StageConfig(
        stage.name,
        tuple(jobs),
        stage.approval,
        stage.allow_only_on_success,
        stage.fetch_materials,
        stage.clean_working_directory,
        stage.never_cleanup_artifacts,
    )


@dataclass
class PipelineGroup:
    """A pipeline group: its pipelines in config order and what a non-admin user may do in it."""

    name: str
    pipelines: list[str] = field(default_factory=list)
    #: The non-admin user's rights in the group (its ``<authorization>`` block): view, operate, admin.
    view: bool = True
    operate: bool = False
    admin: bool = False


@dataclass
class Environment:
    """An environment: its name as defined and its pipelines (names as configured), in order."""

    name: str
    pipelines: list[str] = field(default_factory=list)


class PipelineConfigs:
    """GoCD's config as the simulator keeps it: templates, pipelines in their groups, environments.

    Names compare case-insensitively (``CaseInsensitiveString``); every dict is
    keyed by the lower-cased name and keeps definition order. Each save is
    validated as GoCD validates a config (ValueError, nothing changed). Not
    thread-safe: the simulator calls it under its lock.
    """

    def __init__(self, environments: Iterable[str] = ()) -> None:
        self.templates: dict[str, TemplateConfig] = {}
        self.pipelines: dict[str, PipelineConfig] = {}
        self.groups: dict[str, PipelineGroup] = {}
        #: Defined environments; an agent's environment name not among them joins it to nothing.
        self.environments: dict[str, Environment] = {e.lower(): Environment(e) for e in environments}

    def find(self, pipeline: str) -> PipelineConfig | None:
        return self.pipelines.get(pipeline.lower())

    def pipeline(self, name: str) -> PipelineConfig:
        """The pipeline named ``name``; ValueError if there is none."""
        config = self.find(name)
        if config is None:
            raise ValueError(f"no pipeline {name!r}")
        return config

    def stages(self, config: PipelineConfig) -> tuple[StageConfig, ...]:
        """The pipeline's stages as GoCD runs them (:func:`resolved_stages`)."""
        return resolved_stages(config, self.templates)

    def stage(self, config: PipelineConfig, name: str) -> StageConfig | None:
        return next((s for s in self.stages(config) if s.name.lower() == name.lower()), None)

    def group_of(self, pipeline: str) -> PipelineGroup | None:
        config = self.find(pipeline)
        return None if config is None else self.groups[config.group.lower()]

    def environment_of(self, pipeline: str) -> Environment | None:
        """The environment holding ``pipeline`` (at most one does), or None."""
        return next(
            (e for e in self.environments.values() if pipeline.lower() in (p.lower() for p in e.pipelines)),
            None,
        )

    def save_pipeline(self, config: PipelineConfig) -> None:
        """Store a pipeline config (new, or replacing one), moving it between groups as needed."""
        self.stages(config)
        old = self.find(config.name)
        if old is not None and old.group.lower() != config.group.lower():
            self.groups[old.group.lower()].pipelines.remove(old.name)
        group = self.groups.setdefault(config.group.lower(), PipelineGroup(config.group))
        if old is None or old.group.lower() != config.group.lower():
            group.pipelines.append(config.name)
        self.pipelines[config.name.lower()] = config

    def save_template(self, template: TemplateConfig) -> list[str]:
        """Store a template; the names of the pipelines using it. ValueError, and nothing changed,
        when one of them lacks a parameter the template now needs."""
        key = template.name.lower()
        old = self.templates.get(key)
        self.templates[key] = template
        users = [p for p in self.pipelines.values() if (p.template or "").lower() == key]
        try:
            for pipeline in users:
                self.stages(pipeline)
        except ValueError:
            if old is None:
                del self.templates[key]
            else:
                self.templates[key] = old
            raise
        return [p.name for p in users]

    def move(self, pipeline: str, environment: str | None) -> None:
        """Put ``pipeline`` into ``environment`` (defined if new), or into none."""
        current = self.environment_of(pipeline)
        if current is not None and environment is not None and current.name.lower() == environment.lower():
            return
        if current is not None:
            current.pipelines = [p for p in current.pipelines if p.lower() != pipeline.lower()]
        if environment:
            self.environments.setdefault(environment.lower(), Environment(environment)).pipelines.append(
                pipeline
            )

    def with_job(self, pipeline: str, stage: str, job: JobConfig) -> PipelineConfig:
        """The pipeline's own config (a new one in ``defaultGroup`` if it has none) with ``job`` in
        ``stage``: replacing a job of that name in place, else appended, the stage appended if new."""
        config = self.find(pipeline)
        if config is not None and config.stages is None:
            raise ValueError(f"pipeline {config.name!r} uses a template")
        stages = list(config.stages or ()) if config is not None else []
        index = next((i for i, s in enumerate(stages) if s.name.lower() == stage.lower()), None)
        if index is None:
            stages.append(StageConfig(stage, (job,)))
        else:
            jobs = list(stages[index].jobs)
            at = next((i for i, j in enumerate(jobs) if j.name.lower() == job.name.lower()), None)
            if at is None:
                jobs.append(job)
            else:
                jobs[at] = job
            stages[index] = _with_jobs(stages[index], jobs)
        if config is None:
            return PipelineConfig(pipeline, "defaultGroup", tuple(stages), None)
        return PipelineConfig(
            config.name, config.group, tuple(stages), None, config.parameters, config.label_template
        )

    def with_job_resources(
        self, pipeline: str, stage: str, job: str, resources: Iterable[str]
    ) -> PipelineConfig:
        """The pipeline's own config with one job's resources replaced."""
        config = self.pipeline(pipeline)
        if config.stages is None:
            raise ValueError(f"pipeline {config.name!r} uses a template; redefine the template")
        stage_config = next((s for s in config.stages if s.name.lower() == stage.lower()), None)
        old = stage_config.job(job) if stage_config else None
        if stage_config is None or old is None:
            raise ValueError(f"pipeline {config.name!r} has no job {stage}/{job}")
        new = JobConfig(
            old.name,
            tuple(resources),
            old.elastic_profile_id,
            old.run_instance_count,
            old.duration_s,
            old.variables,
            old.secure_variables,
        )
        stages = tuple(
            _with_jobs(s, [new if j is old else j for j in s.jobs]) if s is stage_config else s
            for s in config.stages
        )
        return PipelineConfig(
            config.name, config.group, stages, None, config.parameters, config.label_template
        )


def instance_names(job: JobConfig, agents: int = 0) -> list[str]:
    """The names of the job instances one job config becomes (``JobType.createJobInstances``);
    ``agents`` is how many agents a run-on-all job runs on."""
    count = job.run_instance_count
    if count is None:
        return [job.name]
    if count == "all":
        return [f"{job.name}-{RUN_ON_ALL}-{n}" for n in range(1, agents + 1)]
    assert isinstance(count, int)
    return [f"{job.name}-{RUN_INSTANCE}-{n}" for n in range(1, count + 1)]


# --- runs ---------------------------------------------------------------------------------


@dataclass
class JobInstance:
    """One job instance, a row of GoCD's ``builds`` table with its job plan."""

    locator: str
    pipeline: str
    pipeline_counter: int
    stage: str
    name: str
    config_name: str
    #: The job plan's resources, resolved and copied from the config when the job was scheduled.
    resources: tuple[str, ...]
    #: The environment of the pipeline in the current config (kept current by the simulator).
    environment: str | None
    elastic_profile_id: str | None
    duration_s: float
    variables: tuple[tuple[str, str, bool], ...]
    #: The build id: increasing in insert order.
    job_id: int
    #: Clock time of the latest (re)scheduling.
    scheduled_at: float
    #: scheduled | building | completed | rescheduled (an old, ignored row).
    state: str = "scheduled"
    assigned_at: float | None = None
    completed_at: float | None = None
    #: The agent running (or that ran) the job; GoCD's ``JobInstance.agentUuid``, which on a
    #: scheduled "run on all agents" job pins it to that agent.
    agent_uuid: str | None = None
    #: ``Passed``, ``Failed`` or ``Cancelled`` once completed; ``Unknown`` before.
    result: str = "Unknown"
    #: GoCD's job state transitions, ``(state, clock time)``, oldest first.
    transitions: list[tuple[str, float]] = field(default_factory=list)
    stage_counter: int = 1

    @property
    def job_state(self) -> str:
        """GoCD's ``JobState`` of the job: its latest transition."""
        return self.transitions[-1][0] if self.transitions else "Unknown"

    @property
    def ignored(self) -> bool:
        """An old row of a rescheduled job: hidden by the stage API (``builds.ignored``)."""
        return self.state == "rescheduled"


def stage_state(jobs: Sequence[JobInstance]) -> str:
    """``StageState.findByBuilds``: Building, Failing, Passed, Failed, Cancelled or Unknown."""
    if not jobs:
        return "Unknown"
    building = any(j.job_state in ACTIVE_JOB_STATES for j in jobs)
    failed = any(j.result == "Failed" for j in jobs)
    if building and failed:
        return "Failing"
    if building:
        return "Building"
    if any(j.result == "Cancelled" for j in jobs):
        return "Cancelled"
    if failed:
        return "Failed"
    if any(j.result == "Unknown" for j in jobs):
        return "Unknown"
    return "Passed"


#: ``StageState.stageResult``.
STAGE_RESULT = {
    "Building": "Unknown",
    "Failing": "Failed",
    "Passed": "Passed",
    "Failed": "Failed",
    "Cancelled": "Cancelled",
    "Unknown": "Unknown",
}


@dataclass
class StageRun:
    """One run of a stage in a pipeline instance (a row of GoCD's ``stages`` table)."""

    pipeline: str
    pipeline_counter: int
    name: str
    counter: int
    #: The stage config's approval when it was scheduled: ``success`` or ``manual``.
    approval_type: str
    #: ``changes`` when triggered automatically, else the user who ran it.
    approved_by: str
    #: Clock time the stage was scheduled (``createdTime``).
    created_at: float
    jobs: list[JobInstance] = field(default_factory=list)
    fetch_materials: bool = True
    clean_working_directory: bool = False
    cancelled_by: str | None = None
    #: False once the stage has been re-run (``stages.latestRun``).
    latest_run: bool = True

    @property
    def live_jobs(self) -> list[JobInstance]:
        """The stage's jobs without the ignored rows of rescheduled jobs."""
        return [j for j in self.jobs if not j.ignored]

    @property
    def state(self) -> str:
        return stage_state(self.live_jobs)

    @property
    def result(self) -> str:
        return STAGE_RESULT[self.state]

    @property
    def completed(self) -> bool:
        return self.state in ("Passed", "Failed", "Cancelled")

    def last_transition(self) -> float | None:
        """``stages.lastTransitionedTime``: the latest job state transition (a DB trigger sets it)."""
        times = [at for job in self.jobs for _, at in job.transitions]
        return max(times) if times else None

    @property
    def locator(self) -> str:
        return f"{self.pipeline}/{self.pipeline_counter}/{self.name}/{self.counter}"


@dataclass
class PipelineRun:
    """One pipeline instance: its counter and the stage runs scheduled in it, in order."""

    name: str
    counter: int
    triggered_at: float
    stages: list[StageRun] = field(default_factory=list)
    #: Made by the legacy ``schedule_jobs`` shortcut: only the named job ran, and the
    #: instance ends with its stage (GoCD has no such trigger).
    partial: bool = False

    def latest(self, stage: str) -> StageRun | None:
        """The latest run of ``stage`` in this instance."""
        runs = [s for s in self.stages if s.name == stage]
        return runs[-1] if runs else None

    def latest_runs(self) -> list[StageRun]:
        """The latest run of each stage that has run, in the order the stages first ran."""
        seen: dict[str, StageRun] = {}
        for stage in self.stages:
            seen[stage.name] = stage
        order = list(dict.fromkeys(s.name for s in self.stages))
        return [seen[name] for name in order]

    @property
    def active(self) -> bool:
        """A latest-run stage is Building or Failing: the dashboard lists the instance."""
        return any(s.state in ("Building", "Failing") for s in self.latest_runs())


# --- representers -------------------------------------------------------------------


def _variables_json(job: JobConfig) -> list[dict[str, Any]]:
    """``EnvironmentVariableRepresenter``: plain ones with ``value``, secure ones with ``encrypted_value``."""
    plain = [{"secure": False, "name": k, "value": v} for k, v in job.variables]
    secure = [
        {"secure": True, "name": k, "encrypted_value": "AES:" + v.encode().hex()}
        for k, v in job.secure_variables
    ]
    return plain + secure


def job_config_json(job: JobConfig) -> dict[str, Any]:
    """A job of the v11 config API (``JobRepresenter``): ``elastic_profile_id`` only when set."""
    body: dict[str, Any] = {
        "name": job.name,
        "run_instance_count": job.run_instance_count,
        "timeout": None,
    }
    if job.elastic_profile_id is not None:
        body["elastic_profile_id"] = job.elastic_profile_id
    body.update(
        {
            "environment_variables": _variables_json(job),
            "resources": list(job.resources),
            "tasks": [],
            "tabs": [],
            "artifacts": [],
        }
    )
    return body


def stage_config_json(stage: StageConfig) -> dict[str, Any]:
    """A stage of the v11 config API (``StageRepresenter``, ``ApprovalRepresenter``)."""
    return {
        "name": stage.name,
        "fetch_materials": stage.fetch_materials,
        "clean_working_directory": stage.clean_working_directory,
        "never_cleanup_artifacts": stage.never_cleanup_artifacts,
        "approval": {
            "type": stage.approval,
            "allow_only_on_success": stage.allow_only_on_success,
            "authorization": {"roles": [], "users": []},
        },
        "environment_variables": [],
        "jobs": [job_config_json(job) for job in stage.jobs],
    }


def git_url(pipeline: str) -> str:
    """The URL of the one git material each simulated pipeline has."""
    return f"https://git.example.com/{quote(pipeline, safe='')}.git"


def pipeline_config_json(config: PipelineConfig, base: str, version: str) -> dict[str, Any]:
    """``GET /go/api/admin/pipelines/:name`` v11 (``PipelineConfigRepresenter``): the raw config,
    ``stages: null`` for a templated pipeline, ``#{param}`` left as written."""
    return {
        "_links": {
            "self": {"href": f"{base}/api/admin/pipelines/{config.name}"},
            "doc": {"href": f"https://api.gocd.org/{version}/#pipeline-config"},
            "find": {"href": f"{base}/api/admin/pipelines/:pipeline_name"},
        },
        "label_template": config.label_template,
        "lock_behavior": "none",
        "name": config.name,
        "template": config.template,
        "group": config.group,
        "origin": config_xml_origin(base, version),
        "parameters": [{"name": k, "value": v} for k, v in config.parameters],
        "environment_variables": [],
        "materials": [
            {
                "type": "git",
                "attributes": {
                    "url": git_url(config.name),
                    "destination": None,
                    "filter": None,
                    "invert_filter": False,
                    "name": None,
                    "auto_update": True,
                    "branch": "master",
                    "submodule_folder": None,
                    "shallow_clone": False,
                },
            }
        ],
        "stages": None if config.stages is None else [stage_config_json(s) for s in config.stages],
        "tracking_tool": None,
        "timer": None,
    }


def template_config_json(template: TemplateConfig, base: str, version: str) -> dict[str, Any]:
    """``GET /go/api/admin/templates/:name`` v7 (``TemplateConfigRepresenter``)."""
    return {
        "_links": {
            "self": {"href": f"{base}/api/admin/templates/{template.name}"},
            "doc": {"href": f"https://api.gocd.org/{version}/#template-config"},
            "find": {"href": f"{base}/api/admin/templates/:template_name"},
        },
        "name": template.name,
        "stages": [stage_config_json(s) for s in template.stages],
    }


def config_xml_origin(base: str, version: str) -> dict[str, Any]:
    """The origin of config from cruise-config.xml (``ConfigXmlOriginRepresenter``)."""
    return {
        "_links": {
            "self": {"href": f"{base}/admin/config_xml"},
            "doc": {"href": f"https://api.gocd.org/{version}/#get-configuration"},
        },
        "type": "gocd",
    }


def environment_json(name: str, pipelines: Sequence[str], base: str, version: str) -> dict[str, Any]:
    """One environment of the v3 environments API (``EnvironmentRepresenter``)."""
    return {
        "_links": {
            "self": {"href": f"{base}/api/admin/environments/{name}"},
            "doc": {"href": "https://api.gocd.org/current/#environment-config"},
            "find": {"href": f"{base}/api/admin/environments/:name"},
        },
        "name": name,
        "pipelines": [
            {
                "_links": {
                    "self": {"href": f"{base}/api/pipelines/{p}/history"},
                    "doc": {"href": "https://api.gocd.org/current/#pipelines"},
                    "find": {"href": f"{base}/api/admin/pipelines/:pipeline_name"},
                },
                "name": p,
            }
            for p in pipelines
        ],
        "environment_variables": [],
    }


def stage_instance_json(
    stage: StageRun, wall: Callable[[float], float], *, omit_null_transition: bool
) -> dict[str, Any]:
    """``GET /go/api/stages/:p/:pc/:s/:sc`` v3 (``StageRepresenter``, ``JobInstanceRepresenter``):
    epoch-ms times, jobs sorted by name without ignored rows, identifier fields null per job.

    ``last_transitioned_time`` is None here when the stage has none yet; the
    caller answers 500 for that on GoCD <= 25.4.0 and passes
    ``omit_null_transition`` on 26.1.0+, which leaves the field out.
    """
    last = stage.last_transition()
    body: dict[str, Any] = {
        "name": stage.name,
        "counter": stage.counter,
        "approval_type": stage.approval_type,
        "approved_by": stage.approved_by,
        "scheduled_at": _ms(wall(stage.created_at)),
    }
    if last is not None or not omit_null_transition:
        body["last_transitioned_time"] = None if last is None else _ms(wall(last))
    body["result"] = stage.result
    if stage.result == "Cancelled":
        body["cancelled_by"] = stage.cancelled_by or "GoCD"
    body.update(
        {
            "rerun_of_counter": None,
            "fetch_materials": stage.fetch_materials,
            "clean_working_directory": stage.clean_working_directory,
            "artifacts_deleted": False,
            "pipeline_name": stage.pipeline,
            "pipeline_counter": stage.pipeline_counter,
            "jobs": [
                {
                    "name": job.name,
                    "state": job.job_state,
                    "result": job.result,
                    "scheduled_date": _ms(wall(job.scheduled_at)),
                    "rerun": False,
                    "original_job_id": None,
                    "agent_uuid": job.agent_uuid or None,
                    "pipeline_name": None,
                    "pipeline_counter": None,
                    "stage_name": None,
                    "stage_counter": None,
                    "job_state_transitions": [
                        {"state": state, "state_change_time": _ms(wall(at))} for state, at in job.transitions
                    ],
                }
                for job in sorted(stage.live_jobs, key=lambda j: j.name)
            ],
        }
    )
    return body


def null_stage_json(name: str, wall_now: float) -> dict[str, Any]:
    """What GoCD 26.1.0+ answers for a stage name or counter that did not run in an existing
    instance: the DAO's ``NullStage`` (counter 0, no identifier, created now), 200."""
    return {
        "name": name,
        "counter": 0,
        "approval_type": None,
        "approved_by": None,
        "scheduled_at": _ms(wall_now),
        "result": "Unknown",
        "rerun_of_counter": None,
        "fetch_materials": True,
        "clean_working_directory": False,
        "artifacts_deleted": False,
        "jobs": [],
    }


@dataclass(frozen=True)
class Viewer:
    """What the dashboard's caller may do with one pipeline (``Permissions``)."""

    operate: bool
    administer: bool


def dashboard_json(
    configs: PipelineConfigs,
    runs: Mapping[str, Sequence[PipelineRun]],
    *,
    last_updated: Mapping[str, int],
    paused: Mapping[str, tuple[str, str, float]],
    filters: Sequence[tuple[str, str, tuple[str, ...]]],
    view: str,
    user: str,
    is_admin: bool,
    base: str,
    version: str,
    wall: Callable[[float], float],
    now: float,
) -> tuple[str, dict[str, Any]]:
    """``GET /go/api/dashboard`` v4 for one user: its ETag and body (``DashboardControllerV4``).

    Visible are the groups the user may view, and in them the pipelines that
    the personal filter named ``view`` (else the first) lets through
    (``GoDashboardService``); environments list the visible pipelines they hold.
    ``runs``, ``last_updated`` and ``paused`` are keyed by lower-cased name.
    """
    _, kind, listed = next((f for f in filters if f[0].lower() == view.lower()), filters[0])
    chosen = {p.lower() for p in listed}
    groups = []
    for group in configs.groups.values():
        shown = [p for p in group.pipelines if (p.lower() in chosen) == (kind == "whitelist")]
        if (is_admin or group.view) and shown:
            groups.append((group, shown))
    visible = {p.lower() for _, shown in groups for p in shown}
    environments = [
        (env, [p for p in env.pipelines if p.lower() in visible]) for env in configs.environments.values()
    ]
    environments = [(env, shown) for env, shown in environments if shown]

    def digest(kind: str, name: str, permissions: str, pipelines: list[str]) -> str:
        # AbstractDashboardGroup.digest: name, permissions, name:last_updated_timestamp of each pipeline.
        segments = "".join(f"{p}:{last_updated[p.lower()]}," for p in pipelines)
        return hashlib.sha256(f"{kind}${name}/{permissions}[{segments}]".encode()).hexdigest()

    group_part = "/".join(
        digest("GoDashboardPipelineGroup", g.name, f"{is_admin}{g.view}{g.operate}{g.admin}", shown)
        for g, shown in groups
    )
    env_part = "/".join(
        digest("GoDashboardEnvironment", e.name, str(is_admin), shown) for e, shown in environments
    )
    etag = hashlib.md5(f"{user}/{group_part}/{env_part}".encode()).hexdigest()

    def pipeline(name: str, group: PipelineGroup) -> dict[str, Any]:
        config = configs.pipeline(name)
        pause = paused.get(name.lower())
        return dashboard_pipeline_json(
            config,
            configs.stages(config),
            runs.get(name.lower(), []),
            last_updated=last_updated[name.lower()],
            pause=(True, pause[0], pause[1], pause[2]) if pause else (False, None, None, None),
            viewer=Viewer(operate=is_admin or group.operate, administer=is_admin or group.admin),
            base=base,
            wall=wall,
            now=now,
        )

    body = {
        "_links": {
            "self": {"href": f"{base}/api/dashboard"},
            "doc": {"href": "https://api.gocd.org/current/#dashboard"},
        },
        # PipelineSelections.etag: sha256 of the user's filters as JSON.
        "_personalization": hashlib.sha256(
            json.dumps([{"name": n, "type": k, "pipelines": list(ps)} for n, k, ps in filters]).encode()
        ).hexdigest(),
        "_embedded": {
            "pipeline_groups": [
                {
                    "_links": {
                        "doc": {"href": "https://api.gocd.org/current/#pipeline-groups"},
                        "self": {"href": f"{base}/api/config/pipeline_groups"},
                    },
                    "name": group.name,
                    "pipelines": shown,
                    "can_administer": is_admin or group.admin,
                    "defines_pipelines": bool(group.pipelines),
                }
                for group, shown in groups
            ],
            "environments": [
                {
                    "_links": {
                        "doc": {"href": f"https://api.gocd.org/{version}/#environment-config"},
                        "self": {"href": f"{base}/api/admin/environments/{env.name}"},
                    },
                    "name": env.name,
                    "pipelines": shown,
                    "can_administer": is_admin,
                    "defines_pipelines": bool(env.pipelines),
                }
                for env, shown in environments
            ],
            "pipelines": [pipeline(p, group) for group, shown in groups for p in shown],
        },
    }
    return etag, body


def dashboard_pipeline_json(
    config: PipelineConfig,
    stages: Sequence[StageConfig],
    runs: Sequence[PipelineRun],
    *,
    last_updated: int,
    pause: tuple[bool, str | None, str | None, float | None],
    viewer: Viewer,
    base: str,
    wall: Callable[[float], float],
    now: float,
) -> dict[str, Any]:
    """One pipeline of ``GET /go/api/dashboard`` v4 (``PipelineRepresenter`` and below).

    ``runs`` are the pipeline's instances, oldest first; listed are every active
    one and the newest, newest first. ``stages`` is the current config, which
    supplies the stages an instance has not run yet.
    """
    paused, paused_by, reason, paused_at = pause
    listed = [r for r in runs if r.active or r is runs[-1]] if runs else []
    return {
        "_links": {
            "self": {"href": f"{base}/api/pipelines/{config.name}/history"},
            "doc": {"href": "https://api.gocd.org/current/#pipelines"},
        },
        "name": config.name,
        "last_updated_timestamp": last_updated,
        "locked": False,
        "pause_info": {
            "paused": paused,
            "paused_by": paused_by or None,
            "pause_reason": reason or None,
            "paused_at": None if paused_at is None else _iso8601(wall(paused_at)),
        },
        "template_info": {"is_using_template": config.template is not None, "template_name": config.template},
        "can_operate": viewer.operate,
        "can_administer": viewer.administer,
        "can_unlock": viewer.operate,
        "can_pause": viewer.operate,
        "from_config_repo": False,
        "_embedded": {
            "instances": [
                _dashboard_instance_json(run, stages, viewer, base, wall, now) for run in reversed(listed)
            ]
        },
    }


def _dashboard_instance_json(
    run: PipelineRun,
    stages: Sequence[StageConfig],
    viewer: Viewer,
    base: str,
    wall: Callable[[float], float],
    now: float,
) -> dict[str, Any]:
    """``PipelineInstanceRepresenter``: the latest run of each stage, then the stages after the last
    of them in config (``StageInstanceModels.updateFutureStagesFrom``) as not run."""
    ran = run.latest_runs()
    entries: list[dict[str, Any]] = []
    for stage in ran:
        config = next((s for s in stages if s.name == stage.name), None)
        first = min(stage.jobs, key=lambda j: j.job_id) if stage.jobs else None
        entry = {
            "_links": {"self": {"href": f"{base}/api/stages/{stage.locator}"}},
            "name": stage.name,
            "counter": str(stage.counter),
            "status": stage.state,
            "allow_only_on_success_of_previous_stage": bool(config and config.allow_only_on_success),
            "can_operate": viewer.operate,
            "approval_type": "auto" if stage.approval_type == "success" else "manual",
            "approved_by": stage.approved_by,
            # JobHistory.getScheduledDate: the first job's; every job was scheduled "at the same time".
            "scheduled_at": None if first is None else _iso8601(wall(first.scheduled_at)),
        }
        if stage.state == "Cancelled":
            entry["cancelled_by"] = stage.cancelled_by or "GoCD"
        entries.append(entry)
    names = [s.name for s in stages]
    start = names.index(ran[-1].name) + 1 if ran and ran[-1].name in names else (0 if not ran else len(names))
    future_at = _iso8601(wall(now) + NOT_RUN_OFFSET_S)
    for stage_config in stages[start:]:
        if any(s.name == stage_config.name for s in ran):
            break
        entries.append(
            {
                "_links": {
                    "self": {"href": f"{base}/api/stages/{run.name}/{run.counter}/{stage_config.name}/1"}
                },
                "name": stage_config.name,
                "counter": "1",
                "status": "Unknown",
                "allow_only_on_success_of_previous_stage": stage_config.allow_only_on_success,
                "can_operate": viewer.operate,
                "approval_type": "auto" if stage_config.approval == "success" else "manual",
                "approved_by": None,
                "scheduled_at": future_at,
            }
        )
    scheduled = [min(s.jobs, key=lambda j: j.job_id).scheduled_at for s in ran if s.jobs]
    return {
        "_links": {
            "self": {"href": f"{base}/api/pipelines/{quote(run.name, safe='')}/{run.counter}/instance"}
        },
        "label": str(run.counter),
        "counter": run.counter,
        "triggered_by": f"Triggered by {run.stages[0].approved_by}" if run.stages else "Triggered by changes",
        "scheduled_at": _iso8601(wall(min(scheduled))) if scheduled else None,
        "_embedded": {"stages": entries},
    }
