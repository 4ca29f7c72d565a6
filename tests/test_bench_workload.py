"""The benchmark's generated CI day and its static-fleet model: reproducible and sane; and the
figures a trace replay makes of the daemon process's samples."""

from __future__ import annotations

import pytest

from bench.trace import _daemon_figures
from bench.workload import PROFILES, generate, profile_of, static_waits


def test_the_same_seed_gives_the_same_day_and_another_seed_another():
    assert generate(7, pipelines=10, peak_per_hour=10) == generate(7, pipelines=10, peak_per_hour=10)
    assert generate(7, pipelines=10, peak_per_hour=10) != generate(8, pipelines=10, peak_per_hour=10)


def test_the_day_peaks_in_working_hours_and_has_its_shapes():
    trace = generate()
    hours = [int(run.at // 3600) for run in trace.runs]
    working = sum(1 for h in hours if 9 <= h < 18)
    assert working > 3 * (len(hours) - working) / 2  # most of the traffic in 9 of 24 hours
    for pipeline in trace.pipelines:
        assert 1 <= len(pipeline.stages) <= 4
        assert all(1 <= len(stage.jobs) <= 12 for stage in pipeline.stages)
        for stage in pipeline.stages:
            assert {profile_of(job, pipeline.environment) for job in stage.jobs} <= set(PROFILES)
    assert all(10 <= s <= 90 for s in trace.agent_starts)


def test_a_bigger_static_fleet_never_waits_longer_and_a_huge_one_never_waits():
    trace = generate(pipelines=12, peak_per_hour=12, hours=6, start_hour=8)
    small = sorted(w for w, _, _ in static_waits(trace, dict.fromkeys(PROFILES, 2)))
    large = sorted(w for w, _, _ in static_waits(trace, dict.fromkeys(PROFILES, 6)))
    huge = static_waits(trace, dict.fromkeys(PROFILES, 500))
    assert len(small) == len(large) == len(huge) == trace.jobs
    assert small[-1] > large[-1] and sum(small) > sum(large)
    assert all(w == 0 for w, _, _ in huge)
    # Later stages are scheduled after earlier ones finished: stage indexes 0..3.
    assert {s for _, s, _ in huge} <= {0, 1, 2, 3} and any(s > 0 for _, s, _ in huge)
    assert {p for _, _, p in huge} <= set(PROFILES)


def test_the_daemon_figures_of_a_replay_are_its_peak_memory_and_cpu_share_at_real_speed():
    mb = 2**20
    # (simulated seconds since the start, resident bytes, CPU seconds), once a simulated minute:
    # 2 h of 0.6 CPU s per simulated minute, with one busy hour of 1.8 s per minute in between.
    samples, cpu = [], 0.0
    for minute in range(181):
        samples.append((60.0 * minute, (40 + minute % 3) * mb, cpu))
        cpu += 1.8 if 60 <= minute < 120 else 0.6
    figures = _daemon_figures(samples, peak_rss=50 * mb, scale=60.0)
    assert figures["peak_rss_mb"] == 50.0
    assert figures["median_rss_mb"] == 41.0
    assert figures["cpu_seconds"] == pytest.approx(60 * 0.6 * 2 + 60 * 1.8)
    # 180 CPU seconds over 3 simulated hours: 1.67 % of a CPU at real speed (100 % at x60),
    # and 108 s, 3 %, in the busiest hour.
    assert figures["cpu_percent_real_speed"] == pytest.approx(100 * 180 / 10800)
    assert figures["cpu_percent_busiest_hour"] == pytest.approx(3.0)
    assert figures["cpu_percent_at_scale"] == pytest.approx(100.0)
