"""Parsing the four APIs of the dashboard backlog, from answers shaped as ``gocd-api.md`` part two
shows them (the reference's own examples first), and GoCD's ``#{param}`` substitution."""

from __future__ import annotations

import copy
import json

import pytest

from actors.gocd.dashboard import (
    Dashboard,
    DashboardPipeline,
    DashboardStage,
    JobConfig,
    PipelineConfig,
    PipelineInstance,
    StageConfig,
    StageJob,
    StageKey,
    TemplateConfig,
    parse_dashboard,
    parse_pipeline_config,
    parse_stage_jobs,
    parse_template_config,
    resolve_params,
    run_marker,
)
from tests import dashboard_support as d

#: gocd-api.md 8.3's example, as printed there.
DASHBOARD_8_3 = json.loads("""
{
  "_links": {"self": {"href": "https://gocd.example.com/go/api/dashboard"}, "doc": {"href": "https://api.gocd.org/current/#dashboard"}},
  "_personalization": "2356e5d4",
  "_embedded": {
    "pipeline_groups": [{"_links": {"doc": {"href": "https://api.gocd.org/current/#pipeline-groups"}, "self": {"href": "https://gocd.example.com/go/api/config/pipeline_groups"}},
                          "name": "backend", "pipelines": ["app"], "can_administer": true, "defines_pipelines": true}],
    "environments":    [{"_links": {"doc": {"href": "https://api.gocd.org/current/#environment-config"}, "self": {"href": "https://gocd.example.com/go/api/admin/environments/staging"}},
                          "name": "staging", "pipelines": ["app"], "can_administer": true, "defines_pipelines": true}],
    "pipelines": [{
      "_links": {"self": {"href": "https://gocd.example.com/go/api/pipelines/app/history"}, "doc": {"href": "https://api.gocd.org/current/#pipelines"}},
      "name": "app", "last_updated_timestamp": 1783674000123, "locked": false,
      "pause_info": {"paused": false, "paused_by": null, "pause_reason": null, "paused_at": null},
      "template_info": {"is_using_template": false, "template_name": null},
      "can_operate": true, "can_administer": true, "can_unlock": true, "can_pause": true, "from_config_repo": false,
      "_embedded": {"instances": [{
        "_links": {"self": {"href": "https://gocd.example.com/go/api/pipelines/app/42/instance"}},
        "label": "42", "counter": 42, "triggered_by": "Triggered by changes", "scheduled_at": "2026-07-10T09:00:00Z",
        "_embedded": {"stages": [
          {"_links": {"self": {"href": "https://gocd.example.com/go/api/stages/app/42/build/1"}},
           "name": "build", "counter": "1", "status": "Building", "allow_only_on_success_of_previous_stage": false,
           "can_operate": true, "approval_type": "auto", "approved_by": "changes", "scheduled_at": "2026-07-10T09:00:00Z"},
          {"_links": {"self": {"href": "https://gocd.example.com/go/api/stages/app/42/deploy/1"}},
           "name": "deploy", "counter": "1", "status": "Unknown", "allow_only_on_success_of_previous_stage": false,
           "can_operate": true, "approval_type": "manual", "approved_by": null, "scheduled_at": "2026-08-04T05:31:23Z"}
        ]}
      }]}
    }]
  }
}
""")

#: gocd-api.md 9.1's example, as printed there.
STAGE_9_1 = json.loads("""
{
  "name": "build", "counter": 1, "approval_type": "success", "approved_by": "changes",
  "scheduled_at": 1783674000100, "last_transitioned_time": 1783674000100,
  "result": "Unknown", "rerun_of_counter": null,
  "fetch_materials": true, "clean_working_directory": false, "artifacts_deleted": false,
  "pipeline_name": "app", "pipeline_counter": 42,
  "jobs": [
    {"name": "lint", "state": "Building", "result": "Unknown", "scheduled_date": 1783674000101, "rerun": false,
     "original_job_id": null, "agent_uuid": "5a1c3c6e-0f0e-4b8e-9d5e-7b1f1b5b0a01",
     "pipeline_name": null, "pipeline_counter": null, "stage_name": null, "stage_counter": null,
     "job_state_transitions": [{"state": "Scheduled", "state_change_time": 1783674000101},
                               {"state": "Assigned",  "state_change_time": 1783674003500},
                               {"state": "Preparing", "state_change_time": 1783674004200},
                               {"state": "Building",  "state_change_time": 1783674009000}]},
    {"name": "unit", "state": "Scheduled", "result": "Unknown", "scheduled_date": 1783674000102, "rerun": false,
     "original_job_id": null, "agent_uuid": null,
     "pipeline_name": null, "pipeline_counter": null, "stage_name": null, "stage_counter": null,
     "job_state_transitions": [{"state": "Scheduled", "state_change_time": 1783674000102}]}
  ]
}
""")

#: gocd-api.md 10.1's trimmed example, its elisions filled in.
PIPELINE_10_1 = json.loads("""
{
  "label_template": "${COUNT}", "lock_behavior": "none", "name": "app", "template": null, "group": "backend",
  "origin": {"_links": {}, "type": "gocd"},
  "parameters": [{"name": "OS", "value": "linux"}],
  "environment_variables": [], "materials": [],
  "stages": [{
    "name": "build", "fetch_materials": true, "clean_working_directory": false, "never_cleanup_artifacts": false,
    "approval": {"type": "success", "allow_only_on_success": false, "authorization": {"roles": [], "users": []}},
    "environment_variables": [],
    "jobs": [
      {"name": "unit",  "run_instance_count": null, "timeout": null,    "environment_variables": [], "resources": ["docker", "linux"], "tasks": [], "tabs": [], "artifacts": []},
      {"name": "e2e",   "run_instance_count": 3,    "timeout": "never", "elastic_profile_id": "k8s-small", "environment_variables": [], "resources": [], "tasks": [], "tabs": [], "artifacts": []},
      {"name": "smoke", "run_instance_count": "all","timeout": 30,      "environment_variables": [], "resources": ["linux"], "tasks": [], "tabs": [], "artifacts": []}
    ]
  }],
  "tracking_tool": null, "timer": null
}
""")


# --- dashboard -------------------------------------------------------------------------


def test_the_references_dashboard_example():
    parsed = parse_dashboard(DASHBOARD_8_3)
    assert parsed == Dashboard(
        pipelines=(
            DashboardPipeline(
                name="app",
                last_updated=1783674000123,
                instances=(
                    PipelineInstance(
                        counter=42,
                        stages=(
                            DashboardStage("build", 1, "Building"),
                            DashboardStage("deploy", 1, "Unknown"),
                        ),
                    ),
                ),
            ),
        ),
        environments=(("app", "staging"),),
    )
    # The deploy stage has not run (Unknown, "scheduled" 24.8 days ahead): nothing to ask.
    assert parsed.active_stages() == (StageKey("app", 42, "build", 1),)
    assert parsed.environment_of("app") == "staging"
    assert parsed.environment_of("APP") == "staging"
    assert parsed.environment_of("other") is None


def test_active_stages_skip_the_placeholder_and_stages_that_are_not_building_or_failing():
    payload = d.dashboard(
        [
            d.pipeline(
                "app",
                [
                    # Being triggered: GoCD's PreparingToScheduleInstance, counter -1, label TBD.
                    d.instance("app", -1, [d.stage("build", 1, "Building"), d.not_run("test")]),
                    d.instance("app", 7, [d.stage("build", 2, "Failing"), d.stage("test", 1, "Building")]),
                    d.instance("app", 6, [d.stage("build", 1, "Passed"), d.stage("test", 3, "Cancelled")]),
                ],
            ),
            d.pipeline("never-ran"),
            d.pipeline(
                "lib",
                [d.instance("lib", 3, [d.stage("compile", 1, "Failed"), d.not_run("publish", "lib", 3)])],
            ),
        ]
    )
    parsed = parse_dashboard(payload)
    assert [p.name for p in parsed.pipelines] == ["app", "never-ran", "lib"]
    assert parsed.pipelines[0].instances[0].counter == -1
    assert parsed.pipelines[1].instances == ()
    assert parsed.active_stages() == (StageKey("app", 7, "build", 2), StageKey("app", 7, "test", 1))


def test_environments_map_each_listed_pipeline():
    payload = d.dashboard(
        [d.pipeline("a"), d.pipeline("b"), d.pipeline("c")], environments={"prod": ["a"], "staging": ["b"]}
    )
    parsed = parse_dashboard(payload)
    assert [parsed.environment_of(p) for p in ("a", "b", "c")] == ["prod", "staging", None]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda p: p.pop("_embedded"), "no _embedded object"),
        (lambda p: p["_embedded"].pop("pipelines"), "no pipelines list"),
        (lambda p: p["_embedded"]["pipelines"][0].pop("name"), "without a name"),
        (
            lambda p: p["_embedded"]["pipelines"][0]["_embedded"]["instances"][0].update(counter="x"),
            "not a number",
        ),
        (
            lambda p: p["_embedded"]["pipelines"][0]["_embedded"]["instances"][0]["_embedded"]["stages"][
                0
            ].update(counter=None),
            "stage counter of pipeline app is not a number",
        ),
        (
            lambda p: p["_embedded"]["environments"][0].update(pipelines="app"),
            "no pipelines list in environment",
        ),
    ],
)
def test_a_dashboard_of_another_shape_is_refused(change, problem):
    payload = copy.deepcopy(DASHBOARD_8_3)
    change(payload)
    with pytest.raises(ValueError, match=problem):
        parse_dashboard(payload)


def test_unknown_fields_and_statuses_are_kept_or_ignored():
    payload = copy.deepcopy(DASHBOARD_8_3)
    payload["_embedded"]["pipelines"][0]["new_field"] = {"x": 1}
    stages = payload["_embedded"]["pipelines"][0]["_embedded"]["instances"][0]["_embedded"]["stages"]
    stages[0]["status"] = "Hovering"
    parsed = parse_dashboard(payload)
    assert parsed.pipelines[0].instances[0].stages[0].status == "Hovering"
    assert parsed.active_stages() == ()


# --- stage instance ----------------------------------------------------------------------


def test_the_references_stage_instance_example():
    assert parse_stage_jobs(STAGE_9_1) == (
        StageJob("lint", "Building", 1783674000101, "5a1c3c6e-0f0e-4b8e-9d5e-7b1f1b5b0a01"),
        StageJob("unit", "Scheduled", 1783674000102, None),
    )


def test_a_run_on_all_job_waits_pinned_to_its_agent():
    payload = d.stage_instance(
        "app",
        1,
        "smoke",
        1,
        [
            d.job("smoke-runOnAll-1", agent="uuid-1"),
            d.job("smoke-runOnAll-2", agent="uuid-2", state="Assigned"),
        ],
    )
    assert [(j.name, j.state, j.agent_uuid) for j in parse_stage_jobs(payload)] == [
        ("smoke-runOnAll-1", "Scheduled", "uuid-1"),
        ("smoke-runOnAll-2", "Assigned", "uuid-2"),
    ]


def test_a_stage_answer_without_jobs_is_refused():
    with pytest.raises(ValueError, match="no jobs list"):
        parse_stage_jobs({"name": "build", "counter": 1})


# --- pipeline config and template ------------------------------------------------------


def test_the_references_pipeline_config_example():
    assert parse_pipeline_config(PIPELINE_10_1) == PipelineConfig(
        name="app",
        template=None,
        parameters=(("OS", "linux"),),
        stages=(
            StageConfig(
                "build",
                (
                    JobConfig("unit", ("docker", "linux"), None, None),
                    JobConfig("e2e", (), "k8s-small", 3),
                    JobConfig("smoke", ("linux",), None, "all"),
                ),
            ),
        ),
    )


def test_a_templated_pipeline_has_no_stages_of_its_own():
    payload = d.pipeline_config("svc", template="java-service", parameters={"OS": "linux", "JDK": "21"})
    assert payload["stages"] is None
    assert parse_pipeline_config(payload) == PipelineConfig(
        name="svc", template="java-service", parameters=(("OS", "linux"), ("JDK", "21")), stages=None
    )


def test_a_template_and_its_raw_params():
    payload = d.template_config(
        "java-service",
        [
            d.stage_config("build", [d.job_config("compile", ["#{OS}", "jdk-#{JDK}"])]),
            d.stage_config("test", [d.job_config("it", elastic="k8s-#{OS}", count=2)]),
        ],
    )
    assert parse_template_config(payload) == TemplateConfig(
        "java-service",
        (
            StageConfig("build", (JobConfig("compile", ("#{OS}", "jdk-#{JDK}")),)),
            StageConfig("test", (JobConfig("it", (), "k8s-#{OS}", 2),)),
        ),
    )


def test_config_jobs_are_found_by_name_ignoring_case():
    stage = parse_pipeline_config(PIPELINE_10_1).stages[0]
    assert stage.job("E2E") == (1, JobConfig("e2e", (), "k8s-small", 3))
    assert stage.job("nope") is None


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda p: p.update(stages=None), "no stages list in pipeline app"),
        (lambda p: p["stages"][0].pop("jobs"), "no jobs list in stage build"),
        (lambda p: p["stages"][0]["jobs"][0].update(run_instance_count=True), "neither a count nor 'all'"),
        (
            lambda p: p["stages"][0]["jobs"][0].update(resources="linux"),
            "resources of job unit is not a list",
        ),
        (lambda p: p.pop("name"), "without a name"),
    ],
)
def test_a_pipeline_config_of_another_shape_is_refused(change, problem):
    payload = copy.deepcopy(PIPELINE_10_1)
    change(payload)
    with pytest.raises(ValueError, match=problem):
        parse_pipeline_config(payload)


# --- names and params -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("unit", ("unit", 0)),
        ("e2e-runInstance-3", ("e2e", 3)),
        ("smoke-runOnAll-12", ("smoke", 12)),
        ("a-b-runInstance-1", ("a-b", 1)),
        ("runInstance-1", ("runInstance-1", 0)),
        ("x-runinstance-1", ("x-runinstance-1", 0)),
    ],
)
def test_run_marker(name, expected):
    assert run_marker(name) == expected


PARAMS = {"OS": "linux", "ARCH": "arm64", "EMPTY": "", "os": "lower"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("docker", "docker"),
        ("#{OS}", "linux"),
        ("#{os}", "lower"),
        ("#{OS}-#{ARCH}", "linux-arm64"),
        ("pre-#{EMPTY}-post", "pre--post"),
        ("a##b", "a#b"),
        ("##{OS}", "#{OS}"),
        ("###{OS}", "#linux"),
        ("", ""),
    ],
)
def test_params_resolve_as_gocds_state_machine_does(text, expected):
    assert resolve_params(text, PARAMS) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("#{JDK}", "Parameter 'JDK' is not defined"),
        ("#{Os}", "Parameter 'Os' is not defined"),
        ("linux-#{OS", "Incomplete param usage in 'linux-#{OS'"),
        ("c#", "# must be followed by a parameter pattern or escaped by another #"),
        ("#OS", "# must be followed by a parameter pattern or escaped by another #"),
    ],
)
def test_params_that_do_not_resolve_say_why(text, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace("{", r"\{")):
        resolve_params(text, PARAMS)
