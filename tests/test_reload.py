"""Reloading the configuration: each actor applies SettingsChanged, and what the reload logs."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from actors import config
from actors.config import JudgeSettings, Profile, Secret, Settings
from actors.exceptions import ConfigError
from actors.fleet.judge import AncestorPolicy, DefaultPolicy, Judge
from actors.mesos.events import MesosOffersReceived
from actors.messages import (
    AgentDisabled,
    AgentRead,
    BacklogSnapshot,
    Decide,
    DisableAgent,
    FleetView,
    KillAgent,
    LaunchAgents,
    ScalePlan,
    SettingsChanged,
    TaskUpdate,
)
from actors.reload import changes, reload
from tests import test_bridge, test_judge
from tests.conftest import RecordingRef
from tests.e2e_support import make_system
from tests.test_app import BIN
from tests.test_e2e import _daemon_config
from tests.test_registry import JUDGE, LINUX, ONCE, agent, h  # noqa: F401 (h is a fixture)

# --- the judge ------------------------------------------------------------------------


def test_the_judge_decides_with_the_new_profiles_and_settings(clock):
    registry = RecordingRef()
    small = replace(test_judge.SMALL, max=1)
    judge = Judge(profiles=(small,), settings=test_judge.SETTINGS, clock=clock, registry=registry)
    backlog = BacklogSnapshot(jobs=(test_judge.job(1), test_judge.job(2)), agents=(), fetched_at=clock.now())
    judge.on_receive(Decide(backlog=backlog, fleet=FleetView()))
    judge.on_receive(SettingsChanged(profiles=(replace(small, max=5),), judge=test_judge.SETTINGS))
    judge.on_receive(Decide(backlog=backlog, fleet=FleetView()))
    assert [plan.launches for plan in registry.of(ScalePlan)] == [(("small", 1),), (("small", 2),)]


def test_the_judge_takes_up_a_newly_named_policy_but_keeps_one_given_in_code(clock):
    judge = Judge(profiles=(LINUX,), settings=JudgeSettings(), clock=clock)
    judge.on_receive(SettingsChanged(profiles=(LINUX,), judge=JudgeSettings(policy="ancestor")))
    assert isinstance(judge._policy, AncestorPolicy)
    mine = DefaultPolicy()
    judge = Judge(profiles=(LINUX,), settings=JudgeSettings(), clock=clock, policy=mine)
    judge.on_receive(SettingsChanged(profiles=(LINUX,), judge=JudgeSettings(policy="static")))
    assert judge._policy is mine


# --- the bridge -----------------------------------------------------------------------


def test_the_bridge_drops_queued_tasks_of_a_removed_profile_and_launches_with_changed_ones(
    tmp_path, clock, recorder
):
    drivers: list[test_bridge.FakeDriver] = []
    bridge = test_bridge.MesosBridge(
        mesos=test_bridge.MESOS,
        agents=test_bridge.AGENTS,
        profiles=(test_bridge.SMALL, test_bridge.LINUX),
        state_dir=str(tmp_path),
        clock=clock,
        subscribers=(recorder,),
        driver_factory=lambda sched, fw: drivers.append(test_bridge.FakeDriver(sched, fw)) or drivers[-1],
    )
    bridge.on_start()
    test_bridge.registered(bridge)
    bridge.on_receive(LaunchAgents("small", ("small-00000001",)))
    bridge.on_receive(LaunchAgents("linux", ("linux-00000001",)))
    bigger = replace(test_bridge.SMALL, image="gocd/agent:v2")
    bridge.on_receive(SettingsChanged(profiles=(bigger,), judge=JudgeSettings()))
    (dropped,) = recorder.of(TaskUpdate)
    assert (dropped.task_id, dropped.state, dropped.profile) == ("linux-00000001", "TASK_DROPPED", "linux")
    assert "removed" in dropped.message
    bridge.on_receive(MesosOffersReceived((test_bridge.offer("O1"),)))
    ((_, infos, _),) = drivers[0].named("launchTasks")
    assert [i["task_id"]["value"] for i in infos] == ["small-00000001"]
    assert infos[0]["container"]["docker"]["image"] == "gocd/agent:v2"


# --- the registry ---------------------------------------------------------------------


def _working(h, profile="linux", state="Idle", build=None):  # noqa: F811
    (t,) = h.launch(profile)
    h.task(t, "TASK_RUNNING", profile=profile)
    h.snapshot(agent(t, state, build=build))
    return t


def test_a_removed_profiles_idle_agent_is_drained_and_its_building_one_never_killed(h):  # noqa: F811
    idle = _working(h)
    busy = _working(h, state="Building", build="p/1/s/1/j")
    h.send(SettingsChanged(profiles=(ONCE,), judge=JUDGE))
    assert {a.task_id: a.retiring for a in h.registry.fleet().agents} == {idle: True, busy: True}
    h.clock.advance(10)
    h.snapshot(agent(idle), agent(busy, "Building", build="p/1/s/1/j"))
    assert h.poller.of(DisableAgent) == [DisableAgent(uuid=f"uuid-{idle}"), DisableAgent(uuid=f"uuid-{busy}")]
    for t, state in ((idle, "Idle"), (busy, "Building")):
        build = "p/1/s/1/j" if state == "Building" else None
        h.send(AgentDisabled(agent=agent(t, state, config="Disabled", build=build)))
        h.send(AgentRead(agent=agent(t, state, config="Disabled", build=build)))
    assert h.bridge.of(KillAgent) == [KillAgent(task_id=idle)]
    h.clock.advance(30)
    h.snapshot(agent(busy, "Building", config="Disabled", build="p/1/s/1/j"))
    assert KillAgent(task_id=busy) not in h.bridge.of(KillAgent)
    h.clock.advance(30)
    h.snapshot(agent(busy, "Idle", config="Disabled"))
    assert KillAgent(task_id=busy) in h.bridge.of(KillAgent)


def test_a_dropped_launch_of_a_removed_profile_is_forgotten_not_a_failure(h):  # noqa: F811
    (t,) = h.launch("linux")
    h.send(SettingsChanged(profiles=(ONCE,), judge=JUDGE))
    h.task(t, "TASK_DROPPED")
    assert h.states() == {}
    assert h.registry.failed_total == 0 and h.registry.fleet().backoff == ()


def test_a_profile_configured_again_keeps_its_agents_and_the_registry_decides_again(h):  # noqa: F811
    t = _working(h)
    decisions = len(h.judge.of(Decide))
    h.send(SettingsChanged(profiles=(ONCE,), judge=JUDGE))
    h.send(SettingsChanged(profiles=(LINUX, ONCE), judge=JUDGE))
    (view,) = h.registry.fleet().agents
    assert (view.task_id, view.retiring) == (t, False)
    assert len(h.judge.of(Decide)) > decisions


# --- the reload itself ------------------------------------------------------------------

SAMPLE = Path(__file__).resolve().parent.parent / "etc" / "gocd-mesos.ini"


class FakeSystem:
    def __init__(self) -> None:
        self.reloaded: list[Settings] = []

    def reload(self, settings: Settings) -> None:
        self.reloaded.append(settings)


def _config(tmp_path, text: str) -> str:
    path = tmp_path / "gocd-mesos.ini"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_changes_name_live_changes_with_values_and_restart_sections_without():
    old = Settings.from_dict(
        {
            "gocd": {"url": "http://gocd:8153/go", "username": "u", "password": "p1"},
            "mesos": {"master": "http://m:5050"},
            "agents": {"auto_register_key": "k"},
            "profiles": {"a": {"image": "i", "max": 2}, "b": {"image": "i"}},
        }
    )
    new = replace(
        old,
        gocd=replace(old.gocd, password=Secret("p2")),
        profiles=(replace(old.profiles[0], max=5, image="j"), Profile(name="c", image="i")),
        judge=replace(old.judge, scale_down=False),
    )
    live, restart = changes(old, new)
    assert live == [
        "profile a: image i -> j; max 2 -> 5",
        "profile c added",
        "profile b removed (its agents are drained)",
        "[judge] scale_down true -> false",
    ]
    assert restart == ["[gocd] password"]
    assert "p2" not in " ".join(restart)


def test_poll_and_agents_intervals_need_a_restart():
    old = Settings.from_dict(
        {
            "gocd": {"url": "http://gocd:8153/go"},
            "mesos": {"master": "http://m:5050"},
            "agents": {"auto_register_key": "k"},
            "profiles": {"a": {"image": "i"}},
        }
    )
    new = replace(old, gocd=replace(old.gocd, poll_interval=30.0, agents_interval=60.0))
    assert changes(old, new) == ([], ["[gocd] poll_interval, agents_interval"])


def test_an_invalid_file_is_refused_with_every_problem_logged(tmp_path, caplog):
    text = SAMPLE.read_text(encoding="utf-8")
    path = _config(tmp_path, text)
    current = config.load(path)
    bad = text.replace("# max_launch_per_cycle = 100", "max_launch_per_cycle = 0\nbogus = 1")
    Path(path).write_text(bad.replace("max = 20", "max = many"), encoding="utf-8")
    with pytest.raises(ConfigError) as problems:
        config.load(path)
    assert len(problems.value.problems) == 3
    system = FakeSystem()
    with caplog.at_level(logging.ERROR):
        assert reload(path, current, system, lambda _: None) is current
    assert system.reloaded == []
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [
        *problems.value.problems,
        f"Reload of {path} refused: 3 configuration problem(s); the settings in use stay",
    ]


def test_a_file_saved_in_another_encoding_is_refused_not_a_crash(tmp_path, caplog):
    text = SAMPLE.read_text(encoding="utf-8")
    path = _config(tmp_path, text)
    current = config.load(path)
    Path(path).write_bytes(text.encode("utf-8") + "# édité\n".encode("latin-1"))
    with caplog.at_level(logging.ERROR):
        assert reload(path, current, FakeSystem(), lambda _: None) is current
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "not UTF-8 text" in errors[0] and errors[1].startswith(f"Reload of {path} refused: 1 ")


def test_a_valid_file_applies_profiles_judge_and_logging_and_warns_about_the_rest(tmp_path, caplog):
    text = SAMPLE.read_text(encoding="utf-8")
    path = _config(tmp_path, text)
    current = config.load(path)
    first = current.profiles[0].name
    Path(path).write_text(
        text.replace("# level = INFO", "level = DEBUG").replace(
            "# poll_interval = 10s", "poll_interval = 20s"
        ),
        encoding="utf-8",
    )
    system, relogged = FakeSystem(), []
    with caplog.at_level(logging.INFO):
        now = reload(path, current, system, relogged.append)
    assert relogged == [replace(current.logging, level="DEBUG")]
    assert now.logging.level == "DEBUG" and now.gocd == current.gocd
    assert system.reloaded == []  # neither profiles nor judge changed
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["Reload: [gocd] poll_interval changed; that needs a restart, not applied"]
    Path(path).write_text(text.replace("max = 20", "max = 30"), encoding="utf-8")
    with caplog.at_level(logging.INFO):
        later = reload(path, now, system, relogged.append)
    assert [s.profile(first).max for s in system.reloaded] == [30] and later.profile(first).max == 30
    assert f"Reload: profile {first}: max 20 -> 30" in caplog.text


# --- the daemon, SIGHUP -------------------------------------------------------------------


class _Daemon:
    """bin/gocd-mesosd as a process; its stderr lines collected, waited on without sleeps."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, BIN, str(config)],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def wait_for(self, text: str, after: int = 0, timeout: float = 60.0) -> int:
        """The index of the first line from ``after`` on that holds ``text``."""

        def found() -> int | None:
            return next((i for i, line in enumerate(self.lines) if i >= after and text in line), None)

        with self._cond:
            ok = self._cond.wait_for(lambda: found() is not None, timeout)
            assert ok, f"{text!r} not logged within {timeout}s:\n" + "".join(self.lines)
            index = found()
            assert index is not None
            return index


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_sighup_applies_a_raised_max_and_refuses_an_invalid_file(tmp_path):
    s = make_system(tmp_path, scale=5.0)
    config = _daemon_config(s, tmp_path)
    text = config.read_text(encoding="utf-8").replace("idle_timeout = 1h", "idle_timeout = 1h\nmax = 1")
    config.write_text(text, encoding="utf-8")
    daemon = _Daemon(config)
    try:
        daemon.wait_for("Registered with Mesos master")
        s.gocd.schedule_jobs("app", count=2, resources=["linux"], duration_s=100_000)
        capped = daemon.wait_for("1 capped-at-max")

        config.write_text(text.replace("max = 1", "max = many\nmin = -1"), encoding="utf-8")
        daemon.proc.send_signal(signal.SIGHUP)
        refused = daemon.wait_for(f"Reload of {config} refused: 2 configuration problem(s)", capped)
        errors = [line for line in daemon.lines[capped:refused] if " ERROR " in line]
        assert len(errors) == 2, "".join(daemon.lines)
        assert any("[profiles][linux] max" in e for e in errors) and any(
            "[profiles][linux] min" in e for e in errors
        )

        config.write_text(text.replace("max = 1", "max = 2"), encoding="utf-8")
        daemon.proc.send_signal(signal.SIGHUP)
        applied = daemon.wait_for("Reload: profile linux: max 1 -> 2", refused)
        daemon.wait_for("Launching 1 agent(s) for profile linux", refused)
        assert s.gocd.wait_for(lambda st: sum(1 for j in st["jobs"] if j["agent_uuid"]) == 2, timeout=60)
        assert not [line for line in daemon.lines[refused + 1 : applied] if " ERROR " in line]
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(30) == 0, "".join(daemon.lines)
    finally:
        daemon.proc.kill()
        s.stop()
