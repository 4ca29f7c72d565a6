"""No GoCD password or token in any log line, exception text, repr or published message.

Every error path of the client runs here with credentials configured, with
the whole logging tree captured at DEBUG (urllib3 included); then the texts
of the errors (their chains too) and of the poller's messages are searched.
The other GoCD test modules check their own log lines the same way.
"""

from __future__ import annotations

import random
import socket

import pytest

from actors.clock import ManualClock
from actors.config import Secret
from actors.exceptions import GoCDError
from actors.gocd.client import GoCDClient, make_session
from actors.gocd.poller import GoCDPoller
from actors.messages import DeleteAgent, DisableAgent, EnableAgent, Poll, ReadAgent
from actors.sim.gocd import GoCDSimulator
from tests.gocd_support import PASSWORD, TOKEN, assert_no_secrets, no_secrets_in_logs, settings  # noqa: F401

CONFIGS = {
    "basic": {"username": "admin", "password": PASSWORD},
    "token": {"token": TOKEN},
}


def _texts(error: BaseException) -> str:
    """Everything an error could show: str, repr, args, url, and its whole chain."""
    parts = []
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        parts += [str(error), repr(error), repr(error.args), str(getattr(error, "url", ""))]
        error = error.__cause__ or error.__context__
    return "\n".join(parts)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("auth", sorted(CONFIGS))
def test_no_credential_in_any_error_or_log(clock: ManualClock, recorder, auth):
    creds = CONFIGS[auth]
    sim = GoCDSimulator(clock=clock, admin=False, **creds)
    wrong = GoCDSimulator(clock=clock, username="other", password="x", token="y")
    open_ = GoCDSimulator(clock=clock)
    errors: list[GoCDError] = []
    try:
        for s in (sim, wrong, open_):
            s.start()
        sim.schedule_jobs("k8s", elastic_profile_id="pod")
        uuid = sim.add_agent("a1")
        client = GoCDClient(settings(sim.url, timeout=0.2, **creds), clock=clock)

        def attempt(call):
            try:
                call()
            except GoCDError as e:
                errors.append(e)

        # 403 on changes and on the pipeline config (logged once by the client).
        client.with_elastic_profiles(client.scheduled_jobs())
        attempt(lambda: client.disable_agent(uuid))
        attempt(lambda: client.delete_agent(uuid))
        attempt(lambda: client.agent("nope"))
        for kind, kw in [
            ("status", {"status": 500}),
            ("status", {"status": 503}),
            ("status", {"status": 302}),
            ("malformed", {}),
            ("reset", {}),
            ("latency", {"delay_s": 60}),
        ]:
            sim.inject_fault(kind, **kw)
            attempt(client.agents)
        for url in (wrong.url, open_.url, f"http://127.0.0.1:{_free_port()}/go"):
            other = GoCDClient(settings(url, **creds), clock=clock)
            attempt(other.agents)
            attempt(other.scheduled_jobs)
        userinfo = GoCDClient(settings(f"http://admin:{PASSWORD}@127.0.0.1:{_free_port()}/go"), clock=clock)
        attempt(userinfo.agents)

        # The poller turns those errors into messages and log lines.
        poller = GoCDPoller(
            settings=settings(sim.url, timeout=0.2, **creds),
            clock=clock,
            subscribers=(recorder,),
            rng=random.Random(1),
        )
        for message in (DisableAgent(uuid), EnableAgent(uuid), DeleteAgent(uuid), ReadAgent("nope")):
            poller.on_receive(message)
        sim.inject_fault("status", status=500)
        poller.on_receive(Poll())
        poller.on_receive(Poll())
        poller.on_stop()
    finally:
        for s in (sim, wrong, open_):
            s.stop()

    assert {e.status for e in errors} >= {None, 200, 302, 401, 403, 404, 500, 503}
    for error in errors:
        assert_no_secrets(_texts(error))
    assert len(recorder.messages) == 6
    assert_no_secrets(repr(recorder.messages))


def test_session_and_settings_reprs_hide_credentials():
    for creds in CONFIGS.values():
        s = settings("http://127.0.0.1:1/go", **creds)
        session = make_session(s)
        assert_no_secrets(repr(s) + repr(session.auth) + repr(vars(session)))
    assert repr(Secret(PASSWORD)) == "Secret('****')"
