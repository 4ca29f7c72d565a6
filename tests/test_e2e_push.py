"""Push end to end: the GoCD simulator's notification plugin posts to the daemon's webhook.

Both simulators and the daemon share one ScaledClock. The daemon polls every 30 s of that clock;
a job scheduled just after a poll gets its agent's LAUNCH accepted by the Mesos simulator long
before the next poll, because the plugin's notification made the poller read at once. The
ordering is asserted on the clock, not on wall time.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any

import pytest

from actors.config import Secret
from actors.messages import BacklogSnapshot, GoCDHint, TaskLaunched

#: Not one of the session's watched secrets: the simulated plugin, like GoCD's, logs the URL of a
#: post that failed (one cut short as the daemon stops, say), and that URL holds the secret. The
#: daemon's own log lines are searched for it below.
SECRET = "e2e-hook-5d1f0c9a7b3e2468ace0"
POLL = 30.0


class Timeline:
    """A listener that notes the clock time each published message reached it."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.seen: list[tuple[float, Any]] = []
        self.cond = threading.Condition()

    def __call__(self, message: Any) -> None:
        with self.cond:
            self.seen.append((self.clock.now(), message))
            self.cond.notify_all()

    def wait(self, kind: type, count: int = 1, timeout: float = 30.0) -> list[tuple[float, Any]]:
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.of(kind)) >= count, timeout)
            assert ok, f"no {count} {kind.__name__} within {timeout}s"
            return self.of(kind)

    def of(self, kind: type) -> list[tuple[float, Any]]:
        return [(t, m) for t, m in self.seen if isinstance(m, kind)]


@pytest.mark.parametrize("style", ["do", "webhooker"])
def test_a_notified_job_is_launched_for_before_the_next_poll(system, style, caplog):
    # A slow clock: 30 s of it is 6 s of wall time, ample for the hinted path to beat the poll.
    s = system(scale=5.0, poll_interval=POLL)
    s.settings = replace(s.settings, gocd=replace(s.settings.gocd, webhook_secret=Secret(SECRET)))
    caplog.set_level(logging.DEBUG)
    s.start_daemon()
    timeline = Timeline(s.clock)
    s.daemon.subscribe(timeline)
    if style == "do":
        hook = f"{s.daemon.http_url}hooks/gocd/{SECRET}"
        s.gocd.notify(stage_urls=[hook], agent_urls=[hook], style="do")
    else:
        s.gocd.notify(stage_urls=[f"{s.daemon.http_url}hooks/gocd"], style="webhooker", secret=SECRET)
    try:
        # The daemon's first poll, at start; the next one is due POLL later.
        (first,) = s.events.wait_for(BacklogSnapshot)
        next_poll = first.fetched_at + POLL
        assert s.clock.now() < next_poll - 20, "the test machine is too slow for this test"

        s.gocd.schedule_jobs("app", resources=["linux"], duration_s=5)
        ((launched_at, launched),) = timeline.wait(TaskLaunched, timeout=60)
        assert launched_at < next_poll, (launched_at, next_poll)
        assert launched.profile == "linux"

        # The read that found the job was the hint's, not a poll.
        hints = [m for _, m in timeline.of(GoCDHint)]
        assert hints and hints[0].kind == "backlog" and hints[0].detail.startswith("app/1/build/1")
        found = next(m for m in s.events.of(BacklogSnapshot) if m.jobs)
        assert first.fetched_at < found.fetched_at < next_poll
        assert [j.locator for j in found.jobs] == ["app/1/build/1/job"]
        # And the plugin's posts were all taken.
        deliveries = list(s.gocd.notifier.deliveries)
        assert deliveries and all(d.status == 200 and d.ok for d in deliveries)
        if style == "do":
            # The agent's registration and its job arrive as agent-status hints too.
            s.wait_gocd(
                lambda st: any(j["state"] == "completed" for j in st["jobs"]), timeout=60, what="job done"
            )
            timeline.wait(GoCDHint, count=3)
            assert {m.kind for _, m in timeline.of(GoCDHint)} == {"backlog", "agents"}
        # One agent for one job, whatever the hints and polls read.
        assert len(timeline.of(TaskLaunched)) == 1
        daemon_lines = [r.getMessage() for r in caplog.records if not r.name.startswith("actors.sim")]
        assert "Push notifications are arriving from GoCD" in "\n".join(daemon_lines)
        assert not [line for line in daemon_lines if SECRET in line]
    finally:
        s.gocd.notify()  # uninstalled before the daemon stops: no post to a closed hook
