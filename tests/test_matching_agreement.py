"""The daemon's matching rule and the GoCD simulator's agree; the simulator shares no code with the daemon.

``actors.fleet.matching`` is how the daemon predicts whether GoCD would give an
agent a job; ``actors.sim.gocd_assignment`` is GoCD's rule as the simulator runs
it, written separately from GoCD's source. A property test draws random
resources, environments, case variants, elastic and pinned jobs and asks both.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.fleet.matching import job_fits_agent
from actors.gocd.client import parse_agent
from actors.sim.gocd_assignment import EnvironmentPipelineMatchers, find_matching_job

SIM = Path(__file__).resolve().parents[1] / "actors" / "sim"

#: Resource names as GoCD allows them (``ResourceConfig.VALID_REGEX``: word characters,
#: ``-``, ``.``, ``|`` and inner spaces), few enough that jobs and agents often share some.
RESOURCES = ("linux", "docker", "java-17", "x86.64", "win_10", "gpu|cuda", "big disk")
#: Environment names as GoCD allows them.
ENVIRONMENTS = ("prod", "staging", "qa-1", "uat.eu")

#: The agent under test; a pinned job is always pinned elsewhere (the daemon's agents are new).
UUID = "agent-under-test"


@dataclass(frozen=True)
class Agent:
    uuid: str
    resources: tuple[str, ...]
    environments: tuple[str, ...]
    elastic_agent_id: str | None
    elastic_plugin_id: str | None


@dataclass(frozen=True)
class Job:
    pipeline: str
    resources: tuple[str, ...]
    environment: str | None
    elastic_profile_id: str | None
    agent_uuid: str | None


@st.composite
def case_variant(draw: st.DrawFn, name: str, pad: bool = True) -> str:
    """``name`` in lower, upper or mixed case, maybe with the blanks GoCD trims."""
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    cased = "".join(c.upper() if flip else c.lower() for c, flip in zip(name, flips, strict=True))
    margin = draw(st.sampled_from(("", " "))) if pad else ""
    return f"{margin}{cased}{margin}"


def names(pool: tuple[str, ...], max_size: int) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(pool).flatmap(case_variant), max_size=max_size).map(tuple)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Job, Agent, tuple[str, ...]]:
    """A job, an agent, and the environments GoCD's config defines."""
    defined = tuple(draw(st.lists(st.sampled_from(ENVIRONMENTS), unique=True, max_size=3)))
    environment = draw(
        st.none()
        | (st.sampled_from(defined).flatmap(lambda n: case_variant(n, False)) if defined else st.none())
    )
    job = Job(
        pipeline="app",
        resources=draw(names(RESOURCES, 3)),
        environment=environment,
        # Mostly plain jobs, so that resources and environments decide often enough.
        elastic_profile_id=draw(st.sampled_from((None, None, None, "k8s-small"))),
        agent_uuid=draw(st.sampled_from((None, None, None, "some-other-agent"))),
    )
    agent = Agent(
        uuid=UUID,
        resources=draw(names(RESOURCES, 6)),
        # Defined or not: GoCD stores any name on an agent and ignores those it defines nowhere.
        environments=draw(names(ENVIRONMENTS, 3)),
        # Elastic ids absent, blank or set.
        elastic_agent_id=draw(st.sampled_from((None, "", " ", "ea-1"))),
        elastic_plugin_id=draw(st.sampled_from((None, "", " ", "cd.go.k8s"))),
    )
    return job, agent, defined


def agents_api(agent: Agent, defined: tuple[str, ...]) -> dict[str, object]:
    """The agent as GoCD's agents API shows it (``gocd-api.md`` 2.2): a name no environment
    defines has origin ``unknown``; the elastic ids instead of the resources for an elastic
    agent (both ids set and not blank: ``AgentRepresenter``, ``Agent.isElastic``)."""
    known = {d.casefold() for d in defined}
    obj: dict[str, object] = {
        "uuid": agent.uuid,
        "hostname": "h",
        "agent_config_state": "Enabled",
        "agent_state": "Idle",
        "environments": [
            {"name": e.strip(), "origin": {"type": "gocd" if e.strip().casefold() in known else "unknown"}}
            for e in agent.environments
        ],
    }
    if (agent.elastic_agent_id or "").strip() and (agent.elastic_plugin_id or "").strip():
        obj["elastic_agent_id"], obj["elastic_plugin_id"] = agent.elastic_agent_id, agent.elastic_plugin_id
    else:
        obj["resources"] = list(agent.resources)
    return obj


def daemon_says(job: Job, agent: Agent, defined: tuple[str, ...]) -> bool:
    """The daemon's answer, from the agent as the agents API shows it: may it take this job?"""
    go_agent = parse_agent(agents_api(agent, defined))
    if job.agent_uuid is not None:
        # The judge drops run-on-all jobs (named <job>-runOnAll-<n>) before it asks matching:
        # they are pinned to an agent that exists, never to one the daemon launches.
        return False
    return job_fits_agent(
        job.resources,
        job.environment,
        go_agent.resources,
        go_agent.environments,
        job_is_elastic=job.elastic_profile_id is not None,
        agent_is_elastic=go_agent.is_elastic,
    )


def simulator_says(job: Job, agent: Agent, defined: tuple[str, ...]) -> bool:
    """The simulated GoCD server's answer, with this job alone in its queue."""
    return find_matching_job(agent, [job], EnvironmentPipelineMatchers(defined)) is job


# Derandomized (the same 400 examples every run, no example database): CI stays repeatable.
@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(cases())
def test_the_daemon_and_the_simulator_agree(case):
    job, agent, defined = case
    assert daemon_says(job, agent, defined) == simulator_says(job, agent, defined)


def test_an_agent_in_an_environment_gocd_defines_nowhere_takes_jobs_of_no_environment():
    # GoCD joins an agent only to environments that exist (EnvironmentConfigService.find).
    job = Job("app", ("linux",), None, None, None)
    agent = Agent(UUID, ("linux",), ("nowhere", "prod"), None, None)
    assert simulator_says(job, agent, defined=("staging",)) is True
    assert daemon_says(job, agent, defined=("staging",)) is True
    # Once one of its names exists, it is in that environment only.
    assert simulator_says(job, agent, defined=("prod",)) is False
    assert daemon_says(job, agent, defined=("prod",)) is False


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved, ``from x import y`` as ``x.y``."""
    package = "actors.sim"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("module", sorted(SIM.glob("*.py")), ids=lambda p: p.name)
def test_the_simulators_import_nothing_of_the_daemon(module):
    ours = {name for name in _imported_modules(module) if name == "actors" or name.startswith("actors.")}
    allowed = {"actors", "actors.__version__", "actors.clock"}
    strays = {
        name for name in ours if name not in allowed and not name.startswith(("actors.clock.", "actors.sim"))
    }
    assert not strays, f"{module.name} imports {sorted(strays)}"
    assert not {n for n in ours if n.startswith(("actors.gocd", "actors.mesos", "actors.fleet"))}


def test_loading_the_simulators_loads_nothing_of_the_daemon():
    code = (
        "import sys, actors.sim.gocd, actors.sim.gocd_agent, actors.sim.mesos; "
        "print(' '.join(m for m in sys.modules if m.startswith('actors')))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert {m for m in loaded if not m.startswith("actors.sim")} == {"actors", "actors.clock"}
