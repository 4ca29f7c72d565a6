"""GoCD's rules for which agent may run which job, as pure functions.

The judge predicts with them which profile's agents could take a waiting job,
as the real server would assign it (``gocd-api.md`` 4.4, ``BuildAssignmentService``).
The GoCD simulator does not use them: it has its own copy written from GoCD's
source (``actors.sim.gocd_assignment``), and ``tests/test_matching_agreement.py``
checks that the two agree:

* resources: the agent's resources are a superset of the job's, compared
  case-insensitively;
* environments: a job of a pipeline in environment E goes only to agents in E;
  a job of a pipeline in no environment goes only to agents in no environment
  (environment names compare case-insensitively, as GoCD's
  ``CaseInsensitiveString`` does);
* a job that needs an elastic profile never goes to a normal agent, and an
  elastic agent only takes such jobs.

GoCD ignores an environment name on an agent that no environment defines
(``EnvironmentConfigService``), so such an agent runs jobs of pipelines in no
environment. The agents API marks those names (origin ``unknown``) and the
client keeps them apart (``GoAgent.undefined_environments``), so the names
these functions get are the ones GoCD honours; the judge drops them from the
profiles too (``actors.fleet.judge``).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["environment_matches", "fold", "job_fits_agent", "resources_match"]


def fold(names: Iterable[str]) -> frozenset[str]:
    """The case-folded set of ``names``, as GoCD compares resources and environments."""
    return frozenset(name.strip().casefold() for name in names if name.strip())


def resources_match(job_resources: Iterable[str], agent_resources: Iterable[str]) -> bool:
    """Whether an agent with ``agent_resources`` has every resource the job needs."""
    return fold(job_resources) <= fold(agent_resources)


def environment_matches(job_environment: str | None, agent_environments: Iterable[str]) -> bool:
    """Whether an agent in ``agent_environments`` may run a job of a pipeline in ``job_environment``."""
    agent_envs = fold(agent_environments)
    if job_environment:
        return job_environment.strip().casefold() in agent_envs
    return not agent_envs


def job_fits_agent(
    job_resources: Iterable[str],
    job_environment: str | None,
    agent_resources: Iterable[str],
    agent_environments: Iterable[str],
    *,
    job_is_elastic: bool = False,
    agent_is_elastic: bool = False,
) -> bool:
    """GoCD's whole rule: may this (enabled, idle) agent take this job?"""
    if job_is_elastic or agent_is_elastic:
        # Elastic jobs wait for their plugin's agents; elastic agents take only
        # jobs their plugin agrees to, which is never a gocd-mesos decision.
        return False
    return resources_match(job_resources, agent_resources) and environment_matches(
        job_environment, agent_environments
    )
