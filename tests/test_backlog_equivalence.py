"""The dashboard backlog agrees with the feed: a property over random GoCD states.

Each example builds a GoCD state in the simulator (on a ManualClock, no daemon):
templates whose resources use ``#{param}`` and ``##``, pipelines with their own
stages or a template, parameters and environments, several stages (automatic or
manual), "run N instances" and "run on all agents" jobs, elastic profiles, agents
that take, build, pass and fail jobs, stages run by hand, re-run, cancelled, and
jobs re-scheduled after a lost agent. Then :class:`FeedSource` and
:class:`DashboardSource` read the same server, and their backlogs must be the same
jobs in the same order with the same resources, environment and elastic profile.

The differences ``gocd-api.md`` 11.3 documents are left out of the comparison on
purpose, each for its reason:

1. What the dashboard sees more: ``pinned_agent`` (a "run on all agents" job's
   agent; the feed has none) and ``scheduled_at`` (the feed has no time). They are
   checked against the simulator instead. The elastic profile the feed's XML lacks
   is compared: the feed source reads it from the same pipeline config and
   template APIs.
2. What only the feed sees: the job plan's environment ``variables`` (and the old
   endpoint's ``job_id``); the dashboard source has neither, by design.
3. Same-millisecond tie-breaks across stages: the feed orders by build id, the
   dashboard by pipeline, counters and stage. The simulator gives every job a
   later millisecond than the one before, so no such tie arises here (how often
   one does on a real server is unconfirmed, ``gocd-api.md`` 11.1);
   ``test_backlog.py`` covers the dashboard's rule.
4. Plan versus config drift: no config is edited after a job was scheduled (the
   feed shows the plan, the dashboard source the current config);
   ``tests/test_gocd_sim_pipelines.py`` shows that difference.
5. Freshness: the simulator's dashboard is rebuilt at once, and no stage answers
   500 here (26.1.0), so every active stage is seen at the read.

Parameters are used in resources only: GoCD resolves them in elastic profile ids
too (the dashboard source does), the simulator does not.
"""

from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from actors.clock import ManualClock
from actors.gocd.backlog import DashboardSource, FeedSource
from actors.gocd.client import GoCDClient
from actors.messages import ScheduledJob
from actors.sim.gocd import GoCDSimulator
from actors.sim.gocd_pipelines import JobConfig, StageConfig
from tests.gocd_support import PASSWORD, remoting
from tests.gocd_support import settings as gocd_settings

RESOURCES = ("linux", "docker", "arm64")
PARAMETER_VALUES = ("linux", "docker", "x86", "gpu")
TEMPLATE_RESOURCES = (*RESOURCES, "#{OS}", "#{ARCH}", "os-#{OS}", "c##d")
JOB_NAMES = ("compile", "unit", "lint", "e2e", "pkg")
STAGE_NAMES = ("build", "test", "deploy")
PIPELINES = ("api", "web", "docs", "lib")
ENVIRONMENTS = (None, "prod", "staging")


@st.composite
def job_config(draw, name: str, with_params: bool) -> JobConfig:
    kind = draw(st.sampled_from(("resources", "resources", "plain", "elastic")))
    pool = TEMPLATE_RESOURCES if with_params else RESOURCES
    resources = (
        draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2, unique=True))
        if kind == "resources"
        else []
    )
    elastic = draw(st.sampled_from(("k8s-small", "k8s-big"))) if kind == "elastic" else None
    # GoCD refuses "run on all agents" for an elastic job.
    counts = (None, None, 2, 3) if elastic else (None, None, 2, 3, "all")
    return JobConfig(
        name=name,
        resources=tuple(resources),
        elastic_profile_id=elastic,
        run_instance_count=draw(st.sampled_from(counts)),
    )


@st.composite
def stages(draw, with_params: bool) -> list[StageConfig]:
    count = draw(st.integers(1, len(STAGE_NAMES)))
    result = []
    for i, stage_name in enumerate(STAGE_NAMES[:count]):
        names = draw(st.lists(st.sampled_from(JOB_NAMES), min_size=1, max_size=3, unique=True))
        jobs = tuple(draw(job_config(name, with_params)) for name in names)
        approval = "success" if i == 0 else draw(st.sampled_from(("success", "manual")))
        result.append(StageConfig(stage_name, jobs, approval=approval))
    return result


#: The steps of a GoCD's life the examples take, as often as they appear here.
ACTIONS = (
    *("trigger",) * 2,
    *("work",) * 3,
    "run_stage",
    "rerun",
    "next",
    *("reschedule",) * 2,
    "tick",
)
#: The simulator's job states of a job that is not done.
ACTIVE = ("scheduled", "building")
#: Every resource a job may end up with, params resolved: what the agents that run everything have.
EVERY_RESOURCE = (*RESOURCES, *PARAMETER_VALUES, *(f"os-{v}" for v in PARAMETER_VALUES), "c#d")


def build_config(data, sim: GoCDSimulator) -> dict[str, list[str]]:
    """Templates, pipelines and agents; each pipeline's stage names."""
    templates: dict[str, list[str]] = {}
    for i in range(data.draw(st.integers(0, 2), label="templates")):
        template = data.draw(stages(True), label=f"template {i}")
        sim.define_template(f"tpl-{i}", template)
        templates[f"tpl-{i}"] = [stage.name for stage in template]
    names = data.draw(
        st.lists(st.sampled_from(PIPELINES), min_size=1, max_size=4, unique=True), label="pipelines"
    )
    pipelines = {}
    for name in names:
        template = data.draw(st.sampled_from([None, *templates]), label=f"{name} template")
        own = None if template else data.draw(stages(True), label=f"{name} stages")
        sim.define_pipeline(
            name,
            group=data.draw(st.sampled_from(("backend", "front")), label=f"{name} group"),
            stages=own,
            template=template,
            parameters={
                "OS": data.draw(st.sampled_from(PARAMETER_VALUES), label=f"{name} OS"),
                "ARCH": data.draw(st.sampled_from(PARAMETER_VALUES), label=f"{name} ARCH"),
            },
            environment=data.draw(st.sampled_from(ENVIRONMENTS), label=f"{name} environment"),
        )
        pipelines[name] = templates[template] if template else [stage.name for stage in own or ()]
    # Agents that can run anything, in no environment and in each (run-on-all jobs need one), and
    # a few of random resources and environments.
    everywhere = data.draw(st.booleans(), label="agents that run everything")
    agents = [(EVERY_RESOURCE, envs) for envs in ((), ("prod",), ("staging",))] if everywhere else []
    for i in range(data.draw(st.integers(0, 2), label="other agents")):
        agents.append(
            (
                tuple(
                    data.draw(
                        st.lists(st.sampled_from(EVERY_RESOURCE), unique=True), label=f"agent {i} resources"
                    )
                ),
                tuple(
                    data.draw(st.sampled_from(((), ("prod",), ("staging",))), label=f"agent {i} environment")
                ),
            )
        )
    for i, (resources, environments) in enumerate(agents):
        sim.add_agent(f"agent-{i}", uuid=f"uuid-{i}", resources=resources, environments=environments)
    return pipelines


def act(data, sim: GoCDSimulator, clock: ManualClock, pipelines: dict[str, list[str]]) -> None:
    """Random steps of a GoCD's life after every pipeline ran once; a step GoCD would refuse
    (ValueError) changes nothing."""
    triggered: dict[str, int] = {}

    def trigger(name: str) -> None:
        try:
            sim.trigger_pipeline(name)
        except ValueError:  # a run-on-all job no agent can run: GoCD does not schedule it
            return
        triggered[name] = triggered.get(name, 0) + 1

    for name in pipelines:
        trigger(name)
    for step in range(data.draw(st.integers(0, 20), label="steps")):
        action = data.draw(st.sampled_from(ACTIONS), label=f"step {step}")
        try:
            if action == "trigger":
                trigger(data.draw(st.sampled_from(sorted(pipelines))))
            elif action == "work":
                agents = [a["uuid"] for a in sim.state()["agents"]]
                if agents:
                    # An agent takes its next job, and mostly builds it to the end at once.
                    agent = data.draw(st.sampled_from(agents))
                    work = remoting(sim, agent, "get_work").json().get("work")
                    if work and data.draw(st.integers(0, 2)):
                        result = data.draw(st.sampled_from(("Passed", "Passed", "Failed")))
                        completed = {"locator": work["locator"], "result": result}
                        remoting(sim, agent, "report_completed", completed)
            elif action == "next" and triggered:
                # An instance moves on by hand: what runs is cancelled, the next stage run.
                name = data.draw(st.sampled_from(sorted(triggered)))
                counter = data.draw(st.integers(1, triggered[name]))
                jobs = [j for j in sim.state()["jobs"] if j["locator"].startswith(f"{name}/{counter}/")]
                for stage in {j["locator"].split("/")[2] for j in jobs if j["state"] in ACTIVE}:
                    sim.cancel_stage(name, counter, stage)
                ran = [
                    i
                    for i, stage in enumerate(pipelines[name])
                    if any(f"/{stage}/" in j["locator"] for j in jobs)
                ]
                if ran and ran[-1] + 1 < len(pipelines[name]):
                    sim.run_stage(name, counter, pipelines[name][ran[-1] + 1])
            elif action in ("run_stage", "rerun") and triggered:
                name = data.draw(st.sampled_from(sorted(triggered)))
                counter = data.draw(st.integers(1, triggered[name]))
                stage = data.draw(st.sampled_from(pipelines[name]))
                if action == "rerun":
                    sim.cancel_stage(name, counter, stage)
                sim.run_stage(name, counter, stage)
            elif action == "reschedule":
                building = [j["locator"] for j in sim.state()["jobs"] if j["state"] == "building"]
                if building:
                    sim.reschedule_job(data.draw(st.sampled_from(building)))
            elif action == "tick":
                clock.advance(data.draw(st.sampled_from((0.001, 0.5, 3.0))))
        except ValueError:
            pass


def compared(job: ScheduledJob) -> tuple:
    """What both sources must agree on (see the module docstring for what is left out)."""
    return (
        job.locator,
        job.pipeline,
        job.pipeline_counter,
        job.stage,
        job.stage_counter,
        job.name,
        job.environment,
        job.resources,
        job.elastic_profile_id,
        job.url,
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_dashboard_backlog_is_the_feeds(data):
    clock = ManualClock()
    sim = GoCDSimulator(clock=clock, version="26.1.0", username="admin", password=PASSWORD)
    sim.start()
    client = GoCDClient(gocd_settings(sim.url, username="admin", password=PASSWORD), clock=clock)
    try:
        pipelines = build_config(data, sim)
        act(data, sim, clock, pipelines)
        feed = FeedSource(client).read()
        dashboard_source = DashboardSource(client, clock=clock)
        dashboard = dashboard_source.read()
        state = {j["locator"]: j for j in sim.state()["jobs"] if j["state"] == "scheduled"}
        sim_jobs = [j["locator"] for j in sim.state()["jobs"]]
    finally:
        client.close()
        sim.stop()
    assert [compared(j) for j in dashboard] == [compared(j) for j in feed]
    # What the examples covered (pytest --hypothesis-show-statistics).
    event(f"backlog of {min(len(feed) // 5 * 5, 20)}+ jobs")
    for what, hit in (
        ("several pipelines", len({j.pipeline for j in feed}) > 1),
        ("several stage runs", len({j.locator.rsplit("/", 1)[0] for j in feed}) > 1),
        ("a stage after the first", any(j.stage != pipelines[j.pipeline][0] for j in feed)),
        ("a re-run stage", any(j.stage_counter > 1 for j in feed)),
        ("run-instance jobs", any("-runInstance-" in j.name for j in feed)),
        ("run-on-all jobs", any("-runOnAll-" in j.name for j in feed)),
        ("elastic jobs", any(j.elastic_profile_id for j in feed)),
        ("environments", any(j.environment for j in feed)),
        ("params resolved", any(r not in RESOURCES for j in feed for r in j.resources)),
        ("a re-scheduled job", any(sim_jobs.count(j.locator) > 1 for j in feed)),
    ):
        if hit:
            event(what)
    assert dashboard_source.problems == ()
    assert all(j.resources_unknown is None for j in dashboard)
    # 1. What the dashboard sees more, checked against the simulator.
    assert all(j.pinned_agent is None and j.scheduled_at is None for j in feed)
    for job in dashboard:
        assert job.pinned_agent == (("-runOnAll-" in job.name and state[job.locator]["agent_uuid"]) or None)
        assert job.scheduled_at is not None
    dates = [j.scheduled_at for j in dashboard]
    assert dates == sorted(dates)
