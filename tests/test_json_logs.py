"""``--log-format json``: the key lines carry their stable fields."""

from __future__ import annotations

import io
import json
import logging

import pytest

from actors.cli import LOG_FIELDS, JsonFormatter
from actors.fleet.judge import Judge
from actors.messages import AgentDisabled, AgentRead, BacklogSnapshot, Decide, FleetView
from tests import test_judge
from tests.test_registry import Harness, agent


@pytest.fixture
def json_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("actors")
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_a_launch_decision_names_its_event_and_profile(clock, json_lines):
    judge = Judge(profiles=(test_judge.SMALL,), settings=test_judge.SETTINGS, clock=clock)
    backlog = BacklogSnapshot(jobs=(test_judge.job(1),), agents=(), fetched_at=clock.now())
    judge.on_receive(Decide(backlog=backlog, fleet=FleetView()))
    (launch,) = [line for line in json_lines() if line.get("event") == "launch_decided"]
    assert launch["profile"] == "small" and launch["message"] == "Launching 1 agent(s) for profile small"
    assert not {"task_id", "agent_uuid", "job", "reason"} & launch.keys()


def test_drain_and_registration_lines_carry_task_agent_profile_and_reason(clock, tmp_path, json_lines):
    h = Harness(clock, tmp_path)
    (t,) = h.launch()
    h.task(t, "TASK_RUNNING")
    h.snapshot(agent(t))
    h.plan(drains=[t])
    h.send(AgentDisabled(agent=agent(t, config="Disabled")))
    h.send(AgentRead(agent=agent(t, config="Disabled")))
    by_event = {line["event"]: line for line in json_lines() if "event" in line}
    ours = {"task_id": t, "profile": "linux", "agent_uuid": f"uuid-{t}"}
    assert {k: by_event["agent_registered"][k] for k in ours} == ours
    drain = by_event["drain_started"]
    assert {k: drain[k] for k in ours} == ours and drain["reason"] == "idle"
    assert drain["message"] == f"Draining agent {t} (idle)"
    assert set(LOG_FIELDS) >= {k for line in json_lines() for k in line} - {
        "time",
        "level",
        "logger",
        "thread",
        "message",
    }
