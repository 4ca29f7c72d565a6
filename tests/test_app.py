"""The command line and the run loop: exit codes, ordering, signals."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pykka
import pytest

from actors import __version__, cli, system
from actors.base import BaseActor, Ping
from actors.exceptions import GocdMesosError
from tests.conftest import ROOT, SAMPLE_CONFIG

BIN = str(ROOT / "bin" / "gocd-mesosd")


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_check_config_prints_masked_config(capsys, monkeypatch):
    monkeypatch.setenv("GOCD_MESOS_GOCD_TOKEN", "tok-supersecret")
    assert cli.main(["--check-config", SAMPLE_CONFIG]) == 0
    out, err = capsys.readouterr()
    assert "[profiles]" in out and "token = ****" in out
    assert "tok-supersecret" not in out + err
    assert "sandbox-auto-register-key" not in out + err
    assert "configuration OK" in err


def test_bad_config_exits_2_and_names_every_problem(tmp_path, capsys):
    bad = tmp_path / "bad.ini"
    bad.write_text(
        "[gocd]\nurll = x\npoll_interval = soon\n[mesos]\nmaster = http://m:5050\n"
        "[agents]\nauto_register_key = k\n[profiles]\n[[l]]\nimage = i\ncpus = lots\n"
    )
    assert cli.main(["--check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: [gocd] url: missing (required)" in err
    assert f"{bad}: [gocd] urll: unknown key (did you mean 'url'?)" in err
    assert f"{bad}: [gocd] poll_interval:" in err
    assert f"{bad}: [profiles][l] cpus:" in err
    assert "4 configuration problem(s); nothing started" in err


def test_check_config_refuses_values_that_would_break_the_daemon(tmp_path, capsys):
    bad = tmp_path / "bad.ini"
    bad.write_text(
        "[gocd]\nurl = http://g/go\npoll_interval = 0\ntimeout = 0\n[mesos]\nmaster = http://m:5050\n"
        "[agents]\nauto_register_key = k\n[profiles]\n[[l]]\nimage = i\ncpus = inf\n"
        "[judge]\nstale_after = 0\n"
    )
    assert cli.main(["--check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f'{bad}: [gocd] poll_interval: "0" is too short (must be at least 1s)' in err
    assert f'{bad}: [gocd] timeout: "0" is too short (must be at least 1s)' in err
    assert f'{bad}: [profiles][l] cpus: "inf" is not a finite number' in err
    assert f"{bad}: [judge] stale_after: 0s must be greater than [gocd] poll_interval" in err
    assert "4 configuration problem(s); nothing started" in err


def test_missing_config_argument_is_a_usage_error():
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2


def test_bin_launcher_checks_config():
    result = subprocess.run(
        [sys.executable, BIN, "--check-config", SAMPLE_CONFIG], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "sandbox-auto-register-key" not in result.stdout + result.stderr


class Recorder(BaseActor):
    """Test actor that records its life in a shared list."""

    def __init__(self, name, log, *, stop_hook=None, ready=None):
        super().__init__(stop_hook=stop_hook)
        self.name = name
        self.log = log
        self.ready = ready

    def on_start(self):
        self.log.append(f"start {self.name}")
        if self.ready is not None:
            self.ready.set()

    def on_stop(self):
        self.log.append(f"stop {self.name}")

    def on_receive(self, message):
        if message == "crash":
            raise RuntimeError("boom")
        return super().on_receive(message)


def test_run_starts_in_order_and_stops_in_reverse():
    log: list[str] = []
    stop = threading.Event()
    specs = [
        system.ActorSpec(n, lambda n=n: Recorder.start(n, log))
        for n in ("registry", "judge", "bridge", "poller")
    ]
    stop.set()  # stop as soon as everything is up
    assert system.run(specs, stop) == 0
    assert log == [
        "start registry",
        "start judge",
        "start bridge",
        "start poller",
        "stop poller",
        "stop bridge",
        "stop judge",
        "stop registry",
    ]
    assert pykka.ActorRegistry.get_all() == []


def test_a_crashed_actor_stops_the_daemon_with_status_1():
    log: list[str] = []
    stop = threading.Event()
    failure: list[str] = []

    def hook(reason):
        failure.append(reason)
        stop.set()

    refs = {}
    b_ready = threading.Event()

    def start(name):
        refs[name] = Recorder.start(name, log, stop_hook=hook)
        if name == "b":
            b_ready.set()
        return refs[name]

    specs = [system.ActorSpec("a", lambda: start("a")), system.ActorSpec("b", lambda: start("b"))]
    thread = threading.Thread(
        target=lambda: failure.append(system.run(specs, stop, failure=failure)), daemon=True
    )
    thread.start()
    assert b_ready.wait(10)
    refs["b"].ask(Ping(), timeout=5)
    refs["a"].tell("crash")
    thread.join(20)
    assert not thread.is_alive()
    assert failure[-1] == 1
    assert any("Recorder crashed: boom" in str(f) for f in failure)
    assert "stop b" in log


class StopFails(Recorder):
    """Its release (on_stop) raises, like a registry whose state dir is gone."""

    def on_stop(self):
        super().on_stop()
        raise OSError("state dir gone")


def test_a_crash_is_reported_first_then_released_whatever_the_release_raises():
    """BaseActor.on_failure, called as pykka calls it, without a thread."""
    log: list[str] = []
    reasons: list[str] = []

    def hook(reason):
        log.append("hook")
        reasons.append(reason)

    actor = StopFails("a", log, stop_hook=hook)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        actor.on_failure(*sys.exc_info())  # must not raise
    assert log == ["hook", "stop a"]  # reported, then released as on_stop does
    assert reasons == ["StopFails crashed: boom"]


class ReleaseFails(Recorder):
    """Its own on_failure raises before the base class could report anything."""

    def on_failure(self, exception_type, exception_value, traceback):
        raise OSError("cannot release")


@pytest.mark.parametrize("kill", ["stop from outside", "on_failure raises"])
def test_an_actor_that_dies_without_reporting_stops_the_daemon_with_status_1(caplog, kill):
    """No stop hook is called: run() notices the dead actor itself."""
    log: list[str] = []
    stop = threading.Event()
    failure: list[str] = []
    refs = {}
    ready = threading.Event()

    def hook(reason):
        failure.append(reason)
        stop.set()

    def start(name, kind=Recorder):
        refs[name] = kind.start(name, log, stop_hook=hook)
        if name == "b":
            ready.set()
        return refs[name]

    doomed = ReleaseFails if kill == "on_failure raises" else Recorder
    specs = [system.ActorSpec("a", lambda: start("a", doomed)), system.ActorSpec("b", lambda: start("b"))]
    status: list[int] = []
    with caplog.at_level(logging.ERROR, logger="actors.system"):
        thread = threading.Thread(
            target=lambda: status.append(system.run(specs, stop, failure=failure)), daemon=True
        )
        thread.start()
        assert ready.wait(10)
        refs["b"].ask(Ping(), timeout=5)
        if kill == "stop from outside":
            refs["a"].stop()
        else:
            refs["a"].tell("crash")
        thread.join(20)
    assert not thread.is_alive(), "run() did not notice that a is dead"
    assert status == [1]
    (line,) = [r.getMessage() for r in caplog.records if r.name == "actors.system"]
    assert line == "Stopped because a is no longer running"
    assert "stop b" in log
    assert not stop.is_set() and failure == []


def test_run_stops_only_its_own_actors():
    """Two systems may share a process: one stopping leaves the other's actors running."""
    log: list[str] = []
    other = Recorder.start("other", log)
    stop = threading.Event()
    stop.set()
    assert system.run([system.ActorSpec("mine", lambda: Recorder.start("mine", log))], stop) == 0
    # A stop told to it before this ping would fail the ping with ActorDeadError.
    assert other.ask(Ping(), timeout=5) == "pong"
    assert log == ["start other", "start mine", "stop mine"]
    other.stop()


def test_failed_start_stops_the_ones_already_started():
    log: list[str] = []

    def broken():
        raise GocdMesosError("no state dir")

    specs = [system.ActorSpec("a", lambda: Recorder.start("a", log)), system.ActorSpec("b", broken)]
    assert system.run(specs, threading.Event()) == 1
    assert log == ["start a", "stop a"]


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="POSIX signals")
def sample_with_state_dir(tmp_path) -> str:
    """The sample configuration with its state directory moved under ``tmp_path`` and the
    status server on a free port (suites side by side never collide on 9404)."""
    text = Path(SAMPLE_CONFIG).read_text(encoding="utf-8")
    text = text.replace("# dir = /var/lib/gocd-mesos", f"dir = {tmp_path / 'state'}")
    text = text.replace("# listen = 127.0.0.1:9404", "listen = 127.0.0.1:0")
    path = tmp_path / "gocd-mesos.ini"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_daemon_stops_cleanly_on_sigterm(tmp_path):
    """The real actors start (GoCD and Mesos unreachable is not fatal) and stop on SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, BIN, sample_with_state_dir(tmp_path), "--log-level", "debug"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        for line in proc.stderr:
            if "running with" in line:
                break
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        assert proc.wait(30) == 0, rest
        assert "Got SIGTERM; stopping" in rest
        assert "running with 4 actors" in line
        assert "Status server listening on http://127.0.0.1:" in rest
    finally:
        proc.kill()


def test_unwritable_state_dir_is_a_clear_runtime_error(tmp_path):
    config = Path(sample_with_state_dir(tmp_path))
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    config.write_text(config.read_text().replace(f"dir = {tmp_path / 'state'}", f"dir = {blocker}/state"))
    result = subprocess.run([sys.executable, BIN, str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"[state] dir {blocker}/state is not writable" in result.stderr


@pytest.mark.parametrize(
    ("mode", "warned"), [(0o600, None), (0o640, "group"), (0o604, "others"), (0o644, "group and others")]
)
def test_a_secret_file_readable_by_group_or_others_is_a_warning(tmp_path, caplog, mode, warned):
    from actors.cli import warn_readable_secret_files
    from actors.config import Settings

    key = tmp_path / "auto-register-key"
    key.write_text("k\n")
    key.chmod(mode)
    settings = Settings.from_dict(
        {
            "gocd": {"url": "http://gocd:8153/go"},
            "mesos": {"master": "http://m:5050"},
            "agents": {"auto_register_key_file": str(key)},
            "profiles": {"linux": {"image": "i"}},
        }
    )
    assert settings.secret_files == (("[agents] auto_register_key_file", str(key)),)
    with caplog.at_level(logging.WARNING):
        warn_readable_secret_files(settings)
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    if warned is None:
        assert lines == []
    else:
        assert lines == [
            f"[agents] auto_register_key_file {key} is readable by {warned} (mode {mode:04o}); chmod 600 it"
        ]


def test_a_readable_webhook_secret_file_is_a_warning_too(tmp_path, caplog):
    from actors.cli import warn_readable_secret_files
    from actors.config import Settings

    secret = tmp_path / "webhook-secret"
    secret.write_text("0123456789abcdef0123\n")
    secret.chmod(0o644)
    settings = Settings.from_dict(
        {
            "gocd": {"url": "http://gocd:8153/go", "webhook_secret_file": str(secret)},
            "mesos": {"master": "http://m:5050"},
            "agents": {"auto_register_key": "k"},
            "profiles": {"linux": {"image": "i"}},
        }
    )
    assert settings.secret_files == (("[gocd] webhook_secret_file", str(secret)),)
    with caplog.at_level(logging.WARNING):
        warn_readable_secret_files(settings)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"[gocd] webhook_secret_file {secret} is readable by group and others (mode 0644); chmod 600 it"
    ]
