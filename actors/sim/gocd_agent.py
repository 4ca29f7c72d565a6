"""A simulated GoCD agent: one thread that talks to a GoCD server like the real agent.

:class:`SimAgent` follows the real agent's loop (``gocd-api.md`` 4.5): fetch a
token (``GET /go/admin/agent/token``), POST the twelve registration fields to
``/go/admin/agent`` until the answer is 200 (retrying every 5 s on 202, 422 or
anything else; dropping the token on 403), then ``get_cookie``, ``ping``
every ``ping_interval``, and ``get_work`` with the real back-off (1 s, x1.5,
capped at 10 s). A job "runs" for the duration the simulator puts in the work
payload, then is reported completed. Every wait goes through the Clock, so a
ScaledClock runs it faster than real time and a ManualClock under a test's
control. The Mesos simulator runs one per launched task.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid as uuidlib
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from actors import __version__
from actors.clock import Clock

__all__ = ["SimAgent", "work_delays"]

logger = logging.getLogger(__name__)

#: Seconds between registration attempts (``REGISTER_RETRY_INTERVAL``).
REGISTER_RETRY = 5.0
#: First get_work delay, growth per empty answer, and ceiling (``agent.properties``).
WORK_BACKOFF = (1.0, 1.5, 10.0)
#: Real seconds before one HTTP call of the agent is abandoned.
HTTP_TIMEOUT = 10.0


def work_delays() -> Iterator[float]:
    """Seconds before each get_work of an idle agent: 1, 1.5, 2.25, ... up to 10, then 10 forever."""
    first, factor, ceiling = WORK_BACKOFF
    delay = first
    while True:
        yield delay
        delay = min(delay * factor, ceiling)


def _server_url(url: str) -> str:
    """GO_SERVER_URL checked like the real entrypoint: http(s), ending in /go or /go/."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("/go", "/go/"):
        raise ValueError(f"GO_SERVER_URL must be an http(s) URL ending in /go, not {url!r}")
    return f"{parts.scheme}://{parts.netloc}/go"


class SimAgent:
    """A GoCD agent process, as a daemon thread (see the module docstring).

    ``state`` is ``starting`` until the server first answers a registration,
    then ``pending`` (202) or ``registered`` (200), ``stopped`` after
    :meth:`stop`, ``failed`` if the thread died of an unexpected error.
    """

    def __init__(
        self,
        go_server_url: str,
        *,
        clock: Clock,
        hostname: str,
        auto_register_key: str = "",
        resources: str = "",
        environments: str = "",
        auto_register_hostname: str = "",
        uuid: str | None = None,
        ping_interval: float = 5.0,
    ) -> None:
        self._url = _server_url(go_server_url)
        self._clock = clock
        self.hostname = hostname
        self._autoregister = {
            "agentAutoRegisterKey": auto_register_key,
            "agentAutoRegisterResources": resources,
            "agentAutoRegisterEnvironments": environments,
            "agentAutoRegisterHostname": auto_register_hostname,
        }
        self.uuid = uuid or str(uuidlib.uuid4())
        self.ping_interval = ping_interval
        #: Set once the server answered the registration with 200.
        self.registered = threading.Event()
        self.state = "starting"
        #: Locators of the jobs this agent ran to the end, in order (appended before reporting).
        self.completed: list[str] = []
        self._token: str | None = None
        self._stop = threading.Event()
        self._session = requests.Session()
        self._session.trust_env = False  # loopback simulator: no proxies, no .netrc
        self._session.headers["User-Agent"] = f"gocd-mesos-sim-agent/{__version__}"
        self._thread = threading.Thread(target=self._run, name=f"sim-agent-{hostname}", daemon=True)

    @classmethod
    def from_environment(cls, env: Mapping[str, str], *, clock: Clock, hostname: str, **kw: Any) -> SimAgent:
        """An agent configured as the official Docker image is: GO_SERVER_URL (http(s),
        ending in /go or /go/; ValueError otherwise) and AGENT_AUTO_REGISTER_KEY,
        _RESOURCES, _ENVIRONMENTS, _HOSTNAME."""
        return cls(
            env.get("GO_SERVER_URL", ""),
            clock=clock,
            hostname=hostname,
            auto_register_key=env.get("AGENT_AUTO_REGISTER_KEY", ""),
            resources=env.get("AGENT_AUTO_REGISTER_RESOURCES", ""),
            environments=env.get("AGENT_AUTO_REGISTER_ENVIRONMENTS", ""),
            auto_register_hostname=env.get("AGENT_AUTO_REGISTER_HOSTNAME", ""),
            **kw,
        )

    def start(self) -> None:
        """Start the agent's daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Kill the agent, as when its container dies: no goodbye to the server."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end."""
        self._thread.join(timeout)

    def __repr__(self) -> str:
        return f"SimAgent({self.hostname!r}, uuid={self.uuid!r}, state={self.state!r})"

    # --- the loop ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._register():
                self._work()
            self.state = "stopped"
        except Exception:
            logger.exception("Simulated agent %s failed", self.hostname)
            self.state = "failed"
        finally:
            self._session.close()

    def _wait(self, seconds: float) -> bool:
        """Wait ``seconds`` of clock time; True when told to stop."""
        return self._clock.wait(self._stop, max(0.0, seconds)) or self._stop.is_set()

    def _http(self, method: str, path: str, **kw: Any) -> requests.Response | None:
        try:
            return self._session.request(method, self._url + path, timeout=HTTP_TIMEOUT, **kw)
        except requests.RequestException as e:
            logger.debug("Agent %s: %s %s failed: %s", self.hostname, method, path, type(e).__name__)
            return None

    def _register(self) -> bool:
        """Token, then registration POSTs until 200; False when stopped first."""
        while not self._stop.is_set():
            if self._token is None:
                answer = self._http("GET", "/admin/agent/token", params={"uuid": self.uuid})
                if answer is not None and answer.status_code == 200:
                    self._token = answer.text
                else:
                    logger.debug("Agent %s: no token (%s)", self.hostname, answer and answer.status_code)
                    if self._wait(REGISTER_RETRY):
                        return False
                    continue
            form = {
                "hostname": self.hostname,
                "uuid": self.uuid,
                "location": "/go-working-dir",
                "usablespace": str(50 * 1024**3),
                "operatingSystem": "Linux",
                **self._autoregister,
                "elasticAgentId": "",
                "elasticPluginId": "",
                "token": self._token,
            }
            answer = self._http("POST", "/admin/agent", data=form)
            status = answer.status_code if answer is not None else None
            if status == 200:
                # The real agent scrubs autoregister.properties once approved.
                self._autoregister = dict.fromkeys(self._autoregister, "")
                self.state = "registered"
                self.registered.set()
                logger.info("Simulated agent %s registered as %s", self.hostname, self.uuid)
                return True
            if status == 202:
                self.state = "pending"
            elif status == 403:
                self._token = None
            else:
                logger.debug("Agent %s: registration answered %s", self.hostname, status)
            if self._wait(REGISTER_RETRY):
                return False
        return False

    def _remote(self, op: str, body: Mapping[str, Any] | None = None) -> Any:
        """One remoting call; the decoded answer, or None when refused or unreachable."""
        headers = {
            "X-Agent-GUID": self.uuid,
            "Authorization": self._token or "",
            "Accept": "application/vnd.go.cd+json",
            "Content-Type": "application/json",
        }
        answer = self._http("POST", f"/remoting/api/agent/{op}", headers=headers, data=json.dumps(body or {}))
        if answer is None or answer.status_code != 200:
            logger.debug("Agent %s: %s answered %s", self.hostname, op, answer and answer.status_code)
            return None
        try:
            return answer.json()
        except ValueError:
            return None

    def _work(self) -> None:
        """Ping every ping_interval and ask for work with back-off, on one thread."""
        self._remote("get_cookie")
        delays = work_delays()
        now = self._clock.now()
        next_ping, next_work = now, now + next(delays)
        job: dict[str, Any] | None = None
        job_done_at = 0.0
        while not self._stop.is_set():
            now = self._clock.now()
            if now >= next_ping:
                status = "Building" if job else "Idle"
                self._remote("ping", {"runtime_status": status, "free_space": 50 * 1024**3})
                next_ping = now + self.ping_interval
            if job is not None and now >= job_done_at:
                locator = job["locator"]
                self.completed.append(locator)
                self._remote("report_completing", {"locator": locator, "job_state": "Completing"})
                self._remote("report_completed", {"locator": locator, "result": "Passed"})
                logger.info("Simulated agent %s completed %s", self.hostname, locator)
                job, delays, next_work = None, work_delays(), now
            if job is None and now >= next_work:
                answer = self._remote("get_work")
                work = answer.get("work") if isinstance(answer, dict) else None
                if isinstance(work, dict):
                    job = work
                    job_done_at = now + float(work.get("duration_s", 0.0))
                    self._remote(
                        "report_current_status", {"locator": work["locator"], "job_state": "Building"}
                    )
                else:
                    next_work = now + next(delays)
            deadline = min(next_ping, job_done_at if job is not None else next_work)
            if self._wait(deadline - self._clock.now()):
                return
