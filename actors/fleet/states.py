"""The states of an agent of ours, and the groups of them the fleet's users count.

The registry moves each agent through these states (its module docstring draws the
machine). :class:`FleetState` is a ``str`` enum: a state compares and hashes equal to its
value, so the values published in :class:`~actors.messages.FleetAgent` and
written to ``fleet.json`` are the same plain strings as before there was an
enum, and a plain string finds its state in the sets below. The sets are
defined here once; the registry, the judge and the sandbox import them.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["ENDED", "IN_FLIGHT", "LAUNCH", "LEAVING", "WORKING", "FleetState"]


class FleetState(str, Enum):
    """One state of the registry's machine; the value is what is published and persisted."""

    #: A record exists and the bridge was told to launch it; no task yet.
    REQUESTED = "requested"
    #: Mesos accepted the task; it is not running yet.
    LAUNCHING = "launching"
    #: The task runs; its GoCD agent has not registered yet.
    RUNNING = "running"
    #: Its GoCD agent registered and has not been seen idle or building yet.
    REGISTERED = "registered"
    #: Enabled in GoCD and not running a job.
    IDLE = "idle"
    #: Running a job.
    BUILDING = "building"
    #: Disabled in GoCD (or being disabled); waits to be read idle before its task is killed.
    DRAINING = "draining"
    #: Its task is being killed.
    KILLING = "killing"
    #: Its task ended; its GoCD agent is being deleted.
    DELETING = "deleting"
    #: Drained and deleted: the record is forgotten.
    GONE = "gone"
    #: The launch failed (the task ended or its agent never registered).
    FAILED = "failed"
    #: A working agent's task ended under it.
    LOST = "lost"

    def __str__(self) -> str:
        # The value, on every Python version (3.10's str() of a mixed-in enum is "FleetState.IDLE").
        return self.value


#: Launched, but no GoCD agent registered yet.
LAUNCH = frozenset({FleetState.REQUESTED, FleetState.LAUNCHING, FleetState.RUNNING})
#: A GoCD agent that registered and is not leaving.
WORKING = frozenset({FleetState.REGISTERED, FleetState.IDLE, FleetState.BUILDING})
#: What the judge counts as a launch in flight: no agent a job could be given to yet.
IN_FLIGHT = LAUNCH | {FleetState.REGISTERED}
#: A drain under way.
LEAVING = frozenset({FleetState.DRAINING, FleetState.KILLING, FleetState.DELETING})
#: No longer occupies a slot.
ENDED = frozenset({FleetState.GONE, FleetState.FAILED, FleetState.LOST})
