"""The GoCD simulator's pipelines and the APIs that replace the feed: dashboard, stage, config, environments.

Everything here runs against the simulator over HTTP (``gocd-api.md`` part two),
on a manual clock; the last test rebuilds the feed's list from the other APIs
as a backlog source would (11.1) and checks it is the feed's.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import requests

from actors.clock import ManualClock
from actors.sim.gocd import (
    DASHBOARD_PROCESSING,
    NOT_FOUND_TEXT,
    STAGE_NPE,
    GoCDSimulator,
    JobConfig,
    StageConfig,
)
from actors.sim.gocd_pipelines import resolve_params
from tests.gocd_support import PASSWORD, TOKEN, no_secrets_in_logs, raw, remoting  # noqa: F401 (autouse fixture)

DASHBOARD = "application/vnd.go.cd.v4+json"
STAGE = "application/vnd.go.cd.v3+json"
PIPELINE = "application/vnd.go.cd.v11+json"
TEMPLATE = "application/vnd.go.cd.v7+json"
ENVIRONMENTS = "application/vnd.go.cd.v3+json"
AUTH = ("admin", PASSWORD)
#: ManualClock's wall time at clock time 1000, in ms: 2023-11-14T22:13:20Z.
START_MS = 1_700_000_000_000


@pytest.fixture
def make_sim(clock: ManualClock):
    sims: list[GoCDSimulator] = []

    def make(**kw) -> GoCDSimulator:
        sim = GoCDSimulator(clock=clock, **kw)
        sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


@pytest.fixture
def sim(make_sim) -> GoCDSimulator:
    return make_sim()


def get(sim: GoCDSimulator, path: str, accept: str | None, **kw) -> requests.Response:
    return raw("GET", f"{sim.url}{path}", accept=accept, **kw)


def dashboard(sim: GoCDSimulator, **kw) -> requests.Response:
    return get(sim, "/api/dashboard", DASHBOARD, **kw)


def stage_api(sim: GoCDSimulator, locator: str, **kw) -> requests.Response:
    return get(sim, f"/api/stages/{locator}", STAGE, **kw)


def build_jobs(sim: GoCDSimulator, locator: str) -> list[dict]:
    response = stage_api(sim, locator)
    assert response.status_code == 200, response.text
    return response.json()["jobs"]


def run(sim: GoCDSimulator, uuid: str, result: str = "Passed") -> str:
    """Agent ``uuid`` takes its next job, builds it and reports ``result``; the job's locator."""
    locator = remoting(sim, uuid, "get_work").json()["work"]["locator"]
    remoting(sim, uuid, "report_current_status", {"locator": locator, "job_state": "Building"})
    remoting(sim, uuid, "report_completed", {"locator": locator, "result": result})
    return locator


def timestamps(sim: GoCDSimulator) -> dict[str, int]:
    return {p["name"]: p["last_updated_timestamp"] for p in dashboard(sim).json()["_embedded"]["pipelines"]}


def feed_jobs(sim: GoCDSimulator) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """The feed's jobs: (locator, environment, resources), in its order."""
    text = raw("GET", f"{sim.url}/api/feed/jobs/scheduled.xml", accept="application/xml").text
    jobs = []
    for block in re.findall(r"<job name=.*?</job>", text, re.S):
        locator = re.search(r"<buildLocator>(.*?)</buildLocator>", block).group(1)
        env = re.search(r"<environment>(.*?)</environment>", block)
        resources = tuple(re.findall(r"<resource><!\[CDATA\[(.*?)\]\]></resource>", block))
        jobs.append((locator, env.group(1) if env else None, resources))
    return jobs


BUILD_TEST_DEPLOY = [
    StageConfig("build", (JobConfig("compile", resources=("linux",)),)),
    StageConfig("test", (JobConfig("unit", resources=("linux",)), JobConfig("lint", resources=("linux",)))),
    StageConfig("deploy", (JobConfig("ship", resources=("linux",)),), approval="manual"),
]


# --- the pipeline model ---------------------------------------------------------------------


def test_params_resolve_as_gocds_state_machine_does():
    assert resolve_params("#{OS}-x##y#{OS}", {"OS": "linux"}) == "linux-x#ylinux"
    assert resolve_params("plain", {}) == "plain"
    for bad in ("#x", "#{OS", "#", "#{NOPE}"):
        with pytest.raises(ValueError):
            resolve_params(bad, {"OS": "linux"})


def test_configs_gocd_would_refuse_are_refused(sim):
    sim.define_template("tpl", [StageConfig("build", (JobConfig("compile", resources=("#{OS}",)),))])
    with pytest.raises(ValueError, match="Parameter 'OS' is not defined"):
        sim.define_pipeline("app", template="tpl")
    with pytest.raises(ValueError, match="not both"):
        sim.define_pipeline("app", template="tpl", stages=BUILD_TEST_DEPLOY, parameters={"OS": "x"})
    with pytest.raises(ValueError, match="resources or an elastic profile"):
        JobConfig("j", resources=("linux",), elastic_profile_id="k8s")
    with pytest.raises(ValueError, match="run_instance_count"):
        JobConfig("j", run_instance_count=0)
    sim.define_pipeline("app", template="tpl", parameters={"OS": "linux"})
    with pytest.raises(ValueError, match="Parameter 'ARCH'"):
        sim.define_template("tpl", [StageConfig("build", (JobConfig("compile", resources=("#{ARCH}",)),))])
    # The failed redefinition changed nothing.
    assert sim.trigger_pipeline("app") == ["app/1/build/1/compile"]


def test_trigger_schedules_the_first_stage_with_its_instances(sim):
    sim.add_agent("a1", uuid="u1", resources=["linux"])
    sim.add_agent("a2", uuid="u2", resources=["linux", "gpu"])
    sim.add_agent("no-gpu", uuid="u3", resources=["linux"], config_state="Disabled")
    sim.add_agent("prod", uuid="u4", resources=["linux", "gpu"], environments=["prod"])
    sim.add_agent("pending", uuid="u5", resources=["linux", "gpu"], config_state="Pending")
    sim.define_pipeline("other", stages=BUILD_TEST_DEPLOY, environment="prod")
    sim.define_template(
        "tpl",
        [
            StageConfig(
                "build",
                (
                    JobConfig("compile", resources=("#{OS}", "x##y")),
                    JobConfig("smoke", resources=("#{OS}",), run_instance_count="all"),
                    JobConfig("e2e", elastic_profile_id="k8s", run_instance_count=2),
                ),
            ),
            StageConfig("deploy", (JobConfig("ship"),)),
        ],
    )
    sim.define_pipeline("app", group="backend", template="tpl", parameters={"OS": "linux"})
    locators = sim.trigger_pipeline("app")
    # Config job order, then instance order; run-on-all: one per enabled registered agent with the
    # resources, outside any defined environment (u4 is in prod, u3 disabled, u5 pending).
    assert locators == [
        "app/1/build/1/compile",
        "app/1/build/1/smoke-runOnAll-1",
        "app/1/build/1/smoke-runOnAll-2",
        "app/1/build/1/e2e-runInstance-1",
        "app/1/build/1/e2e-runInstance-2",
    ]
    jobs = {j["name"]: j for j in build_jobs(sim, "app/1/build/1")}
    assert [j["name"] for j in build_jobs(sim, "app/1/build/1")] == sorted(jobs)
    assert {n: j["agent_uuid"] for n, j in jobs.items()} == {
        "compile": None,
        "e2e-runInstance-1": None,
        "e2e-runInstance-2": None,
        "smoke-runOnAll-1": "u1",
        "smoke-runOnAll-2": "u2",
    }
    # Scheduled dates 1 ms apart in build-id order, though the clock stood still.
    dates = [jobs[locator.rsplit("/", 1)[1]]["scheduled_date"] for locator in locators]
    assert dates == [START_MS + n for n in range(5)]
    assert {j["state"] for j in jobs.values()} == {"Scheduled"}
    # The plan's resources were resolved at scheduling; the feed lists them.
    assert feed_jobs(sim)[0] == ("app/1/build/1/compile", None, ("linux", "x#y"))
    sim.define_pipeline(
        "gpu", stages=[StageConfig("s", (JobConfig("j", ("cuda",), run_instance_count="all"),))]
    )
    with pytest.raises(
        ValueError, match=re.escape("Could not find matching agents to run job [j] of stage [s].")
    ):
        sim.trigger_pipeline("gpu")
    sim.add_agent("cuda", uuid="u6", resources=["cuda"])
    assert sim.trigger_pipeline("gpu") == ["gpu/1/s/1/j-runOnAll-1"]  # the failed trigger spent no counter


def test_a_pinned_run_on_all_job_goes_only_to_its_agent(sim):
    sim.add_agent("a1", uuid="u1")
    sim.add_agent("a2", uuid="u2")
    sim.define_pipeline("app", stages=[StageConfig("s", (JobConfig("all", run_instance_count="all"),))])
    sim.trigger_pipeline("app")
    # u2 asks first, yet gets its own job, not the first in the queue.
    assert remoting(sim, "u2", "get_work").json()["work"]["locator"] == "app/1/s/1/all-runOnAll-2"
    assert remoting(sim, "u2", "get_work").json() == {"work": None}  # building
    assert remoting(sim, "u1", "get_work").json()["work"]["locator"] == "app/1/s/1/all-runOnAll-1"
    late = sim.add_agent("late", uuid="u3")
    assert remoting(sim, late, "get_work").json() == {"work": None}


def test_stages_run_in_sequence_a_manual_stage_waits_a_failure_stops(sim):
    sim.add_agent("a1", uuid="u1", resources=["linux"])
    sim.define_pipeline("app", stages=BUILD_TEST_DEPLOY)
    assert sim.trigger_pipeline("app") == ["app/1/build/1/compile"]
    assert run(sim, "u1") == "app/1/build/1/compile"
    assert [j["name"] for j in build_jobs(sim, "app/1/test/1")] == ["lint", "unit"]
    assert run(sim, "u1") == "app/1/test/1/unit"  # config order: unit was scheduled first
    assert stage_api(sim, "app/1/test/1").json()["result"] == "Unknown"
    run(sim, "u1")
    # deploy is manual: nothing scheduled, nothing waiting.
    assert remoting(sim, "u1", "get_work").json() == {"work": None}
    stages = dashboard(sim).json()["_embedded"]["pipelines"][0]["_embedded"]["instances"][0]["_embedded"][
        "stages"
    ]
    assert [(s["name"], s["counter"], s["status"], s["approval_type"]) for s in stages] == [
        ("build", "1", "Passed", "auto"),
        ("test", "1", "Passed", "auto"),
        ("deploy", "1", "Unknown", "manual"),
    ]
    sim.trigger_pipeline("app")
    with pytest.raises(ValueError, match="has not run"):
        sim.run_stage("app", 2, "deploy")  # GoCD's PreviousStageNotRan
    sim.cancel_stage("app", 2, "build")
    assert sim.run_stage("app", 1, "deploy", by="alice") == ["app/1/deploy/1/ship"]
    deploy = stage_api(sim, "app/1/deploy/1").json()
    assert (deploy["approval_type"], deploy["approved_by"]) == ("manual", "alice")
    run(sim, "u1")
    # A re-run is the next stage counter; the dashboard shows the latest run only.
    assert sim.run_stage("app", 1, "build") == ["app/1/build/2/compile"]
    instances = dashboard(sim).json()["_embedded"]["pipelines"][0]["_embedded"]["instances"]
    assert [i["counter"] for i in instances] == [2, 1]  # the newest, and the active one
    stages = instances[1]["_embedded"]["stages"]
    assert (stages[0]["name"], stages[0]["counter"], stages[0]["status"]) == ("build", "2", "Building")
    sim.cancel_stage("app", 1, "build")

    sim.trigger_pipeline("app")
    run(sim, "u1", result="Failed")
    assert stage_api(sim, "app/3/build/1").json()["result"] == "Failed"
    assert stage_api(sim, "app/3/test/1").status_code == 500  # never ran: GoCD 25.1's NullStage NPE
    assert remoting(sim, "u1", "get_work").json() == {"work": None}


def test_a_passed_rerun_does_not_schedule_a_next_stage_that_is_still_running(sim):
    # GoCD's triggerNextStageInPipeline skips a stage that is active (isStageActive).
    sim.add_agent("builder", uuid="u1", resources=["linux"])
    stages = [
        StageConfig("build", (JobConfig("compile", resources=("linux",)),)),
        StageConfig("test", (JobConfig("unit", resources=("tester",)),)),
    ]
    sim.define_pipeline("app", stages=stages)
    sim.trigger_pipeline("app")
    assert run(sim, "u1") == "app/1/build/1/compile"  # test/1 scheduled; no agent can take it
    assert sim.run_stage("app", 1, "build") == ["app/1/build/2/compile"]
    assert run(sim, "u1") == "app/1/build/2/compile"  # passes while test/1 still waits
    assert [locator for locator, _, _ in feed_jobs(sim)] == ["app/1/test/1/unit"]


def test_a_paused_pipeline_cannot_be_triggered_nor_goes_on(sim):
    sim.add_agent("a1", uuid="u1", resources=["linux"])
    sim.define_pipeline("app", stages=BUILD_TEST_DEPLOY)
    sim.trigger_pipeline("app")
    sim.pause_pipeline("app", "release freeze", by="bob")
    with pytest.raises(ValueError, match="paused"):
        sim.trigger_pipeline("app")
    run(sim, "u1")
    assert remoting(sim, "u1", "get_work").json() == {"work": None}  # test stage not scheduled
    info = dashboard(sim).json()["_embedded"]["pipelines"][0]["pause_info"]
    assert info == {
        "paused": True,
        "paused_by": "bob",
        "pause_reason": "release freeze",
        "paused_at": "2023-11-14T22:13:20Z",
    }
    sim.unpause_pipeline("app")
    assert sim.trigger_pipeline("app") == ["app/2/build/1/compile"]


def test_cancelling_a_stage(sim):
    sim.add_agent("a1", uuid="u1", resources=["linux"])
    sim.define_pipeline("app", stages=BUILD_TEST_DEPLOY[1:2])
    sim.trigger_pipeline("app")
    building = remoting(sim, "u1", "get_work").json()["work"]["locator"]
    sim.cancel_stage("app", 1, "test", by="carol")
    body = stage_api(sim, "app/1/test/1").json()
    assert (body["result"], body["cancelled_by"]) == ("Cancelled", "carol")
    assert {(j["state"], j["result"]) for j in body["jobs"]} == {("Completed", "Cancelled")}
    agent = raw("GET", f"{sim.url}/api/agents/u1").json()
    assert (agent["agent_state"], agent["build_state"]) == ("Building", "Cancelled")
    remoting(sim, "u1", "report_completed", {"locator": building, "result": "Passed"})
    assert raw("GET", f"{sim.url}/api/agents/u1").json()["build_state"] == "Idle"
    assert stage_api(sim, "app/1/test/1").json()["result"] == "Cancelled"
    (entry,) = dashboard(sim).json()["_embedded"]["pipelines"][0]["_embedded"]["instances"][0]["_embedded"][
        "stages"
    ]
    assert (entry["status"], entry["cancelled_by"]) == ("Cancelled", "carol")


def test_a_config_change_cancels_scheduled_jobs_it_drops(sim):
    sim.define_pipeline("app", stages=BUILD_TEST_DEPLOY[1:2])
    sim.trigger_pipeline("app")
    sim.define_pipeline("app", stages=[StageConfig("test", (JobConfig("unit", resources=("linux",)),))])
    jobs = {j["name"]: (j["state"], j["result"]) for j in build_jobs(sim, "app/1/test/1")}
    assert jobs == {"lint": ("Completed", "Cancelled"), "unit": ("Scheduled", "Unknown")}
    assert [locator for locator, _, _ in feed_jobs(sim)] == ["app/1/test/1/unit"]


def test_schedule_jobs_is_a_shortcut_over_the_model(sim):
    sim.schedule_jobs("app", job="unit", resources=["linux"], environment="staging")
    sim.schedule_jobs("app", job="lint", count=2)
    config = get(sim, "/api/admin/pipelines/app", PIPELINE).json()
    ((stage),) = config["stages"]
    assert [(j["name"], j["run_instance_count"], j["resources"]) for j in stage["jobs"]] == [
        ("unit", None, ["linux"]),
        ("lint", 2, []),
    ]
    # Each call ran only its job, in a new instance; the environment stays the pipeline's.
    assert [j["name"] for j in build_jobs(sim, "app/2/build/1")] == [
        "lint-runInstance-1",
        "lint-runInstance-2",
    ]
    assert feed_jobs(sim) == [
        ("app/1/build/1/unit", "staging", ("linux",)),
        ("app/2/build/1/lint-runInstance-1", "staging", ()),
        ("app/2/build/1/lint-runInstance-2", "staging", ()),
    ]
    instances = dashboard(sim).json()["_embedded"]["pipelines"][0]["_embedded"]["instances"]
    assert [i["counter"] for i in instances] == [2, 1]
    with pytest.raises(ValueError, match="template"):
        sim.define_template("tpl", BUILD_TEST_DEPLOY)
        sim.define_pipeline("t", template="tpl")
        sim.schedule_jobs("t")


def test_the_plan_keeps_the_resources_the_config_had_at_scheduling(sim):
    (locator,) = sim.schedule_jobs("app", job="unit", resources=["linux"])
    sim.set_job_resources("app", "build", "unit", ["windows"])
    (job,) = get(sim, "/api/admin/pipelines/app", PIPELINE).json()["stages"][0]["jobs"]
    assert job["resources"] == ["windows"]
    assert feed_jobs(sim) == [(locator, None, ("linux",))]
    windows = sim.add_agent("win", resources=["windows"])
    assert remoting(sim, windows, "get_work").json() == {"work": None}  # assignment uses the plan too
    linux = sim.add_agent("lin", resources=["linux"])
    assert remoting(sim, linux, "get_work").json()["work"]["locator"] == locator


def test_the_environment_is_the_current_configs(sim):
    (locator,) = sim.schedule_jobs("app", job="unit")
    sim.set_pipeline_environment("app", "prod")
    assert feed_jobs(sim) == [(locator, "prod", ())]
    outsider = sim.add_agent("plain")
    assert remoting(sim, outsider, "get_work").json() == {"work": None}
    insider = sim.add_agent("prod-box", environments=["prod"])
    assert remoting(sim, insider, "get_work").json()["work"]["locator"] == locator


def test_a_rescheduled_job_is_a_new_row_and_no_stage_event(sim):
    sim.add_agent("a1", uuid="u1", resources=["linux"])
    sim.define_pipeline("app", stages=BUILD_TEST_DEPLOY[:1])
    (locator,) = sim.trigger_pipeline("app")
    remoting(sim, "u1", "get_work")
    before = dashboard(sim)
    sim.clock.advance(5)
    sim.reschedule_job(locator)
    (job,) = build_jobs(sim, "app/1/build/1")
    assert (job["state"], job["agent_uuid"], job["scheduled_date"]) == ("Scheduled", None, START_MS + 5000)
    assert job["job_state_transitions"] == [{"state": "Scheduled", "state_change_time": START_MS + 5000}]
    assert [j[0] for j in feed_jobs(sim)] == [locator]
    # No stage event: the dashboard's ETag does not move, so a 304 hides the queue change.
    again = dashboard(sim, headers={"If-None-Match": before.headers["ETag"]})
    assert again.status_code == 304
    assert [
        j["job_name"]
        for j in raw(
            "GET", f"{sim.url}/api/agents/u1/job_run_history", accept="application/vnd.go.cd.v1+json"
        ).json()["jobs"]
    ] == ["compile"]
    with pytest.raises(ValueError):
        sim.reschedule_job(locator)  # scheduled: nothing to reschedule


# --- the dashboard ---------------------------------------------------------------------------


def test_dashboard_shape(make_sim, clock):
    sim = make_sim(version="26.1.0")
    sim.add_agent("a1", uuid="u1", resources=["linux"], environments=["staging"])
    sim.define_template("tpl", [StageConfig("only", (JobConfig("j"),))])
    sim.define_pipeline("app", group="backend", stages=BUILD_TEST_DEPLOY, environment="staging")
    sim.define_pipeline("lib", group="backend", template="tpl")
    sim.define_pipeline("idle", group="ops", stages=BUILD_TEST_DEPLOY)
    sim.trigger_pipeline("app")
    clock.advance(60)
    run(sim, "u1")
    url = sim.url
    response = dashboard(sim)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/vnd.go.cd.v4+json;charset=utf-8"
    assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["ETag"])
    body = response.json()
    assert re.fullmatch(r"[0-9a-f]{64}", body.pop("_personalization"))
    future = "2023-12-09T18:45:43Z"  # now (22:14:20) + Integer.MAX_VALUE ms
    stage_link = f"{url}/api/stages/app/1"
    app = {
        "_links": {
            "self": {"href": f"{url}/api/pipelines/app/history"},
            "doc": {"href": "https://api.gocd.org/current/#pipelines"},
        },
        "name": "app",
        "last_updated_timestamp": START_MS + 6,
        "locked": False,
        "pause_info": {"paused": False, "paused_by": None, "pause_reason": None, "paused_at": None},
        "template_info": {"is_using_template": False, "template_name": None},
        "can_operate": True,
        "can_administer": True,
        "can_unlock": True,
        "can_pause": True,
        "from_config_repo": False,
        "_embedded": {
            "instances": [
                {
                    "_links": {"self": {"href": f"{url}/api/pipelines/app/1/instance"}},
                    "label": "1",
                    "counter": 1,
                    "triggered_by": "Triggered by changes",
                    "scheduled_at": "2023-11-14T22:13:20Z",
                    "_embedded": {
                        "stages": [
                            {
                                "_links": {"self": {"href": f"{stage_link}/build/1"}},
                                "name": "build",
                                "counter": "1",
                                "status": "Passed",
                                "allow_only_on_success_of_previous_stage": False,
                                "can_operate": True,
                                "approval_type": "auto",
                                "approved_by": "changes",
                                "scheduled_at": "2023-11-14T22:13:20Z",
                            },
                            {
                                "_links": {"self": {"href": f"{stage_link}/test/1"}},
                                "name": "test",
                                "counter": "1",
                                "status": "Building",
                                "allow_only_on_success_of_previous_stage": False,
                                "can_operate": True,
                                "approval_type": "auto",
                                "approved_by": "changes",
                                "scheduled_at": "2023-11-14T22:14:20Z",
                            },
                            {
                                "_links": {"self": {"href": f"{stage_link}/deploy/1"}},
                                "name": "deploy",
                                "counter": "1",
                                "status": "Unknown",
                                "allow_only_on_success_of_previous_stage": False,
                                "can_operate": True,
                                "approval_type": "manual",
                                "approved_by": None,
                                "scheduled_at": future,
                            },
                        ]
                    },
                }
            ]
        },
    }
    group_links = {
        "doc": {"href": "https://api.gocd.org/current/#pipeline-groups"},
        "self": {"href": f"{url}/api/config/pipeline_groups"},
    }
    assert body["_links"] == {
        "self": {"href": f"{url}/api/dashboard"},
        "doc": {"href": "https://api.gocd.org/current/#dashboard"},
    }
    embedded = body["_embedded"]
    assert embedded["pipeline_groups"] == [
        {
            "_links": group_links,
            "name": "backend",
            "pipelines": ["app", "lib"],
            "can_administer": True,
            "defines_pipelines": True,
        },
        {
            "_links": group_links,
            "name": "ops",
            "pipelines": ["idle"],
            "can_administer": True,
            "defines_pipelines": True,
        },
    ]
    assert embedded["environments"] == [
        {
            "_links": {
                "doc": {"href": "https://api.gocd.org/26.1.0/#environment-config"},
                "self": {"href": f"{url}/api/admin/environments/staging"},
            },
            "name": "staging",
            "pipelines": ["app"],
            "can_administer": True,
            "defines_pipelines": True,
        }
    ]
    assert [p["name"] for p in embedded["pipelines"]] == ["app", "lib", "idle"]
    assert embedded["pipelines"][0] == app
    lib, idle = embedded["pipelines"][1:]
    assert lib["template_info"] == {"is_using_template": True, "template_name": "tpl"}
    assert lib["_embedded"] == {"instances": []} == idle["_embedded"]
    # One tick of the dashboard counter per rebuild, from the start time in ms.
    assert (lib["last_updated_timestamp"], idle["last_updated_timestamp"]) == (START_MS + 2, START_MS + 3)


def test_dashboard_lists_active_instances_and_the_newest(sim):
    sim.add_agent("a1", uuid="u1")
    sim.define_pipeline("app", stages=[StageConfig("s", (JobConfig("j"),))])
    for _ in range(4):
        sim.trigger_pipeline("app")
    run(sim, "u1")  # 1 passes
    run(sim, "u1", result="Failed")  # 2 fails
    # 3 and 4 wait for an agent: Building.
    instances = dashboard(sim).json()["_embedded"]["pipelines"][0]["_embedded"]["instances"]
    assert [(i["counter"], i["_embedded"]["stages"][0]["status"]) for i in instances] == [
        (4, "Building"),
        (3, "Building"),
    ]
    run(sim, "u1")
    run(sim, "u1")
    instances = dashboard(sim).json()["_embedded"]["pipelines"][0]["_embedded"]["instances"]
    assert [i["counter"] for i in instances] == [4]


def test_dashboard_stage_status_follows_stage_state(sim):
    sim.add_agent("a1", uuid="u1")
    sim.define_pipeline("app", stages=[StageConfig("s", (JobConfig("a"), JobConfig("b")))])
    sim.trigger_pipeline("app")

    def status():
        return dashboard(sim).json()["_embedded"]["pipelines"][0]["_embedded"]["instances"][0]["_embedded"][
            "stages"
        ][0]["status"]

    assert status() == "Building"
    run(sim, "u1", result="Failed")
    assert status() == "Failing"
    run(sim, "u1")
    assert status() == "Failed"


def test_dashboard_warms_up_with_202(make_sim, clock):
    sim = make_sim(dashboard_warmup_s=30)
    sim.define_pipeline("app", stages=BUILD_TEST_DEPLOY)
    response = dashboard(sim)
    assert (response.status_code, response.json()) == (202, {"message": DASHBOARD_PROCESSING})
    assert "ETag" not in response.headers
    clock.advance(30)
    assert dashboard(sim).status_code == 200


@pytest.mark.parametrize(
    ("accept", "status", "ctype"),
    [
        (DASHBOARD, 200, "application/vnd.go.cd.v4+json;charset=utf-8"),
        ("application/vnd.go.cd+json", 200, "application/vnd.go.cd.v4+json;charset=utf-8"),
        ("application/vnd.go.cd.v3+json", 404, "text/html;charset=utf-8"),
        ("application/json", 404, "text/plain;charset=utf-8"),
        (None, 404, "text/plain;charset=utf-8"),
    ],
)
def test_dashboard_needs_the_exact_accept_header(sim, accept, status, ctype):
    response = get(sim, "/api/dashboard", accept)
    assert (response.status_code, response.headers["Content-Type"]) == (status, ctype)
    if ctype.startswith("text/plain"):
        assert response.text == NOT_FOUND_TEXT


def test_dashboard_etag_matches_exactly_after_stripping_quotes_and_gzip(sim):
    sim.define_pipeline("app", stages=BUILD_TEST_DEPLOY)
    etag = dashboard(sim).headers["ETag"]
    bare = etag.strip('"')
    for sent, status in [
        (etag, 304),
        (bare, 304),
        (f'"{bare}--gzip"', 304),
        (f"{bare}--deflate", 304),
        (f"W/{etag}", 200),
        (f"{etag}, {etag}", 200),
        ('"something-else"', 200),
    ]:
        response = dashboard(sim, headers={"If-None-Match": sent})
        assert response.status_code == status, sent
        if status == 304:
            assert response.content == b""


def test_dashboard_etag_moves_with_stage_events_only(sim):
    sim.add_agent("a1", uuid="u1", resources=["linux"])
    sim.define_pipeline("app", stages=BUILD_TEST_DEPLOY)
    sim.define_pipeline("other", stages=BUILD_TEST_DEPLOY)
    seen = []

    def changed() -> bool:
        etag = dashboard(sim).headers["ETag"]
        moved = not seen or seen[-1] != etag
        seen.append(etag)
        return moved

    first = timestamps(sim)
    assert changed()
    sim.trigger_pipeline("app")  # stage scheduled
    assert changed()
    locator = remoting(sim, "u1", "get_work").json()["work"]["locator"]  # Scheduled -> Assigned
    assert not changed()
    remoting(sim, "u1", "report_current_status", {"locator": locator, "job_state": "Building"})
    assert not changed()
    remoting(
        sim, "u1", "report_completed", {"locator": locator, "result": "Passed"}
    )  # completed; test scheduled
    assert changed()
    sim.set_job_resources("app", "test", "unit", ["linux", "big"])  # config save
    assert changed()
    sim.pause_pipeline("app")
    assert changed()
    sim.set_pipeline_environment("other", "prod")  # the environments list changes
    assert changed()
    after = timestamps(sim)
    assert after["other"] == first["other"]  # an environment save rebuilds no pipeline
    assert after["app"] > first["app"]


def test_a_template_change_rebuilds_the_pipelines_using_it(sim):
    sim.define_template("tpl", BUILD_TEST_DEPLOY)
    sim.define_pipeline("a", template="tpl")
    sim.define_pipeline("b", template="tpl")
    sim.define_pipeline("c", stages=BUILD_TEST_DEPLOY)
    before = timestamps(sim)
    sim.define_template("tpl", BUILD_TEST_DEPLOY[:1])
    after = timestamps(sim)
    assert after["a"] > before["a"] and after["b"] > before["b"]
    assert after["c"] == before["c"]
    assert after["a"] != after["b"]  # one tick each


def test_dashboard_etags_are_per_user(make_sim):
    sim = make_sim(username="admin", password=PASSWORD, token=TOKEN)
    sim.define_pipeline("app", stages=BUILD_TEST_DEPLOY)
    by_password = dashboard(sim, auth=AUTH)
    by_token = dashboard(sim, headers={"Authorization": f"Bearer {TOKEN}"})
    assert by_password.json()["_embedded"] == by_token.json()["_embedded"]
    assert by_password.headers["ETag"] != by_token.headers["ETag"]
    again = dashboard(
        sim, headers={"Authorization": f"Bearer {TOKEN}", "If-None-Match": by_password.headers["ETag"]}
    )
    assert again.status_code == 200


def test_a_personal_filter_hides_pipelines(make_sim):
    sim = make_sim(username="admin", password=PASSWORD)
    sim.define_pipeline("app", stages=BUILD_TEST_DEPLOY, environment="staging")
    sim.define_pipeline("lib", stages=BUILD_TEST_DEPLOY)
    sim.define_pipeline("web", group="front", stages=BUILD_TEST_DEPLOY)
    plain = dashboard(sim, auth=AUTH)
    sim.set_personal_filter(["app", "WEB"])
    hidden = dashboard(sim, auth=AUTH)
    embedded = hidden.json()["_embedded"]
    assert [p["name"] for p in embedded["pipelines"]] == ["lib"]
    assert [(g["name"], g["pipelines"]) for g in embedded["pipeline_groups"]] == [("defaultGroup", ["lib"])]
    assert embedded["environments"] == []
    assert hidden.headers["ETag"] != plain.headers["ETag"]
    assert hidden.json()["_personalization"] != plain.json()["_personalization"]
    sim.set_personal_filter(["web"], kind="whitelist", name="Mine")
    mine = dashboard(sim, auth=AUTH, params={"viewName": "mine"}).json()["_embedded"]
    assert [p["name"] for p in mine["pipelines"]] == ["web"]
    # An unknown view name falls back to the first filter, "Default".
    unknown = dashboard(sim, auth=AUTH, params={"viewName": "nope"}).json()["_embedded"]
    assert [p["name"] for p in unknown["pipelines"]] == ["lib"]
    # The feed has no such filter.
    for name in ("app", "lib", "web"):
        sim.trigger_pipeline(name)
    assert len(feed_jobs_as(sim, AUTH)) == 3
    with pytest.raises(ValueError, match="security"):
        make_sim().set_personal_filter(["x"])


def feed_jobs_as(sim: GoCDSimulator, auth) -> list[str]:
    text = raw("GET", f"{sim.url}/api/feed/jobs/scheduled.xml", accept="application/xml", auth=auth).text
    return re.findall(r"<buildLocator>(.*?)</buildLocator>", text)


def test_a_viewer_sees_the_queue_but_not_the_config(make_sim):
    sim = make_sim(username="viewer", password=PASSWORD, admin=False)
    auth = ("viewer", PASSWORD)
    sim.define_template("tpl", BUILD_TEST_DEPLOY)
    sim.define_pipeline("app", stages=BUILD_TEST_DEPLOY, environment="staging")
    sim.define_pipeline("tpl-user", template="tpl")
    sim.define_pipeline("secret", group="hidden", stages=BUILD_TEST_DEPLOY)
    sim.set_group_permissions("hidden", view=False)
    for name in ("app", "secret"):
        sim.trigger_pipeline(name)
    assert feed_jobs_as(sim, auth) == ["app/1/build/1/compile"]
    body = dashboard(sim, auth=auth).json()["_embedded"]
    assert [p["name"] for p in body["pipelines"]] == ["app", "tpl-user"]
    app = body["pipelines"][0]
    assert (app["can_operate"], app["can_administer"], app["can_unlock"], app["can_pause"]) == (False,) * 4
    assert body["pipeline_groups"][0]["can_administer"] is False
    assert body["environments"][0]["can_administer"] is False
    assert app["_embedded"]["instances"][0]["_embedded"]["stages"][0]["can_operate"] is False
    assert stage_api(sim, "app/1/build/1", auth=auth).status_code == 200
    forbidden = {"message": "You are not authorized to perform this action."}
    for response in (
        stage_api(sim, "secret/1/build/1", auth=auth),
        get(sim, "/api/admin/pipelines/app", PIPELINE, auth=auth),
        get(sim, "/api/admin/templates/tpl", TEMPLATE, auth=auth),
    ):
        assert (response.status_code, response.json()) == (403, forbidden)
    assert get(sim, "/api/admin/pipelines/nope", PIPELINE, auth=auth).json() == {
        "message": "Pipeline with name 'nope' was not found!"
    }
    assert get(sim, "/api/admin/environments", ENVIRONMENTS, auth=auth).json()["_embedded"] == {
        "environments": []
    }
    env = get(sim, "/api/admin/environments/staging", ENVIRONMENTS, auth=auth)
    assert (env.status_code, env.json()) == (
        403,
        {"message": "User 'viewer' does not have permissions to view 'staging' environment(s)."},
    )
    # A group admin may read its pipelines' config, and templates (allowGroupAdmins).
    sim.set_group_permissions("defaultGroup", admin=True)
    assert get(sim, "/api/admin/pipelines/app", PIPELINE, auth=auth).status_code == 200
    assert get(sim, "/api/admin/pipelines/secret", PIPELINE, auth=auth).status_code == 403
    assert get(sim, "/api/admin/templates/tpl", TEMPLATE, auth=auth).status_code == 200
    assert dashboard(sim, auth=auth).json()["_embedded"]["pipelines"][0]["can_administer"] is True


# --- the stage instance API ----------------------------------------------------------------------


def test_stage_instance_shape(sim, clock):
    sim.add_agent("a1", uuid="u1")
    sim.define_pipeline("app", stages=[StageConfig("build", (JobConfig("unit"), JobConfig("lint")))])
    sim.trigger_pipeline("app")
    clock.advance(3.5)
    remoting(sim, "u1", "get_work")
    clock.advance(1)
    remoting(sim, "u1", "report_current_status", {"locator": "app/1/build/1/unit", "job_state": "Building"})
    response = stage_api(sim, "app/1/build/1")
    assert response.headers["Content-Type"] == "application/vnd.go.cd.v3+json;charset=utf-8"
    assert "ETag" not in response.headers
    assert response.json() == {
        "name": "build",
        "counter": 1,
        "approval_type": "success",
        "approved_by": "changes",
        "scheduled_at": START_MS,
        "last_transitioned_time": START_MS + 4500,
        "result": "Unknown",
        "rerun_of_counter": None,
        "fetch_materials": True,
        "clean_working_directory": False,
        "artifacts_deleted": False,
        "pipeline_name": "app",
        "pipeline_counter": 1,
        "jobs": [
            {
                "name": "lint",
                "state": "Scheduled",
                "result": "Unknown",
                "scheduled_date": START_MS + 1,
                "rerun": False,
                "original_job_id": None,
                "agent_uuid": None,
                "pipeline_name": None,
                "pipeline_counter": None,
                "stage_name": None,
                "stage_counter": None,
                "job_state_transitions": [{"state": "Scheduled", "state_change_time": START_MS + 1}],
            },
            {
                "name": "unit",
                "state": "Building",
                "result": "Unknown",
                "scheduled_date": START_MS,
                "rerun": False,
                "original_job_id": None,
                "agent_uuid": "u1",
                "pipeline_name": None,
                "pipeline_counter": None,
                "stage_name": None,
                "stage_counter": None,
                "job_state_transitions": [
                    {"state": "Scheduled", "state_change_time": START_MS},
                    {"state": "Assigned", "state_change_time": START_MS + 3500},
                    {"state": "Building", "state_change_time": START_MS + 4500},
                ],
            },
        ],
    }


@pytest.mark.parametrize("version", ["25.4.0", "26.1.0"])
def test_stage_instance_not_found_and_broken_answers(make_sim, version):
    sim = make_sim(version=version)
    sim.define_pipeline("app", stages=BUILD_TEST_DEPLOY)
    sim.trigger_pipeline("app")

    def answer(locator):
        response = stage_api(sim, locator)
        return response.status_code, response.json()

    assert answer("nope/1/build/1") == (404, {"message": "Not Found { Pipeline 'nope' not found }"})
    assert answer("app/2/build/1") == (
        404,
        {"message": "Not Found { Pipeline 'app' with counter '2' not found }"},
    )
    assert answer("app/x/build/1") == (500, {"error": 'For input string: "x"'})
    if version == "25.4.0":
        assert answer("app/1/test/1") == (500, {"error": STAGE_NPE})
        assert answer("app/1/build/2") == (500, {"error": STAGE_NPE})
    else:
        status, body = answer("app/1/test/1")
        assert status == 200
        assert body == {
            "name": "test",
            "counter": 0,
            "approval_type": None,
            "approved_by": None,
            "scheduled_at": START_MS,
            "result": "Unknown",
            "rerun_of_counter": None,
            "fetch_materials": True,
            "clean_working_directory": False,
            "artifacts_deleted": False,
            "jobs": [],
        }
    secured = make_sim(version=version, username="admin", password=PASSWORD)
    response = stage_api(secured, "nope/1/build/1", auth=AUTH)
    assert (response.status_code, response.json()) == (
        404,
        {"message": "Pipeline with name 'nope' was not found!"},
    )
    assert get(sim, "/api/stages/app/1/build/1", None).status_code == 404
    assert get(sim, "/api/stages/app/1/build/1", "application/vnd.go.cd.v2+json").status_code == 404


@pytest.mark.parametrize(("version", "status", "has_field"), [("25.4.0", 500, None), ("26.1.0", 200, False)])
def test_a_just_scheduled_stage_without_a_transition_time(make_sim, clock, version, status, has_field):
    sim = make_sim(version=version, stage_transition_lag_s=2)
    sim.define_pipeline("app", stages=BUILD_TEST_DEPLOY)
    sim.trigger_pipeline("app")
    early = stage_api(sim, "app/1/build/1")
    assert early.status_code == status
    if status == 200:
        assert "last_transitioned_time" not in early.json()
    else:
        assert early.json() == {"error": STAGE_NPE}
    clock.advance(2)
    later = stage_api(sim, "app/1/build/1")
    assert later.status_code == 200 and later.json()["last_transitioned_time"] == START_MS


def test_stage_api_came_in_20_9(make_sim):
    sim = make_sim(version="20.8.0")
    sim.define_pipeline("app", stages=BUILD_TEST_DEPLOY)
    sim.trigger_pipeline("app")
    assert stage_api(sim, "app/1/build/1").headers["Content-Type"] == "text/html;charset=utf-8"


# --- config APIs --------------------------------------------------------------------------------


def test_pipeline_config_shows_the_raw_config(sim):
    sim.define_template(
        "tpl",
        [
            StageConfig(
                "build",
                (
                    JobConfig(
                        "compile",
                        resources=("#{OS}",),
                        variables=(("A", "1"),),
                        secure_variables=(("S", "x"),),
                    ),
                    JobConfig("smoke", run_instance_count="all"),
                    JobConfig("pods", elastic_profile_id="k8s", run_instance_count=3),
                ),
                approval="manual",
                allow_only_on_success=True,
            ),
        ],
    )
    sim.define_pipeline("app", group="backend", template="tpl", parameters={"OS": "linux"})
    response = get(sim, "/api/admin/pipelines/app", PIPELINE)
    assert response.headers["Content-Type"] == "application/vnd.go.cd.v11+json;charset=utf-8"
    body = response.json()
    assert list(body) == [
        "_links",
        "label_template",
        "lock_behavior",
        "name",
        "template",
        "group",
        "origin",
        "parameters",
        "environment_variables",
        "materials",
        "stages",
        "tracking_tool",
        "timer",
    ]
    assert (body["template"], body["stages"], body["group"]) == ("tpl", None, "backend")
    assert body["parameters"] == [{"name": "OS", "value": "linux"}]
    assert body["origin"]["type"] == "gocd"
    template = get(sim, "/api/admin/templates/tpl", TEMPLATE)
    assert template.headers["Content-Type"] == "application/vnd.go.cd.v7+json;charset=utf-8"
    template = template.json()
    assert template["_links"]["self"] == {"href": f"{sim.url}/api/admin/templates/tpl"}
    assert template["name"] == "tpl"
    ((stage),) = template["stages"]
    assert stage["approval"] == {
        "type": "manual",
        "allow_only_on_success": True,
        "authorization": {"roles": [], "users": []},
    }
    compile_, smoke, pods = stage["jobs"]
    assert compile_ == {
        "name": "compile",
        "run_instance_count": None,
        "timeout": None,
        "environment_variables": [
            {"secure": False, "name": "A", "value": "1"},
            {
                "secure": True,
                "name": "S",
                "encrypted_value": compile_["environment_variables"][1]["encrypted_value"],
            },
        ],
        "resources": ["#{OS}"],
        "tasks": [],
        "tabs": [],
        "artifacts": [],
    }
    assert smoke["run_instance_count"] == "all" and "elastic_profile_id" not in smoke
    assert list(pods)[:4] == ["name", "run_instance_count", "timeout", "elastic_profile_id"]
    assert (pods["run_instance_count"], pods["elastic_profile_id"]) == (3, "k8s")


@pytest.mark.parametrize(
    ("path", "accept", "name"),
    [("/api/admin/pipelines/app", PIPELINE, "Pipeline"), ("/api/admin/templates/tpl", TEMPLATE, "Template")],
)
def test_config_etags_and_304(sim, path, accept, name):
    sim.define_template("tpl", BUILD_TEST_DEPLOY)
    sim.define_pipeline("app", template="tpl")
    first = get(sim, path, accept)
    etag = first.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]+"', etag)
    not_modified = get(sim, path, accept, headers={"If-None-Match": etag})
    assert (not_modified.status_code, not_modified.content) == (304, b"")
    assert get(sim, path, accept, headers={"If-None-Match": f"W/{etag}"}).status_code == 200
    missing = get(sim, path.rsplit("/", 1)[0] + "/nope", accept)
    assert (missing.status_code, missing.json()) == (
        404,
        {"message": f"{name} with name 'nope' was not found!"},
    )
    assert get(sim, path, None).text == NOT_FOUND_TEXT
    assert (
        get(sim, path, "application/vnd.go.cd.v10+json").headers["Content-Type"] == "text/html;charset=utf-8"
    )


def test_a_template_edit_leaves_the_pipelines_etag(sim):
    sim.define_template("tpl", BUILD_TEST_DEPLOY)
    sim.define_pipeline("app", template="tpl")
    sim.define_pipeline("own", stages=BUILD_TEST_DEPLOY)
    pipeline = get(sim, "/api/admin/pipelines/app", PIPELINE).headers["ETag"]
    template = get(sim, "/api/admin/templates/tpl", TEMPLATE).headers["ETag"]
    own = get(sim, "/api/admin/pipelines/own", PIPELINE).headers["ETag"]
    sim.define_template("tpl", BUILD_TEST_DEPLOY[:1])
    sim.set_job_resources("own", "build", "compile", ["big"])
    assert (
        get(sim, "/api/admin/pipelines/app", PIPELINE, headers={"If-None-Match": pipeline}).status_code == 304
    )
    assert (
        get(sim, "/api/admin/templates/tpl", TEMPLATE, headers={"If-None-Match": template}).status_code == 200
    )
    assert get(sim, "/api/admin/pipelines/own", PIPELINE, headers={"If-None-Match": own}).status_code == 200


def test_pipeline_config_v11_came_in_20_8(make_sim):
    sim = make_sim(version="20.7.0")
    sim.define_pipeline("app", stages=BUILD_TEST_DEPLOY)
    assert get(sim, "/api/admin/pipelines/app", PIPELINE).status_code == 404


def test_environments_api(sim):
    sim.define_pipeline("b", stages=BUILD_TEST_DEPLOY, environment="staging")
    sim.define_pipeline("a", stages=BUILD_TEST_DEPLOY, environment="staging")
    sim.define_pipeline("c", stages=BUILD_TEST_DEPLOY, environment="Alpha")
    index = get(sim, "/api/admin/environments", ENVIRONMENTS)
    assert index.headers["Content-Type"] == "application/vnd.go.cd.v3+json;charset=utf-8"
    envs = index.json()["_embedded"]["environments"]
    assert [(e["name"], [p["name"] for p in e["pipelines"]]) for e in envs] == [
        ("Alpha", ["c"]),
        ("staging", ["b", "a"]),
    ]
    assert envs[1]["pipelines"][0]["_links"]["self"] == {"href": f"{sim.url}/api/pipelines/b/history"}
    assert envs[1]["environment_variables"] == []
    # The index sends an ETag but ignores If-None-Match.
    assert (
        get(
            sim, "/api/admin/environments", ENVIRONMENTS, headers={"If-None-Match": index.headers["ETag"]}
        ).status_code
        == 200
    )
    one = get(sim, "/api/admin/environments/staging", ENVIRONMENTS)
    assert one.json()["name"] == "staging"
    assert (
        get(
            sim,
            "/api/admin/environments/staging",
            ENVIRONMENTS,
            headers={"If-None-Match": one.headers["ETag"]},
        ).status_code
        == 304
    )
    sim.set_pipeline_environment("a", None)
    assert (
        get(
            sim,
            "/api/admin/environments/staging",
            ENVIRONMENTS,
            headers={"If-None-Match": one.headers["ETag"]},
        ).status_code
        == 200
    )
    missing = get(sim, "/api/admin/environments/nope", ENVIRONMENTS)
    assert (missing.status_code, missing.json()) == (
        404,
        {"message": "Environment with name 'nope' was not found!"},
    )


# --- the feed goes away ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "feed", "old"),
    [
        ({"version": "26.1.0"}, 200, 404),
        ({"version": "26.2.0"}, None, None),
        ({"version": "27.1.0"}, None, None),
        ({"version": "20.6.0", "feed": False}, None, None),
        ({"version": "20.6.0"}, 200, 200),
    ],
)
def test_the_feed_is_gone_from_26_2_or_when_asked(make_sim, kw, feed, old):
    sim = make_sim(**kw)
    for path, expected in (("/api/feed/jobs/scheduled.xml", feed), ("/api/jobs/scheduled.xml", old)):
        response = get(sim, path, "application/xml")
        if expected is None:
            assert (response.status_code, response.headers["Content-Type"], response.text) == (
                404,
                "text/plain;charset=utf-8",
                NOT_FOUND_TEXT,
            )
        else:
            assert response.status_code == expected
    assert get(sim, "/api/feed/pipelines.xml", None).status_code == 404


def test_the_feed_can_be_removed_mid_run(sim):
    sim.schedule_jobs("app")
    assert get(sim, "/api/feed/jobs/scheduled.xml", "application/xml").status_code == 200
    sim.remove_feed()
    assert get(sim, "/api/feed/jobs/scheduled.xml", "application/xml").text == NOT_FOUND_TEXT
    other = GoCDSimulator(clock=sim.clock)
    other.start()
    try:
        assert requests.delete(f"{other.url[:-3]}/_sim/feed", timeout=5).json() == {"ok": True}
        assert get(other, "/api/feed/jobs/scheduled.xml", "application/xml").status_code == 404
    finally:
        other.stop()


def test_pipeline_controls_over_http(sim):
    base = sim.url[:-3]
    stages = [{"name": "build", "jobs": [{"name": "compile", "resources": ["#{OS}"]}, "lint"]}]
    assert requests.post(f"{base}/_sim/templates", json={"name": "tpl", "stages": stages}, timeout=5).ok
    defined = requests.post(
        f"{base}/_sim/pipelines",
        json={"name": "app", "template": "tpl", "parameters": {"OS": "linux"}, "environment": "prod"},
        timeout=5,
    )
    assert defined.json() == {"ok": True}
    triggered = requests.post(f"{base}/_sim/pipelines/app/trigger", timeout=5)
    assert triggered.json() == {"locators": ["app/1/build/1/compile", "app/1/build/1/lint"]}
    assert feed_jobs(sim)[0] == ("app/1/build/1/compile", "prod", ("linux",))
    bad = requests.post(f"{base}/_sim/pipelines", json={"name": "x", "template": "nope"}, timeout=5)
    assert bad.status_code == 400


def test_standalone_without_the_feed():
    process = subprocess.Popen(
        [sys.executable, "-m", "actors.sim.gocd", "--port", "0", "--no-feed", "--version", "25.4.0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert raw("GET", f"{url}/api/feed/jobs/scheduled.xml", accept="application/xml").status_code == 404
        assert raw("GET", f"{url}/api/dashboard", accept=DASHBOARD).status_code == 200
    finally:
        process.terminate()
        assert process.wait(10) == 0


# --- the feed's list, rebuilt from the other APIs (gocd-api.md 11.1) ----------------------------


def reconstruct(sim: GoCDSimulator) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """The backlog as a dashboard backlog source would rebuild it: (locator, environment, resources)."""
    dash = dashboard(sim).json()["_embedded"]
    env_of = {p: e["name"] for e in dash["environments"] for p in e["pipelines"]}
    waiting = []
    for pipeline in dash["pipelines"]:
        config = get(sim, f"/api/admin/pipelines/{pipeline['name']}", PIPELINE).json()
        params = {p["name"]: p["value"] for p in config["parameters"]}
        stages = config["stages"]
        if config["template"] is not None:
            stages = get(sim, f"/api/admin/templates/{config['template']}", TEMPLATE).json()["stages"]
        for instance in pipeline["_embedded"]["instances"]:
            for stage in instance["_embedded"]["stages"]:
                if stage["status"] not in ("Building", "Failing"):
                    continue
                locator = f"{pipeline['name']}/{instance['counter']}/{stage['name']}/{stage['counter']}"
                stage_config = next(s for s in stages if s["name"] == stage["name"])
                order = [j["name"] for j in stage_config["jobs"]]
                for job in build_jobs(sim, locator):
                    if job["state"] != "Scheduled":
                        continue
                    match = re.fullmatch(r"(.+?)-(?:runInstance|runOnAll)-(\d+)", job["name"])
                    base, n = (match.group(1), int(match.group(2))) if match else (job["name"], 0)
                    job_config = stage_config["jobs"][order.index(base)]
                    resources = tuple(resolve_params(r, params) for r in job_config["resources"])
                    key = (
                        job["scheduled_date"],
                        pipeline["name"],
                        instance["counter"],
                        stage["name"],
                        int(stage["counter"]),
                        order.index(base),
                        n,
                    )
                    waiting.append(
                        (key, (f"{locator}/{job['name']}", env_of.get(pipeline["name"]), resources))
                    )
    return [entry for _, entry in sorted(waiting)]


def test_the_feeds_list_is_what_the_other_apis_describe(sim, clock):
    sim.add_agent("a1", uuid="u1", resources=["linux", "docker"])
    sim.add_agent("a2", uuid="u2", resources=["linux"], environments=["prod"])
    sim.define_template(
        "svc",
        [
            StageConfig(
                "build",
                (
                    JobConfig("compile", resources=("#{OS}", "docker")),
                    JobConfig("shard", resources=("#{OS}",), run_instance_count=3),
                    JobConfig("pods", elastic_profile_id="k8s"),
                ),
            ),
            StageConfig("deploy", (JobConfig("ship", resources=("#{OS}",), run_instance_count="all"),)),
        ],
    )
    sim.define_pipeline(
        "api", group="backend", template="svc", parameters={"OS": "linux"}, environment="prod"
    )
    sim.define_pipeline("web", group="front", template="svc", parameters={"OS": "linux"})
    sim.define_pipeline("docs", group="front", stages=BUILD_TEST_DEPLOY)
    sim.schedule_jobs("legacy", job="unit", count=2, resources=["linux"])
    sim.trigger_pipeline("web")
    clock.advance(1)
    sim.trigger_pipeline("api")
    sim.trigger_pipeline("docs")
    sim.trigger_pipeline("web")
    clock.advance(1)
    # Move things along: some jobs assigned, one stage passes and schedules the next.
    run(sim, "u1")  # legacy's first job
    remoting(sim, "u2", "get_work")
    expected = feed_jobs(sim)
    assert len(expected) > 10
    assert reconstruct(sim) == expected
    # A config edit after scheduling is the one difference the reference names (11.3 #2).
    sim.set_job_resources("docs", "build", "compile", ["windows"])
    rebuilt = {loc: res for loc, _, res in reconstruct(sim)}
    assert rebuilt["docs/1/build/1/compile"] == ("windows",)
    assert {loc: res for loc, _, res in feed_jobs(sim)}["docs/1/build/1/compile"] == ("linux",)
