"""End to end: the daemon with ``[gocd] backlog = auto`` on a GoCD whose feed goes away mid-run.

Simulated time runs 20x faster than real time; every wait is on the GoCD
simulator's change notifications or on messages the daemon publishes.
"""

from __future__ import annotations

import logging

import requests

from actors.messages import BacklogSnapshot, GoCDUnavailable, ScalePlan
from tests.e2e_support import completed, linux

SWITCHED = "serves no scheduled-jobs feed any more"


def test_the_feed_removed_mid_run_is_one_warning_and_no_launch_lost_doubled_or_drained(system, caplog):
    s = system(feed=True, profiles=(linux(idle_timeout=600),))
    assert s.settings.gocd.backlog == "auto"
    # Agents take a while to start: their launches are still in flight when the feed goes.
    s.mesos.inject_fault("slow_launch", delay=40.0)
    first = s.gocd.schedule_jobs("app", job="unit", count=3, resources=["linux"], duration_s=20)
    with caplog.at_level(logging.INFO):
        s.start_daemon()
        s.events.wait_until(
            lambda ms: any(isinstance(m, ScalePlan) and m.launches for m in ms), what="launches from the feed"
        )
        s.gocd.remove_feed()
        s.events.wait_until(
            lambda ms: any(isinstance(m, BacklogSnapshot) and m.backlog_source == "dashboard" for m in ms),
            what="a snapshot from the dashboard",
        )
        second = s.gocd.schedule_jobs("web", job="e2e", count=2, resources=["linux"], duration_s=20)
        state = s.wait_gocd(lambda st: len(completed(st)) == 5, timeout=90, what="all jobs completed")
        s.stop_daemon()
    assert {j["locator"] for j in completed(state)} == {*first, *second}

    snapshots = s.events.of(BacklogSnapshot)
    sources = [snapshot.backlog_source for snapshot in snapshots]
    switch = sources.index("dashboard")
    assert set(sources[:switch]) == {"feed"} and set(sources[switch:]) == {"dashboard"}
    # The poll that found the feed gone read the dashboard at once: the same jobs as the poll
    # before, whole (no GoCD outage, no stale plan, no empty backlog).
    before, at = snapshots[switch - 1], snapshots[switch]
    assert [j.locator for j in at.jobs] == [j.locator for j in before.jobs] == first
    assert [j.resources for j in at.jobs] == [j.resources for j in before.jobs]
    assert s.events.of(GoCDUnavailable) == []
    plans = s.events.of(ScalePlan)
    # (Plans before the first read of GoCD are stale: "no GoCD data yet".)
    assert not any(plan.stale for plan in plans if plan.decided_at >= snapshots[0].fetched_at)
    # One launch per job: the launches in flight at the switch covered the same jobs seen
    # through the dashboard; nothing was drained.
    assert sum(n for plan in plans for _, n in plan.launches) == 5
    assert len(s.all_tasks()) == 5
    assert not any(plan.drains for plan in plans)
    after = [plan for plan in plans if plan.decided_at >= at.fetched_at and plan.reasons]
    assert after and {r.reason for r in after[0].reasons} <= {"agent-starting", "launching"}
    switched = [(r.levelname, r.name) for r in caplog.records if SWITCHED in r.getMessage()]
    assert switched == [("WARNING", "actors.gocd.backlog")]


def test_a_user_who_may_not_read_pipeline_configs_launches_nothing_and_is_not_ready(system, caplog):
    """The dashboard backlog without the right to read pipeline configs: the jobs wait as
    resources-unknown (no profile chosen blind), /readyz names the missing permission, and
    the log says it once."""
    s = system(feed=False, gocd_options={"admin": False})
    s.gocd.schedule_jobs("app", count=2, resources=["linux"], duration_s=60)
    with caplog.at_level(logging.WARNING):
        s.start_daemon()
        url = s.daemon.http_url
        s.events.wait_until(
            lambda ms: (
                sum(
                    isinstance(m, ScalePlan) and [r.reason for r in m.reasons] == ["resources-unknown"] * 2
                    for m in ms
                )
                >= 3
            ),
            what="three plans with both jobs resources-unknown",
        )
        s.events.wait_until(
            lambda _: requests.get(url + "readyz", timeout=10).json()["mesos_subscribed"],
            what="subscribed to Mesos",
        )
        ready = requests.get(url + "readyz", timeout=10)
        s.stop_daemon()
    assert ready.status_code == 503
    body = ready.json()
    assert (body["gocd_fresh"], body["backlog_complete"]) == (True, False)
    (problem,) = body["backlog_problems"]
    assert problem == (
        "user 'admin' may not read the config of pipeline app (403): the resources and elastic profiles of "
        "its jobs are unknown; the dashboard backlog needs a super-admin, or an admin of the pipeline's group"
    )
    plan = next(p for p in s.events.of(ScalePlan) if p.reasons)
    assert {r.detail for r in plan.reasons} == {problem}
    assert not any(p.launches for p in s.events.of(ScalePlan))
    assert s.all_tasks() == []
    assert [r.getMessage() for r in caplog.records if "may not read the config" in r.getMessage()] == [
        problem
    ]
