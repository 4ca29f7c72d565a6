"""The fleet states: their published values and the sets defined beside them."""

from __future__ import annotations

import json

import pytest

from actors.fleet.states import ENDED, IN_FLIGHT, LAUNCH, LEAVING, WORKING, FleetState

#: Every published value, in the machine's order; FleetAgent.state and fleet.json carry these.
VALUES = (
    "requested",
    "launching",
    "running",
    "registered",
    "idle",
    "building",
    "draining",
    "killing",
    "deleting",
    "gone",
    "failed",
    "lost",
)


def test_the_values_are_the_published_strings():
    assert tuple(s.value for s in FleetState) == VALUES


@pytest.mark.parametrize("value", VALUES)
def test_a_state_is_its_string(value):
    state = FleetState(value)
    assert state == value and hash(state) == hash(value)
    assert str(state) == f"{state}" == value  # what a log line shows
    assert json.dumps({"state": state}) == json.dumps({"state": value})


@pytest.mark.parametrize(
    ("group", "values"),
    [
        (LAUNCH, {"requested", "launching", "running"}),
        (WORKING, {"registered", "idle", "building"}),
        (IN_FLIGHT, {"requested", "launching", "running", "registered"}),
        (LEAVING, {"draining", "killing", "deleting"}),
        (ENDED, {"gone", "failed", "lost"}),
    ],
)
def test_the_sets(group, values):
    assert group == values
    # A plain string (a fleet file's, a test's FleetAgent) finds its state in a set.
    assert all(v in group for v in values)
    assert all(isinstance(s, FleetState) for s in group)


def test_launch_working_leaving_and_ended_partition_the_states():
    groups = (LAUNCH, WORKING, LEAVING, ENDED)
    assert sum(len(g) for g in groups) == len(FleetState)
    assert frozenset().union(*groups) == frozenset(FleetState)
