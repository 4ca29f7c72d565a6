"""Property-based fuzzing (hypothesis) of what the daemon parses and decides.

Each target states the contract the daemon relies on and feeds it payloads,
both random and shaped like the real thing (then cut, retyped or garbled):

* the GoCD parsers: any feed XML gives jobs or ValueError, any agents JSON gives
  agents or ValueError (``actors.gocd.client``: ``parse_scheduled_jobs``,
  ``parse_agents``, ``parse_agent``, ``parse_job_history_total``);
* the GoCD client over a fake wire: any answer (status, content type, body) to
  any of its calls gives a value or a ``GoCDError``, the only exception the
  poller catches; anything else would crash the daemon;
* the configuration: any INI text, and any dict for ``from_dict``, gives
  Settings or a ConfigError listing its problems, never another exception;
* the scaling policies: any backlog and fleet give a plan that respects each
  profile's ``max``, drains only idle agents of ours, and gives each waiting
  job exactly one reason (``default``, ``ancestor`` and ``static``);
* the GoCD webhook: any body gives a hint or ValueError (``parse_notification``),
  and over real HTTP any path, method, body and signature gets a 2xx or 4xx
  answer, with a hint told for each 200 and none otherwise.

A handful of hostile payloads (nesting 100,000 deep) go to the client too:
random generation never builds them. Runs are derandomized: the same payloads
every time. :func:`run` returns, per target, how many payloads were tried and
the first property that failed, with its (shrunk) example.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import string
from collections.abc import Callable
from typing import Any

import requests
import requests.adapters
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import config
from actors.clock import ManualClock
from actors.config import ConfigError, GoCDSettings, JudgeSettings, Profile, Secret
from actors.exceptions import GoCDError
from actors.fleet.judge import REASONS, AncestorPolicy, StaticPolicy, decide
from actors.fleet.states import FleetState
from actors.gocd.client import (
    GoCDClient,
    parse_agent,
    parse_agents,
    parse_job_history_total,
    parse_scheduled_jobs,
)
from actors.http.hooks import parse_notification, signature_matches
from actors.http.server import StatusServer
from actors.messages import (
    BacklogSnapshot,
    Decide,
    FleetAgent,
    FleetView,
    GoAgent,
    GoCDHint,
    GoCDUnavailable,
    ProfileBackoff,
    ScalePlan,
    ScheduledJob,
)

__all__ = ["TARGETS", "run"]

NOW = 10_000.0

# --- strategies --------------------------------------------------------------------------

#: Text that GoCD names are made of, plus what breaks naive parsers.
_NAME = st.text(alphabet=string.ascii_letters + string.digits + "-_.%/ <>&'\"é\x00", max_size=12)
_WORDS = st.sampled_from(["linux", "LINUX", "docker", "java", "win", "gpu", " ", "", "a,b", "prod", "qa"])
_JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _fuzzing(examples: int) -> Any:
    """Hypothesis settings of every target: ``examples`` payloads, reproducible (derandomized, no
    example database), no deadline or health check (payloads are built to be slow and odd)."""
    return settings(
        max_examples=examples,
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


def _xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\x00", "")


@st.composite
def feeds(draw: st.DrawFn) -> bytes:
    """A scheduled-jobs document shaped like GoCD's, with random (often wrong) contents,
    sometimes cut short or garbled."""
    jobs = []
    for _ in range(draw(st.integers(0, 4))):
        parts = draw(
            st.one_of(
                st.lists(_NAME, min_size=0, max_size=7).map("/".join),
                st.tuples(_NAME, st.integers(-2, 10**6), _NAME, st.integers(0, 3), _NAME).map(
                    lambda t: "/".join(map(str, t))
                ),
            )
        )
        attrs = ""
        if draw(st.booleans()):
            attrs += f' name="{_xml_text(draw(_NAME)).replace(chr(34), "&quot;")}"'
        if draw(st.booleans()):
            attrs += f' id="{_xml_text(draw(st.text(alphabet="0123456789²٣x-", max_size=6)))}"'
        children = [f"<buildLocator>{_xml_text(parts)}</buildLocator>"] if draw(st.integers(0, 9)) else []
        if draw(st.booleans()):
            children.append(f"<environment>{_xml_text(draw(_NAME))}</environment>")
        resources = draw(st.lists(_WORDS, max_size=3))
        children.append(
            "<resources>" + "".join(f"<resource>{r}</resource>" for r in resources) + "</resources>"
        )
        if draw(st.booleans()):
            children.append(
                f'<environmentVariables><variable name="{_xml_text(draw(_NAME)).replace(chr(34), "")}">'
                f"{_xml_text(draw(_NAME))}</variable></environmentVariables>"
            )
        rel = draw(st.sampled_from(["alternate", "self", "other"]))
        children.append(f'<link rel="{rel}" href="http://gocd/go/tab/build/detail/{_xml_text(parts)}"/>')
        draw(st.randoms()).shuffle(children)
        jobs.append(f"<job{attrs}>{''.join(children)}</job>")
    root = draw(st.sampled_from(["scheduledJobs", "scheduledJobs", "scheduledJobs", "feed", "html"]))
    doc = f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>{"".join(jobs)}</{root}>'
    data = doc.encode("utf-8")
    cut = draw(st.sampled_from(["whole", "whole", "cut", "garble"]))
    if cut == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif cut == "garble" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at + 1 :]
    return data


@st.composite
def agent_objects(draw: st.DrawFn) -> Any:
    """An agents-API agent object with each field of a random type (mostly the right one)."""

    def field(right: st.SearchStrategy[Any]) -> Any:
        return draw(st.one_of(right, right, right, _JSON))

    obj: dict[str, Any] = {
        "uuid": field(st.uuids().map(str)),
        "hostname": field(_NAME),
        "agent_config_state": field(st.sampled_from(["Enabled", "Disabled", "Pending", "Weird"])),
        "agent_state": field(st.sampled_from(["Idle", "Building", "LostContact", "Missing", "Unknown"])),
        "build_state": field(st.sampled_from(["Idle", "Building", "Cancelled", "Unknown"])),
        "resources": field(st.lists(_WORDS, max_size=3) | _WORDS),
        "environments": field(st.lists(st.fixed_dictionaries({"name": _WORDS}), max_size=2)),
        "free_space": field(st.integers() | st.just("unknown")),
        "elastic_agent_id": field(st.none() | _NAME),
        "build_details": field(
            st.fixed_dictionaries(
                {
                    "pipeline_name": _NAME,
                    "_links": st.fixed_dictionaries({"job": st.fixed_dictionaries({"href": _NAME})}),
                }
            )
        ),
    }
    for key in draw(st.lists(st.sampled_from(sorted(obj)), max_size=3)):
        obj.pop(key, None)
    return obj


def agents_payloads() -> st.SearchStrategy[Any]:
    return st.one_of(
        _JSON,
        st.lists(agent_objects(), max_size=4).map(lambda agents: {"_embedded": {"agents": agents}}),
        st.lists(agent_objects(), max_size=2).map(lambda agents: {"_embedded": agents}),
    )


@st.composite
def notifications(draw: st.DrawFn) -> bytes:
    """A stage-status or agent-status body shaped like GoCD's (v1 to v4), each field of a
    random type now and then; or any JSON; sometimes cut short."""

    def field(right: st.SearchStrategy[Any]) -> Any:
        return draw(st.one_of(right, right, right, right, _JSON))

    kind = draw(st.sampled_from(["stage", "stage", "agent", "any"]))
    document: Any
    if kind == "stage":
        jobs = [
            {"name": field(_NAME), "state": field(st.sampled_from(["Scheduled", "Assigned", "Building"]))}
            for _ in range(draw(st.integers(0, 3)))
        ]
        stage = {
            "name": field(_NAME),
            "counter": field(st.integers(-1, 10**20).map(str) | st.integers(-1, 3) | st.just("١٢")),
            "state": field(st.sampled_from(["Building", "Passed", "Failed", "Cancelled", ""])),
            "jobs": field(st.just(jobs)),
        }
        if draw(st.booleans()):
            stage["result"] = field(st.sampled_from(["Unknown", "Passed"]))
        document = {
            "pipeline": field(
                st.just({"name": field(_NAME), "counter": field(st.just("42")), "stage": stage})
            )
        }
    elif kind == "agent":
        document = {
            "uuid": field(st.uuids().map(str)),
            "agent_state": field(st.sampled_from(["Idle", "Building", "LostContact"])),
        }
        for key in draw(
            st.lists(st.sampled_from(["build_state", "agent_config_state", "host_name"]), unique=True)
        ):
            document[key] = field(_NAME)
    else:
        document = draw(_JSON)
    data = json.dumps(document).encode()
    if draw(st.integers(0, 5)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


#: INI values: valid ones for some key, and what breaks naive checks.
_INI_VALUES = st.one_of(
    st.sampled_from(
        [
            "10s",
            "5m",
            "0",
            "-1",
            "1e400",
            "nan",
            "inf",
            "250ms",
            "366d",
            "9" * 30,
            "1.5",
            "2G",
            "512M",
            "true",
            "no",
            "yes",
            "maybe",
            "http://127.0.0.1:8153/go",
            "https://gocd/go/",
            "ftp://x/go",
            "http://127.0.0.1:5050",
            "zk://127.0.0.1:2181/mesos",
            "127.0.0.1:0",
            "[::1]:9404",
            ":",
            "host:99999",
            "builtin",
            "pymesos",
            "docker",
            "mesos",
            "bridge",
            "user",
            "DEBUG",
            "json",
            "linux, docker",
            "a:IS:b",
            "rack:LIKE:a.*",
            "/h:/c:rw",
            "/h:/c:xx",
            "'quoted'",
            '"',
            "${X}",
            "",
            " ",
            "é",
            "gocd-mesos-",
            "a" * 70,
            "$$",
            "#",
            ";",
            "=",
        ]
    ),
    st.text(max_size=16).filter(lambda t: "\n" not in t and "\r" not in t),
)


def _spec_keys() -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    section = ""
    for line in config.spec_lines():
        text = line.strip()
        if text.startswith("[") and not text.startswith("[["):
            section = text.strip("[]")
        elif "=" in text and not text.startswith("#") and section != "profiles":
            keys.setdefault(section, []).append(text.split("=", 1)[0].strip())
    keys["profiles"] = [
        "image",
        "cpus",
        "mem",
        "disk",
        "resources",
        "environments",
        "min",
        "max",
        "idle_timeout",
        "max_jobs",
        "constraints",
        "containerizer",
        "force_pull",
        "network",
        "network_name",
        "volumes",
    ]
    return keys


_KEYS = _spec_keys()


@st.composite
def ini_texts(draw: st.DrawFn) -> list[str]:
    """An INI file with the spec's sections and keys (some misspelt, some missing), random
    values, profiles with random names and env subsections; sometimes garbled lines."""
    lines: list[str] = []
    for section, keys in _KEYS.items():
        if draw(st.integers(0, 9)) == 0:
            continue  # a missing section
        lines.append(f"[{section}]")
        if section == "profiles":
            for _ in range(draw(st.integers(0, 3))):
                lines.append(
                    f"[[{draw(st.sampled_from(['linux', 'Linux_Big', 'linux-big', 'a b', '', 'x' * 70]))}]]"
                )
                for key in draw(st.lists(st.sampled_from(keys), max_size=8, unique=True)):
                    lines.append(f"{key} = {draw(_INI_VALUES)}")
                if draw(st.booleans()):
                    lines.append("[[[env]]]")
                    lines.append(f"{draw(st.sampled_from(['A', 'B_2', '1x', 'é']))} = {draw(_INI_VALUES)}")
            continue
        for key in draw(st.lists(st.sampled_from(keys), max_size=len(keys), unique=True)):
            name = key if draw(st.integers(0, 15)) else key[:-1] + "x"
            lines.append(f"{name} = {draw(_INI_VALUES)}")
    if draw(st.integers(0, 4)) == 0 and lines:
        at = draw(st.integers(0, len(lines) - 1))
        lines[at] = draw(
            st.sampled_from(["[", "[[x]", "key", "= value", "[gocd", '"a" = "b', "a = '''", "a = x,"])
        )
    return lines


_SETTINGS_DICTS = st.dictionaries(
    st.sampled_from(sorted(_KEYS)) | st.text(max_size=6),
    st.dictionaries(
        st.sampled_from(sorted({k for keys in _KEYS.values() for k in keys})) | st.text(max_size=6),
        _INI_VALUES | st.integers() | st.floats() | st.booleans() | st.lists(_WORDS, max_size=3) | st.none(),
        max_size=6,
    ),
    max_size=6,
)


@st.composite
def decisions(draw: st.DrawFn) -> tuple[Decide, tuple[Profile, ...], JudgeSettings]:
    """Profiles, a backlog (fresh, stale or missing) and a fleet of ours in random states."""
    names = draw(
        st.lists(st.sampled_from(["linux", "big", "win", "gpu"]), min_size=1, max_size=4, unique=True)
    )
    profiles = []
    for name in names:
        low = draw(st.integers(0, 3))
        profiles.append(
            Profile(
                name=name,
                image="img",
                cpus=draw(st.sampled_from([0.5, 1.0, 2.0])),
                mem=draw(st.sampled_from([512.0, 1024.0])),
                resources=tuple(draw(st.lists(_WORDS.filter(str.strip), max_size=2, unique=True))),
                environments=tuple(draw(st.lists(st.sampled_from(["prod", "qa"]), max_size=1))),
                min=low,
                max=draw(st.integers(low, 6)),
                idle_timeout=draw(st.sampled_from([0.0, 30.0, 300.0])),
                max_jobs=draw(st.integers(0, 2)),
            )
        )
    jobs = tuple(
        ScheduledJob(
            locator=f"p/{n}/s/1/j",
            pipeline="p",
            pipeline_counter=n,
            stage="s",
            stage_counter=1,
            name=draw(st.sampled_from(["j", "j-runOnAll-1", "j-runInstance-2"])),
            environment=draw(st.sampled_from([None, "prod", "qa", "PROD", " "])),
            resources=frozenset(draw(st.lists(_WORDS, max_size=2))),
            elastic_profile_id=draw(st.sampled_from([None, None, None, "k8s"])),
        )
        for n in range(draw(st.integers(0, 12)))
    )
    fleet = []
    go_agents = []
    for n in range(draw(st.integers(0, 10))):
        state = draw(st.sampled_from(list(FleetState)))
        profile = draw(st.sampled_from([*names, "removed"]))
        uuid = f"u{n}" if draw(st.booleans()) else None
        fleet.append(
            FleetAgent(
                task_id=f"gocd-mesos-{profile}-{n:08x}",
                profile=profile,
                state=state,
                agent_uuid=uuid,
                idle_since=draw(st.sampled_from([None, 0.0, NOW - 10, NOW])),
                jobs_done=draw(st.integers(0, 3)),
                retiring=draw(st.booleans()),
            )
        )
        if uuid and draw(st.booleans()):
            go_agents.append(
                GoAgent(
                    uuid=uuid,
                    hostname=f"gocd-mesos-{profile}-{n:08x}",
                    config_state=draw(st.sampled_from(["Enabled", "Disabled", "Pending"])),
                    agent_state=draw(st.sampled_from(["Idle", "Building", "LostContact"])),
                    resources=tuple(draw(st.lists(_WORDS, max_size=2))),
                    environments=tuple(draw(st.lists(st.sampled_from(["prod", "qa"]), max_size=1))),
                )
            )
    for n in range(draw(st.integers(0, 3))):
        go_agents.append(
            GoAgent(
                uuid=f"other{n}",
                hostname=f"other-{n}",
                config_state="Enabled",
                agent_state="Idle",
                resources=("linux",),
            )
        )
    backoff = tuple(
        ProfileBackoff(
            profile=name,
            failures=draw(st.integers(0, 3)),
            until=draw(st.sampled_from([0.0, NOW - 1, NOW + 30])),
            probe_registered=draw(st.booleans()),
        )
        for name in draw(st.lists(st.sampled_from(names), max_size=2, unique=True))
    )
    freshness = draw(st.sampled_from(["fresh", "fresh", "fresh", "stale", "missing", "unavailable"]))
    backlog = None
    if freshness != "missing":
        age = 600.0 if freshness == "stale" else 1.0
        backlog = BacklogSnapshot(jobs=jobs, agents=tuple(go_agents), fetched_at=NOW - age)
    unavailable = GoCDUnavailable(reason="down", since=NOW - 5) if freshness == "unavailable" else None
    judge = JudgeSettings(
        max_launch_per_cycle=draw(st.integers(1, 20)),
        scale_down=draw(st.booleans()),
        stale_after=60.0,
    )
    request = Decide(
        backlog=backlog, fleet=FleetView(agents=tuple(fleet), backoff=backoff), gocd_unavailable=unavailable
    )
    return request, tuple(profiles), judge


# --- properties ----------------------------------------------------------------------------


def _check_plan(plan: ScalePlan, request: Decide, profiles: tuple[Profile, ...]) -> None:
    """Each waiting job exactly one reason, in order; each profile within max; only idle agents
    of ours drained; nothing drained on stale data."""
    jobs = request.backlog.jobs if request.backlog is not None else ()
    assert [r.locator for r in plan.reasons] == [j.locator for j in jobs], "one reason per job, in order"
    assert all(r.reason in REASONS for r in plan.reasons), "a known reason"
    active: dict[str, int] = {}
    for agent in request.fleet.agents:
        if agent.state not in (FleetState.GONE, FleetState.FAILED, FleetState.LOST):
            active[agent.profile] = active.get(agent.profile, 0) + 1
    launched = dict(plan.launches)
    assert set(launched) <= {p.name for p in profiles}, "launches only for configured profiles"
    for profile in profiles:
        n = launched.get(profile.name, 0)
        assert n >= 0
        assert n == 0 or active.get(profile.name, 0) + n <= profile.max, f"{profile.name} beyond max"
    idle = {a.task_id for a in request.fleet.agents if a.state == FleetState.IDLE}
    assert set(plan.drains) <= idle, f"drains {set(plan.drains) - idle}, not idle agents"
    assert len(set(plan.drains)) == len(plan.drains), "no agent drained twice"
    if plan.stale:
        assert not plan.drains, "nothing drained on stale data"


class _Wire(requests.adapters.BaseAdapter):
    """A transport that answers every request with the payload under test."""

    def __init__(self) -> None:
        super().__init__()
        self.answer: tuple[int, str, bytes] = (200, "application/json", b"{}")

    def send(self, request: requests.PreparedRequest, **kw: Any) -> requests.Response:  # type: ignore[override]
        status, ctype, body = self.answer
        response = requests.Response()
        response.status_code = status
        response.headers["Content-Type"] = ctype
        response._content = body
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


def _client() -> tuple[GoCDClient, _Wire]:
    wire = _Wire()
    session = requests.Session()
    session.mount("http://", wire)
    settings_ = GoCDSettings(url="http://gocd.invalid/go", username="admin", password=Secret("s3cret"))
    return GoCDClient(settings_, clock=ManualClock(), session=session), wire


_CALLS: dict[str, Callable[[GoCDClient], Any]] = {
    "scheduled_jobs": lambda c: c.with_elastic_profiles(c.scheduled_jobs()),
    "agents": lambda c: c.agents(),
    "agent": lambda c: c.agent("u1"),
    "disable_agent": lambda c: c.disable_agent("u1"),
    "enable_agent": lambda c: c.enable_agent("u1", "h", ["linux"], []),
    "delete_agent": lambda c: c.delete_agent("u1"),
    "completed_job_count": lambda c: c.completed_job_count("u1"),
    "server_version": lambda c: c.server_version(),
}

#: Answers no random strategy builds: deep nesting, as a broken proxy or a hostile server may send.
HOSTILE = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"_embedded": {"agents": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
    b'{"message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b"<scheduledJobs>" + b"<job>" * 100_000 + b"</job>" * 100_000 + b"</scheduledJobs>",
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><scheduledJobs>&a;</scheduledJobs>',
]


# --- the targets -----------------------------------------------------------------------------


def _xml_feed(count: list[int], examples: int) -> Callable[[], None]:
    @_fuzzing(examples)
    @given(st.one_of(feeds(), st.binary(max_size=200)))
    def feed(data: bytes) -> None:
        count[0] += 1
        try:
            jobs = parse_scheduled_jobs(data)
        except ValueError:
            return
        assert isinstance(jobs, tuple) and all(isinstance(j, ScheduledJob) for j in jobs)
        assert all(len(j.locator.split("/")) == 5 for j in jobs), "a locator of five parts"

    return feed


def _json_agents(count: list[int], examples: int) -> Callable[[], None]:
    @_fuzzing(examples)
    @given(agents_payloads(), agent_objects() | _JSON)
    def agents(payload: Any, one: Any) -> None:
        count[0] += 1
        try:
            listed = parse_agents(payload)
        except ValueError:
            pass
        else:
            assert all(isinstance(a, GoAgent) and isinstance(a.uuid, str) and a.uuid for a in listed)
            assert all(isinstance(r, str) for a in listed for r in (*a.resources, *a.environments))
        try:
            agent = parse_agent(one)
        except ValueError:
            pass
        else:
            assert isinstance(agent, GoAgent) and isinstance(agent.hostname, str)
        try:
            total = parse_job_history_total(payload)
        except ValueError:
            pass
        else:
            assert isinstance(total, int) and total >= 0

    return agents


def _client_wire(count: list[int], examples: int) -> Callable[[], None]:
    answers = st.tuples(
        st.sampled_from([200, 200, 200, 201, 204, 301, 400, 401, 403, 404, 406, 422, 500, 503, 999]),
        st.sampled_from(
            [
                "application/json",
                "application/vnd.go.cd.v7+json;charset=utf-8",
                "application/xml",
                "text/html",
                "text/plain",
                "",
            ]
        ),
        st.one_of(
            feeds(),
            agents_payloads().map(lambda p: json.dumps(p).encode()),
            _JSON.map(lambda p: json.dumps(p).encode()),
            st.binary(max_size=100),
        ),
    )

    @_fuzzing(examples)
    @given(st.sampled_from(sorted(_CALLS)), answers)
    def wire(call: str, answer: tuple[int, str, bytes]) -> None:
        count[0] += 1
        client, transport = _client()
        transport.answer = answer
        with contextlib.suppress(GoCDError):
            _CALLS[call](client)

    return wire


def _hostile(count: list[int]) -> Callable[[], None]:
    def hostile() -> None:
        for body in HOSTILE:
            for ctype in ("application/json", "application/xml", "application/vnd.go.cd.v7+json"):
                for status in (200, 500):
                    for call in sorted(_CALLS):
                        count[0] += 1
                        client, transport = _client()
                        transport.answer = (status, ctype, body)
                        try:
                            _CALLS[call](client)
                        except GoCDError:
                            pass
                        except Exception as e:
                            raise AssertionError(
                                f"{call} on a {status} {ctype} answer of {body[:20]!r}... "
                                f"({len(body):,} bytes) raised {type(e).__name__}, not GoCDError"
                            ) from e

    return hostile


def _config_ini(count: list[int], examples: int) -> Callable[[], None]:
    @_fuzzing(examples)
    @given(st.one_of(ini_texts(), ini_texts(), st.lists(st.text(max_size=30), max_size=6)))
    def ini(lines: list[str]) -> None:
        count[0] += 1
        try:
            loaded = config.loads(lines, "fuzz.ini", environ={})
        except ConfigError as e:
            assert e.problems and all(isinstance(p, str) and p.startswith("fuzz.ini") for p in e.problems), (
                e.problems
            )
            return
        assert loaded.profiles, "settings without a profile"

    return ini


def _config_dict(count: list[int], examples: int) -> Callable[[], None]:
    @_fuzzing(examples)
    @given(_SETTINGS_DICTS)
    def from_dict(data: dict[str, Any]) -> None:
        count[0] += 1
        try:
            config.from_dict(data, "fuzz", environ={})
        except ConfigError as e:
            assert e.problems and all(isinstance(p, str) for p in e.problems)

    return from_dict


def _judge(count: list[int], examples: int) -> Callable[[], None]:
    @_fuzzing(examples)
    @given(decisions(), st.sampled_from(["default", "ancestor", "static"]))
    def judge(case: tuple[Decide, tuple[Profile, ...], JudgeSettings], policy: str) -> None:
        count[0] += 1
        request, profiles, judge_settings = case
        if policy == "default":
            plan = decide(request, profiles, judge_settings, NOW)
        elif policy == "ancestor":
            ancestor = AncestorPolicy()
            for look in range(7):  # enough looks in a row to launch
                plan = ancestor.decide(request, profiles, judge_settings, NOW + 120.0 * look)
                _check_plan(plan, request, profiles)
        else:
            plan = StaticPolicy().decide(request, profiles, judge_settings, NOW)
        _check_plan(plan, request, profiles)

    return judge


def _webhook_parse(count: list[int], examples: int) -> Callable[[], None]:
    secret = Secret("hook-secret")

    @_fuzzing(examples)
    @given(
        st.one_of(notifications(), st.binary(max_size=100), st.sampled_from(HOSTILE)),
        st.none() | st.text(max_size=80),
    )
    def webhook(body: bytes, header: str | None) -> None:
        count[0] += 1
        assert signature_matches(secret, body, header) in (True, False)
        try:
            hint = parse_notification(body, NOW)
        except ValueError:
            return
        assert isinstance(hint, GoCDHint) and hint.kind in ("backlog", "agents")
        assert hint.detail.isprintable() and len(hint.detail) <= 200, "a detail fit for one log line"

    return webhook


def _webhook_http(count: list[int], examples: int) -> Callable[[], None]:
    secret = "hook-secret"
    told: list[GoCDHint] = []

    @_fuzzing(examples)
    @given(
        st.sampled_from([f"/hooks/gocd/{secret}", "/hooks/gocd", "/hooks/gocd/nope", "/hooks/gocd/%ff%00"]),
        st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]),
        st.one_of(notifications(), st.binary(max_size=100)),
        st.sampled_from(["sign", "none", "wrong"]),
    )
    def webhook(path: str, method: str, body: bytes, signature: str) -> None:
        count[0] += 1
        headers = {"Content-Type": "application/json"}
        if signature == "sign":
            headers["X-Hub-Signature"] = (
                "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            )
        elif signature == "wrong":
            headers["X-Hub-Signature"] = "sha256=00"
        before = len(told)
        answer = requests.request(
            method, server.url.rstrip("/") + path, data=body, headers=headers, timeout=10
        )
        assert answer.status_code in (200, 400, 401, 404, 405), f"answered {answer.status_code}"
        assert (answer.status_code == 200) == (len(told) == before + 1), "a hint told exactly for a 200"

    server = StatusServer(
        host="127.0.0.1", port=0, clock=ManualClock(), webhook_secret=Secret(secret), on_hint=told.append
    )

    def run() -> None:
        server.start()
        try:
            webhook()
        finally:
            server.stop()

    return run


#: name -> (what is fuzzed, the property, how to build the run from (counter, examples), share of
#: the payload budget; 0 for the fixed hostile set).
TARGETS: dict[str, tuple[str, str, Callable[[list[int], int], Callable[[], None]], float]] = {
    "gocd-feed-xml": (
        "parse_scheduled_jobs: feed-shaped XML (cut, garbled) and bytes",
        "jobs or ValueError",
        _xml_feed,
        0.17,
    ),
    "gocd-agents-json": (
        "parse_agents, parse_agent, parse_job_history_total: agent-shaped and any JSON",
        "agents or ValueError",
        _json_agents,
        0.17,
    ),
    "gocd-client-wire": (
        "GoCDClient's 8 calls over a fake wire: any status, content type, body",
        "a value or GoCDError",
        _client_wire,
        0.14,
    ),
    "gocd-client-hostile": (
        "the same calls, answers nested 100,000 deep, a DOCTYPE",
        "a value or GoCDError",
        lambda count, _: _hostile(count),
        0.0,
    ),
    "config-ini": (
        "config.loads: spec-shaped INI (random values, misspelt keys, garbled lines) and any text",
        "Settings or ConfigError listing problems",
        _config_ini,
        0.13,
    ),
    "config-from-dict": ("config.from_dict: any nested dict", "Settings or ConfigError", _config_dict, 0.08),
    "judge-policies": (
        "default, ancestor, static policies: any backlog, fleet, backoff, staleness",
        "within max, drains only idle, one reason per job",
        _judge,
        0.17,
    ),
    "webhook-bodies": (
        "parse_notification, signature_matches: stage- and agent-status-shaped and any bodies",
        "a hint or ValueError; a yes or no",
        _webhook_parse,
        0.09,
    ),
    "webhook-http": (
        "POST /hooks/gocd[/<secret>] of a real status server: any path, method, body, signature",
        "200 (a hint told), 400, 401, 404 or 405; never 5xx",
        _webhook_http,
        0.05,
    ),
}


def run(total: int, only: list[str] | None = None) -> list[dict[str, Any]]:
    """Fuzz every target with its share of ``total`` payloads; one row per target."""
    import time

    rows = []
    for name, (what, prop, build, share) in TARGETS.items():
        if only and name not in only:
            continue
        count = [0]
        started = time.monotonic()
        row: dict[str, Any] = {"target": name, "fuzzed": what, "property": prop}
        try:
            build(count, max(1, round(total * share)))()
            row["held"] = True
        except Exception as e:
            row["held"] = False
            notes = "\n".join(getattr(e, "__notes__", []))
            row["failure"] = f"{type(e).__name__}: {str(e)[:300]}" + (f"\n{notes[:1500]}" if notes else "")
        row["payloads"] = count[0]
        row["took_seconds"] = round(time.monotonic() - started, 1)
        rows.append(row)
    return rows
