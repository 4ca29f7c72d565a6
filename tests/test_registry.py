"""The AgentRegistry's state machine, driven by messages without a thread."""

from __future__ import annotations

import dataclasses
import json
import logging
import re

import pytest

from actors.config import AgentSettings, JudgeSettings, Profile, Secret, profile_for_task
from actors.fleet.registry import AgentRegistry
from actors.messages import (
    AgentChangeFailed,
    AgentDeleted,
    AgentDeleteRefused,
    AgentDisabled,
    AgentJobHistory,
    AgentNotFound,
    AgentRead,
    BacklogSnapshot,
    BuildDetails,
    Decide,
    DeleteAgent,
    DisableAgent,
    EnableAgent,
    FleetChanged,
    FrameworkRegistered,
    GoAgent,
    GoCDUnavailable,
    KillAgent,
    LaunchAgents,
    Peers,
    ReadAgent,
    ReadJobHistory,
    ReconcileTasks,
    ScalePlan,
    Subscribe,
    TaskLaunched,
    TaskUpdate,
)
from tests.conftest import RecordingRef

PREFIX = "gocd-mesos-"
LINUX = Profile(name="linux", image="i", resources=("linux",), max=10)
ONCE = Profile(name="once", image="i", resources=("once",), max=10, max_jobs=1)
AGENTS = AgentSettings(go_server_url="http://gocd/go", auto_register_key=Secret("k"), register_timeout=300)
JUDGE = JudgeSettings(backoff_initial=30, backoff_max=600)


class Harness:
    def __init__(self, clock, tmp_path, dry_run=False):
        self.clock = clock
        self.dir = tmp_path
        self.judge, self.bridge, self.poller, self.watcher = (
            RecordingRef(),
            RecordingRef(),
            RecordingRef(),
            RecordingRef(),
        )
        self.dry_run = dry_run
        self.registry = self.make()

    def make(self):
        registry = AgentRegistry(
            agents=AGENTS,
            profiles=(LINUX, ONCE),
            judge_settings=JUDGE,
            state_dir=str(self.dir),
            clock=self.clock,
            poll_interval=10,
            dry_run=self.dry_run,
        )
        registry.on_start()
        registry.on_receive(Peers(judge=self.judge, bridge=self.bridge, poller=self.poller))
        return registry

    def send(self, message):
        return self.registry.on_receive(message)

    def plan(self, launches=(), drains=()):
        self.send(ScalePlan(decided_at=self.clock.now(), launches=tuple(launches), drains=tuple(drains)))

    def launch(self, profile="linux", count=1):
        self.plan(launches=[(profile, count)])
        return self.bridge.of(LaunchAgents)[-1].task_ids

    def snapshot(self, *agents):
        self.send(BacklogSnapshot(jobs=(), agents=tuple(agents), fetched_at=self.clock.now()))
        # Answer the Decide so that the next snapshot asks again.
        self.plan()

    def task(self, task_id, state, reason="", profile="linux"):
        self.send(
            TaskUpdate(
                task_id=task_id, state=state, received_at=self.clock.now(), reason=reason, profile=profile
            )
        )

    def states(self):
        return {a.task_id: a.state for a in self.registry.fleet().agents}


def agent(task_id, state="Idle", config="Enabled", build=None, uuid=None) -> GoAgent:
    return GoAgent(
        uuid=uuid or f"uuid-{task_id}",
        hostname=task_id,
        config_state=config,
        agent_state=state,
        build_state="Building" if state == "Building" else "Idle",
        build_details=BuildDetails("p", "s", "j", job_url=build) if build else None,
    )


@pytest.fixture
def h(clock, tmp_path):
    return Harness(clock, tmp_path)


def test_launch_creates_persisted_records_before_telling_the_bridge(h):
    (task_id,) = h.launch()
    assert task_id.startswith(PREFIX + "linux-")
    assert h.states() == {task_id: "requested"}
    saved = json.loads((h.dir / "fleet.json").read_text())
    assert [r["task_id"] for r in saved["records"]] == [task_id]
    assert h.registry.launched_total == 1


def test_launched_task_ids_parse_back_to_their_profile(h):
    task_ids = h.launch("once", 3)
    assert len(set(task_ids)) == 3
    for task_id in task_ids:
        assert re.fullmatch(PREFIX + r"once-[0-9a-f]{8}", task_id)
        assert profile_for_task(task_id, PREFIX, (LINUX, ONCE)) == ONCE


def test_lifecycle_to_idle_and_building_counts_jobs(h):
    (t,) = h.launch()
    h.send(TaskLaunched(task_id=t, profile="linux", agent_id="S1", hostname="node1"))
    assert h.states()[t] == "launching"
    h.task(t, "TASK_RUNNING")
    assert h.states()[t] == "running"
    h.snapshot(agent(t))
    assert h.states()[t] == "idle"
    (view,) = h.registry.fleet().agents
    assert view.agent_uuid == f"uuid-{t}" and view.idle_since == h.clock.now()
    h.snapshot(agent(t, "Building", build="p/1/s/1/j"))
    h.snapshot(agent(t, "Building", build="p/1/s/1/j"))
    h.snapshot(agent(t))
    h.snapshot(agent(t, "Building", build="p/2/s/1/j"))
    (view,) = h.registry.fleet().agents
    assert view.state == "building" and view.jobs_done == 2


def test_pending_agent_is_approved_with_a_clear_error(h, caplog):
    (t,) = h.launch()
    h.task(t, "TASK_RUNNING")
    with caplog.at_level(logging.ERROR):
        h.snapshot(agent(t, "Unknown", config="Pending"))
        h.snapshot(agent(t, "Unknown", config="Pending"))
    assert h.poller.of(EnableAgent) == [EnableAgent(uuid=f"uuid-{t}", resources=("linux",), environments=())]
    assert "does not match the GoCD server's agentAutoRegisterKey" in caplog.text


def test_safe_drain_disable_read_kill_delete(h):
    (t,) = h.launch()
    h.task(t, "TASK_RUNNING")
    h.snapshot(agent(t))
    h.plan(drains=[t])
    assert h.poller.of(DisableAgent) == [DisableAgent(uuid=f"uuid-{t}")]
    assert h.states()[t] == "draining"
    h.send(AgentDisabled(agent=agent(t, config="Disabled")))
    assert h.poller.of(ReadAgent) == [ReadAgent(uuid=f"uuid-{t}")]
    assert h.bridge.of(KillAgent) == []
    h.send(AgentRead(agent=agent(t, config="Disabled")))
    assert h.bridge.of(KillAgent) == [KillAgent(task_id=t)]
    assert h.states()[t] == "killing"
    h.task(t, "TASK_KILLED")
    assert h.poller.of(DeleteAgent) == [DeleteAgent(uuid=f"uuid-{t}")]
    h.send(AgentDeleted(uuid=f"uuid-{t}"))
    assert h.states() == {}


def test_an_agent_that_took_a_job_during_the_drain_is_not_killed(h):
    (t,) = h.launch()
    h.task(t, "TASK_RUNNING")
    h.snapshot(agent(t))
    h.plan(drains=[t])
    h.send(AgentDisabled(agent=agent(t, "Building", config="Disabled", build="p/1/s/1/j")))
    h.send(AgentRead(agent=agent(t, "Building", config="Disabled", build="p/1/s/1/j")))
    h.clock.advance(5)
    h.snapshot(agent(t, "Building", config="Disabled", build="p/1/s/1/j"))
    assert h.bridge.of(KillAgent) == []
    h.clock.advance(5)
    h.snapshot(agent(t, "Idle", config="Disabled"))
    assert h.bridge.of(KillAgent) == [KillAgent(task_id=t)]


def old_agents(h, listed_at, *agents):
    """A snapshot of jobs read now and of an agents list read at ``listed_at`` ([gocd] agents_interval)."""
    h.send(
        BacklogSnapshot(jobs=(), agents=tuple(agents), fetched_at=h.clock.now(), agents_fetched_at=listed_at)
    )
    h.plan()


def test_an_agents_list_read_before_the_disable_never_kills_a_building_agent(h):
    (t,) = h.launch()
    h.task(t, "TASK_RUNNING")
    listed_at = h.clock.now()
    disabled_idle = agent(t, config="Disabled")
    # Someone disabled our agent in GoCD: the registry drains it ...
    h.snapshot(disabled_idle)
    assert h.states()[t] == "draining"
    # ... then enabled it again; GoCD gave it a job, and our disable finds it building.
    building = agent(t, "Building", config="Disabled", build="p/1/s/1/j")
    h.send(AgentDisabled(agent=building))
    h.send(AgentRead(agent=building))
    # Polls read the jobs and reuse the agents list of before the disable, where the agent is
    # Disabled and idle: neither the drain's re-read nor its retry may take that for the truth.
    for _ in range(5):
        h.clock.advance(10)
        old_agents(h, listed_at, disabled_idle)
        assert h.bridge.of(KillAgent) == []
    assert h.states()[t] == "draining"
    assert len(h.poller.of(DisableAgent)) > 1  # the retry asked GoCD again instead
    # A list read after the disable is the re-read: once the job is done, the task goes.
    h.clock.advance(10)
    h.snapshot(agent(t, "Building", config="Disabled", build="p/1/s/1/j"))
    assert h.bridge.of(KillAgent) == []
    h.clock.advance(10)
    h.snapshot(agent(t, config="Disabled"))
    assert h.bridge.of(KillAgent) == [KillAgent(task_id=t)]


def test_an_agents_list_read_before_the_register_deadline_proves_nothing(h):
    (t,) = h.launch()
    h.task(t, "TASK_RUNNING")
    listed_at = h.clock.now() + 200
    h.clock.advance(301)  # past register_timeout (300s)
    old_agents(h, listed_at)  # the agent may have registered since that list was read
    assert h.bridge.of(KillAgent) == [] and h.states()[t] == "running"
    h.snapshot()  # a list read after the deadline that still lacks it
    assert h.bridge.of(KillAgent) == [KillAgent(task_id=t)]


def test_idle_time_counts_from_the_agents_list_read(h):
    (t,) = h.launch()
    h.task(t, "TASK_RUNNING")
    listed_at = h.clock.now()
    h.clock.advance(8)
    old_agents(h, listed_at, agent(t))
    (view,) = h.registry.fleet().agents
    assert view.state == "idle" and view.idle_since == listed_at


def test_max_jobs_disables_the_agent_as_it_starts_its_last_job(h):
    (t,) = h.launch("once")
    h.task(t, "TASK_RUNNING", profile="once")
    h.snapshot(agent(t))
    h.snapshot(agent(t, "Building", build="p/1/s/1/j"))
    assert h.poller.of(DisableAgent) == [DisableAgent(uuid=f"uuid-{t}")]
    assert h.bridge.of(KillAgent) == []


def test_failed_launches_back_off_exponentially_registration_resumes_and_a_job_resets(h):
    (t1,) = h.launch()
    h.task(t1, "TASK_FAILED", reason="REASON_CONTAINER_LAUNCH_FAILED")
    (b,) = h.registry.fleet().backoff
    assert (b.failures, b.until) == (1, h.clock.now() + 30)
    (t2,) = h.launch()
    h.task(t2, "TASK_ERROR")
    (b,) = h.registry.fleet().backoff
    assert (b.failures, b.until) == (2, h.clock.now() + 60)
    assert h.states() == {}
    assert h.registry.failed_total == 2
    (t3,) = h.launch()
    h.task(t3, "TASK_RUNNING")
    h.snapshot(agent(t3))
    # A registered agent lets the whole demand launch again; its failures are kept until an
    # agent proves the profile works by running a job (or by staying up register_timeout).
    (b,) = h.registry.fleet().backoff
    assert (b.failures, b.until, b.probe_registered) == (2, h.clock.now(), True)
    h.snapshot(agent(t3, "Building", build="p/1/s/1/j"))
    assert h.registry.fleet().backoff == ()


def test_a_launch_that_lost_its_offer_is_forgotten_without_backoff(h):
    # Mesos answers an ACCEPT of a rescinded offer with TASK_LOST (TASK_DROPPED for a
    # partition-aware framework), REASON_INVALID_OFFERS: the image never ran.
    for state in ("TASK_LOST", "TASK_DROPPED"):
        (t,) = h.launch()
        h.task(t, state, reason="REASON_INVALID_OFFERS")
        assert h.states() == {}
    assert h.registry.fleet().backoff == ()
    assert h.registry.failed_total == 0
    # Any other loss of a launch is a failure.
    (t,) = h.launch()
    h.task(t, "TASK_LOST", reason="REASON_AGENT_REMOVED")
    (b,) = h.registry.fleet().backoff
    assert b.failures == 1 and h.registry.failed_total == 1


def test_an_environment_gocd_defines_nowhere_is_one_warning_per_profile_and_name(h, caplog):
    t1, t2 = h.launch(count=2)
    for t in (t1, t2):
        h.task(t, "TASK_RUNNING")
    ghost = dataclasses.replace(agent(t1), undefined_environments=("ghost",))
    with caplog.at_level(logging.WARNING, logger="actors.fleet.registry"):
        h.snapshot(ghost, dataclasses.replace(agent(t2), undefined_environments=("Ghost",)))
        h.snapshot(ghost)
    (line,) = [r.getMessage() for r in caplog.records if "does not define" in r.getMessage()]
    assert "Profile linux puts its agents in environment 'ghost'" in line
    assert "so they take jobs of pipelines in no environment" in line
    # The agents still work: registered and idle.
    assert h.states() == {t1: "idle", t2: "idle"}


def test_backoff_is_capped(h):
    for _ in range(8):
        (t,) = h.launch()
        h.task(t, "TASK_FAILED")
    (b,) = h.registry.fleet().backoff
    assert b.until == h.clock.now() + 600


def test_agent_that_never_registers_is_killed_and_counted(h):
    (t,) = h.launch()
    h.task(t, "TASK_RUNNING")
    h.clock.advance(301)
    h.snapshot()
    assert h.bridge.of(KillAgent) == [KillAgent(task_id=t)]
    assert h.registry.fleet().backoff[0].failures == 1
    assert h.states() == {}


def test_lost_working_agent_is_cleaned_from_gocd(h):
    (t,) = h.launch()
    h.task(t, "TASK_RUNNING")
    h.snapshot(agent(t))
    h.task(t, "TASK_LOST", reason="REASON_AGENT_REMOVED")
    assert h.poller.of(DisableAgent) == [DisableAgent(uuid=f"uuid-{t}")]
    h.send(AgentDisabled(agent=agent(t, config="Disabled")))
    h.send(AgentRead(agent=agent(t, "LostContact", config="Disabled")))
    assert h.bridge.of(KillAgent) == []  # the task is gone already
    assert h.poller.of(DeleteAgent) == [DeleteAgent(uuid=f"uuid-{t}")]


def test_restart_adopts_survivors_forgets_unlaunched_and_adopts_unknown_tasks(h, clock, tmp_path):
    (working,) = h.launch()
    h.task(working, "TASK_RUNNING")
    h.snapshot(agent(working))
    (unlaunched,) = h.launch()
    # The daemon dies here (SIGKILL: no on_stop), and comes back.
    again = Harness(clock, tmp_path)
    (reconcile,) = again.bridge.of(ReconcileTasks)
    assert set(reconcile.tasks) == {(working, "linux"), (unlaunched, "linux")}
    assert again.states() == {working: "idle", unlaunched: "requested"}
    again.task(unlaunched, "TASK_LOST", reason="REASON_RECONCILIATION")
    assert again.states() == {working: "idle"}
    assert again.registry.fleet().backoff == ()
    again.task(working, "TASK_RUNNING", reason="REASON_RECONCILIATION")
    again.task(PREFIX + "linux-0bad", "TASK_RUNNING", profile="linux")
    assert again.states()[PREFIX + "linux-0bad"] == "running"
    # An adopted task whose agent never shows up is killed like any other.
    clock.advance(301)
    again.snapshot(agent(working))
    assert KillAgent(task_id=PREFIX + "linux-0bad") in again.bridge.of(KillAgent)
    assert KillAgent(task_id=working) not in again.bridge.of(KillAgent)


def test_orphan_gocd_agents_are_disabled_then_deleted_after_reconciliation(h):
    orphan = agent(PREFIX + "linux-dead", "LostContact")
    static = agent("build-box-1")
    h.snapshot(orphan, static)
    assert h.poller.of(DisableAgent) == []  # not before the framework registered
    h.send(FrameworkRegistered(framework_id="F", reregistered=True))
    h.clock.advance(30)
    h.snapshot(orphan, static)
    assert h.poller.of(DisableAgent) == [DisableAgent(uuid=orphan.uuid)]
    h.send(AgentDisabled(agent=agent(PREFIX + "linux-dead", "LostContact", config="Disabled")))
    assert h.poller.of(ReadAgent) == [ReadAgent(uuid=orphan.uuid)]
    h.send(AgentRead(agent=agent(PREFIX + "linux-dead", "LostContact", config="Disabled")))
    assert h.poller.of(DeleteAgent) == [DeleteAgent(uuid=orphan.uuid)]


def test_building_orphans_are_left_alone(h):
    h.send(FrameworkRegistered(framework_id="F", reregistered=True))
    h.clock.advance(30)
    h.snapshot(agent(PREFIX + "linux-busy", "Building", build="x"))
    assert h.poller.of(DisableAgent) == []


def test_delete_refused_starts_the_drain_over(h):
    (t,) = h.launch()
    h.task(t, "TASK_RUNNING")
    h.snapshot(agent(t))
    h.plan(drains=[t])
    h.send(AgentRead(agent=agent(t, config="Disabled")))
    h.task(t, "TASK_KILLED")
    h.send(AgentDeleteRefused(uuid=f"uuid-{t}", reason="not disabled"))
    assert h.poller.of(DisableAgent)[-1] == DisableAgent(uuid=f"uuid-{t}")


def test_agent_not_found_during_drain_still_kills_the_task(h):
    (t,) = h.launch()
    h.task(t, "TASK_RUNNING")
    h.snapshot(agent(t))
    h.plan(drains=[t])
    h.send(AgentNotFound(uuid=f"uuid-{t}", action="disable"))
    assert h.bridge.of(KillAgent) == [KillAgent(task_id=t)]
    h.task(t, "TASK_KILLED")
    assert h.states() == {}


def test_one_decision_at_a_time(h):
    h.send(BacklogSnapshot(jobs=(), agents=(), fetched_at=h.clock.now()))
    h.send(GoCDUnavailable(reason="down", since=h.clock.now()))
    # Peers asked once, the snapshot once more after that plan... only one is outstanding.
    assert len(h.judge.of(Decide)) == 1
    h.plan()
    assert len(h.judge.of(Decide)) == 2
    assert h.judge.of(Decide)[-1].gocd_unavailable is not None


def test_subscribers_get_fleet_changes(h):
    h.send(Subscribe(h.watcher))
    h.launch()
    assert h.watcher.of(FleetChanged)[-1].launched_total == 1


def test_dry_run_changes_nothing(clock, tmp_path):
    h = Harness(clock, tmp_path, dry_run=True)
    h.plan(launches=[("linux", 3)])
    assert h.bridge.of(LaunchAgents) == [] and h.states() == {}


def test_dry_run_leaves_the_would_launch_line_to_the_judge(clock, tmp_path, caplog):
    """The judge logs the whole plan; a second line per launch here would say it twice."""
    h = Harness(clock, tmp_path, dry_run=True)
    with caplog.at_level(logging.DEBUG, logger="actors.fleet.registry"):
        h.plan(launches=[("linux", 3)])
    assert [r for r in caplog.records if r.levelno >= logging.INFO and "launch" in r.getMessage()] == []


@pytest.mark.parametrize("content", ["{not json", "[" * 100_000 + "]" * 100_000])
def test_broken_state_file_is_kept_aside(clock, tmp_path, caplog, content):
    (tmp_path / "fleet.json").write_text(content)
    h = Harness(clock, tmp_path)
    assert h.states() == {}
    assert (tmp_path / "fleet.json.broken").exists()


# --- issue 8: defects found by adversarial testing ---------------------------------------------------


def _judge_view(h, *jobs):
    """The judge's plan for ``jobs`` on the registry's current fleet."""
    from actors.fleet.judge import decide
    from actors.messages import ScheduledJob

    scheduled = tuple(
        ScheduledJob(
            locator=f"p/{n}/s/1/j",
            pipeline="p",
            pipeline_counter=n,
            stage="s",
            stage_counter=1,
            name="j",
            resources=frozenset({"linux"}),
        )
        for n in jobs
    )
    backlog = BacklogSnapshot(jobs=scheduled, agents=(), fetched_at=h.clock.now())
    return decide(Decide(backlog=backlog, fleet=h.registry.fleet()), (LINUX, ONCE), JUDGE, h.clock.now())


def test_an_agent_disabled_by_an_operator_is_no_capacity_and_is_drained_once_idle(h):
    (t,) = h.launch()
    h.task(t, "TASK_RUNNING")
    h.snapshot(agent(t, "Building", build="p/1/s/1/j"))
    # An operator disables it while it builds.
    h.snapshot(agent(t, "Building", config="Disabled", build="p/1/s/1/j"))
    assert h.states()[t] == "draining"
    assert [r.reason for r in _judge_view(h, 2).reasons] == ["launching"]
    h.send(AgentRead(agent=agent(t, "Building", config="Disabled", build="p/1/s/1/j")))
    assert h.bridge.of(KillAgent) == []  # never while building
    h.clock.advance(11)
    h.snapshot(agent(t, "Idle", config="Disabled"))
    assert h.bridge.of(KillAgent) == [KillAgent(task_id=t)]


def test_an_agent_first_seen_disabled_is_drained_too(h):
    (t,) = h.launch()
    h.task(t, "TASK_RUNNING")
    h.snapshot(agent(t, config="Disabled"))
    assert h.states()[t] == "draining"
    assert [r.reason for r in _judge_view(h, 1).reasons] == ["launching"]


def test_lost_fleet_file_survivors_are_adopted_with_their_profile_before_deciding(clock, tmp_path, caplog):
    survivors = [f"{PREFIX}linux-0000000{i}" for i in range(3)]
    (tmp_path / "fleet.json").write_text('{"version": 1, "recor')
    again = Harness(clock, tmp_path)
    assert (tmp_path / "fleet.json.broken").exists()
    again.plan()  # the answer to the Decide asked at start
    again.send(
        BacklogSnapshot(
            jobs=(),
            agents=tuple(agent(t, "Building", build=f"p/{i}/s/1/j") for i, t in enumerate(survivors)),
            fetched_at=clock.now(),
        )
    )
    # The decision already counts them, with their real profile.
    decide_request = again.judge.of(Decide)[-1]
    assert {(a.task_id, a.profile, a.state) for a in decide_request.fleet.agents} == {
        (t, "linux", "building") for t in survivors
    }
    assert set(again.bridge.of(ReconcileTasks)[-1].tasks) == {(t, "linux") for t in survivors}
    assert "unknown profile" not in caplog.text
    # A task that only Mesos reports (its agent not registered yet) gets its profile from its id.
    again.plan()
    again.task(f"{PREFIX}once-0000000a", "TASK_RUNNING", profile="")
    assert again.registry.fleet().agents[-1].profile == "once"


def test_an_adopted_agent_whose_task_mesos_does_not_know_is_drained_and_deleted(h):
    ghost = f"{PREFIX}linux-0000beef"
    h.snapshot(agent(ghost, "LostContact"))
    h.task(ghost, "TASK_LOST", reason="REASON_RECONCILIATION")
    assert h.poller.of(DisableAgent) == [DisableAgent(uuid=f"uuid-{ghost}")]
    h.send(AgentRead(agent=agent(ghost, "LostContact", config="Disabled")))
    assert h.poller.of(DeleteAgent) == [DeleteAgent(uuid=f"uuid-{ghost}")]


def test_gocd_outage_time_does_not_count_toward_register_timeout(h):
    (t,) = h.launch()
    h.task(t, "TASK_RUNNING")
    h.clock.advance(10)
    h.send(GoCDUnavailable(reason="503", since=h.clock.now()))
    h.plan()
    h.clock.advance(400)  # GoCD answers 503 for longer than register_timeout (300 s)
    h.snapshot()
    assert h.bridge.of(KillAgent) == [] and h.registry.failed_total == 0
    assert h.states()[t] == "running"
    h.clock.advance(291)  # 10 s before the outage + 291 s after it: past the 300 s
    h.snapshot()
    assert h.bridge.of(KillAgent) == [KillAgent(task_id=t)]


def test_a_pending_agent_under_its_nodes_hostname_is_tied_to_its_task_and_approved_as_it(h, caplog):
    (t,) = h.launch()
    h.send(TaskLaunched(task_id=t, profile="linux", agent_id="S1", hostname="node1"))
    h.task(t, "TASK_RUNNING")
    pending = agent("node1", "Unknown", config="Pending", uuid="uuid-p1")
    with caplog.at_level(logging.ERROR):
        h.snapshot(pending)
        h.snapshot(pending)
    assert h.poller.of(EnableAgent) == [
        EnableAgent(uuid="uuid-p1", hostname=t, resources=("linux",), environments=())
    ]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "auto_register_key does not match" in errors[0].getMessage()
    # Approved and renamed: it registers as the task's agent.
    h.snapshot(agent(t, uuid="uuid-p1"))
    assert h.states()[t] == "idle"


def test_pending_agents_that_cannot_be_told_apart_are_not_approved(h, caplog):
    t1, t2 = h.launch(count=2)
    for t in (t1, t2):
        h.send(TaskLaunched(task_id=t, profile="linux", agent_id="S1", hostname="node1"))
    with caplog.at_level(logging.ERROR):
        h.snapshot(
            agent("node1", "Unknown", config="Pending", uuid="p1"),
            agent("node1", "Unknown", config="Pending", uuid="p2"),
        )
    assert h.poller.of(EnableAgent) == []
    assert "cannot be told apart" in caplog.text and "auto_register_key does not match" in caplog.text


def test_a_failed_approval_is_retried_with_backoff(h):
    (t,) = h.launch()
    h.task(t, "TASK_RUNNING")
    h.snapshot(agent(t, "Unknown", config="Pending"))
    h.send(AgentChangeFailed(uuid=f"uuid-{t}", action="enable", reason="500", status=500))
    h.snapshot(agent(t, "Unknown", config="Pending"))
    assert len(h.poller.of(EnableAgent)) == 1  # not at once
    h.clock.advance(20)
    h.snapshot(agent(t, "Unknown", config="Pending"))
    assert len(h.poller.of(EnableAgent)) == 2
    h.send(AgentChangeFailed(uuid=f"uuid-{t}", action="enable", reason="500", status=500))
    h.clock.advance(20)
    h.snapshot(agent(t, "Unknown", config="Pending"))
    assert len(h.poller.of(EnableAgent)) == 2  # the second failure waits twice as long
    h.clock.advance(20)
    h.snapshot(agent(t, "Unknown", config="Pending"))
    assert len(h.poller.of(EnableAgent)) == 3


def test_a_wave_of_failing_launches_is_one_failure(h):
    tasks = h.launch(count=5)
    for t in tasks:
        h.task(t, "TASK_FAILED", reason="REASON_CONTAINER_LAUNCH_FAILED")
    (b,) = h.registry.fleet().backoff
    assert (b.failures, b.until, b.probe_registered) == (1, h.clock.now() + 30, False)
    assert h.registry.failed_total == 5
    h.clock.advance(31)
    (probe,) = h.launch()
    h.task(probe, "TASK_FAILED")
    (b,) = h.registry.fleet().backoff
    assert (b.failures, b.until) == (2, h.clock.now() + 60)


def test_an_agent_that_dies_soon_after_registering_without_a_job_is_a_failure(h):
    (t,) = h.launch()
    h.task(t, "TASK_RUNNING")
    h.snapshot(agent(t))
    h.clock.advance(5)
    h.task(t, "TASK_FAILED", reason="REASON_COMMAND_EXECUTOR_FAILED")
    (b,) = h.registry.fleet().backoff
    assert b.failures == 1 and h.registry.failed_total == 1
    # One that ran a job first is a lost agent, not a crash loop.
    (t2,) = h.launch()
    h.task(t2, "TASK_RUNNING")
    h.snapshot(agent(t2, "Building", build="p/1/s/1/j"))
    h.task(t2, "TASK_FAILED")
    assert h.registry.failed_total == 1


def test_an_agent_that_stays_up_ends_the_backoff(h):
    (t,) = h.launch()
    h.task(t, "TASK_FAILED")
    h.clock.advance(31)
    (probe,) = h.launch()
    h.task(probe, "TASK_RUNNING")
    h.snapshot(agent(probe))
    assert h.registry.fleet().backoff[0].probe_registered
    h.clock.advance(301)
    h.snapshot(agent(probe))
    assert h.registry.fleet().backoff == ()


def test_an_agent_launched_before_the_failures_does_not_end_the_backoff(h):
    """Found by the fault campaign (bench/faults, mesos-crash-loop): an agent of the profile that
    was up before its image broke ended the backoff each time it started a job, and at every poll
    once it had been up register_timeout, so the whole demand was launched again at once."""
    (old,) = h.launch()
    h.task(old, "TASK_RUNNING")
    h.snapshot(agent(old))
    h.clock.advance(301)
    failing = h.launch(count=3)
    for t in failing:
        h.task(t, "TASK_FAILED", reason="REASON_CONTAINER_LAUNCH_FAILED")
    until = h.clock.now() + 30
    h.snapshot(agent(old, "Building", build="p/1/s/1/j"))  # it starts a job
    h.clock.advance(10)
    h.snapshot(agent(old))  # it has been up longer than register_timeout
    h.snapshot(agent(old, "Building", build="p/2/s/1/j"))
    (b,) = h.registry.fleet().backoff
    assert (b.failures, b.until) == (1, until)
    # The probe, launched after the failures, ends it by running a job.
    h.clock.advance(21)
    (probe,) = h.launch()
    h.task(probe, "TASK_RUNNING")
    h.snapshot(agent(old), agent(probe))
    h.snapshot(agent(old), agent(probe, "Building", build="p/3/s/1/j"))
    assert h.registry.fleet().backoff == ()


@pytest.mark.parametrize(
    "content",
    [
        '{"version": 1, "records": [{"task_id": "gocd-mesos-a", "profile": "linux"}]}',
        "[]",
        '{"version": 1, "records": {}}',
        '{"version": 1, "records": [null]}',
        '{"version": 1, "records": [], "backoff": []}',
        '{"version": 1, "records": [], "backoff": {"linux": {"failures": "many"}}}',
        '{"version": 1, "records": [{"task_id": "t", "profile": "linux", "state": "flying"}]}',
        '{"version": 1, "records": [{"task_id": "t", "profile": 3, "state": "idle"}]}',
        '{"version": 2, "records": []}',
        "null",
    ],
)
def test_a_fleet_file_of_the_wrong_shape_is_set_aside(clock, tmp_path, caplog, content):
    (tmp_path / "fleet.json").write_text(content)
    with caplog.at_level(logging.ERROR):
        h = Harness(clock, tmp_path)
    assert h.states() == {}
    assert (tmp_path / "fleet.json.broken").read_text() == content
    assert "is unusable" in caplog.text


def test_a_drain_decided_on_an_older_view_is_checked_against_the_latest(h):
    (t,) = h.launch()
    h.task(t, "TASK_RUNNING")
    h.snapshot(agent(t))
    decided_at = h.clock.now()
    h.clock.advance(5)
    # The judge decided to drain it; meanwhile a snapshot shows it building.
    h.send(
        BacklogSnapshot(jobs=(), agents=(agent(t, "Building", build="p/1/s/1/j"),), fetched_at=h.clock.now())
    )
    h.send(ScalePlan(decided_at=decided_at, drains=(t,)))
    assert h.poller.of(DisableAgent) == [] and h.states()[t] == "building"
    # Building and idle again since the decision: still not drained on that plan.
    h.clock.advance(5)
    h.snapshot(agent(t))
    h.send(ScalePlan(decided_at=decided_at, drains=(t,)))
    assert h.poller.of(DisableAgent) == []


def test_mesos_disconnects_and_errors_are_handled(h, caplog):
    from actors.messages import FrameworkDisconnected, FrameworkError, OffersHandled

    with caplog.at_level(logging.WARNING):
        h.send(FrameworkDisconnected(since=h.clock.now()))
        h.send(FrameworkError("boom"))
        h.send(OffersHandled(received=2, used=1, declined=1))
    assert "does not handle" not in caplog.text


def test_max_jobs_counts_jobs_from_gocd_history_not_from_sampling(h):
    (t,) = h.launch("once")
    h.task(t, "TASK_RUNNING", profile="once")
    h.snapshot(agent(t))
    # Polls only ever saw it idle, but it ran a short job in between: GoCD's history says so.
    assert h.poller.of(ReadJobHistory) == [ReadJobHistory(uuid=f"uuid-{t}")]
    h.send(AgentJobHistory(uuid=f"uuid-{t}", completed=1, fetched_at=h.clock.now()))
    assert h.registry.fleet().agents[0].jobs_done == 1
    assert h.poller.of(DisableAgent) == [DisableAgent(uuid=f"uuid-{t}")]
    assert h.states()[t] == "draining"


def test_job_history_is_read_once_per_poll_and_only_for_max_jobs_profiles(h):
    (once,) = h.launch("once")
    (linux,) = h.launch("linux")
    for t, p in ((once, "once"), (linux, "linux")):
        h.task(t, "TASK_RUNNING", profile=p)
    h.snapshot(agent(once), agent(linux))
    h.snapshot(agent(once), agent(linux))  # the first read is not answered yet
    assert h.poller.of(ReadJobHistory) == [ReadJobHistory(uuid=f"uuid-{once}")]
    h.send(AgentJobHistory(uuid=f"uuid-{once}", completed=0, fetched_at=h.clock.now()))
    h.snapshot(agent(once), agent(linux))
    assert len(h.poller.of(ReadJobHistory)) == 2
    # A lost answer is asked again after a while.
    h.clock.advance(21)
    h.snapshot(agent(once), agent(linux))
    assert len(h.poller.of(ReadJobHistory)) == 3


def test_a_pending_agent_is_tied_when_its_hostname_is_the_nodes_long_or_short_name(h):
    (t,) = h.launch()
    h.send(TaskLaunched(task_id=t, profile="linux", agent_id="S1", hostname="Node1.example.com"))
    h.snapshot(agent("node1", "Unknown", config="Pending", uuid="uuid-p1"))
    assert [m.uuid for m in h.poller.of(EnableAgent)] == ["uuid-p1"]


def test_pending_agents_on_other_hosts_are_not_ours(h):
    (t,) = h.launch()
    h.send(TaskLaunched(task_id=t, profile="linux", agent_id="S1", hostname="10.0.0.1"))
    h.snapshot(agent("10.0.0.2", "Unknown", config="Pending"), agent("node9", "Unknown", config="Pending"))
    assert h.poller.of(EnableAgent) == []


def test_a_crash_is_reported_even_when_the_state_dir_became_unwritable(clock, tmp_path):
    """The release in on_failure saves the fleet, which fails again: the death is reported anyway."""
    state_dir = tmp_path / "state"
    reasons: list[str] = []
    registry = AgentRegistry(
        agents=AGENTS,
        profiles=(LINUX,),
        judge_settings=JUDGE,
        state_dir=str(state_dir),
        clock=clock,
        stop_hook=reasons.append,
    )
    registry.on_start()
    registry.on_receive(Peers(judge=RecordingRef(), bridge=RecordingRef(), poller=RecordingRef()))
    registry.on_receive(ScalePlan(decided_at=clock.now(), launches=(("linux", 1),)))
    state_dir.rename(tmp_path / "state.moved")
    state_dir.touch()
    with pytest.raises(OSError) as info:
        registry.on_receive(ScalePlan(decided_at=clock.now(), launches=(("linux", 1),)))
    assert str(info.value).startswith(f"[state] dir {state_dir} is not writable: ")
    registry.on_failure(info.type, info.value, info.tb)  # as pykka calls it; must not raise
    assert reasons == [f"AgentRegistry crashed: {info.value}"]


def test_dry_run_writes_nothing_to_the_state_dir(clock, tmp_path):
    """It reads fleet.json to know the fleet, and never writes it, nor moves a broken one aside."""
    production = Harness(clock, tmp_path)
    (task_id,) = production.launch()
    production.task(task_id, "TASK_RUNNING")
    production.registry.on_stop()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(before) == {"fleet.json"}

    h = Harness(clock, tmp_path, dry_run=True)
    assert h.states() == {task_id: "running"}
    h.task("gocd-mesos-linux-adopted", "TASK_RUNNING")  # an unknown task of ours: adopted
    h.snapshot(agent(task_id))  # registered, idle
    h.plan(launches=[("linux", 2)], drains=[task_id])
    assert h.states() == {task_id: "idle", "gocd-mesos-linux-adopted": "running"}
    h.registry.on_stop()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    (tmp_path / "fleet.json").write_text("{not json")
    h = Harness(clock, tmp_path, dry_run=True)
    h.registry.on_stop()
    assert h.states() == {}
    assert [p.name for p in tmp_path.iterdir()] == ["fleet.json"]
    assert (tmp_path / "fleet.json").read_text() == "{not json"


def test_timers_of_a_previous_process_do_not_hold_back_a_restarted_one(clock, tmp_path):
    h = Harness(clock, tmp_path)
    (t,) = h.launch("once")
    h.task(t, "TASK_RUNNING", profile="once")
    h.snapshot(agent(t))
    h.send(AgentChangeFailed(uuid=f"uuid-{t}", action="history", reason="500", status=500))
    h.registry.on_stop()
    saved = json.loads((tmp_path / "fleet.json").read_text())
    (record,) = saved["records"]
    record["retry_at"] = record["history_asked_at"] = 1e12  # a far later clock of that process
    (tmp_path / "fleet.json").write_text(json.dumps(saved))
    again = Harness(clock, tmp_path)
    again.plan()
    again.snapshot(agent(t))
    assert again.poller.of(ReadJobHistory) == [ReadJobHistory(uuid=f"uuid-{t}")]


# --- retiring (chosen to leave, drain not started) and the leaving states (drain under way) ---


def test_a_drain_under_way_is_a_leaving_state_not_retiring(h):
    (t,) = h.launch()
    h.task(t, "TASK_RUNNING")
    h.snapshot(agent(t))
    h.plan(drains=[t])
    (view,) = h.registry.fleet().agents
    assert (view.state, view.retiring) == ("draining", False)


def test_an_agent_of_an_unknown_profile_is_retiring_until_its_drain_starts(h):
    t = PREFIX + "gone-0000abcd"
    h.task(t, "TASK_RUNNING", profile="gone")
    (view,) = h.registry.fleet().agents
    assert (view.state, view.retiring) == ("running", True)
    h.snapshot(agent(t))
    assert h.poller.of(DisableAgent) == [DisableAgent(uuid=f"uuid-{t}")]
    (view,) = h.registry.fleet().agents
    assert (view.state, view.retiring) == ("draining", False)


def test_a_fleet_file_that_says_retiring_during_a_drain_is_read_as_a_drain_under_way(clock, tmp_path):
    t = PREFIX + "linux-0000abcd"
    record = {
        "task_id": t,
        "profile": "linux",
        "state": "draining",
        "requested_at": 5.0,
        "state_since": 5.0,
        "agent_uuid": f"uuid-{t}",
        "retiring": True,
    }
    (tmp_path / "fleet.json").write_text(json.dumps({"version": 1, "records": [record]}))
    h = Harness(clock, tmp_path)
    (view,) = h.registry.fleet().agents
    assert (view.state, view.retiring) == ("draining", False)
    # Its disable was never answered: the drain asks again.
    h.plan()
    clock.advance(21)
    h.snapshot(agent(t))
    assert h.poller.of(DisableAgent) == [DisableAgent(uuid=f"uuid-{t}")]


def test_a_fleet_record_without_its_clock_values_loads(clock, tmp_path):
    record = {"task_id": f"{PREFIX}linux-0000beef", "profile": "linux", "state": "idle", "agent_uuid": "u"}
    (tmp_path / "fleet.json").write_text(json.dumps({"version": 1, "records": [record]}))
    h = Harness(clock, tmp_path)
    assert h.states() == {f"{PREFIX}linux-0000beef": "idle"}


def test_pending_agents_of_launches_given_up_are_removed_and_do_not_block_the_next_tie(h, caplog):
    tasks = h.launch(count=3)
    for t in tasks:
        h.send(TaskLaunched(task_id=t, profile="linux", agent_id="S1", hostname="node1"))
        h.task(t, "TASK_RUNNING")
    dead = [agent("node1", "Unknown", config="Pending", uuid=f"p{i}") for i in range(3)]
    with caplog.at_level(logging.WARNING):
        h.snapshot(*dead)
        h.snapshot(*dead)
    assert h.poller.of(EnableAgent) == []
    assert caplog.text.count("cannot be told apart") == 1  # said once, not at every poll
    h.clock.advance(301)
    h.snapshot(*dead)
    assert {k.task_id for k in h.bridge.of(KillAgent)} == set(tasks)
    assert h.poller.of(DisableAgent) == [DisableAgent(uuid=f"p{i}") for i in range(3)]
    h.send(AgentDisabled(agent=agent("node1", "Unknown", config="Disabled", uuid="p0")))
    h.send(AgentRead(agent=agent("node1", "Unknown", config="Disabled", uuid="p0")))
    assert h.poller.of(DeleteAgent) == [DeleteAgent(uuid="p0")]
    # The next launch on that node is told apart from what is left of them.
    (probe,) = h.launch()
    h.send(TaskLaunched(task_id=probe, profile="linux", agent_id="S1", hostname="node1"))
    h.snapshot(*dead[1:], agent("node1", "Unknown", config="Pending", uuid="p-new"))
    assert [m.uuid for m in h.poller.of(EnableAgent)] == ["p-new"]


def test_a_very_long_crash_loop_stays_at_backoff_max(clock, tmp_path):
    (tmp_path / "fleet.json").write_text(
        '{"version": 1, "records": [], "backoff": {"linux": {"failures": 1024}}}'
    )
    h = Harness(clock, tmp_path)
    (t,) = h.launch()
    h.task(t, "TASK_FAILED")
    (b,) = h.registry.fleet().backoff
    assert (b.failures, b.until) == (1025, h.clock.now() + 600)
