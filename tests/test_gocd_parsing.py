"""Parsing GoCD answers shaped like real 19.x-26.x servers': pure, table-driven."""

from __future__ import annotations

import copy

import pytest

from actors.gocd.client import (
    base_job_name,
    parse_agent,
    parse_agents,
    parse_job_history_total,
    parse_pipeline_elastic_profiles,
    parse_scheduled_jobs,
    parse_xml,
    version_tuple,
)
from actors.messages import BuildDetails, GoAgent, ScheduledJob

FEED = b"""<?xml version="1.0" encoding="UTF-8"?>
<scheduledJobs>
  <job name="unit">
    <link rel="self" href="https://gocd.example.com/go/api/feed/pipelines/app/42/build/1/unit.xml"/>
    <link rel="alternate" href="https://gocd.example.com/go/tab/build/detail/app/42/build/1/unit" title="unit Job Detail" type="text/html"/>
    <buildLocator>app/42/build/1/unit</buildLocator>
    <environment>staging</environment>
    <resources>
      <resource><![CDATA[docker]]></resource>
      <resource><![CDATA[linux]]></resource>
    </resources>
    <environmentVariables>
      <variable name="MAVEN_OPTS">-Xmx1g</variable>
      <variable name="DEPLOY_TOKEN">****</variable>
    </environmentVariables>
  </job>
  <job name="lint">
    <link rel="self" href="https://gocd.example.com/go/api/feed/pipelines/app/42/build/1/lint.xml"/>
    <link rel="alternate" href="https://gocd.example.com/go/tab/build/detail/app/42/build/1/lint" title="lint Job Detail" type="text/html"/>
    <buildLocator>app/42/build/1/lint</buildLocator>
  </job>
</scheduledJobs>
"""

OLD = b"""<scheduledJobs>
  <job name="unit" id="1187">
    <link rel="self" href="https://gocd.example.com/go/tab/build/detail/app/42/build/1/unit"/>
    <buildLocator>app/42/build/1/unit</buildLocator>
    <resources>
      <resource><![CDATA[docker]]></resource>
    </resources>
  </job>
</scheduledJobs>"""

UNIT = ScheduledJob(
    locator="app/42/build/1/unit",
    pipeline="app",
    pipeline_counter=42,
    stage="build",
    stage_counter=1,
    name="unit",
    environment="staging",
    resources=frozenset({"docker", "linux"}),
    variables=(("MAVEN_OPTS", "-Xmx1g"), ("DEPLOY_TOKEN", "****")),
    url="https://gocd.example.com/go/tab/build/detail/app/42/build/1/unit",
)
LINT = ScheduledJob(
    locator="app/42/build/1/lint",
    pipeline="app",
    pipeline_counter=42,
    stage="build",
    stage_counter=1,
    name="lint",
    url="https://gocd.example.com/go/tab/build/detail/app/42/build/1/lint",
)
OLD_UNIT = ScheduledJob(
    locator="app/42/build/1/unit",
    pipeline="app",
    pipeline_counter=42,
    stage="build",
    stage_counter=1,
    name="unit",
    resources=frozenset({"docker"}),
    url="https://gocd.example.com/go/tab/build/detail/app/42/build/1/unit",
    job_id=1187,
)


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        pytest.param(FEED, (UNIT, LINT), id="feed-shape"),
        pytest.param(OLD, (OLD_UNIT,), id="old-shape"),
        pytest.param(b'<?xml version="1.0" encoding="UTF-8"?>\n<scheduledJobs/>\n', (), id="feed-empty"),
        pytest.param(b"<scheduledJobs>\n</scheduledJobs>", (), id="old-empty"),
        pytest.param(
            b"<scheduledJobs><job name='x-runInstance-2'><buildLocator>p%20q/7/s/3/x-runInstance-2</buildLocator>"
            b"<resources><resource><![CDATA[ Linux ]]></resource></resources><future>ignored</future>"
            b"</job></scheduledJobs>",
            (
                ScheduledJob(
                    locator="p q/7/s/3/x-runInstance-2",
                    pipeline="p q",
                    pipeline_counter=7,
                    stage="s",
                    stage_counter=3,
                    name="x-runInstance-2",
                    resources=frozenset({"Linux"}),
                ),
            ),
            id="encoded-locator-unknown-element-no-links",
        ),
    ],
)
def test_parse_scheduled_jobs(xml, expected):
    assert parse_scheduled_jobs(xml) == expected


@pytest.mark.parametrize(
    "xml",
    [
        pytest.param(b"<scheduledJobs><job name='a'>", id="truncated"),
        pytest.param(b"", id="empty-body"),
        pytest.param(b"<html><body>login</body></html>", id="not-a-job-list"),
        pytest.param(b"<scheduledJobs><job name='a'/></scheduledJobs>", id="no-locator"),
        pytest.param(
            b"<scheduledJobs><job><buildLocator>a/b/c/d/e</buildLocator></job></scheduledJobs>",
            id="bad-counter",
        ),
        pytest.param(
            b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><scheduledJobs>&lol2;</scheduledJobs>',
            id="entity-expansion",
        ),
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><scheduledJobs/>',
            id="external-dtd",
        ),
        # Found by the fault campaign's fuzzing: expat raised LookupError, which the client does
        # not turn into a GoCDError, so the poller died and the daemon exited 1.
        pytest.param(b'<?xml version="1.0" encoding="aTF-8"?><scheduledJobs/>', id="unknown-encoding"),
    ],
)
def test_parse_scheduled_jobs_rejects(xml):
    with pytest.raises(ValueError):
        parse_scheduled_jobs(xml)


def test_parse_xml_never_expands_entities():
    with pytest.raises(ValueError, match="DOCTYPE"):
        parse_xml(b'<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/hostname">]><a>&e;</a>')


def _v7(**over):
    agent = {
        "_links": {
            "self": {"href": "https://gocd.example.com/go/api/agents/u1"},
            "doc": {"href": "https://api.gocd.org/25.1.0/#agents"},
            "find": {"href": "https://gocd.example.com/go/api/agents/:uuid"},
        },
        "uuid": "u1",
        "hostname": "mesos-gocd-agent-7f3a",
        "ip_address": "10.0.4.17",
        "sandbox": "/go-working-dir",
        "operating_system": "Ubuntu 24.04 LTS",
        "agent_config_state": "Enabled",
        "agent_state": "Idle",
        "agent_version": "25.1.0",
        "agent_bootstrapper_version": "25.1.0",
        "environments": [
            {
                "name": "staging",
                "origin": {
                    "type": "gocd",
                    "_links": {"self": {"href": "https://gocd.example.com/go/admin/config_xml"}},
                },
            },
            {"name": "ghost", "origin": {"type": "unknown"}},
        ],
        "build_state": "Idle",
        "free_space": 52613349376,
        "resources": ["docker", "linux"],
    }
    agent.update(over)
    return {k: v for k, v in agent.items() if v is not _DROP}


_DROP = object()

IDLE = GoAgent(
    uuid="u1",
    hostname="mesos-gocd-agent-7f3a",
    config_state="Enabled",
    agent_state="Idle",
    build_state="Idle",
    ip_address="10.0.4.17",
    resources=("docker", "linux"),
    # "ghost" has origin unknown: GoCD defines no such environment and ignores it on the agent.
    environments=("staging",),
    undefined_environments=("ghost",),
    free_space=52613349376,
    sandbox="/go-working-dir",
    operating_system="Ubuntu 24.04 LTS",
    agent_version="25.1.0",
)

BUILDING_DETAILS = {
    "_links": {
        "job": {"href": "https://gocd.example.com/go/tab/build/detail/app/42/build/1/unit"},
        "stage": {"href": "https://gocd.example.com/go/pipelines/app/42/build/1"},
        "pipeline": {"href": "https://gocd.example.com/go/pipeline/activity/app"},
    },
    "pipeline_name": "app",
    "stage_name": "build",
    "job_name": "unit",
}


def _replace(agent: GoAgent, **over) -> GoAgent:
    values = {f: getattr(agent, f) for f in agent.__dataclass_fields__}
    values.update(over)
    return GoAgent(**values)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(_v7(), IDLE, id="v7-idle"),
        pytest.param(
            _v7(
                agent_config_state="Disabled",
                agent_state="Building",
                build_state="Building",
                build_details=BUILDING_DETAILS,
            ),
            _replace(
                IDLE,
                config_state="Disabled",
                agent_state="Building",
                build_state="Building",
                build_details=BuildDetails(
                    "app", "build", "unit", "https://gocd.example.com/go/tab/build/detail/app/42/build/1/unit"
                ),
            ),
            id="v7-disabled-building",
        ),
        pytest.param(
            _v7(
                resources=_DROP,
                elastic_plugin_id="cd.go.contrib.elasticagent.kubernetes",
                elastic_agent_id="k8s-ea-abc",
                environments=[],
            ),
            _replace(
                IDLE,
                resources=(),
                environments=(),
                undefined_environments=(),
                elastic_plugin_id="cd.go.contrib.elasticagent.kubernetes",
                elastic_agent_id="k8s-ea-abc",
            ),
            id="v7-elastic-without-resources",
        ),
        pytest.param(
            _v7(
                agent_config_state="Pending",
                agent_state="Unknown",
                build_state="Unknown",
                free_space="unknown",
                resources=[],
            ),
            _replace(
                IDLE,
                config_state="Pending",
                agent_state="Unknown",
                build_state="Unknown",
                free_space=None,
                resources=(),
            ),
            id="v7-pending-free-space-unknown",
        ),
        pytest.param(
            _v7(agent_version=_DROP, agent_bootstrapper_version=_DROP),
            _replace(IDLE, agent_version=""),
            id="v5-v6-shape",
        ),
        pytest.param(
            _v7(agent_version=_DROP, agent_bootstrapper_version=_DROP, environments=["staging", "ghost"]),
            # Plain names say no origin: each is taken as defined.
            _replace(IDLE, agent_version="", environments=("staging", "ghost"), undefined_environments=()),
            id="v4-string-environments",
        ),
        pytest.param(
            _v7(
                agent_state="Hibernating",
                build_state="Dreaming",
                agent_config_state="Quarantined",
                errors={"resources": ["bad name"]},
                shiny_new_field={"x": 1},
                free_space=True,
            ),
            _replace(
                IDLE,
                agent_state="Hibernating",
                build_state="Dreaming",
                config_state="Quarantined",
                free_space=None,
            ),
            id="unknown-enums-and-fields",
        ),
        pytest.param(
            _v7(resources="linux, docker", environments=None, sandbox=None),
            _replace(
                IDLE, resources=("linux", "docker"), environments=(), undefined_environments=(), sandbox=""
            ),
            id="odd-types",
        ),
        pytest.param(
            {"uuid": "u2"},
            GoAgent(uuid="u2", hostname="", config_state="Unknown", agent_state="Unknown"),
            id="bare-minimum",
        ),
    ],
)
def test_parse_agent(payload, expected):
    assert parse_agent(copy.deepcopy(payload)) == expected


@pytest.mark.parametrize(
    ("agent_id", "plugin_id", "elastic"),
    [
        (None, None, False),
        ("k8s-ea-abc", None, False),
        (None, "cd.go.contrib.elasticagent.kubernetes", False),
        ("k8s-ea-abc", " ", False),
        ("k8s-ea-abc", "cd.go.contrib.elasticagent.kubernetes", True),
    ],
)
def test_an_agent_is_elastic_only_with_both_ids(agent_id, plugin_id, elastic):
    # GoCD's Agent.isElastic: elasticAgentId and elasticPluginId both non-null and non-blank.
    agent = _replace(IDLE, elastic_agent_id=agent_id, elastic_plugin_id=plugin_id)
    assert agent.is_elastic is elastic


@pytest.mark.parametrize("payload", [None, [], "x", {"hostname": "h"}, {"uuid": ""}, {"uuid": 7}])
def test_parse_agent_rejects_non_agents(payload):
    with pytest.raises(ValueError):
        parse_agent(payload)


@pytest.mark.parametrize(
    ("payload", "count"),
    [
        ({"_links": {}, "_embedded": {"agents": []}}, 0),
        ({"_embedded": {"agents": [_v7(), _v7(uuid="u2")]}}, 2),
    ],
)
def test_parse_agents(payload, count):
    agents = parse_agents(payload)
    assert isinstance(agents, tuple)
    assert len(agents) == count


@pytest.mark.parametrize("payload", [{}, {"_embedded": {}}, {"_embedded": {"agents": {}}}, [], None])
def test_parse_agents_rejects(payload):
    with pytest.raises(ValueError):
        parse_agents(payload)


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("unit", "unit"),
        ("unit-runInstance-3", "unit"),
        ("deploy-runOnAll-12", "deploy"),
        ("a-b-runInstance-1", "a-b"),
        ("runInstance-1", "runInstance-1"),
        ("unit-runinstance-1", "unit-runinstance-1"),
    ],
)
def test_base_job_name(name, base):
    assert base_job_name(name) == base


def test_parse_pipeline_elastic_profiles():
    payload = {
        "name": "app",
        "stages": [
            {
                "name": "Build",
                "jobs": [
                    {"name": "Unit", "resources": ["linux"], "elastic_profile_id": None},
                    {"name": "k8s", "resources": [], "elastic_profile_id": "pod-small"},
                    {"name": "plain", "resources": []},
                ],
            },
            {"name": "odd"},
        ],
    }
    assert parse_pipeline_elastic_profiles(payload) == {
        ("build", "unit"): None,
        ("build", "k8s"): "pod-small",
        ("build", "plain"): None,
    }
    with pytest.raises(ValueError):
        parse_pipeline_elastic_profiles({"name": "app"})


#: An agent job run history answer as GoCD 26.1.0's AgentJobHistoryRepresenter writes it.
JOB_HISTORY = {
    "_links": {
        "doc": {"href": "https://api.gocd.org/26.1.0/#agent-job-run-history"},
        "self": {"href": "https://gocd.example.com/go/api/agents/u1/job_run_history"},
        "find": {"href": "https://gocd.example.com/go/api/agents/:uuid"},
    },
    "uuid": "u1",
    "jobs": [
        {
            "job_state_transitions": [
                {"state_change_time": "2026-07-10T09:00:00Z", "state": "Scheduled"},
                {"state_change_time": "2026-07-10T09:00:31Z", "state": "Completed"},
            ],
            "job_name": "unit",
            "stage_name": "build",
            "stage_counter": "1",
            "pipeline_name": "app",
            "pipeline_counter": 42,
            "result": "Passed",
            "rerun": False,
        }
    ],
    "pagination": {"page_size": 10, "offset": 0, "total": 31},
}


@pytest.mark.parametrize(
    ("payload", "total"),
    [
        (JOB_HISTORY, 31),
        ({"uuid": "u1", "jobs": [], "pagination": {"page_size": 10, "offset": 0, "total": 0}}, 0),
        ({"pagination": {"total": 5, "extra": True}}, 5),
    ],
)
def test_parse_job_history_total(payload, total):
    assert parse_job_history_total(copy.deepcopy(payload)) == total


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        {},
        {"pagination": None},
        {"pagination": {"page_size": 10}},
        {"pagination": {"total": "31"}},
        {"pagination": {"total": 3.0}},
        {"pagination": {"total": True}},
        {"pagination": {"total": -1}},
    ],
)
def test_parse_job_history_total_rejects(payload):
    with pytest.raises(ValueError):
        parse_job_history_total(payload)


@pytest.mark.parametrize(
    ("version", "expected"),
    [("25.1.0", (25, 1, 0)), ("19.11.0", (19, 11, 0)), ("19.10.0", (19, 10, 0)), ("20.1", (20, 1)), ("", ())],
)
def test_version_tuple(version, expected):
    assert version_tuple(version) == expected
