"""Helpers shared by the GoCD tests: settings, raw HTTP to the simulator, clock stepping."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import requests

from actors.clock import ManualClock
from actors.config import GoCDSettings, Secret
from actors.sim.gocd import GoCDSimulator

#: Credentials the secret-leak checks look for; unusual enough never to appear by chance.
PASSWORD = "pw-S3cr3t-9f1c77"
TOKEN = "tok-0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b"
V7 = "application/vnd.go.cd.v7+json"


def settings(
    url: str, *, username: str = "", password: str = "", token: str = "", timeout: float = 5.0
) -> GoCDSettings:
    return GoCDSettings(
        url=url,
        username=username,
        password=Secret(password),
        token=Secret(token),
        timeout=timeout,
        poll_interval=10.0,
    )


def raw(method: str, url: str, *, accept: str | None = V7, **kw: Any) -> requests.Response:
    """One request with exactly the headers given (no session defaults beyond requests' own)."""
    headers = dict(kw.pop("headers", {}))
    if accept is not None:
        headers["Accept"] = accept
    with requests.Session() as session:
        session.trust_env = False
        if accept is None:
            session.headers.pop("Accept", None)
        return session.request(method, url, headers=headers, timeout=5, **kw)


def remoting(
    sim: GoCDSimulator, uuid: str, op: str, body: dict[str, Any] | None = None, token: str | None = None
):
    """An agent's remoting call, as the real agent makes it."""
    return raw(
        "POST",
        f"{sim.url}/remoting/api/agent/{op}",
        accept="application/vnd.go.cd+json",
        headers={"X-Agent-GUID": uuid, "Authorization": sim.agent_token(uuid) if token is None else token},
        json=body or {},
    )


def advance_until(
    clock: ManualClock,
    sim: GoCDSimulator,
    predicate: Callable[[dict[str, Any]], bool],
    step: float,
    limit: int = 20,
) -> None:
    """Advance ``clock`` by ``step`` until the simulator's state satisfies ``predicate``.

    Synchronises on the simulator's change notifications. A thread that read
    the clock just before an advance may wait one step more, hence the loop.
    """
    for _ in range(limit):
        clock.advance(step)
        if sim.wait_for(predicate, timeout=1.0):
            return
    raise AssertionError(f"simulator never reached the state; now {sim.state()!r}")


def job_states(state: dict[str, Any]) -> dict[str, str]:
    return {job["locator"]: job["state"] for job in state["jobs"]}


def secret_texts() -> tuple[str, ...]:
    """Every form in which the test credentials could leak."""
    import base64

    basic = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    return PASSWORD, TOKEN, basic


def assert_no_secrets(text: str) -> None:
    for secret in secret_texts():
        assert secret not in text, "a credential leaked"


@pytest.fixture(autouse=True)
def no_secrets_in_logs(caplog):
    """Autouse where imported: no log line of the test holds a credential."""
    caplog.set_level(logging.DEBUG)
    yield
    records = caplog.get_records("setup") + caplog.get_records("call")
    assert_no_secrets("\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in records))
