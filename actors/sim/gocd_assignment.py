"""GoCD's job assignment as the simulated server runs it, written from GoCD's source.

When an enabled agent asks for work, GoCD walks its list of scheduled jobs in
scheduled order and hands the agent the first one it may run (``gocd-api.md``
4.4). This module is that walk, shaped as GoCD's server code shapes it, so that
the simulator is an independent referee of the daemon's own rule
(``actors.fleet.matching``), which nothing here imports: one wrong rule shared
by both would pass the simulator, the end-to-end tests and every benchmark.

Sources (``gocd/gocd`` at ``f17b6f3fc9``):

* ``server/src/main/java/com/thoughtworks/go/server/service/BuildAssignmentService.java``:
  ``assignWorkToAgent``, ``findMatchingJob``;
* ``server/src/main/java/com/thoughtworks/go/domain/AgentInstance.java``: ``firstMatching``,
  ``isNotElasticAndResourcesMatchForNonElasticAgents``;
* ``config/config-api/src/main/java/com/thoughtworks/go/config/Agent.java``: ``hasAllResources``,
  ``isElastic``;
* ``server/src/main/java/com/thoughtworks/go/server/service/EnvironmentConfigService.java``:
  ``filterJobsByAgent``, ``syncAssociatedAgentFromDB``, ``find``;
* ``config/config-api/src/main/java/com/thoughtworks/go/domain/EnvironmentPipelineMatchers.java``
  and ``EnvironmentPipelineMatcher.java``;
* ``domain/src/main/java/com/thoughtworks/go/domain/DefaultJobPlan.java``: ``requiresElasticAgent``,
  ``assignedToAgent``; ``Resources.java``, ``config/.../ResourceConfigs.java``: ``resourceNames``.

Resource and environment names compare as Java compares them there:
``String.toLowerCase`` for resources, ``CaseInsensitiveString`` for
environments; both are ``str.lower`` here (not ``casefold``: Java does not fold
``ß`` to ``ss``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

__all__ = [
    "AgentRecord",
    "EnvironmentPipelineMatchers",
    "JobPlan",
    "find_matching_job",
    "first_matching",
    "has_all_resources",
    "is_elastic",
    "no_plugin_assigns",
]


class AgentRecord(Protocol):
    """What assignment reads of an agent (GoCD's ``Agent``, config-api)."""

    @property
    def uuid(self) -> str: ...

    #: The agent's resources (GoCD keeps them as one comma-separated string).
    @property
    def resources(self) -> Sequence[str]: ...

    #: The environment names stored on the agent, defined or not.
    @property
    def environments(self) -> Sequence[str]: ...

    @property
    def elastic_agent_id(self) -> str | None: ...

    @property
    def elastic_plugin_id(self) -> str | None: ...


class JobPlan(Protocol):
    """What assignment reads of a scheduled job (GoCD's ``JobPlan``)."""

    @property
    def pipeline(self) -> str: ...

    #: The job's resource names.
    @property
    def resources(self) -> Sequence[str]: ...

    #: The environment the job's pipeline belongs to, or None.
    @property
    def environment(self) -> str | None: ...

    @property
    def elastic_profile_id(self) -> str | None: ...

    #: The agent a scheduled "run on all agents" job is pinned to; None for any other job.
    @property
    def agent_uuid(self) -> str | None: ...


_Job = TypeVar("_Job", bound=JobPlan)


def _blank(value: str | None) -> bool:
    """Java's ``value == null || value.isBlank()``."""
    return value is None or not value.strip()


def _names(values: Iterable[str]) -> list[str]:
    """Trimmed, non-blank names: ``CommaSeparatedString.commaSeparatedStrToTrimmed``, ``trimToNull``."""
    return [value.strip() for value in values if value.strip()]


def is_elastic(agent: AgentRecord) -> bool:
    """``Agent.isElastic``: both elastic ids are set and not blank.

    ``elasticAgentId != null && !elasticAgentId.isBlank() && elasticPluginId != null &&
    !elasticPluginId.isBlank()`` (``config/config-api/.../config/Agent.java``); the
    registration controller likewise wants both or neither
    (``AgentRegistrationController.elasticAgentAutoregistrationInfoPresent``).
    """
    return not _blank(agent.elastic_agent_id) and not _blank(agent.elastic_plugin_id)


def requires_elastic_agent(job: JobPlan) -> bool:
    """``DefaultJobPlan.requiresElasticAgent``: the job names an elastic profile."""
    return job.elastic_profile_id is not None


def assigned_to_agent(job: JobPlan) -> bool:
    """``DefaultJobPlan.assignedToAgent``, named backwards in GoCD: ``agentUuid == null``.

    True for an ordinary job; False for a "run on all agents" job, which is pinned
    to one agent's uuid when it is scheduled (``RunOnAllAgents.createJobInstances``).
    """
    return job.agent_uuid is None


def resource_names(job: JobPlan) -> list[str]:
    """``jobPlan.getResources().toResourceConfigs().resourceNames()``.

    ``ResourceConfigs.add`` drops blank names and case-insensitive duplicates;
    ``resourceNames`` sorts what is left.
    """
    seen: set[str] = set()
    names = []
    for name in _names(job.resources):
        if name.lower() not in seen:
            seen.add(name.lower())
            names.append(name)
    return sorted(names)


def has_all_resources(agent: AgentRecord, required: Iterable[str]) -> bool:
    """``Agent.hasAllResources``: every required name, lower-cased, is one of the agent's, lower-cased."""
    agent_resources = {name.lower() for name in _names(agent.resources)}
    return all(name.lower() in agent_resources for name in required)


class EnvironmentPipelineMatchers:
    """``EnvironmentsConfig.matchers()``: one matcher per *defined* environment.

    An agent belongs to a defined environment when it names it, case-insensitively
    (``EnvironmentConfigService.syncAssociatedAgentFromDB`` adds the agent's uuid to
    ``find(name)``, a ``CaseInsensitiveString`` lookup). A name that no environment
    defines finds nothing, so it joins the agent to nothing: such an agent counts
    as in no environment (the agents API shows that name with origin ``unknown``).
    """

    def __init__(self, environments: Iterable[str]) -> None:
        #: The defined environments' names, lower-cased (``CaseInsensitiveString``).
        self.names = frozenset(name.lower() for name in environments)

    def _has_agent(self, environment: str, agent: AgentRecord) -> bool:
        """``EnvironmentPipelineMatcher.hasAgent``."""
        return any(name.lower() == environment for name in _names(agent.environments))

    def _has_pipeline(self, environment: str, job: JobPlan) -> bool:
        """``EnvironmentPipelineMatcher.hasPipeline``."""
        return job.environment is not None and job.environment.lower() == environment

    def match(self, job: JobPlan, agent: AgentRecord) -> bool:
        """``EnvironmentPipelineMatchers.match(pipelineName, uuid)``."""
        if any(self._has_pipeline(env, job) and self._has_agent(env, agent) for env in self.names):
            return True
        pipeline_referenced = any(self._has_pipeline(env, job) for env in self.names)
        agent_referenced = any(self._has_agent(env, agent) for env in self.names)
        return not pipeline_referenced and not agent_referenced

    def filter_jobs_by_agent(self, jobs: Iterable[_Job], agent: AgentRecord) -> list[_Job]:
        """``EnvironmentConfigService.filterJobsByAgent``: the jobs, in order, whose environment fits."""
        return [job for job in jobs if self.match(job, agent)]


def first_matching(agent: AgentRecord, jobs: Iterable[_Job]) -> _Job | None:
    """``AgentInstance.firstMatching``: a non-elastic agent's first job, in order.

    Elastic jobs are skipped; an ordinary job is taken when the agent is not
    elastic and has all its resources; a pinned job only by the agent it is
    pinned to, whatever its resources.
    """
    for job in jobs:
        if requires_elastic_agent(job):
            continue
        if assigned_to_agent(job) and _not_elastic_and_resources_match(agent, job):
            return job
        if agent.uuid == job.agent_uuid:
            return job
    return None


def _not_elastic_and_resources_match(agent: AgentRecord, job: JobPlan) -> bool:
    """``AgentInstance.isNotElasticAndResourcesMatchForNonElasticAgents``."""
    return (
        not requires_elastic_agent(job)
        and not is_elastic(agent)
        and has_all_resources(agent, resource_names(job))
    )


def no_plugin_assigns(agent: AgentRecord, job: JobPlan) -> bool:
    """The simulator runs no elastic agent plugin, so none ever agrees to take a job.

    GoCD asks the agent's plugin (``ElasticAgentPluginService.shouldAssignWork``),
    which answers false already when no cluster profile names that plugin.
    """
    return False


def find_matching_job(
    agent: AgentRecord,
    jobs: Sequence[_Job],
    matchers: EnvironmentPipelineMatchers,
    should_assign_work: Callable[[AgentRecord, _Job], bool] = no_plugin_assigns,
) -> _Job | None:
    """``BuildAssignmentService.findMatchingJob``: the job this agent gets, or None.

    ``jobs`` are the scheduled jobs in scheduled order; the caller has already
    turned away unregistered (Pending) and disabled agents (``assignWorkToAgent``).
    Only jobs whose environment fits the agent are considered. A normal agent
    takes the first one :func:`first_matching` allows; an elastic agent the first
    elastic job its plugin agrees to.
    """
    candidates = matchers.filter_jobs_by_agent(jobs, agent)
    if not is_elastic(agent):
        return first_matching(agent, candidates)
    for job in candidates:
        if requires_elastic_agent(job) and should_assign_work(agent, job):
            return job
    return None
