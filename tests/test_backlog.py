"""The backlog sources: the dashboard algorithm of ``gocd-api.md`` 11.1 on answers shaped as the
reference shows them (a fake client through the real parsers), the switch of ``auto``, and
the feed source as it always read."""

from __future__ import annotations

import logging

import pytest

from actors.clock import ManualClock
from actors.exceptions import GoCDConnectionError, GoCDNotFound, GoCDServerError
from actors.gocd.backlog import (
    CONFIG_RETRY_SECONDS,
    STAGE_FAILURES_WARNED,
    AutoSource,
    DashboardSource,
    FeedSource,
    make_backlog,
)
from actors.gocd.client import GoCDClient
from actors.messages import ScheduledJob
from actors.sim.gocd import GoCDSimulator
from tests import dashboard_support as d
from tests.dashboard_support import T0, FakeGoCD
from tests.gocd_support import PASSWORD, settings

#: The configured base URL; the answers' _links name another host (the proxy's inside).
CONFIGURED = "https://ci.example.org/go"


@pytest.fixture
def gocd() -> FakeGoCD:
    fake = FakeGoCD()
    fake.base_url = CONFIGURED
    return fake


@pytest.fixture
def source(gocd, clock) -> DashboardSource:
    return DashboardSource(gocd, clock=clock)


def app_config(**jobs_kw):
    """Pipeline app: build (unit: docker+linux; e2e: 3 instances, elastic k8s-small; smoke: run on all)."""
    return d.pipeline_config(
        "app",
        [
            d.stage_config(
                "build",
                [
                    d.job_config("unit", ["docker", "linux"]),
                    d.job_config("e2e", elastic="k8s-small", count=3),
                    d.job_config("smoke", ["linux"], count="all"),
                ],
            ),
            d.stage_config("deploy", [d.job_config("prod", ["deployer"])]),
        ],
    )


def one_stage_dashboard(status="Building", updated=1, counter=42, environments=None):
    return d.dashboard(
        [
            d.pipeline(
                "app",
                [
                    d.instance(
                        "app",
                        counter,
                        [d.stage("build", 1, status, "app", counter), d.not_run("deploy", "app", counter)],
                    )
                ],
                updated=updated,
            )
        ],
        environments=environments,
    )


def names(jobs) -> list[str]:
    return [j.name for j in jobs]


# --- the algorithm -------------------------------------------------------------------------


def test_scheduled_jobs_of_building_stages_with_their_config_environment_and_order(gocd, source):
    gocd.dash = one_stage_dashboard(environments={"staging": ["app"]})
    gocd.configs["app"] = app_config()
    gocd.stages[("app", 42, "build", 1)] = d.stage_instance(
        "app",
        42,
        "build",
        1,
        [
            d.job("unit", at=T0 + 1),
            d.job("e2e-runInstance-1", at=T0 + 2),
            d.job("e2e-runInstance-2", at=T0 + 2, state="Building", agent="a-1"),
            d.job("e2e-runInstance-10", at=T0 + 2),
            d.job("e2e-runInstance-3", at=T0 + 2),
            d.job("smoke-runOnAll-1", at=T0 + 2, agent="uuid-1"),
            d.job("smoke-runOnAll-2", at=T0 + 2, agent="uuid-2"),
            d.job("lint", at=T0, state="Completed"),
        ],
    )
    jobs = source.read()
    # Scheduled only; scheduled date first, then config order, then the instance number
    # (the stage API lists them by name: e2e-runInstance-10 before e2e-runInstance-3).
    assert names(jobs) == [
        "unit",
        "e2e-runInstance-1",
        "e2e-runInstance-3",
        "e2e-runInstance-10",
        "smoke-runOnAll-1",
        "smoke-runOnAll-2",
    ]
    unit, e2e1, *_, smoke1, _ = jobs
    assert unit == ScheduledJob(
        locator="app/42/build/1/unit",
        pipeline="app",
        pipeline_counter=42,
        stage="build",
        stage_counter=1,
        name="unit",
        environment="staging",
        resources=frozenset({"docker", "linux"}),
        url=f"{CONFIGURED}/tab/build/detail/app/42/build/1/unit",
        scheduled_at=(T0 + 1) / 1000,
    )
    assert (e2e1.resources, e2e1.elastic_profile_id, e2e1.pinned_agent) == (frozenset(), "k8s-small", None)
    assert (smoke1.resources, smoke1.pinned_agent) == (frozenset({"linux"}), "uuid-1")
    assert source.problems == ()
    assert source.name == "dashboard"
    # The not-yet-run deploy stage (Unknown, "scheduled" weeks ahead) is never asked for.
    assert [c[1] for c in gocd.calls_of("stage")] == ["app/42/build/1"]


def test_urls_come_from_the_configured_base_never_from_the_answers_links(gocd, source):
    gocd.dash = one_stage_dashboard()
    gocd.configs["app"] = app_config()
    gocd.stages[("app", 42, "build", 1)] = d.stage_instance("app", 42, "build", 1, [d.job("unit")])
    (job,) = source.read()
    assert job.url.startswith(CONFIGURED + "/")
    assert d.BASE not in job.url


def test_order_across_pipelines_and_stages_and_same_millisecond_ties(gocd, source):
    gocd.dash = d.dashboard(
        [
            d.pipeline(
                "zeta",
                [
                    d.instance("zeta", 8, [d.stage("build", 1, "Building", "zeta", 8)]),
                    d.instance("zeta", 7, [d.stage("build", 2, "Failing", "zeta", 7)]),
                ],
            ),
            d.pipeline("alpha", [d.instance("alpha", 3, [d.stage("test", 1, "Building", "alpha", 3)])]),
        ]
    )
    for name in ("zeta", "alpha"):
        gocd.configs[name] = d.pipeline_config(
            name, [d.stage_config(s, [d.job_config("b"), d.job_config("a")]) for s in ("build", "test")]
        )
    gocd.stages[("zeta", 8, "build", 1)] = d.stage_instance(
        "zeta", 8, "build", 1, [d.job("a", at=T0), d.job("b", at=T0)]
    )
    gocd.stages[("zeta", 7, "build", 2)] = d.stage_instance("zeta", 7, "build", 2, [d.job("a", at=T0 + 5)])
    gocd.stages[("alpha", 3, "test", 1)] = d.stage_instance("alpha", 3, "test", 1, [d.job("a", at=T0)])
    jobs = source.read()
    # T0: alpha before zeta (same millisecond: pipeline name, then counters, then config order b, a).
    assert [j.locator for j in jobs] == [
        "alpha/3/test/1/a",
        "zeta/8/build/1/b",
        "zeta/8/build/1/a",
        "zeta/7/build/2/a",
    ]


def test_the_preparing_placeholder_and_stages_not_building_are_never_asked_for(gocd, source):
    gocd.dash = d.dashboard(
        [
            d.pipeline(
                "app",
                [
                    d.instance("app", -1, [d.stage("build", 1, "Building"), d.not_run("deploy")]),
                    d.instance(
                        "app", 5, [d.stage("build", 1, "Passed", "app", 5), d.stage("deploy", 1, "Failed")]
                    ),
                ],
            )
        ]
    )
    assert source.read() == ()
    assert gocd.calls_of("stage") == [] and gocd.calls_of("pipeline_config") == []


def test_a_stage_with_no_waiting_job_reads_no_config(gocd, source):
    gocd.dash = one_stage_dashboard()
    gocd.stages[("app", 42, "build", 1)] = d.stage_instance(
        "app", 42, "build", 1, [d.job("unit", state="Building")]
    )
    assert source.read() == ()
    assert gocd.calls_of("pipeline_config") == []


def test_templates_and_params(gocd, source):
    gocd.dash = d.dashboard(
        [
            d.pipeline(
                "svc", [d.instance("svc", 1, [d.stage("build", 1, "Building", "svc", 1)])], template="java"
            )
        ],
        environments={"prod": ["svc"]},
    )
    gocd.configs["svc"] = d.pipeline_config(
        "svc", template="java", parameters={"OS": "linux", "JDK": "21", "P": "k8s"}
    )
    gocd.templates["java"] = d.template_config(
        "java",
        [
            d.stage_config(
                "build",
                [
                    d.job_config("compile", ["#{OS}", "jdk-#{JDK}", "c##"]),
                    d.job_config("it", elastic="#{P}-small"),
                ],
            )
        ],
    )
    gocd.stages[("svc", 1, "build", 1)] = d.stage_instance(
        "svc", 1, "build", 1, [d.job("compile"), d.job("it")]
    )
    compile_, it = source.read()
    assert compile_.resources == frozenset({"linux", "jdk-21", "c#"})
    assert compile_.environment == "prod"
    assert (it.resources, it.elastic_profile_id) == (frozenset(), "k8s-small")
    assert [c[0] for c in gocd.calls if c[0] != "stage"] == ["dashboard", "pipeline_config", "template"]


def test_a_param_the_pipeline_does_not_define_leaves_the_jobs_resources_unknown(gocd, source, caplog):
    gocd.dash = d.dashboard(
        [
            d.pipeline(
                "svc", [d.instance("svc", 1, [d.stage("build", 1, "Building", "svc", 1)])], template="java"
            )
        ]
    )
    gocd.configs["svc"] = d.pipeline_config("svc", template="java", parameters={"OS": "linux"})
    gocd.templates["java"] = d.template_config(
        "java",
        [
            d.stage_config(
                "build", [d.job_config("compile", ["#{OS}", "jdk-#{JDK}"]), d.job_config("lint", ["#{OS}"])]
            )
        ],
    )
    gocd.stages[("svc", 1, "build", 1)] = d.stage_instance(
        "svc", 1, "build", 1, [d.job("compile"), d.job("lint")]
    )
    with caplog.at_level(logging.WARNING, logger="actors.gocd.backlog"):
        for _ in range(3):
            compile_, lint = source.read()
    text = (
        "pipeline svc, job compile: Parameter 'JDK' is not defined. All pipelines using this parameter "
        "directly or via a template must define it."
    )
    assert compile_.resources_unknown == text and compile_.resources == frozenset()
    assert lint.resources_unknown is None and lint.resources == frozenset({"linux"})
    assert source.problems == (text,)
    assert [r.getMessage() for r in caplog.records] == [f"Resources unknown: {text}"]


def test_environments_are_the_dashboards(gocd, source):
    gocd.dash = d.dashboard(
        [
            d.pipeline("a", [d.instance("a", 1, [d.stage("s", 1, "Building", "a", 1)])]),
            d.pipeline("b", [d.instance("b", 1, [d.stage("s", 1, "Building", "b", 1)])]),
        ],
        environments={"prod": ["a"]},
    )
    for p in ("a", "b"):
        gocd.configs[p] = d.pipeline_config(p, [d.stage_config("s", [d.job_config("j")])])
        gocd.stages[(p, 1, "s", 1)] = d.stage_instance(p, 1, "s", 1, [d.job("j")])
    assert [(j.pipeline, j.environment) for j in source.read()] == [("a", "prod"), ("b", None)]


def test_a_job_no_longer_in_the_config_has_unknown_resources_and_is_no_problem(gocd, source):
    gocd.dash = one_stage_dashboard()
    gocd.configs["app"] = app_config()
    gocd.stages[("app", 42, "build", 1)] = d.stage_instance("app", 42, "build", 1, [d.job("gone")])
    (job,) = source.read()
    assert job.resources_unknown == "job gone of stage build is not in the current config of pipeline app"
    assert source.problems == ()


# --- the dashboard's 202 and 304 ------------------------------------------------------------


def test_202_before_any_backlog_is_unavailable_not_empty(gocd, source):
    gocd.dash = 202
    with pytest.raises(GoCDServerError, match=r"still building its dashboard after a start \(202\)") as info:
        source.read()
    assert info.value.status == 202
    assert source.endpoint == "dashboard"


def test_202_after_a_backlog_keeps_it(gocd, source, caplog):
    gocd.dash = one_stage_dashboard()
    gocd.configs["app"] = app_config()
    gocd.stages[("app", 42, "build", 1)] = d.stage_instance("app", 42, "build", 1, [d.job("unit")])
    first = source.read()
    gocd.dash = 202
    gocd.calls.clear()
    assert source.read() == first
    assert [c[0] for c in gocd.calls] == ["dashboard"]


def test_304_reuses_the_dashboard_but_reads_the_stages_again(gocd, source):
    gocd.dash = one_stage_dashboard()
    gocd.etags["dashboard"] = '"d1--gzip"'
    gocd.configs["app"] = app_config()
    gocd.stages[("app", 42, "build", 1)] = d.stage_instance(
        "app", 42, "build", 1, [d.job("unit"), d.job("smoke-runOnAll-1", agent="u")]
    )
    assert names(source.read()) == ["unit", "smoke-runOnAll-1"]
    # An agent took unit: no stage event, so the dashboard answers 304 (gocd-api.md 8.4).
    gocd.stages[("app", 42, "build", 1)] = d.stage_instance(
        "app",
        42,
        "build",
        1,
        [d.job("unit", state="Assigned", agent="x"), d.job("smoke-runOnAll-1", agent="u")],
    )
    assert names(source.read()) == ["smoke-runOnAll-1"]
    dashboards = gocd.calls_of("dashboard")
    assert [etag for _, _, etag in dashboards] == [None, '"d1--gzip"']
    assert len(gocd.calls_of("stage")) == 2
    assert len(gocd.calls_of("pipeline_config")) == 1


# --- a stage that fails -----------------------------------------------------------------------


def test_a_500_on_a_stage_keeps_its_jobs_of_the_last_poll(gocd, source, caplog):
    gocd.dash = d.dashboard(
        [
            d.pipeline("app", [d.instance("app", 42, [d.stage("build", 1, "Building", "app", 42)])]),
            d.pipeline("lib", [d.instance("lib", 3, [d.stage("build", 1, "Building", "lib", 3)])]),
        ]
    )
    gocd.configs["app"] = app_config()
    gocd.configs["lib"] = d.pipeline_config(
        "lib", [d.stage_config("build", [d.job_config("unit", ["linux"])])]
    )
    gocd.stages[("app", 42, "build", 1)] = d.stage_instance(
        "app", 42, "build", 1, [d.job("unit"), d.job("smoke-runOnAll-1")]
    )
    gocd.stages[("lib", 3, "build", 1)] = d.stage_instance("lib", 3, "build", 1, [d.job("unit", at=T0 + 9)])
    before = source.read()
    assert [j.locator for j in before] == [
        "app/42/build/1/unit",
        "app/42/build/1/smoke-runOnAll-1",
        "lib/3/build/1/unit",
    ]
    gocd.stages[("app", 42, "build", 1)] = d.server_error()
    gocd.stages[("lib", 3, "build", 1)] = d.stage_instance(
        "lib", 3, "build", 1, [d.job("unit", state="Building")]
    )
    with caplog.at_level(logging.DEBUG, logger="actors.gocd.backlog"):
        for poll in range(1, STAGE_FAILURES_WARNED + 2):
            assert source.read() == before[:2], f"poll {poll}"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"GoCD failed to list the jobs of stage app/42/build/1 (500, {STAGE_FAILURES_WARNED} poll(s) in a row); "
        "its 2 waiting job(s) of an earlier poll stand"
    ]
    gocd.stages[("app", 42, "build", 1)] = d.stage_instance("app", 42, "build", 1, [d.job("unit")])
    assert names(source.read()) == ["unit"]


def test_a_stage_that_is_gone_has_no_jobs_and_other_errors_fail_the_read(gocd, source):
    gocd.dash = one_stage_dashboard()
    gocd.configs["app"] = app_config()
    assert source.read() == ()  # the fake answers 404 for a stage it does not know
    gocd.stages[("app", 42, "build", 1)] = GoCDConnectionError("no answer", method="GET", url="x")
    with pytest.raises(GoCDConnectionError):
        source.read()
    assert source.endpoint == "stage"


# --- configs: cached, revalidated, forbidden ------------------------------------------------


def test_configs_are_revalidated_only_when_the_pipelines_dashboard_entry_moved(gocd, source):
    gocd.dash = one_stage_dashboard(updated=1)
    gocd.configs["app"] = app_config()
    gocd.etags["p:app"] = '"c1"'
    gocd.stages[("app", 42, "build", 1)] = d.stage_instance("app", 42, "build", 1, [d.job("unit")])
    source.read()
    source.read()
    assert gocd.calls_of("pipeline_config") == [("pipeline_config", "app", None)]
    gocd.dash = one_stage_dashboard(updated=2)
    (unit,) = source.read()
    assert gocd.calls_of("pipeline_config")[1] == ("pipeline_config", "app", '"c1"')  # answered 304
    assert unit.resources == frozenset({"docker", "linux"})
    # A config save: a new ETag and new resources, seen once the entry moves again.
    gocd.configs["app"] = d.pipeline_config(
        "app", [d.stage_config("build", [d.job_config("unit", ["arm64"])])]
    )
    gocd.etags["p:app"] = '"c2"'
    (unit,) = source.read()
    assert unit.resources == frozenset({"docker", "linux"})
    gocd.dash = one_stage_dashboard(updated=3)
    (unit,) = source.read()
    assert unit.resources == frozenset({"arm64"})


def test_a_template_is_revalidated_with_its_pipeline(gocd, source):
    gocd.dash = d.dashboard(
        [
            d.pipeline(
                "svc",
                [d.instance("svc", 1, [d.stage("build", 1, "Building", "svc", 1)])],
                updated=1,
                template="java",
            )
        ]
    )
    gocd.configs["svc"] = d.pipeline_config("svc", template="java")
    gocd.templates["java"] = d.template_config(
        "java", [d.stage_config("build", [d.job_config("compile", ["linux"])])]
    )
    gocd.etags["t:java"] = '"t1"'
    gocd.stages[("svc", 1, "build", 1)] = d.stage_instance("svc", 1, "build", 1, [d.job("compile")])
    source.read()
    source.read()
    assert gocd.calls_of("template") == [("template", "java", None)]
    gocd.templates["java"] = d.template_config(
        "java", [d.stage_config("build", [d.job_config("compile", ["arm"])])]
    )
    gocd.etags["t:java"] = '"t2"'
    gocd.dash = d.dashboard(
        [
            d.pipeline(
                "svc",
                [d.instance("svc", 1, [d.stage("build", 1, "Building", "svc", 1)])],
                updated=2,
                template="java",
            )
        ]
    )
    (compile_,) = source.read()
    assert gocd.calls_of("template")[1] == ("template", "java", '"t1"')
    assert compile_.resources == frozenset({"arm"})


def test_a_403_on_the_config_names_the_missing_permission_once(gocd, source, clock, caplog):
    gocd.dash = d.dashboard(
        [
            d.pipeline("app", [d.instance("app", 42, [d.stage("build", 1, "Building", "app", 42)])]),
            d.pipeline("web", [d.instance("web", 9, [d.stage("build", 1, "Building", "web", 9)])]),
        ]
    )
    gocd.configs["app"] = d.forbidden()
    gocd.configs["web"] = d.forbidden()
    gocd.stages[("app", 42, "build", 1)] = d.stage_instance("app", 42, "build", 1, [d.job("unit")])
    gocd.stages[("web", 9, "build", 1)] = d.stage_instance("web", 9, "build", 1, [d.job("unit")])
    with caplog.at_level(logging.WARNING, logger="actors.gocd.backlog"):
        for _ in range(5):
            app, web = source.read()
    text = (
        "user 'svc' may not read the config of pipeline {} (403): the resources and elastic profiles of its "
        "jobs are unknown; the dashboard backlog needs a super-admin, or an admin of the pipeline's group"
    )
    assert app.resources_unknown == text.format("app")
    assert web.resources_unknown == text.format("web")
    assert source.problems == (text.format("app"), text.format("web"))
    assert [r.getMessage() for r in caplog.records] == [text.format("app")], "one line, not one per poll"
    assert len(gocd.calls_of("pipeline_config")) == 2, "asked once each until the retry"
    # The rights are granted: asked again after CONFIG_RETRY_SECONDS, then known.
    gocd.configs["app"] = app_config()
    clock.advance(CONFIG_RETRY_SECONDS)
    app, web = source.read()
    assert (app.resources_unknown, app.resources) == (None, frozenset({"docker", "linux"}))
    assert source.problems == (text.format("web"),)


def test_a_403_on_a_template_names_its_permission(gocd, source, caplog):
    gocd.dash = d.dashboard(
        [
            d.pipeline(
                "svc", [d.instance("svc", 1, [d.stage("build", 1, "Building", "svc", 1)])], template="java"
            )
        ]
    )
    gocd.configs["svc"] = d.pipeline_config("svc", template="java")
    gocd.templates["java"] = d.forbidden()
    gocd.stages[("svc", 1, "build", 1)] = d.stage_instance("svc", 1, "build", 1, [d.job("compile")])
    with caplog.at_level(logging.WARNING, logger="actors.gocd.backlog"):
        source.read()
        (job,) = source.read()
    assert job.resources_unknown.startswith("user 'svc' may not read template java (403)")
    assert job.resources_unknown.endswith(
        "a super-admin, an admin or viewer of the template, or a group admin where the template allows group admins"
    )
    assert len(caplog.records) == 1


def test_a_config_that_is_gone_leaves_the_resources_unknown(gocd, source):
    gocd.dash = one_stage_dashboard()
    gocd.stages[("app", 42, "build", 1)] = d.stage_instance("app", 42, "build", 1, [d.job("unit")])
    (job,) = source.read()
    assert (
        job.resources_unknown
        == "cannot read the config of pipeline app: Pipeline with name 'app' was not found!"
    )


def test_timings_and_endpoints_name_each_read(gocd, source):
    gocd.dash = one_stage_dashboard()
    gocd.configs["app"] = app_config()
    gocd.stages[("app", 42, "build", 1)] = d.stage_instance("app", 42, "build", 1, [d.job("unit")])
    source.read()
    assert [e for e, _ in source.timings] == ["dashboard", "stage", "pipeline_config"]
    assert all(s >= 0 for _, s in source.timings)
    gocd.dash = GoCDConnectionError("no answer", method="GET", url="x")
    with pytest.raises(GoCDConnectionError):
        source.read()
    assert source.endpoint == "dashboard"


# --- the feed and the switch ------------------------------------------------------------------


FEED_JOB = ScheduledJob(
    locator="app/42/build/1/unit",
    pipeline="app",
    pipeline_counter=42,
    stage="build",
    stage_counter=1,
    name="unit",
    resources=frozenset({"docker", "linux"}),
)


def gone() -> GoCDNotFound:
    return GoCDNotFound(
        "GET x/api/jobs/scheduled.xml failed: not found (404)", method="GET", url="x", status=404
    )


def test_the_feed_source_reads_the_feed_with_elastic_profiles(gocd):
    gocd.feed = (FEED_JOB,)
    source = FeedSource(gocd)
    assert source.read() == (FEED_JOB,)
    assert (source.name, source.problems, source.endpoint) == ("feed", (), "scheduled_jobs")
    assert [e for e, _ in source.timings] == ["scheduled_jobs"]


def test_a_feed_that_is_gone_says_what_to_do(gocd):
    gocd.feed = gone()
    with pytest.raises(
        GoCDNotFound, match=r"\[gocd\] backlog = auto or dashboard reads the dashboard"
    ) as info:
        FeedSource(gocd).read()
    assert info.value.status == 404


def test_auto_switches_to_the_dashboard_in_the_poll_that_finds_the_feed_gone(gocd, clock, caplog):
    gocd.feed = (FEED_JOB,)
    gocd.dash = one_stage_dashboard()
    gocd.configs["app"] = app_config()
    gocd.stages[("app", 42, "build", 1)] = d.stage_instance("app", 42, "build", 1, [d.job("unit")])
    auto = AutoSource(FeedSource(gocd), DashboardSource(gocd, clock=clock))
    with caplog.at_level(logging.INFO, logger="actors.gocd.backlog"):
        assert auto.read() == (FEED_JOB,)
        assert (auto.name, auto.switched) == ("feed", False)
        gocd.feed = gone()
        (job,) = auto.read()
        assert job.locator == FEED_JOB.locator and job.resources == FEED_JOB.resources
        assert (auto.name, auto.switched) == ("dashboard", True)
        assert [e for e, _ in auto.timings] == ["scheduled_jobs", "dashboard", "stage", "pipeline_config"]
        for _ in range(3):
            auto.read()
    assert len(gocd.calls_of("feed")) == 2, "the feed is not asked again"
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            f"GoCD at {CONFIGURED} serves no scheduled-jobs feed any more (404): reading the backlog from its "
            "dashboard, stage instance and pipeline config APIs from now on",
        )
    ]


def test_auto_does_not_switch_while_the_dashboard_cannot_be_read(gocd, clock, caplog):
    gocd.feed = gone()
    gocd.dash = 202
    auto = AutoSource(FeedSource(gocd), DashboardSource(gocd, clock=clock))
    with pytest.raises(GoCDServerError):
        auto.read()
    assert (auto.switched, auto.endpoint) == (False, "dashboard")
    gocd.dash = d.dashboard([])
    assert auto.read() == ()
    assert auto.switched
    assert len(gocd.calls_of("feed")) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "serves no scheduled-jobs feed any more" in warnings[0]


def test_auto_keeps_the_feed_on_other_feed_errors(gocd, clock):
    gocd.feed = GoCDServerError("GoCD failed (502)", method="GET", url="x", status=502)
    auto = AutoSource(FeedSource(gocd), DashboardSource(gocd, clock=clock))
    with pytest.raises(GoCDServerError):
        auto.read()
    assert (auto.switched, auto.endpoint) == (False, "scheduled_jobs")
    assert gocd.calls_of("dashboard") == []


@pytest.mark.parametrize(
    ("kind", "cls"), [("auto", AutoSource), ("feed", FeedSource), ("dashboard", DashboardSource)]
)
def test_make_backlog(gocd, kind, cls):
    assert isinstance(make_backlog(kind, gocd, ManualClock()), cls)
    with pytest.raises(ValueError, match="not one of: auto, feed, dashboard"):
        make_backlog("xml", gocd, ManualClock())


# --- on the simulator, over HTTP ----------------------------------------------------------------


@pytest.fixture
def make_sim(clock):
    sims = []

    def make(**kw):
        kw.setdefault("username", "svc")
        kw.setdefault("password", PASSWORD)
        sim = GoCDSimulator(clock=clock, **kw)
        sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


def client_of(sim, clock) -> GoCDClient:
    return GoCDClient(settings(sim.url, username="svc", password=PASSWORD), clock=clock)


def test_a_user_who_may_not_read_configs_gets_resources_unknown_and_one_warning(make_sim, clock, caplog):
    sim = make_sim(admin=False, version="26.1.0")
    sim.schedule_jobs("app", count=2, resources=["linux"])
    sim.schedule_jobs("web", resources=["linux"])
    source = DashboardSource(client_of(sim, clock), clock=clock)
    with caplog.at_level(logging.WARNING, logger="actors.gocd.backlog"):
        for _ in range(3):
            jobs = source.read()
    assert [j.locator for j in jobs] == [
        "app/1/build/1/job-runInstance-1",
        "app/1/build/1/job-runInstance-2",
        "web/1/build/1/job",
    ]
    assert all(
        j.resources == frozenset() and "may not read the config of pipeline" in j.resources_unknown
        for j in jobs
    )
    assert source.problems == tuple(
        f"user 'svc' may not read the config of pipeline {p} (403): the resources and elastic profiles of its jobs "
        "are unknown; the dashboard backlog needs a super-admin, or an admin of the pipeline's group"
        for p in ("app", "web")
    )
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    # A group admin may: the same jobs, known, once asked again.
    sim.set_group_permissions("defaultGroup", admin=True)
    clock.advance(CONFIG_RETRY_SECONDS)
    jobs = source.read()
    assert [(j.resources, j.resources_unknown) for j in jobs] == [(frozenset({"linux"}), None)] * 3
    assert source.problems == ()


def test_a_stage_just_scheduled_that_gocd_fails_on_shows_at_the_next_poll(make_sim, clock):
    """GoCD <= 25.4 answers 500 for a stage with no transition time yet (gocd-api.md 9.1)."""
    sim = make_sim(version="25.1.0", stage_transition_lag_s=5.0)
    sim.schedule_jobs("app", resources=["linux"])
    clock.advance(10)
    source = DashboardSource(client_of(sim, clock), clock=clock)
    assert [j.locator for j in source.read()] == ["app/1/build/1/job"]
    sim.schedule_jobs("app", resources=["linux"])
    assert [j.locator for j in source.read()] == ["app/1/build/1/job"], (
        "the new stage: 500, not a failed read"
    )
    assert ("GET", "/go/api/stages/app/2/build/1", 500) in sim.requests
    clock.advance(10)
    assert [j.locator for j in source.read()] == ["app/1/build/1/job", "app/2/build/1/job"]


def test_the_dashboard_warming_up_is_no_backlog_yet(make_sim, clock):
    sim = make_sim(version="26.1.0", dashboard_warmup_s=30.0)
    sim.schedule_jobs("app", resources=["linux"])
    source = DashboardSource(client_of(sim, clock), clock=clock)
    with pytest.raises(GoCDServerError) as info:
        source.read()
    assert info.value.status == 202
    clock.advance(30)
    assert [j.locator for j in source.read()] == ["app/1/build/1/job"]


def test_auto_on_a_simulator_whose_feed_goes_away(make_sim, clock, caplog):
    sim = make_sim(version="26.1.0")
    sim.schedule_jobs("app", count=2, resources=["linux"])
    auto = make_backlog("auto", client_of(sim, clock), clock)
    with caplog.at_level(logging.WARNING):
        before = auto.read()
        sim.remove_feed()
        after = auto.read()
    assert auto.name == "dashboard"
    assert [(j.locator, j.resources, j.url) for j in after] == [
        (j.locator, j.resources, j.url) for j in before
    ]
    switched = [r for r in caplog.records if "serves no scheduled-jobs feed any more" in r.getMessage()]
    assert len(switched) == 1
