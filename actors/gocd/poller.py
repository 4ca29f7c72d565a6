"""The GoCD poller: on every Poll, read the backlog (and the agents when due), publish one snapshot.

:class:`GoCDPoller` is the only actor that talks to GoCD. It owns the
:class:`~actors.gocd.client.GoCDClient` (and so the HTTP session) and the
backlog source ``[gocd] backlog`` names (:mod:`actors.gocd.backlog`), polls on a
:class:`~actors.clock.Ticker`, reads sooner when GoCD's notifications hint at a
change, backs off while GoCD fails, and carries out the agent changes other
actors ask for, publishing their outcomes.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

import requests

from actors.backoff import retry_delay
from actors.base import BaseActor, Publisher
from actors.clock import Clock, Ticker, Timer, tell_later
from actors.config import GoCDSettings
from actors.exceptions import GoCDAuthError, GoCDError, GoCDNotFound, GoCDUnprocessable
from actors.gocd.backlog import BacklogSource, make_backlog
from actors.gocd.client import JOB_HISTORY_SINCE, GoCDClient, make_session, version_tuple
from actors.messages import (
    AgentChangeFailed,
    AgentDeleted,
    AgentDeleteRefused,
    AgentDisabled,
    AgentEnabled,
    AgentJobHistory,
    AgentNotFound,
    AgentRead,
    BacklogSnapshot,
    DeleteAgent,
    DisableAgent,
    EnableAgent,
    GoAgent,
    GoCDHint,
    GoCDUnavailable,
    HintedPoll,
    Poll,
    ReadAgent,
    ReadJobHistory,
    Subscribe,
)

__all__ = ["GoCDPoller", "backoff_delay"]

logger = logging.getLogger(__name__)

#: HTTP statuses with which GoCD refuses to delete an agent that is not disabled or
#: still building: 422 since 19.9, 406 before.
DELETE_REFUSED_STATUSES = frozenset({406, 422})
#: Requests that only read, and so are carried out in dry run too.
READS = frozenset({"read", "history"})
#: How log lines word a request whose action is not a verb.
_DOING = {"history": "read the job history of"}
#: Clock seconds a burst of hints is given to settle: the read they ask for waits this long
#: after the first of them, and the others arriving meanwhile join it.
HINT_DEBOUNCE = 0.5
#: At most one hinted read per this many clock seconds.
MIN_HINT_INTERVAL = 2.0


def backoff_delay(attempts: int, interval: float, ceiling: float, rng: random.Random) -> float:
    """Seconds until the next poll after ``attempts`` consecutive failures.

    Doubles from ``interval`` per failure (twice ``interval`` after the first), up
    to ``ceiling``, less up to a quarter of random jitter so that many daemons do
    not retry in step; never shorter than ``interval``.
    """
    delay = retry_delay(attempts + 1, interval, ceiling, jitter=(0.75, 1.0), rng=rng)
    return max(interval, min(ceiling, delay))


class GoCDPoller(BaseActor):
    """Polls GoCD and publishes what it found; carries out agent changes.

    Accepts:

    * :class:`~actors.messages.Poll` (from its own Ticker, every
      ``poll_interval``): read the agents when they are due (every
      ``agents_interval``: a poll in between reuses the last list, and its
      snapshot says how old it is in ``agents_fetched_at``), then the waiting
      jobs from the backlog source (the feed or the dashboard, with their
      elastic profiles): never an agents list newer than the jobs; and
      publish one :class:`~actors.messages.BacklogSnapshot`; on any failure publish
      :class:`~actors.messages.GoCDUnavailable` instead, never a partial
      snapshot, and poll again after an exponential backoff with jitter, up to
      ``max_backoff``; the first success restores ``poll_interval``.
    * :class:`~actors.messages.GoCDHint` (from the webhook): read GoCD soon,
      as a Poll does: ``hint_debounce`` after the first hint of a burst (the
      rest of the burst joins that read), at most once per
      ``min_hint_interval``. Both kinds read the jobs and the agents: a
      stage's change moves agents, and an agent that took a job took it off
      the queue, so neither list may be newer than the other. A regular Poll
      answers the hints that came before it and cancels their read. While
      GoCD fails, hints are ignored: the backoff decides when to try again.
    * :class:`~actors.messages.HintedPoll`: the debounced read, told to itself.
    * :class:`~actors.messages.Subscribe`: add a subscriber.
    * :class:`~actors.messages.EnableAgent`, :class:`~actors.messages.DisableAgent`,
      :class:`~actors.messages.DeleteAgent`: change the agent in GoCD and
      publish :class:`~actors.messages.AgentEnabled`,
      :class:`~actors.messages.AgentDisabled` or
      :class:`~actors.messages.AgentDeleted`; or
      :class:`~actors.messages.AgentNotFound` (404),
      :class:`~actors.messages.AgentDeleteRefused` (422/406: not disabled or
      building), :class:`~actors.messages.AgentChangeFailed` (anything else).
      In dry run the change is only logged and nothing is published.
    * :class:`~actors.messages.ReadAgent`: read one agent, publish
      :class:`~actors.messages.AgentRead` (or AgentNotFound, AgentChangeFailed);
      done in dry run too, since it changes nothing.
    * :class:`~actors.messages.ReadJobHistory`: read how many jobs GoCD has
      finished on the agent, publish :class:`~actors.messages.AgentJobHistory`
      (or AgentNotFound, AgentChangeFailed with action ``history``); done in dry
      run too. GoCD before 19.11.0 has no such history: the answer is then
      AgentChangeFailed without a call, and a warning is logged once.

    Publishes to every subscriber: the messages above, and every GoCDHint it is told
    (the status server counts them).
    """

    def __init__(
        self,
        *,
        settings: GoCDSettings,
        clock: Clock,
        subscribers: tuple[Any, ...] | list[Any] = (),
        session_factory: Callable[[GoCDSettings], requests.Session] = make_session,
        client: GoCDClient | None = None,
        backlog: BacklogSource | None = None,
        dry_run: bool = False,
        rng: random.Random | None = None,
        stop_hook: Callable[[str], None] | None = None,
        hint_debounce: float = HINT_DEBOUNCE,
        min_hint_interval: float = MIN_HINT_INTERVAL,
    ) -> None:
        super().__init__(stop_hook=stop_hook)
        self._settings = settings
        self._clock = clock
        self._publisher = Publisher(subscribers)
        self._client = client or GoCDClient(settings, clock=clock, session=session_factory(settings))
        self._backlog = backlog or make_backlog(settings.backlog, self._client, clock)
        self._dry_run = dry_run
        self._rng = rng or random.Random()
        self._ticker: Ticker | None = None
        self._server_version = ""
        self._warned_no_history = False
        #: Clock time of the first failure of the current run of failures, or None.
        self._failing_since: float | None = None
        self._attempts = 0
        #: The last agents list read, and the clock time that read began (None: never read).
        self._agents: tuple[GoAgent, ...] = ()
        self._agents_at: float | None = None
        self._hint_debounce = hint_debounce
        self._min_hint_interval = min_hint_interval
        #: The pending hinted read, if any, and when it is due.
        self._hint_timer: Timer | None = None
        self._hint_due = 0.0
        #: Clock time the first hint not yet answered by a read arrived; None: none waits.
        self._hinted_since: float | None = None
        #: Clock time the last hinted read began.
        self._hinted_read_at: float | None = None
        self._hints_seen = False

    # -- lifecycle --

    def on_start(self) -> None:
        self._ticker = Ticker(self._clock, self._settings.poll_interval, self.actor_ref, Poll()).start()
        every = self._settings.agents_every
        logger.info(
            "Polling GoCD at %s every %gs%s%s",
            self._client.base_url,
            self._settings.poll_interval,
            f", its agents every {every:g}s" if every != self._settings.poll_interval else "",
            " (dry run: agent changes are only logged)" if self._dry_run else "",
        )

    def on_stop(self) -> None:
        # Also run by BaseActor.on_failure after a crash, once the death is reported.
        self._release()

    def _release(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self._drop_hints()
        self._client.close()

    # -- messages --

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Poll):
            return self._poll()
        if isinstance(message, GoCDHint):
            return self._hint(message)
        if isinstance(message, HintedPoll):
            return self._hinted_poll(message)
        if isinstance(message, Subscribe):
            return self._publisher.add(message.subscriber)
        if isinstance(message, EnableAgent):
            return self._change("enable", message.uuid, message)
        if isinstance(message, DisableAgent):
            return self._change("disable", message.uuid)
        if isinstance(message, DeleteAgent):
            return self._change("delete", message.uuid)
        if isinstance(message, ReadAgent):
            return self._change("read", message.uuid)
        if isinstance(message, ReadJobHistory):
            return self._change("history", message.uuid)
        return super().on_receive(message)

    def _poll(self) -> None:
        # The backlog source names its own failed read; "agents" is the poller's.
        endpoint = ""
        timings: list[tuple[str, float]] = []
        began = self._clock.now()
        read_agents = self._agents_due(began)
        agents, agents_fetched_at = self._agents, self._agents_at
        try:
            # The agents before the jobs: a job GoCD gives to an agent between the two reads is
            # then gone from the jobs, not listed waiting beside an agent seen building it,
            # which would ask a second agent for it. Never an agents list newer than the jobs.
            if read_agents:
                endpoint, started = "agents", time.perf_counter()
                agents = self._client.agents()
                timings.append((endpoint, time.perf_counter() - started))
                endpoint = ""
            jobs = self._backlog.read()
            timings.extend(self._backlog.timings)
        except GoCDError as e:
            self._failed(e, endpoint or self._backlog.endpoint)
            return
        if read_agents:
            self._agents, self._agents_at, agents_fetched_at = agents, began, None
        # Every hint that came before this read is answered by it.
        self._drop_hints()
        self._read_server_version()
        if self._failing_since is not None:
            logger.info(
                "GoCD at %s answers again after %d failed polls", self._client.base_url, self._attempts
            )
            self._failing_since = None
            self._attempts = 0
            if self._ticker is not None:
                self._ticker.set_interval(self._settings.poll_interval)
        logger.debug(
            "GoCD has %d scheduled jobs and %d agents%s",
            len(jobs),
            len(agents),
            "" if read_agents else " (the agents list of the last read)",
        )
        self._publisher.publish(
            BacklogSnapshot(
                jobs=jobs,
                agents=agents,
                fetched_at=self._clock.now(),
                server_version=self._server_version,
                timings=tuple(timings),
                agents_fetched_at=agents_fetched_at,
                backlog_source=self._backlog.name,
                backlog_problems=self._backlog.problems,
            )
        )

    def _agents_due(self, now: float) -> bool:
        """Whether this read of GoCD reads the agents too, or reuses the last list."""
        if self._agents_at is None:
            return True
        if self._hinted_since is not None and self._agents_at <= self._hinted_since:
            return True  # GoCD said something changed after that list was read
        # Polls fall every poll_interval, give or take the time a read takes: read the agents at
        # the poll nearest to agents_interval after the last read: no snapshot reuses a list
        # older than agents_interval - poll_interval / 2.
        return now - self._agents_at >= self._settings.agents_every - self._settings.poll_interval / 2

    # -- hints --

    def _hint(self, hint: GoCDHint) -> None:
        self._publisher.publish(hint)  # for the status server's counts
        if not self._hints_seen:
            self._hints_seen = True
            logger.info(
                "Push notifications are arriving from GoCD (%s %s): GoCD is read at once on its changes",
                hint.kind,
                hint.detail,
            )
        if self._failing_since is not None:
            logger.debug("GoCD hint ignored while GoCD fails (the backoff decides): %s", hint.detail)
            return
        now = self._clock.now()
        if self._hinted_since is None:
            self._hinted_since = now
        if self._hint_timer is not None:
            logger.debug("GoCD hint (%s %s) joins the read already due", hint.kind, hint.detail)
            return
        due = now + self._hint_debounce
        if self._hinted_read_at is not None:
            due = max(due, self._hinted_read_at + self._min_hint_interval)
        self._hint_due = due
        self._hint_timer = tell_later(self._clock, due - now, self.actor_ref, HintedPoll(due=due))
        logger.debug("GoCD hint (%s %s): reading GoCD in %.1fs", hint.kind, hint.detail, due - now)

    def _hinted_poll(self, message: HintedPoll) -> None:
        if self._hint_timer is None or message.due != self._hint_due:
            return  # cancelled: a poll answered the hints already, or GoCD fails
        self._hinted_read_at = self._clock.now()
        self._poll()

    def _drop_hints(self) -> None:
        """Forget the hints waiting for a read, and cancel that read."""
        if self._hint_timer is not None:
            self._hint_timer.cancel()
            self._hint_timer = None
        self._hinted_since = None

    def _failed(self, error: GoCDError, endpoint: str = "") -> None:
        now = self._clock.now()
        # The backoff decides when GoCD is read again; hints do not hurry it.
        self._drop_hints()
        if self._failing_since is None:
            self._failing_since = now
        self._attempts += 1
        retry_in = backoff_delay(
            self._attempts, self._settings.poll_interval, self._settings.max_backoff, self._rng
        )
        # Reschedule before publishing: whoever sees the message sees the new timer.
        if self._ticker is not None:
            self._ticker.set_interval(retry_in)
        if isinstance(error, GoCDAuthError):
            # Not an outage that passes: an expired token or a changed password needs an
            # operator, so every refused poll says so at ERROR (the backoff spaces them out).
            logger.error(
                "GoCD refuses the daemon's credentials or rights: %s; fix [gocd] token or "
                "username/password (and the user's role); polling again in %.0fs",
                error,
                retry_in,
            )
        elif self._attempts == 1:
            logger.warning("GoCD is unavailable: %s; polling again in %.0fs", error, retry_in)
        else:
            logger.info(
                "GoCD still unavailable after %d polls: %s; polling again in %.0fs",
                self._attempts,
                error,
                retry_in,
            )
        self._publisher.publish(
            GoCDUnavailable(
                reason=str(error),
                since=self._failing_since,
                attempts=self._attempts,
                retry_in=retry_in,
                endpoint=endpoint,
            )
        )

    def _read_server_version(self) -> str:
        """GoCD's version, read once it answers; "" until then."""
        if not self._server_version:
            try:
                self._server_version = self._client.server_version()
            except GoCDError as e:
                logger.debug("Cannot read GoCD's version: %s", e)
        return self._server_version

    def _no_job_history(self) -> str | None:
        """Why GoCD cannot tell an agent's job history, or None when it may.

        An unknown version is given the benefit of the doubt: the client tells a
        missing API apart from a missing agent.
        """
        version = self._read_server_version()
        if not version or version_tuple(version) >= JOB_HISTORY_SINCE:
            return None
        reason = f"job history needs GoCD 19.11.0+, and GoCD at {self._client.base_url} is {version}"
        if not self._warned_no_history:
            self._warned_no_history = True
            logger.warning("Cannot read agents' job history: %s", reason)
        return reason

    def _change(self, action: str, uuid: str, enable: EnableAgent | None = None) -> None:
        if self._dry_run and action not in READS:
            logger.info("Dry run: would %s agent %s", action, uuid)
            return
        if action == "history" and (missing := self._no_job_history()) is not None:
            self._publisher.publish(AgentChangeFailed(uuid=uuid, action=action, reason=missing))
            return
        outcome: Any
        try:
            if action == "enable":
                assert enable is not None
                outcome = AgentEnabled(
                    self._client.enable_agent(uuid, enable.hostname, enable.resources, enable.environments)
                )
            elif action == "disable":
                outcome = AgentDisabled(self._client.disable_agent(uuid))
            elif action == "read":
                outcome = AgentRead(self._client.agent(uuid))
            elif action == "history":
                completed = self._client.completed_job_count(uuid)
                outcome = AgentJobHistory(uuid=uuid, completed=completed, fetched_at=self._clock.now())
            else:
                self._client.delete_agent(uuid)
                outcome = AgentDeleted(uuid)
        except GoCDNotFound:
            logger.info("GoCD does not know agent %s (%s)", uuid, action)
            outcome = AgentNotFound(uuid=uuid, action=action)
        except GoCDUnprocessable as e:
            if action == "delete" and e.status in DELETE_REFUSED_STATUSES:
                logger.info("GoCD refused to delete agent %s: %s", uuid, e)
                outcome = AgentDeleteRefused(uuid=uuid, reason=str(e))
            else:
                outcome = self._change_failed(action, uuid, e)
        except GoCDError as e:
            outcome = self._change_failed(action, uuid, e)
        else:
            if action not in READS:
                logger.info("%sd GoCD agent %s", action.capitalize(), uuid)
        self._publisher.publish(outcome)

    @staticmethod
    def _change_failed(action: str, uuid: str, error: GoCDError) -> AgentChangeFailed:
        logger.warning("Cannot %s GoCD agent %s: %s", _DOING.get(action, action), uuid, error)
        return AgentChangeFailed(uuid=uuid, action=action, reason=str(error), status=error.status)
