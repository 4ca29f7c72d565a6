"""The examples run as a user runs them: a fresh interpreter, exit status 0, plans printed."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def run_example(name):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_embed_and_listen_prints_plans_with_reasons_and_exits_0():
    out = run_example("embed_and_listen.py")
    assert "plan at t=" in out
    assert ": launching" in out and ": no-matching-profile" in out


def test_custom_policy_is_honoured_end_to_end():
    out = run_example("custom_policy.py")
    assert ": held-by-policy at most 2 per plan" in out
    assert "plan: launch 3" not in out and "plan: launch 5" not in out
    assert "Mesos saw 5 tasks for 5 jobs" in out
