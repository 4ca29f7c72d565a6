"""The one backoff rule: doubling from an initial delay up to a ceiling, optional jitter."""

from __future__ import annotations

import random

import pytest

from actors.backoff import retry_delay


@pytest.mark.parametrize(
    ("failures", "initial", "ceiling", "expected"),
    [
        (1, 30, 600, 30.0),
        (2, 30, 600, 60.0),
        (3, 30, 600, 120.0),
        (5, 30, 600, 480.0),
        (6, 30, 600, 600.0),
        (7, 30, 600, 600.0),
        (0, 30, 600, 30.0),  # no failure yet: the initial delay
        (1, 20.0, 300.0, 20.0),
        (5, 20.0, 300.0, 300.0),
        (1, 10.0, 5.0, 5.0),  # the ceiling wins even over the initial delay
        (5000, 1.0, 60.0, 60.0),  # no float overflow however long the run of failures
    ],
)
def test_doubles_from_the_initial_delay_up_to_the_ceiling(failures, initial, ceiling, expected):
    delay = retry_delay(failures, initial, ceiling)
    assert delay == expected and isinstance(delay, float)


@pytest.mark.parametrize(
    ("failures", "jitter", "low", "high"),
    [
        (1, (0.75, 1.0), 7.5, 10.0),
        (3, (0.75, 1.0), 30.0, 40.0),
        (1, (0.5, 1.5), 5.0, 15.0),
        (4, (0.5, 1.5), 40.0, 120.0),
        (9, (0.5, 1.5), 50.0, 150.0),  # jitter may leave the ceiling: callers clamp if they must
    ],
)
def test_jitter_multiplies_by_a_factor_from_the_range(failures, jitter, low, high):
    rng = random.Random(failures)
    delays = [retry_delay(failures, 10.0, 100.0, jitter=jitter, rng=rng) for _ in range(50)]
    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > 1


def test_jitter_is_deterministic_with_a_seeded_rng():
    first = [retry_delay(n, 1.0, 60.0, jitter=(0.5, 1.5), rng=random.Random(7)) for n in range(1, 10)]
    again = [retry_delay(n, 1.0, 60.0, jitter=(0.5, 1.5), rng=random.Random(7)) for n in range(1, 10)]
    assert first == again


def test_jitter_needs_an_rng():
    with pytest.raises(ValueError):
        retry_delay(1, 1.0, 60.0, jitter=(0.5, 1.5))
