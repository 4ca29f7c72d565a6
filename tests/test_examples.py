"""The examples run as a user runs them: a fresh interpreter, exit status 0, plans printed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("name", ["embed_and_listen.py"])
def test_an_example_runs_prints_plans_with_reasons_and_exits_0(name):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "plan at t=" in done.stdout
    assert ": launching" in done.stdout and ": no-matching-profile" in done.stdout
