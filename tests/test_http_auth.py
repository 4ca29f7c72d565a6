"""Basic and bearer auth of the status server, over real HTTP on port 0; ``/healthz`` stays open."""

from __future__ import annotations

import base64

import pytest
import requests

from actors.config import Secret
from actors.http.server import StatusServer, authorized

USER = "ops"
PASSWORD = "pw-S3cr3t-9f1c77"
TOKEN = "tok-0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b"
GUARDED = ("/", "/status", "/metrics", "/readyz")


def make(clock, **auth) -> StatusServer:
    server = StatusServer(
        host="127.0.0.1", port=0, clock=clock, alive=lambda: {"AgentRegistry": True}, **auth
    )
    server.start()
    return server


@pytest.fixture
def guarded(clock):
    server = make(clock, username=USER, password=Secret(PASSWORD), token=Secret(TOKEN))
    yield server
    server.stop()


def get(server: StatusServer, path: str, **kw) -> requests.Response:
    return requests.get(server.url.rstrip("/") + path, timeout=10, **kw)


def no_secret_in(response: requests.Response) -> None:
    text = response.text + "".join(f"{k}: {v}" for k, v in response.headers.items())
    assert PASSWORD not in text and TOKEN not in text


def test_without_credentials_configured_every_endpoint_is_open(clock):
    server = make(clock)
    try:
        for path in (*GUARDED, "/healthz"):
            response = get(server, path)
            assert response.status_code in (200, 503), path  # /readyz: not ready, yet not refused
            assert "WWW-Authenticate" not in response.headers
    finally:
        server.stop()


def test_no_credentials_get_401_with_the_basic_challenge(guarded):
    for path in GUARDED:
        response = get(guarded, path)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"] == 'Basic realm="gocd-mesos"'
        no_secret_in(response)


def test_basic_auth_right_and_wrong(guarded):
    for path in GUARDED:
        right = get(guarded, path, auth=(USER, PASSWORD))
        assert right.status_code in (200, 503), path
        assert "WWW-Authenticate" not in right.headers
        no_secret_in(right)
    for user, password in ((USER, "wrong"), ("someone", PASSWORD), (USER, ""), (USER, PASSWORD + "x")):
        wrong = get(guarded, "/status", auth=(user, password))
        assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == 'Basic realm="gocd-mesos"'
        no_secret_in(wrong)


def test_bearer_auth_right_and_wrong(guarded):
    for path in GUARDED:
        right = get(guarded, path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code in (200, 503), path
    for header in (f"Bearer {TOKEN[:-1]}", "Bearer ", f"Token {TOKEN}", TOKEN, f"Basic {TOKEN}"):
        wrong = get(guarded, "/status", headers={"Authorization": header})
        assert wrong.status_code == 401, header
        no_secret_in(wrong)


def test_healthz_is_open_always(guarded):
    assert get(guarded, "/healthz").status_code == 200
    assert get(guarded, "/healthz", auth=(USER, "wrong")).status_code == 200


def test_a_token_alone_or_a_password_alone_guards_too(clock):
    for auth, right, wrong in (
        ({"token": Secret(TOKEN)}, {"Authorization": f"Bearer {TOKEN}"}, (USER, PASSWORD)),
        ({"username": USER, "password": Secret(PASSWORD)}, (USER, PASSWORD), f"Bearer {TOKEN}"),
    ):
        server = make(clock, **auth)
        try:
            kw_right = {"headers": right} if isinstance(right, dict) else {"auth": right}
            kw_wrong = {"auth": wrong} if isinstance(wrong, tuple) else {"headers": {"Authorization": wrong}}
            assert get(server, "/status", **kw_right).status_code == 200
            assert get(server, "/status", **kw_wrong).status_code == 401
            assert get(server, "/status").status_code == 401
        finally:
            server.stop()


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (basic(f"{USER}:{PASSWORD}"), True),
        ("basic " + basic(f"{USER}:{PASSWORD}")[6:], True),
        (basic(f"{USER}:{PASSWORD}:"), False),
        (basic(f"{USER}{PASSWORD}"), False),
        ("Basic !!not-base64!!", False),
        ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), False),
        (f"Bearer {TOKEN}", True),
        (f"bearer  {TOKEN}", True),
        (None, False),
        ("", False),
    ],
)
def test_authorized(header, ok):
    assert authorized(header, USER, Secret(PASSWORD), Secret(TOKEN)) is ok


def test_nothing_configured_authorizes_anything():
    assert authorized(None, "", Secret(""), Secret(""))


def test_a_system_guards_its_server_with_the_configured_token(system):
    from dataclasses import replace

    s = system()
    s.settings = replace(s.settings, http=replace(s.settings.http, token=Secret(TOKEN)))
    s.start_daemon()
    url = s.daemon.http_url
    assert requests.get(url + "status", timeout=10).status_code == 401
    assert requests.get(url + "status", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).ok
    assert requests.get(url + "healthz", timeout=10).status_code == 200
