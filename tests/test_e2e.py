"""End to end: the daemon's real actors against both simulators over real HTTP.

Simulated time runs 20x faster than real time; every wait is on the GoCD
simulator's change notifications or on messages the daemon publishes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from actors.config import JudgeSettings, Secret
from actors.mesos.bridge import MesosBridge
from actors.messages import (
    FleetChanged,
    FrameworkDisconnected,
    FrameworkError,
    FrameworkRegistered,
    LaunchAgents,
    ScalePlan,
    Subscribe,
    TaskLaunched,
)
from tests.e2e_support import IMAGE, KEY, PREFIX, System, completed, linux, make_system
from tests.test_app import BIN


def test_a_task_launched_through_the_bridge_registers_an_enabled_agent(system, recorder):
    """Issue 4's check: builtin driver, Mesos simulator, GoCD simulator, a real simulated agent."""
    s = system()
    bridge = MesosBridge.start(
        mesos=s.settings.mesos,
        agents=s.settings.agents,
        profiles=s.settings.profiles,
        state_dir=s.settings.state.dir,
        clock=s.clock,
        subscribers=(recorder,),
    )
    task_id = PREFIX + "linux-bridge1"
    bridge.tell(LaunchAgents(profile="linux", task_ids=(task_id,)))
    recorder.wait_for(TaskLaunched)
    state = s.wait_gocd(
        lambda st: any(a["hostname"] == task_id and a["config_state"] == "Enabled" for a in st["agents"]),
        what="agent registered Enabled",
    )
    (agent,) = s.our_agents(state)
    assert agent["resources"] == ["linux"]
    bridge.stop()


@pytest.mark.parametrize("network", ["bridge", "host"])
def test_with_a_wrong_key_the_pending_agent_still_names_its_task_or_node(system, recorder, network):
    """A wrong auto-register key leaves the agent Pending under its machine hostname:
    the task id on a bridge network (ContainerInfo.hostname), the node's on the host's."""
    s = system(profiles=(linux(network=network),))
    bridge = MesosBridge.start(
        mesos=s.settings.mesos,
        agents=replace(s.settings.agents, auto_register_key=Secret("not-" + KEY)),
        profiles=s.settings.profiles,
        state_dir=s.settings.state.dir,
        clock=s.clock,
        subscribers=(recorder,),
    )
    task_id = PREFIX + "linux-0a1b2c3d"
    bridge.tell(LaunchAgents(profile="linux", task_ids=(task_id,)))
    (launched,) = recorder.wait_for(TaskLaunched)
    state = s.wait_gocd(lambda st: len(st["agents"]) == 1, what="agent pending")
    (agent,) = state["agents"]
    assert agent["config_state"] == "Pending"
    assert agent["hostname"] == (task_id if network == "bridge" else launched.hostname)
    bridge.stop()


def test_n_waiting_jobs_get_n_agents_in_one_cycle_and_finish(system):
    s = system()
    locators = s.gocd.schedule_jobs("app", job="unit", count=6, resources=["linux"], duration_s=20)
    s.start_daemon()
    s.events.wait_until(lambda ms: any(isinstance(m, ScalePlan) and m.launches for m in ms), what="a launch")
    launching = [p for p in s.events.of(ScalePlan) if p.launches]
    assert launching[0].launches == (("linux", 6),)
    assert [r.reason for r in launching[0].reasons] == ["launching"] * 6
    state = s.wait_gocd(lambda st: len(completed(st)) == 6, timeout=60, what="all jobs completed")
    assert {j["locator"] for j in completed(state)} == set(locators)
    assert len(s.all_tasks()) == 6, "one agent per job, no extra launch"
    assert all(a["config_state"] in ("Enabled", "Disabled") for a in s.our_agents(state))


def test_idle_agents_drain_down_to_min_and_are_deleted(system):
    s = system(profiles=(linux(min=1, idle_timeout=30),))
    s.gocd.schedule_jobs("app", count=3, resources=["linux"], duration_s=10)
    s.start_daemon()
    s.wait_gocd(lambda st: len(completed(st)) == 3, timeout=60, what="jobs completed")
    state = s.wait_gocd(lambda st: len(s.our_agents(st)) == 1, timeout=60, what="drained to min")
    (kept,) = s.our_agents(state)
    assert kept["config_state"] == "Enabled"
    running = s.running_tasks()
    assert [t["id"] for t in running] == [kept["hostname"]]
    killed = [t for t in s.all_tasks() if t["state"] == "TASK_KILLED"]
    assert len(killed) == 2


def test_a_job_assigned_during_a_drain_is_not_killed(system):
    s = system(profiles=(linux(idle_timeout=20),))
    s.gocd.schedule_jobs("app", count=1, resources=["linux"], duration_s=5)
    s.start_daemon()
    s.wait_gocd(lambda st: len(completed(st)) == 1, timeout=60, what="first job completed")
    # Slow every agent change down so that a job can land between the drain's
    # decision and the disable taking effect.
    s.gocd.inject_fault("latency", delay_s=0.5, seconds=1000, path_prefix="/go/api/agents/")
    s.events.wait_until(
        lambda ms: any(
            isinstance(m, FleetChanged) and any(a.state == "draining" for a in m.fleet.agents) for m in ms
        ),
        what="a drain",
    )
    (locator,) = s.gocd.schedule_jobs("app", count=1, resources=["linux"], duration_s=15)
    state = s.wait_gocd(
        lambda st: any(j["locator"] == locator and j["state"] == "completed" for j in st["jobs"]),
        timeout=60,
        what="job scheduled during the drain completed",
    )
    job = next(j for j in state["jobs"] if j["locator"] == locator)
    assert job["completed_at"] is not None
    # Had its agent been killed while building, the job would never have completed.


def test_jobs_no_profile_can_serve_launch_nothing_and_say_why(system):
    s = system()
    s.gocd.schedule_jobs("win", count=2, resources=["windows"], duration_s=10)
    s.gocd.schedule_jobs("k8s", count=1, elastic_profile_id="k8s-small", duration_s=10)
    s.start_daemon()
    s.events.wait_until(lambda ms: any(isinstance(m, ScalePlan) and m.reasons for m in ms), what="reasons")
    plan = next(p for p in s.events.of(ScalePlan) if p.reasons)
    assert sorted(r.reason for r in plan.reasons) == [
        "no-matching-profile",
        "no-matching-profile",
        "not-ours",
    ]
    assert all(not p.launches for p in s.events.of(ScalePlan))
    assert s.all_tasks() == []


def test_an_image_that_always_fails_backs_off_instead_of_storming(system):
    s = system(judge=JudgeSettings(stale_after=15, backoff_initial=20, backoff_max=80))
    s.mesos.inject_fault("fail_image", image=IMAGE)
    s.gocd.schedule_jobs("app", count=1, resources=["linux"], duration_s=10)
    s.start_daemon()
    # Wait until the backoff has grown to its cap: 20, 40, 80.
    s.events.wait_until(
        lambda ms: any(
            isinstance(m, FleetChanged) and any(b.failures >= 4 for b in m.fleet.backoff) for m in ms
        ),
        timeout=60,
        what="four failed launches",
    )
    failed = s.all_tasks()
    # One launch per failure: 20 + 40 + 80 simulated seconds between them, no storm.
    assert 4 <= len(failed) <= 5
    s.events.wait_until(
        lambda ms: any(
            isinstance(m, ScalePlan) and [r.reason for r in m.reasons] == ["backoff-after-failures"]
            for m in ms
        ),
        what="the job shown as waiting for the backoff",
    )


def test_gocd_outage_stops_scale_down_until_it_is_over(system):
    s = system(profiles=(linux(idle_timeout=20),))
    s.gocd.schedule_jobs("app", count=2, resources=["linux"], duration_s=5)
    s.start_daemon()
    s.wait_gocd(lambda st: len(completed(st)) == 2, timeout=60, what="jobs completed")
    s.gocd.inject_fault("status", status=502, seconds=10_000, path_prefix="/go/api/")
    s.events.wait_until(lambda ms: any(isinstance(m, ScalePlan) and m.stale for m in ms), what="a stale plan")
    start = s.clock.now()
    # Well past idle_timeout, with GoCD down: nothing is drained.
    s.events.wait_until(
        lambda ms: any(isinstance(m, ScalePlan) and m.stale and m.decided_at - start > 60 for m in ms),
        what="a minute of outage",
    )
    stale_plans = [p for p in s.events.of(ScalePlan) if p.stale]
    assert stale_plans and all(not p.drains for p in stale_plans)
    assert len(s.running_tasks()) == 2
    s.gocd.clear_faults()
    s.wait_gocd(lambda st: len(s.our_agents(st)) == 0, timeout=60, what="drained after the outage")
    # And normal service: a new job gets an agent and finishes.
    (locator,) = s.gocd.schedule_jobs("app", count=1, resources=["linux"], duration_s=5)
    s.wait_gocd(
        lambda st: any(j["locator"] == locator and j["state"] == "completed" for j in st["jobs"]),
        timeout=60,
        what="job after the outage completed",
    )


def test_dry_run_decides_but_changes_nothing(system, caplog):
    s = system()
    s.gocd.schedule_jobs("app", count=2, resources=["linux"], duration_s=5)
    with caplog.at_level(logging.INFO):
        s.start_daemon(dry_run=True)
        s.events.wait_until(
            lambda ms: len([m for m in ms if isinstance(m, ScalePlan) and m.launches]) >= 2, what="two plans"
        )
        s.stop_daemon()
    assert any(p.launches == (("linux", 2),) for p in s.events.of(ScalePlan))
    assert s.all_tasks() == []
    # One "would launch" line per launch of a plan (the judge's), not one more from the registry.
    would = [r for r in caplog.records if r.levelname == "INFO" and "would launch" in r.getMessage()]
    assert [(r.name, r.getMessage()) for r in would] == [
        ("actors.fleet.judge", "Dry run: would launch 2 agent(s) for profile linux")
    ] * len([p for p in s.events.of(ScalePlan) if p.launches])


def _make_unwritable(s, events):
    """The state dir becomes a plain file at run time (``mv state state.moved; touch state``)."""
    events.wait_for(FrameworkRegistered)  # the framework id is saved: the directory exists
    state_dir = Path(s.settings.state.dir)
    state_dir.rename(state_dir.with_name("state.moved"))
    state_dir.touch()
    s.gocd.schedule_jobs("app", count=2, resources=["linux"], duration_s=30)


def _crash_in_on_receive(ref):
    """A subscriber without ``tell``: the actor's next publish raises inside on_receive."""
    ref.tell(Subscribe(object()))


@pytest.mark.parametrize(
    ("actor", "kill"),
    [
        # on_receive raises (its _save), and so does the release in its on_failure.
        ("AgentRegistry", "state dir unwritable"),
        ("Judge", "crash in on_receive"),
        ("MesosBridge", "stopped from outside"),
        ("GoCDPoller", "stopped from outside"),
    ],
)
def test_any_dead_actor_ends_the_daemon_with_status_1(system, caplog, actor, kill):
    s = system()
    with caplog.at_level(logging.INFO):
        s.start_daemon()
        s.events.wait_until(lambda ms: any(isinstance(m, ScalePlan) for m in ms), what="a first decision")
        if kill == "state dir unwritable":
            _make_unwritable(s, s.events)
        elif kill == "crash in on_receive":
            _crash_in_on_receive(s.refs[actor])
        else:
            s.refs[actor].stop()
        assert s.thread is not None
        s.thread.join(15)
        assert not s.thread.is_alive(), f"the daemon ran on after {actor} died ({kill})"
    assert s.status == [1]
    (line,) = [r.getMessage() for r in caplog.records if r.name == "actors.system" and r.levelname == "ERROR"]
    assert line.startswith("Stopped because ") and actor in line, line
    if kill == "state dir unwritable":
        assert f"[state] dir {s.settings.state.dir} is not writable" in line
    assert all(not ref.is_alive() for ref in s.refs.values())


def test_daemon_exits_1_when_its_state_dir_becomes_unwritable(tmp_path):
    """The daemon as a real process: the state dir turns into a file under it; it exits 1 by itself."""
    s = make_system(tmp_path, scale=5.0)
    config = _daemon_config(s, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, BIN, str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    registered = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "Registered with Mesos master" in line:
                registered.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert registered.wait(60), "".join(lines)
        state_dir = tmp_path / "state"
        state_dir.rename(tmp_path / "state.moved")
        state_dir.touch()
        s.gocd.schedule_jobs("app", count=2, resources=["linux"], duration_s=30)
        assert proc.wait(60) == 1, "".join(lines)
        reader.join(30)
    finally:
        proc.kill()
        s.stop()
    last_error = [line for line in lines if " ERROR " in line][-1]
    assert " actors.system " in last_error, "".join(lines)
    assert f"Stopped because AgentRegistry crashed: [state] dir {state_dir} is not writable" in last_error
    # One ERROR line, naming the cause as it is (the traceback goes with a WARNING).
    assert [line for line in lines if " ERROR " in line] == [last_error]
    assert "it is not a directory" in last_error


def test_dry_run_beside_a_running_daemon_changes_nothing(system, caplog):
    """``--dry-run`` with the production config and state dir while production runs."""
    s = system(profiles=(linux(max=2),))
    s.gocd.schedule_jobs("app", count=2, resources=["linux"], duration_s=100_000)
    s.start_daemon()
    s.events.wait_until(
        lambda ms: any(
            isinstance(m, FleetChanged) and [a.state for a in m.fleet.agents] == ["building", "building"]
            for m in ms
        ),
        timeout=60,
        what="two busy agents",
    )
    # One more job: production is at max, the dry run has something to decide about.
    s.gocd.schedule_jobs("app", count=1, resources=["linux"], duration_s=10)
    state_dir = Path(s.settings.state.dir)
    files = {p.name: p.read_bytes() for p in state_dir.iterdir()}
    assert set(files) == {"fleet.json", "framework_id"}
    (framework,) = s.mesos.state()["frameworks"]
    tasks = {t["id"] for t in s.running_tasks()}
    agents = s.our_agents()
    assert len(tasks) == len(agents) == 2

    dry = System(clock=s.clock, gocd=s.gocd, mesos=s.mesos, settings=s.settings)
    try:
        with caplog.at_level(logging.INFO):
            dry.start_daemon(dry_run=True)
            dry.events.wait_until(
                lambda ms: len([m for m in ms if isinstance(m, ScalePlan)]) >= 3, what="three dry-run plans"
            )
    finally:
        dry.stop_daemon()
    assert dry.status == [0]
    assert dry.events.of(FrameworkRegistered) == [], "the dry run subscribed to Mesos"
    assert any(
        r.name == "actors.mesos.bridge"
        and r.levelname == "INFO"
        and "Dry run: not connecting to Mesos" in r.getMessage()
        for r in caplog.records
    )
    plans = dry.events.of(ScalePlan)
    assert all(not p.launches and not p.drains for p in plans)
    assert "capped-at-max" in {r.reason for p in plans for r in p.reasons}

    # Production never noticed: never failed over, disconnected or stopped.
    assert s.thread is not None and s.thread.is_alive() and s.status == [] and s.failure == []
    assert len(s.events.of(FrameworkRegistered)) == 1
    assert s.events.of(FrameworkError) == [] and s.events.of(FrameworkDisconnected) == []
    mesos = s.mesos.state()
    (still,) = mesos["frameworks"]
    assert (still["id"], still["connected"]) == (framework["id"], True)
    assert mesos["completed_frameworks"] == []
    assert {t["id"] for t in s.running_tasks()} == tasks
    assert s.our_agents() == agents
    # Nothing written to the state dir: same files, same bytes.
    assert {p.name: p.read_bytes() for p in state_dir.iterdir()} == files


def test_restart_adopts_running_agents_without_relaunching(system):
    s = system(profiles=(replace(linux(), idle_timeout=600),))
    s.gocd.schedule_jobs("app", count=2, resources=["linux"], duration_s=5)
    s.start_daemon()
    s.wait_gocd(lambda st: len(completed(st)) == 2, timeout=60, what="jobs completed")
    s.stop_daemon()
    before = {t["id"] for t in s.running_tasks()}
    assert len(before) == 2
    s.events = type(s.events)()
    s.start_daemon()
    (locator,) = s.gocd.schedule_jobs("app", count=1, resources=["linux"], duration_s=5)
    s.wait_gocd(
        lambda st: any(j["locator"] == locator and j["state"] == "completed" for j in st["jobs"]),
        timeout=60,
        what="job after restart completed",
    )
    assert {t["id"] for t in s.running_tasks()} == before
    assert len(s.all_tasks()) == 2


def _daemon_config(s, tmp_path):
    """An INI file for bin/gocd-mesosd against the system's simulators, state in ``tmp_path/state``."""
    config = tmp_path / "gocd-mesos.ini"
    config.write_text(
        "\n".join(
            [
                "[gocd]",
                f"url = {s.settings.gocd.url}",
                "username = admin",
                "password = admin-secret",
                "poll_interval = 1s",
                "[mesos]",
                f"master = {s.settings.mesos.masters[0]}",
                "failover_timeout = 1h",
                "refuse_seconds = 1s",
                "[agents]",
                f"auto_register_key = {KEY}",
                "register_timeout = 2m",
                "[profiles]",
                "[[linux]]",
                f"image = {IMAGE}",
                "resources = linux",
                "idle_timeout = 1h",
                "[state]",
                f"dir = {tmp_path / 'state'}",
                "[http]",
                "listen = 127.0.0.1:0",
                "",
            ]
        )
    )
    return config


def test_sigkill_mid_launch_then_restart_leaves_no_orphan_and_no_duplicate(tmp_path):
    """The daemon as a real process, killed with SIGKILL while its launches are under way."""
    s = make_system(tmp_path, scale=5.0)
    try:
        s.mesos.inject_fault("slow_launch", delay=20.0)
        s.gocd.schedule_jobs("app", count=3, resources=["linux"], duration_s=5)
        config = _daemon_config(s, tmp_path)
        first = subprocess.Popen(
            [sys.executable, BIN, str(config), "--log-level", "DEBUG"],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            for line in first.stderr:
                if "requested -> launching" in line:
                    break
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        finally:
            first.kill()
        log = (tmp_path / "second.log").open("w")
        second = subprocess.Popen(
            [sys.executable, BIN, str(config), "--log-level", "DEBUG"], stderr=log, text=True
        )
        try:
            s.wait_gocd(
                lambda st: len(completed(st)) == 3, timeout=90, what="all jobs completed after restart"
            )
            state = s.wait_gocd(
                lambda st: (
                    len(s.our_agents(st)) == 3 and all(a["agent_state"] == "Idle" for a in s.our_agents(st))
                ),
                timeout=30,
                what="three idle agents",
            )
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
            log.close()
        assert "admin-secret" not in (tmp_path / "second.log").read_text()
        frameworks = s.mesos.state()["frameworks"]
        assert len(frameworks) == 1, "the restarted daemon resubscribed with the same framework id"
        tasks = s.all_tasks()
        assert len(tasks) == 3, f"no duplicate launch: {[t['id'] for t in tasks]}"
        running = {t["id"] for t in s.running_tasks()}
        hosts = {a["hostname"] for a in s.our_agents(state)}
        saved = json.loads((tmp_path / "state" / "fleet.json").read_text())
        records = {r["task_id"] for r in saved["records"]}
        assert running == hosts == records
    finally:
        s.stop()
