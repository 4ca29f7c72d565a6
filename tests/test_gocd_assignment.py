"""The GoCD simulator's own assignment rule (``actors.sim.gocd_assignment``), as GoCD's source has it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from actors.sim.gocd_assignment import (
    EnvironmentPipelineMatchers,
    find_matching_job,
    first_matching,
    has_all_resources,
    is_elastic,
)


@dataclass(frozen=True)
class Agent:
    uuid: str = "me"
    resources: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()
    elastic_agent_id: str | None = None
    elastic_plugin_id: str | None = None


@dataclass(frozen=True)
class Job:
    pipeline: str = "p"
    resources: tuple[str, ...] = ()
    environment: str | None = None
    elastic_profile_id: str | None = None
    agent_uuid: str | None = None


@pytest.mark.parametrize(
    ("agent_id", "plugin_id", "elastic"),
    [
        (None, None, False),
        ("ea-1", None, False),
        (None, "cd.go.k8s", False),
        ("ea-1", "", False),
        ("  ", "cd.go.k8s", False),
        ("ea-1", "cd.go.k8s", True),
    ],
)
def test_an_agent_is_elastic_only_with_both_ids(agent_id, plugin_id, elastic):
    # Agent.isElastic: elasticAgentId and elasticPluginId both non-null and non-blank.
    assert is_elastic(Agent(elastic_agent_id=agent_id, elastic_plugin_id=plugin_id)) is elastic


@pytest.mark.parametrize(
    ("required", "agent", "fits"),
    [
        ((), (), True),
        (("Linux", "DOCKER"), ("linux", "docker", "java"), True),
        (("linux", "java"), ("linux",), False),
        (("linux",), (" LINUX ",), True),
        (("my res",), ("My Res",), True),
    ],
)
def test_has_all_resources_lower_cases_both_sides(required, agent, fits):
    assert has_all_resources(Agent(resources=agent), required) is fits


def test_first_matching_walks_the_jobs_in_order():
    elastic = Job(pipeline="e", elastic_profile_id="k8s")
    needs_java = Job(pipeline="j", resources=("java",))
    plain = Job(pipeline="plain")
    later = Job(pipeline="later")
    agent = Agent(resources=("linux",))
    assert first_matching(agent, [elastic, needs_java, plain, later]) is plain
    assert first_matching(agent, [elastic, needs_java]) is None


def test_a_pinned_job_goes_only_to_its_agent_whatever_its_resources():
    pinned_here = Job(pipeline="all", resources=("windows",), agent_uuid="me")
    pinned_elsewhere = Job(pipeline="all", agent_uuid="other")
    assert first_matching(Agent(uuid="me"), [pinned_elsewhere, pinned_here]) is pinned_here
    assert first_matching(Agent(uuid="other"), [pinned_here]) is None


@pytest.mark.parametrize(
    ("defined", "pipeline_env", "agent_envs", "fits"),
    [
        ((), None, (), True),
        (("prod",), None, ("prod",), False),
        (("prod",), "prod", (), False),
        (("prod",), "Prod", ("PROD",), True),
        (("prod", "uat"), "prod", ("uat",), False),
        (("prod", "uat"), "prod", ("uat", " prod "), True),
        # A name no environment defines joins the agent to nothing (EnvironmentConfigService.find is null).
        ((), None, ("nowhere",), True),
        (("prod",), "prod", ("nowhere",), False),
        (("prod",), None, ("nowhere", "prod"), False),
    ],
)
def test_environment_matchers(defined, pipeline_env, agent_envs, fits):
    matchers = EnvironmentPipelineMatchers(defined)
    assert matchers.match(Job(environment=pipeline_env), Agent(environments=agent_envs)) is fits


def test_elastic_agents_take_only_what_their_plugin_agrees_to():
    elastic_job, plain_job = Job(pipeline="e", elastic_profile_id="k8s"), Job(pipeline="plain")
    agent = Agent(elastic_agent_id="ea-1", elastic_plugin_id="cd.go.k8s")
    matchers = EnvironmentPipelineMatchers(())
    assert find_matching_job(agent, [plain_job, elastic_job], matchers) is None  # no plugin in the simulator
    yes = find_matching_job(agent, [plain_job, elastic_job], matchers, lambda agent, job: True)
    assert yes is elastic_job
    assert find_matching_job(Agent(), [elastic_job, plain_job], matchers) is plain_job


def test_find_matching_job_filters_by_environment_first():
    prod_job = Job(pipeline="deploy", environment="prod")
    plain_job = Job(pipeline="plain")
    matchers = EnvironmentPipelineMatchers(("prod",))
    assert find_matching_job(Agent(environments=("prod",)), [plain_job, prod_job], matchers) is prod_job
    assert find_matching_job(Agent(), [prod_job, plain_job], matchers) is plain_job
    pinned_prod = Job(pipeline="deploy", environment="prod", agent_uuid="me")
    assert find_matching_job(Agent(), [pinned_prod], matchers) is None
