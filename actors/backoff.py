"""Backoff: how long to wait before trying again after failures in a row.

One rule serves every retry of the daemon: the GoCD poller after failed polls, the
registry after a profile's failed launches and after a failed GoCD change of an
agent, and the Mesos driver after a lost subscription. The delay starts at
``initial``, doubles with each further failure and stops growing at ``ceiling``.
Jitter, a factor drawn from an injected :class:`random.Random` (seeded in tests),
keeps many daemons from retrying in step; without it the delays are exact, as the
registry's are.
"""

from __future__ import annotations

import random

__all__ = ["retry_delay"]

#: Doublings beyond which nothing changes but a float overflow (``2.0 ** 1024`` raises).
_MAX_DOUBLINGS = 1000


def retry_delay(
    failures: int,
    initial: float,
    ceiling: float,
    *,
    jitter: tuple[float, float] | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after ``failures`` failures in a row.

    ``initial`` after the first failure (or none), doubling with each further one, at
    most ``ceiling``. With ``jitter=(low, high)`` that delay is multiplied by a factor
    drawn uniformly between ``low`` and ``high`` with ``rng``, so it may leave
    ``[initial, ceiling]``: a caller with hard bounds clamps the result.
    """
    doublings = min(max(0, failures - 1), _MAX_DOUBLINGS)
    delay = float(min(ceiling, initial * 2.0**doublings))
    if jitter is None:
        return delay
    if rng is None:
        raise ValueError("jitter needs an rng")
    low, high = jitter
    return delay * rng.uniform(low, high)
