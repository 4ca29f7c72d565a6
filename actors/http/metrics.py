"""The ``/metrics`` collector: Prometheus metrics read from the latest status snapshot.

:class:`SnapshotCollector` is registered in a :class:`~prometheus_client.CollectorRegistry`
of its own per status server, so two systems embedded in one process never share
or collide on a metric. Every scrape builds the families afresh from the latest
:class:`~actors.http.model.Snapshot` and the clock's ``now``; nothing here is
written by an actor. Every name starts with ``gocd_mesos_``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from actors.http.model import Histogram, Snapshot

__all__ = ["METRIC_NAMES", "SnapshotCollector", "registry_for"]

#: Every metric family exported, as scraped (counters end in ``_total``).
METRIC_NAMES = (
    "gocd_mesos_waiting_jobs",
    "gocd_mesos_oldest_waiting_job_seconds",
    "gocd_mesos_agents",
    "gocd_mesos_launches_total",
    "gocd_mesos_failed_launches_total",
    "gocd_mesos_kills_total",
    "gocd_mesos_decisions_total",
    "gocd_mesos_agent_seconds_total",
    "gocd_mesos_drains_total",
    "gocd_mesos_approvals_total",
    "gocd_mesos_backoff_active",
    "gocd_mesos_gocd_data_age_seconds",
    "gocd_mesos_decision_seconds_count",
    "gocd_mesos_gocd_request_seconds_count",
    "gocd_mesos_gocd_errors_total",
    "gocd_mesos_gocd_notifications_total",
    "gocd_mesos_offers_received_total",
    "gocd_mesos_offers_used_total",
    "gocd_mesos_offers_declined_total",
    "gocd_mesos_job_wait_seconds_count",
    "gocd_mesos_leader",
)


class SnapshotCollector(Collector):
    """Yields the gocd-mesos metrics from ``snapshot()`` at clock time ``now()``."""

    def __init__(self, snapshot: Callable[[], Snapshot], now: Callable[[], float]) -> None:
        self._snapshot = snapshot
        self._now = now

    def collect(self) -> Iterator[Metric]:
        s = self._snapshot()
        now = self._now()
        waiting = GaugeMetricFamily(
            "gocd_mesos_waiting_jobs",
            "Jobs waiting for an agent, by reason and profile.",
            labels=["profile", "reason"],
        )
        for (profile, reason), n in sorted(s.waiting_by().items()):
            waiting.add_metric([profile, reason], n)
        yield waiting
        oldest = GaugeMetricFamily(
            "gocd_mesos_oldest_waiting_job_seconds",
            "Seconds the oldest waiting job has waited since first seen, by profile and reason.",
            labels=["profile", "reason"],
        )
        for (profile, reason), seconds in sorted(s.oldest_wait(now).items()):
            oldest.add_metric([profile, reason], seconds)
        yield oldest
        agents = GaugeMetricFamily(
            "gocd_mesos_agents", "Our agents by profile and state.", labels=["profile", "state"]
        )
        for (profile, state), n in s.agents:
            agents.add_metric([profile, state], n)
        yield agents
        yield CounterMetricFamily(
            "gocd_mesos_launches", "Agents launched since start.", value=s.launched_total
        )
        yield CounterMetricFamily(
            "gocd_mesos_failed_launches",
            "Launches that failed (task failed or lost, or the agent never registered) since start.",
            value=s.failed_total,
        )
        yield CounterMetricFamily("gocd_mesos_kills", "Kill requests sent since start.", value=s.killed_total)
        yield CounterMetricFamily(
            "gocd_mesos_decisions", "Scaling plans made since start.", value=s.decisions
        )
        spent = CounterMetricFamily(
            "gocd_mesos_agent_seconds",
            "Agent-seconds spent since start, by profile and state (starting, idle, building, leaving).",
            labels=["profile", "state"],
        )
        for (profile, state), value in sorted(s.agent_seconds(now).items()):
            spent.add_metric([profile, state], value)
        yield spent
        yield CounterMetricFamily(
            "gocd_mesos_drains",
            "Drains started since start (agents entering a leaving state).",
            value=s.drains_total,
        )
        yield CounterMetricFamily(
            "gocd_mesos_approvals",
            "Pending agents of ours approved through GoCD's API since start (a wrong auto-register key).",
            value=s.approvals_total,
        )
        backoff = GaugeMetricFamily(
            "gocd_mesos_backoff_active",
            "1 while a profile's launches are paused by the crash-loop backoff.",
            labels=["profile"],
        )
        for status in s.profiles:
            backing_off = status.backoff_until is not None and status.backoff_until > now
            backoff.add_metric([status.profile], 1 if backing_off else 0)
        yield backoff
        if s.gocd_read_at is not None:
            yield GaugeMetricFamily(
                "gocd_mesos_gocd_data_age_seconds",
                "Seconds since GoCD was last read successfully (stale past [judge] stale_after).",
                value=now - s.gocd_read_at,
            )
        decisions = HistogramMetricFamily(
            "gocd_mesos_decision_seconds", "Seconds the scaling policy took over each plan."
        )
        decisions.add_metric([], s.decision_seconds.cumulative(), sum_value=s.decision_seconds.total)
        yield decisions
        yield _histograms(
            "gocd_mesos_gocd_request_seconds",
            "Seconds each GoCD read took, by endpoint (scheduled_jobs with its pipeline configs, or "
            "dashboard, stage, pipeline_config and template; agents).",
            "endpoint",
            s.gocd_seconds,
        )
        yield _counters(
            "gocd_mesos_gocd_errors",
            "Failed GoCD polls since start, by the read that failed.",
            "endpoint",
            s.gocd_errors,
        )
        yield _counters(
            "gocd_mesos_gocd_notifications",
            "GoCD's notifications taken by the webhook since start, by kind (backlog: stage-status, "
            "agents: agent-status).",
            "kind",
            s.gocd_notifications,
        )
        for what, value, meaning in (
            ("received", s.offers_received, "Mesos offers received since start."),
            ("used", s.offers_used, "Mesos offers used to launch agents since start."),
            ("declined", s.offers_declined, "Mesos offers declined since start."),
        ):
            yield CounterMetricFamily(f"gocd_mesos_offers_{what}", meaning, value=value)
        yield _histograms(
            "gocd_mesos_job_wait_seconds",
            "Seconds from a waiting job's first sight to the LAUNCH of its agent (step=launch), to "
            "that agent registered in GoCD (step=registered), to the job assigned (step=assigned).",
            "step",
            s.job_seconds,
        )
        yield GaugeMetricFamily(
            "gocd_mesos_leader",
            "1 when this daemon acts: it leads its [ha] election, or runs without [ha]; 0 as a standby.",
            value=1 if s.leading else 0,
        )


def _histograms(
    name: str, documentation: str, label: str, histograms: Iterable[tuple[str, Histogram]]
) -> HistogramMetricFamily:
    """A histogram family with one histogram per value of ``label``."""
    family = HistogramMetricFamily(name, documentation, labels=[label])
    for value, histogram in histograms:
        family.add_metric([value], histogram.cumulative(), sum_value=histogram.total)
    return family


def _counters(
    name: str, documentation: str, label: str, counts: Iterable[tuple[str, int]]
) -> CounterMetricFamily:
    """A counter family with one count per value of ``label``."""
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in counts:
        family.add_metric([value], count)
    return family


def registry_for(snapshot: Callable[[], Snapshot], now: Callable[[], float]) -> CollectorRegistry:
    """A registry of its own holding only a :class:`SnapshotCollector`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot, now))
    return registry
