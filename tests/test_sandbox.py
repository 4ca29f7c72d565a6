"""The sandbox: both simulators and the daemon in one process, and its report."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys

import pytest

from actors.config import HttpSettings
from actors.sandbox import REPORT_KEYS, demo_workload, run_sandbox
from tests.test_app import BIN


@pytest.mark.parametrize("feed", [True, False], ids=["feed", "no-feed"])
def test_sandbox_serves_every_servable_job_and_leaves_nothing_behind(tmp_path, feed):
    # Without the feed (a GoCD after its removal) the daemon reads the dashboard: the same result.
    report = tmp_path / "r.json"
    out = io.StringIO()
    assert (
        run_sandbox(
            duration=8,
            time_scale=20,
            report=str(report),
            out=out,
            line_every=2,
            listen=HttpSettings(port=0),
            feed=feed,
        )
        == 0
    )
    numbers = json.loads(report.read_text())
    assert tuple(numbers) == REPORT_KEYS
    # 8 s x 20 = 160 simulated seconds; bursts are scheduled up to 55 % of that.
    bursts = [b for b in demo_workload() if b.at <= 0.55 * 160]
    unservable = sum(b.count for b in bursts if b.elastic_profile_id or "windows" in b.resources)
    assert numbers["jobs_scheduled"] == sum(b.count for b in bursts)
    assert numbers["jobs_completed"] == numbers["jobs_scheduled"] - unservable
    assert numbers["building_agents_killed"] == 0
    assert numbers["orphan_tasks"] == 0 and numbers["orphan_agents"] == 0
    assert numbers["failed_launches"] == 0
    assert 0 < numbers["max_agents"] <= numbers["launches"]
    assert numbers["agent_seconds"] > 0
    assert 0 <= numbers["wait_p50_s"] <= numbers["wait_p95_s"] <= numbers["wait_max_s"]
    text = out.getvalue()
    assert text.startswith("gocd-mesos sandbox: status http://127.0.0.1:")
    assert "gocd-mesos sandbox:" in text and "| jobs done" in text and "summary: jobs_scheduled=" in text


def test_sandbox_command_line(tmp_path):
    report = tmp_path / "r.json"
    result = subprocess.run(
        [
            *(sys.executable, BIN, "--sandbox", "--duration", "3", "--time-scale", "10"),
            *("--report", str(report), "--listen", "127.0.0.1:0"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert tuple(json.loads(report.read_text())) == REPORT_KEYS
    assert "summary:" in result.stdout


def test_sandbox_options_need_sandbox(capsys):
    from actors import cli

    for argv in (
        ["--duration", "3", "x.ini"],
        ["--sandbox", "x.ini"],
        ["--sandbox", "--time-scale", "0"],
        ["--listen", "127.0.0.1:0", "x.ini"],
        ["--sandbox", "--listen", "nowhere"],
        ["--no-feed", "x.ini"],
    ):
        try:
            cli.main(argv)
        except SystemExit as e:
            assert e.code == 2
        else:
            raise AssertionError(f"{argv} was accepted")


def test_a_taken_status_port_is_named_and_ends_the_sandbox():
    out = io.StringIO()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run_sandbox(duration=1, out=out, listen=HttpSettings(port=port)) == 1
    assert f"127.0.0.1:{port}: the port is already in use" in out.getvalue()
    assert "choose another with --listen" in out.getvalue()
