"""etc/gocd-mesosd.service as systemd itself reads it (``systemd-analyze verify``), and what it promises.

The unit names ``/usr/local/bin/gocd-mesosd``, where ``pip install .`` puts the
daemon; the test points it at ``bin/gocd-mesosd`` of this checkout instead, so
that systemd can check the executables exist. Skips where systemd is not installed.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

UNIT = ROOT / "etc" / "gocd-mesosd.service"
ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed (Debian: systemd)")


def verify(tmp_path: Path, text: str) -> str:
    """What ``systemd-analyze verify`` says of ``text`` as a unit (empty when all is well)."""
    unit = tmp_path / "gocd-mesosd.service"
    unit.write_text(text.replace("/usr/local/bin/gocd-mesosd", str(ROOT / "bin" / "gocd-mesosd")))
    assert ANALYZE is not None
    done = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # Lines about other units on this machine are not ours to judge.
    return "\n".join(line for line in (done.stdout + done.stderr).splitlines() if str(unit) in line)


@needs_systemd
def test_systemd_reads_the_unit_without_a_complaint(tmp_path):
    assert verify(tmp_path, UNIT.read_text()) == ""


@needs_systemd
def test_the_check_catches_a_broken_unit(tmp_path):
    assert "restart specifier" in verify(
        tmp_path, UNIT.read_text().replace("Restart=on-failure", "Restart=bogus")
    )


def test_the_unit_runs_the_daemon_as_the_readme_says():
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    assert service["Type"] == "simple"  # foreground
    assert service["ExecStart"].endswith("gocd-mesosd /etc/gocd-mesos/gocd-mesos.ini")
    assert "--check-config" in service["ExecStartPre"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["Restart"] == "on-failure"
    assert service["User"] == "gocd-mesos" and service["StateDirectory"] == "gocd-mesos"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
