"""GoCD's job-to-agent rules, table-driven."""

from __future__ import annotations

import pytest

from actors.fleet.matching import environment_matches, job_fits_agent, resources_match


@pytest.mark.parametrize(
    ("job", "agent", "fits"),
    [
        ((), (), True),
        ((), ("linux",), True),
        (("linux",), ("linux", "docker"), True),
        (("Linux", "DOCKER"), ("linux", "docker"), True),
        (("linux", "java"), ("linux",), False),
        (("linux",), (), False),
        ((" linux ",), ("linux",), True),
    ],
)
def test_resources_are_a_case_insensitive_superset(job, agent, fits):
    assert resources_match(job, agent) is fits


@pytest.mark.parametrize(
    ("job_env", "agent_envs", "fits"),
    [
        (None, (), True),
        (None, ("staging",), False),
        ("staging", ("staging",), True),
        ("staging", ("uat", "Staging"), True),
        ("staging", (), False),
        ("staging", ("uat",), False),
        ("", (), True),
    ],
)
def test_environment_rule(job_env, agent_envs, fits):
    assert environment_matches(job_env, agent_envs) is fits


def test_elastic_jobs_and_agents_never_match():
    assert job_fits_agent((), None, (), (), job_is_elastic=True) is False
    assert job_fits_agent((), None, (), (), agent_is_elastic=True) is False
    assert job_fits_agent(("a",), "e", ("A", "b"), ("E",)) is True
