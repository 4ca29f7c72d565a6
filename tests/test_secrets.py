"""No secret in anything gocd-mesos shows: HTTP bodies and headers, --check-config, exceptions.

(Every log line of the whole suite is searched for the watched secrets by the session
fixture in tests/conftest.py.)
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys

import requests

import actors
from actors.config import Secret
from tests.conftest import ROOT, WATCHED_SECRETS
from tests.e2e_support import KEY


def test_no_secret_in_any_http_answer_of_a_running_system(system):
    s = system()
    # Known secrets everywhere the daemon holds one: GoCD's password (admin-secret, the
    # simulator's), the agents' auto-register key, the status server's own token, the GoCD
    # webhook's secret.
    token, webhook = WATCHED_SECRETS[1], WATCHED_SECRETS[3]
    http = dataclasses.replace(s.settings.http, host="127.0.0.1", port=0, token=Secret(token))
    gocd = dataclasses.replace(s.settings.gocd, webhook_secret=Secret(webhook))
    s.settings = dataclasses.replace(s.settings, http=http, gocd=gocd)
    s.gocd.schedule_jobs("app", count=2, resources=["linux"], duration_s=5)
    handle = actors.start(s.settings, clock=s.clock)
    # The test client's URL log lines would show the hook's secret (see test_http_hooks).
    client_log = logging.getLogger("urllib3.connectionpool")
    level = client_log.level
    client_log.setLevel(logging.INFO)
    try:
        notification = {"uuid": "u-1", "agent_state": "Idle"}
        for path, document in (
            (f"hooks/gocd/{webhook}", notification),
            (f"hooks/gocd/{webhook}", []),
            ("hooks/gocd", {}),
        ):
            answer = requests.post(handle.http_url + path, json=document, timeout=10)
            assert answer.status_code in (200, 400, 401)
            assert webhook not in answer.text + "".join(f"{k}: {v}" for k, v in answer.headers.items())
        s.wait_gocd(
            lambda st: any(j["state"] == "completed" for j in st["jobs"]), timeout=60, what="a job done"
        )
        headers = {"Authorization": f"Bearer {token}"}
        for path in ("", "status", "metrics", "healthz", "readyz"):
            answer = requests.get(handle.http_url + path, headers=headers, timeout=10)
            text = answer.text + "".join(f"{k}: {v}" for k, v in answer.headers.items())
            for secret in (*WATCHED_SECRETS, KEY):
                assert secret not in text, f"/{path} shows a secret"
        unauthorised = requests.get(handle.http_url + "status", timeout=10)
        assert unauthorised.status_code == 401 and token not in unauthorised.text
    finally:
        client_log.setLevel(level)
        handle.stop()


def test_no_secret_in_check_config_output(tmp_path):
    secret_file = tmp_path / "key"
    secret_file.write_text(WATCHED_SECRETS[0] + "\n")
    secret_file.chmod(0o600)
    webhook_file = tmp_path / "webhook"
    webhook_file.write_text(WATCHED_SECRETS[3] + "\n")
    webhook_file.chmod(0o600)
    config = tmp_path / "c.ini"
    config.write_text(
        "[gocd]\nurl = http://gocd.example.com/go\nusername = u\n"
        f"password = {WATCHED_SECRETS[2]}\nwebhook_secret_file = {webhook_file}\n"
        "[mesos]\nmaster = http://127.0.0.1:5050\n"
        f"[agents]\nauto_register_key_file = {secret_file}\n"
        "[profiles]\n[[linux]]\nimage = gocd/gocd-agent-ubuntu-24.04:v25.1.0\n"
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "gocd-mesosd"), "--check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for secret in WATCHED_SECRETS:
        assert secret not in done.stdout + done.stderr
    assert "****" in done.stdout


def test_a_secret_never_shows_in_a_repr_or_an_exception():
    secret = Secret(WATCHED_SECRETS[0])
    assert WATCHED_SECRETS[0] not in repr(secret) + str(secret) + f"{secret}"
    try:
        raise ValueError(f"bad value {secret}")
    except ValueError as e:
        assert WATCHED_SECRETS[0] not in str(e)
