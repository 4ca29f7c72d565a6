"""The GoCD poller: without a thread (fake client, recording ref) and as a real actor on the simulator."""

from __future__ import annotations

import logging
import random
from dataclasses import replace

import pytest

from actors.base import Ping
from actors.clock import ManualClock
from actors.exceptions import (
    GoCDAuthError,
    GoCDBadResponse,
    GoCDConnectionError,
    GoCDNotFound,
    GoCDServerError,
    GoCDUnprocessable,
)
from actors.gocd.backlog import DashboardSource
from actors.gocd.poller import GoCDPoller, backoff_delay
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
    Poll,
    ReadAgent,
    ReadJobHistory,
    ScheduledJob,
    Subscribe,
)
from actors.sim.gocd import GoCDSimulator
from tests.conftest import RecordingRef
from tests.dashboard_support import (
    FakeGoCD,
    dashboard,
    forbidden,
    instance,
    job,
    pipeline,
    stage,
    stage_instance,
)
from tests.gocd_support import PASSWORD, no_secrets_in_logs, remoting, settings  # noqa: F401 (autouse fixture)

JOB = ScheduledJob(
    locator="app/1/build/1/job",
    pipeline="app",
    pipeline_counter=1,
    stage="build",
    stage_counter=1,
    name="job",
)
AGENT = GoAgent(uuid="u1", hostname="a1", config_state="Enabled", agent_state="Idle")


class FakeClient:
    """Stands in for GoCDClient: canned answers, or errors to raise, per call."""

    base_url = "http://gocd.test/go"

    def __init__(self) -> None:
        self.jobs: tuple | Exception = (JOB,)
        self.agents_: tuple | Exception = (AGENT,)
        self.errors: dict[str, Exception] = {}
        self.calls: list[tuple[str, str]] = []
        self.version: str | Exception = "25.1.0"
        self.closed = False
        #: The backlog and agents reads, in order: "jobs" and "agents".
        self.reads: list[str] = []

    def scheduled_jobs(self):
        self.reads.append("jobs")
        if isinstance(self.jobs, Exception):
            raise self.jobs
        return self.jobs

    def with_elastic_profiles(self, jobs):
        return tuple(jobs)

    def agents(self):
        self.reads.append("agents")
        if isinstance(self.agents_, Exception):
            raise self.agents_
        return self.agents_

    def server_version(self):
        self.calls.append(("version", ""))
        if isinstance(self.version, Exception):
            raise self.version
        return self.version

    def _change(self, action, uuid, result):
        self.calls.append((action, uuid))
        if action in self.errors:
            raise self.errors[action]
        return result

    def enable_agent(self, uuid, hostname=None, resources=None, environments=None):
        self.renamed_to = hostname
        return self._change("enable", uuid, AGENT)

    def disable_agent(self, uuid):
        return self._change("disable", uuid, AGENT)

    def agent(self, uuid):
        return self._change("read", uuid, AGENT)

    def delete_agent(self, uuid):
        return self._change("delete", uuid, "Deleted 1 agent(s).")

    def completed_job_count(self, uuid):
        return self._change("history", uuid, 3)

    def close(self):
        self.closed = True


def _poller(clock, recorder, client=None, gocd=None, **kw):
    return GoCDPoller(
        settings=gocd or settings("http://gocd.test/go"),
        clock=clock,
        subscribers=(recorder,),
        client=client or FakeClient(),
        rng=random.Random(7),
        **kw,
    )


# --- pure ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [
        (1, 15.0, 20.0),
        (2, 30.0, 40.0),
        (3, 60.0, 80.0),
        (4, 120.0, 160.0),
        (5, 225.0, 300.0),
        (40, 225.0, 300.0),
    ],
)
def test_backoff_delay_doubles_with_jitter_up_to_the_ceiling(attempts, low, high):
    rng = random.Random(attempts)
    delays = [backoff_delay(attempts, 10.0, 300.0, rng) for _ in range(50)]
    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > 1


def test_backoff_delay_is_never_below_the_interval():
    assert backoff_delay(1, 10.0, 5.0, random.Random(1)) == 10.0


# --- without a thread ---------------------------------------------------------------------


def test_poll_publishes_one_snapshot(clock, recorder):
    poller = _poller(clock, recorder)
    poller.on_receive(Poll())
    assert recorder.messages == [
        BacklogSnapshot(
            jobs=(JOB,),
            agents=(AGENT,),
            fetched_at=clock.now(),
            server_version="25.1.0",
            backlog_source="feed",
        )
    ]


def test_failures_back_off_and_recover(clock, recorder, caplog):
    client = FakeClient()
    poller = _poller(clock, recorder, client)
    client.jobs = GoCDServerError(
        "GET http://gocd.test/go/api/feed/jobs/scheduled.xml failed: 500", status=500
    )
    started = clock.now()
    poller.on_receive(Poll())
    clock.advance(20)
    poller.on_receive(Poll())
    first, second = recorder.of(GoCDUnavailable)
    assert (first.since, first.attempts) == (started, 1)
    assert (second.since, second.attempts) == (started, 2)
    assert "500" in first.reason
    assert 10 < first.retry_in < second.retry_in <= 300
    client.jobs = (JOB,)
    with caplog.at_level(logging.INFO, logger="actors.gocd.poller"):
        poller.on_receive(Poll())
    assert isinstance(recorder.messages[-1], BacklogSnapshot)
    assert "answers again after 2 failed polls" in caplog.text
    client.jobs = GoCDConnectionError("refused")
    poller.on_receive(Poll())
    assert recorder.messages[-1].attempts == 1


def test_refused_credentials_are_an_error_at_every_poll_and_an_outage_a_warning(clock, recorder, caplog):
    client = FakeClient()
    poller = _poller(clock, recorder, client)
    client.jobs = GoCDAuthError("GoCD refused the access token (401): token expired", status=401)
    with caplog.at_level(logging.INFO, logger="actors.gocd.poller"):
        poller.on_receive(Poll())
        clock.advance(20)
        poller.on_receive(Poll())
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert all("token expired" in e and "fix [gocd] token" in e for e in errors)
    assert [m.attempts for m in recorder.of(GoCDUnavailable)] == [1, 2]
    caplog.clear()
    client.jobs = GoCDServerError("GET feed failed: 503", status=503)
    with caplog.at_level(logging.INFO, logger="actors.gocd.poller"):
        poller.on_receive(Poll())
    assert [r.levelno for r in caplog.records] == [logging.INFO]  # still failing: attempt 3
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


class AssigningBetweenReads(FakeClient):
    """GoCD that gives JOB to the idle agent right after the poll's first read, whichever it is."""

    def __init__(self) -> None:
        super().__init__()
        self.agents_ = (AGENT,)

    def _assign_after_first_read(self) -> None:
        if len(self.reads) == 1:
            self.jobs = ()
            self.agents_ = (replace(AGENT, agent_state="Building", build_state="Building"),)

    def scheduled_jobs(self):
        answer = super().scheduled_jobs()
        self._assign_after_first_read()
        return answer

    def agents(self):
        answer = super().agents()
        self._assign_after_first_read()
        return answer


def test_a_job_assigned_between_the_reads_is_never_seen_waiting_beside_its_busy_agent(clock, recorder):
    # Read the jobs first and the snapshot would list JOB waiting with every agent building: a
    # second agent launched for a job that has one. Agents first: JOB is gone, the agent idle.
    client = AssigningBetweenReads()
    _poller(clock, recorder, client).on_receive(Poll())
    (snapshot,) = recorder.of(BacklogSnapshot)
    assert snapshot.jobs == () and snapshot.agents[0].agent_state == "Idle"


def test_a_partial_result_is_never_published(clock, recorder):
    client = FakeClient()
    client.agents_ = GoCDConnectionError("GET http://gocd.test/go/api/agents failed: connection reset")
    _poller(clock, recorder, client).on_receive(Poll())
    assert recorder.of(BacklogSnapshot) == []
    assert len(recorder.of(GoCDUnavailable)) == 1
    assert recorder.of(GoCDUnavailable)[0].endpoint == "agents"


def test_a_snapshot_says_how_long_each_read_took(clock, recorder):
    _poller(clock, recorder, FakeClient()).on_receive(Poll())
    (snapshot,) = recorder.of(BacklogSnapshot)
    assert [endpoint for endpoint, _ in snapshot.timings] == ["agents", "scheduled_jobs"]
    assert all(seconds >= 0 for _, seconds in snapshot.timings)


def test_the_dashboard_backlog_names_its_reads_its_failures_and_its_problems(clock, recorder):
    """The poller reads whatever source [gocd] backlog names; the source says what it read."""
    gocd = FakeGoCD()
    gocd.dash = dashboard([pipeline("app", [instance("app", 1, [stage("build", 1, "Building", "app", 1)])])])
    gocd.stages[("app", 1, "build", 1)] = stage_instance("app", 1, "build", 1, [job("unit")])
    gocd.configs["app"] = forbidden()
    backlog = DashboardSource(gocd, clock=clock)
    poller = _poller(clock, recorder, FakeClient(), backlog=backlog)
    poller.on_receive(Poll())
    (snapshot,) = recorder.of(BacklogSnapshot)
    assert [endpoint for endpoint, _ in snapshot.timings] == [
        "agents",
        "dashboard",
        "stage",
        "pipeline_config",
    ]
    assert snapshot.backlog_source == "dashboard"
    (problem,) = snapshot.backlog_problems
    assert problem.startswith("user 'svc' may not read the config of pipeline app (403)")
    assert snapshot.jobs[0].resources_unknown == problem
    gocd.stages[("app", 1, "build", 1)] = GoCDConnectionError(
        "GET http://gocd.test/go/api/stages/app/1/build/1 failed"
    )
    poller.on_receive(Poll())
    assert recorder.of(GoCDUnavailable)[0].endpoint == "stage"


def test_the_poller_builds_the_source_its_settings_name(clock, recorder):
    poller = GoCDPoller(
        settings=replace(settings("http://gocd.test/go"), backlog="dashboard"),
        clock=clock,
        subscribers=(recorder,),
        client=FakeClient(),
    )
    assert isinstance(poller._backlog, DashboardSource)


def test_by_default_every_poll_reads_the_agents(clock, recorder):
    client = FakeClient()
    poller = _poller(clock, recorder, client)
    for _ in range(3):
        poller.on_receive(Poll())
        clock.advance(10)
    assert client.reads == ["agents", "jobs"] * 3
    assert all(s.agents_fetched_at is None for s in recorder.of(BacklogSnapshot))


def test_agents_interval_reuses_the_last_list_and_says_how_old_it_is(clock, recorder):
    client = FakeClient()
    gocd = replace(settings("http://gocd.test/go"), agents_interval=30.0)
    poller = _poller(clock, recorder, client, gocd)
    start = clock.now()
    reads = []
    for _ in range(7):  # polls at 0, 10, ..., 60
        before = len(client.reads)
        poller.on_receive(Poll())
        reads.append(client.reads[before:])
        clock.advance(10)
    both, jobs = ["agents", "jobs"], ["jobs"]
    assert reads == [both, jobs, jobs, both, jobs, jobs, both]
    snapshots = recorder.of(BacklogSnapshot)
    old = [s.agents_fetched_at for s in snapshots]
    assert old == [None, start, start, None, start + 30, start + 30, None]
    assert [s.agents_as_of - start for s in snapshots] == [0, 0, 0, 30, 30, 30, 60]
    assert [s.as_of for s in snapshots] == [s.agents_as_of for s in snapshots]
    assert [endpoint for endpoint, _ in snapshots[1].timings] == ["scheduled_jobs"]
    assert snapshots[1].agents == (AGENT,)


def test_agents_are_read_at_the_poll_nearest_to_agents_interval(clock, recorder):
    client = FakeClient()
    gocd = replace(settings("http://gocd.test/go"), agents_interval=25.0)
    poller = _poller(clock, recorder, client, gocd)
    for _ in range(5):  # polls at 0, 10, 20, 30, 40; the reads a little late each time
        poller.on_receive(Poll())
        clock.advance(10.2)
    # 20.4s after the read at 0 is nearer 25s than the 30.6s of the poll after it.
    assert client.reads == ["agents", "jobs", "jobs", "agents", "jobs", "jobs", "agents", "jobs"]


@pytest.mark.parametrize(
    ("message", "action", "outcome"),
    [
        (EnableAgent("u1"), "enable", AgentEnabled(AGENT)),
        (DisableAgent("u1"), "disable", AgentDisabled(AGENT)),
        (ReadAgent("u1"), "read", AgentRead(AGENT)),
        (DeleteAgent("u1"), "delete", AgentDeleted("u1")),
    ],
)
def test_agent_changes(clock, recorder, message, action, outcome):
    client = FakeClient()
    _poller(clock, recorder, client).on_receive(message)
    assert client.calls == [(action, "u1")]
    assert recorder.messages == [outcome]


def test_read_job_history(clock, recorder):
    client = FakeClient()
    poller = _poller(clock, recorder, client)
    start = clock.now()
    poller.on_receive(ReadJobHistory("u1"))
    clock.advance(5)
    poller.on_receive(ReadJobHistory("u2"))
    # The version is read once, before the first history.
    assert client.calls == [("version", ""), ("history", "u1"), ("history", "u2")]
    assert recorder.messages == [
        AgentJobHistory(uuid="u1", completed=3, fetched_at=start),
        AgentJobHistory(uuid="u2", completed=3, fetched_at=start + 5),
    ]


@pytest.mark.parametrize(
    ("message", "error", "outcome"),
    [
        (DisableAgent("u1"), GoCDNotFound("gone", status=404), AgentNotFound("u1", "disable")),
        (DeleteAgent("u1"), GoCDNotFound("gone", status=404), AgentNotFound("u1", "delete")),
        (DeleteAgent("u1"), GoCDUnprocessable("building", status=422), AgentDeleteRefused("u1", "building")),
        (DeleteAgent("u1"), GoCDUnprocessable("building", status=406), AgentDeleteRefused("u1", "building")),
        (
            DeleteAgent("u1"),
            GoCDUnprocessable("odd", status=400),
            AgentChangeFailed("u1", "delete", "odd", 400),
        ),
        (
            EnableAgent("u1"),
            GoCDUnprocessable("bad", status=422),
            AgentChangeFailed("u1", "enable", "bad", 422),
        ),
        (
            EnableAgent("u1"),
            GoCDServerError("maintenance", status=503),
            AgentChangeFailed("u1", "enable", "maintenance", 503),
        ),
        (ReadAgent("u1"), GoCDConnectionError("refused"), AgentChangeFailed("u1", "read", "refused", None)),
        (ReadJobHistory("u1"), GoCDNotFound("gone", status=404), AgentNotFound("u1", "history")),
        (
            ReadJobHistory("u1"),
            GoCDAuthError("not an admin", status=403),
            AgentChangeFailed("u1", "history", "not an admin", 403),
        ),
        (
            ReadJobHistory("u1"),
            GoCDBadResponse("no such API", status=404),
            AgentChangeFailed("u1", "history", "no such API", 404),
        ),
        (
            ReadJobHistory("u1"),
            GoCDConnectionError("refused"),
            AgentChangeFailed("u1", "history", "refused", None),
        ),
    ],
)
def test_agent_change_failures(clock, recorder, message, error, outcome):
    client = FakeClient()
    action = {
        EnableAgent: "enable",
        DisableAgent: "disable",
        ReadAgent: "read",
        DeleteAgent: "delete",
        ReadJobHistory: "history",
    }[type(message)]
    client.errors[action] = error
    _poller(clock, recorder, client).on_receive(message)
    assert recorder.messages == [outcome]


def test_dry_run_logs_changes_and_sends_none(clock, recorder, caplog):
    client = FakeClient()
    poller = _poller(clock, recorder, client, dry_run=True)
    with caplog.at_level(logging.INFO, logger="actors.gocd.poller"):
        for message in (EnableAgent("u1"), DisableAgent("u2"), DeleteAgent("u3")):
            poller.on_receive(message)
        poller.on_receive(ReadAgent("u4"))
        poller.on_receive(ReadJobHistory("u5"))
    assert client.calls == [("read", "u4"), ("version", ""), ("history", "u5")]
    assert recorder.messages == [AgentRead(AGENT), AgentJobHistory("u5", 3, clock.now())]
    assert "Dry run: would disable agent u2" in caplog.text
    assert "Dry run: would delete agent u3" in caplog.text


def test_a_failed_job_history_read_is_logged_in_words(clock, recorder, caplog):
    client = FakeClient()
    client.errors["history"] = GoCDAuthError("not an admin", status=403)
    with caplog.at_level(logging.WARNING, logger="actors.gocd.poller"):
        _poller(clock, recorder, client).on_receive(ReadJobHistory("u1"))
    assert "Cannot read the job history of GoCD agent u1: not an admin" in caplog.text


def test_job_history_before_19_11_fails_without_a_call_and_warns_once(clock, recorder, caplog):
    client = FakeClient()
    client.version = "19.10.0"
    poller = _poller(clock, recorder, client)
    with caplog.at_level(logging.WARNING, logger="actors.gocd.poller"):
        poller.on_receive(ReadJobHistory("u1"))
        poller.on_receive(ReadJobHistory("u2"))
    assert client.calls == [("version", "")]
    reason = "job history needs GoCD 19.11.0+, and GoCD at http://gocd.test/go is 19.10.0"
    assert recorder.messages == [
        AgentChangeFailed("u1", "history", reason, None),
        AgentChangeFailed("u2", "history", reason, None),
    ]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [f"Cannot read agents' job history: {reason}"]


def test_job_history_is_asked_for_when_the_version_is_unknown(clock, recorder):
    client = FakeClient()
    client.version = GoCDConnectionError("refused")
    poller = _poller(clock, recorder, client)
    poller.on_receive(ReadJobHistory("u1"))
    assert client.calls == [("version", ""), ("history", "u1")]
    assert recorder.messages == [AgentJobHistory("u1", 3, clock.now())]
    client.version = "19.10.0"  # read as soon as GoCD answers
    poller.on_receive(ReadJobHistory("u1"))
    last = recorder.messages[-1]
    assert isinstance(last, AgentChangeFailed)
    assert (last.action, last.status) == ("history", None)
    assert "19.11.0+" in last.reason


def test_subscribe_and_unknown_messages(clock, recorder):
    poller = _poller(clock, RecordingRef())
    poller.on_receive(Subscribe(recorder))
    poller.on_receive(Poll())
    assert len(recorder.of(BacklogSnapshot)) == 1
    assert poller.on_receive("what?") is None


# --- hints: a real actor on a manual clock, synchronised with a ping ------------------------


class Hinted:
    """A started poller on a FakeClient; ``settle()`` returns once it handled all told so far."""

    def __init__(self, clock, recorder, gocd=None, **kw):
        self.clock, self.recorder, self.client = clock, recorder, FakeClient()
        self.ref = GoCDPoller.start(
            settings=gocd or settings("http://gocd.test/go"),
            clock=clock,
            subscribers=(recorder,),
            client=self.client,
            rng=random.Random(7),
            **kw,
        )

    def settle(self):
        self.ref.ask(Ping(), timeout=10)

    def advance(self, seconds):
        self.clock.advance(seconds)
        self.settle()

    def hint(self, kind="backlog", detail="app/1/build/1 scheduled", count=1):
        for _ in range(count):
            self.ref.tell(GoCDHint(kind=kind, received_at=self.clock.now(), detail=detail))
        self.settle()

    def reads(self):
        """Clock times of the snapshots published so far."""
        return [s.fetched_at for s in self.recorder.of(BacklogSnapshot)]


@pytest.fixture
def hinted(clock, recorder):
    made = Hinted(clock, recorder, replace(settings("http://gocd.test/go"), poll_interval=30.0))
    made.advance(0)  # the first poll
    return made


def test_a_burst_of_hints_is_one_read_after_the_debounce(hinted, clock):
    start = clock.now()
    hinted.advance(3)
    hinted.hint("backlog", count=50)
    hinted.hint("agents", "agent node-1 Building", count=50)
    hinted.advance(0.4)
    assert hinted.reads() == [start]
    hinted.advance(0.1)
    assert hinted.reads() == [start, start + 3.5]
    hinted.advance(26)  # up to the next poll
    assert hinted.reads() == [start, start + 3.5]
    hinted.advance(0.5)
    assert hinted.reads() == [start, start + 3.5, start + 30]
    assert hinted.client.reads == ["agents", "jobs"] * 3


def test_hints_read_at_most_once_per_min_hint_interval(hinted, clock):
    start = clock.now()
    hinted.advance(1)
    for _ in range(40):  # a hint every 0.25s for 10s
        hinted.hint()
        hinted.advance(0.25)
    hinted.advance(0.5)  # the last hints' read, 2s after the one before
    hinted.advance(5)
    hinted_reads = [t - start for t in hinted.reads()[1:]]
    assert hinted_reads == [1.5, 3.5, 5.5, 7.5, 9.5, 11.5]


def test_a_poll_answers_the_hints_before_it_and_cancels_their_read(hinted, clock):
    start = clock.now()
    hinted.advance(29.8)
    hinted.hint()
    assert clock.pending() == 2  # the ticker and the hinted read
    hinted.advance(0.2)  # the regular poll at 30
    assert clock.pending() == 1
    hinted.advance(5)
    assert hinted.reads() == [start, start + 30]


def test_hints_are_ignored_while_gocd_fails(hinted, clock, recorder):
    hinted.client.jobs = GoCDConnectionError("refused")
    hinted.advance(30)
    (down,) = recorder.of(GoCDUnavailable)
    hinted.client.jobs = (JOB,)
    for _ in range(10):
        hinted.hint()
        hinted.advance(1)
    assert len(hinted.reads()) == 1 and len(recorder.of(GoCDUnavailable)) == 1
    hinted.advance(down.retry_in - 10)  # the backoff's own retry
    assert len(hinted.reads()) == 2
    hinted.hint()
    hinted.advance(0.5)
    assert len(hinted.reads()) == 3  # GoCD answers again: hints count again


def test_a_hint_pending_when_gocd_fails_is_dropped(hinted, clock, recorder):
    hinted.advance(29.8)
    hinted.hint()
    hinted.client.jobs = GoCDConnectionError("refused")
    hinted.advance(0.2)  # the poll fails
    hinted.advance(1)
    assert len(recorder.of(GoCDUnavailable)) == 1 and len(hinted.reads()) == 1
    assert clock.pending() == 1  # the ticker's retry only


def test_a_hinted_read_reads_the_agents_whatever_agents_interval_says(clock, recorder):
    hinted = Hinted(clock, recorder, replace(settings("http://gocd.test/go"), agents_interval=60.0))
    hinted.advance(0)
    hinted.advance(10)  # a poll that reuses the agents list
    assert hinted.client.reads == ["agents", "jobs", "jobs"]
    hinted.advance(2)
    hinted.hint("backlog")
    hinted.advance(0.5)
    assert hinted.client.reads == ["agents", "jobs", "jobs", "agents", "jobs"]
    assert recorder.of(BacklogSnapshot)[-1].agents_fetched_at is None
    hinted.advance(7.5)  # the next poll reuses the hinted read's list
    assert hinted.client.reads[-1] == "jobs"
    assert recorder.of(BacklogSnapshot)[-1].agents_fetched_at == clock.now() - 7.5


def test_the_first_hint_is_said_at_info_and_every_hint_at_debug(hinted, caplog):
    with caplog.at_level(logging.DEBUG, logger="actors.gocd.poller"):
        hinted.hint("backlog", "app/42/build/1 scheduled")
        hinted.hint("agents", "agent node-7 Building")
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == [
        "Push notifications are arriving from GoCD (backlog app/42/build/1 scheduled): "
        "GoCD is read at once on its changes"
    ]
    debugs = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("app/42/build/1 scheduled" in m for m in debugs)
    assert any("agent node-7 Building" in m for m in debugs)


def test_every_hint_is_published_for_the_status_server(hinted, clock, recorder):
    hinted.hint("agents", "agent node-7 Idle")
    hinted.client.jobs = GoCDConnectionError("refused")
    hinted.advance(30)
    hinted.hint("backlog")  # ignored while GoCD fails, yet counted
    assert [h.kind for h in recorder.of(GoCDHint)] == ["agents", "backlog"]


def test_stopping_cancels_a_pending_hinted_read(hinted, clock):
    hinted.hint()
    hinted.ref.stop(timeout=10)
    assert clock.pending() == 0


# --- as a real actor against the simulator -------------------------------------------------


@pytest.fixture
def sim(clock: ManualClock):
    sim = GoCDSimulator(clock=clock, username="admin", password=PASSWORD)
    sim.start()
    yield sim
    sim.stop()


def test_real_poller_polls_backs_off_and_recovers(sim, clock, recorder):
    sim.schedule_jobs("app", resources=["linux"])
    uuid = sim.add_agent("a1")
    ref = GoCDPoller.start(
        settings=settings(sim.url, username="admin", password=PASSWORD),
        clock=clock,
        subscribers=(recorder,),
        rng=random.Random(3),
    )
    clock.advance(0)  # the first tick
    (snapshot,) = recorder.wait_for(BacklogSnapshot)
    assert [j.locator for j in snapshot.jobs] == ["app/1/build/1/job"]
    assert [a.uuid for a in snapshot.agents] == [uuid]
    assert snapshot.server_version == "25.1.0"

    clock.advance(10)
    recorder.wait_for(BacklogSnapshot, 2)

    sim.inject_fault("status", status=500, count=2, path_prefix="/go/api/feed/")
    clock.advance(10)
    (down,) = recorder.wait_for(GoCDUnavailable)
    assert (down.attempts, down.since) == (1, clock.now())
    assert 10 < down.retry_in <= 20
    clock.advance(down.retry_in)
    second = recorder.wait_for(GoCDUnavailable, 2)[1]
    assert second.attempts == 2
    assert second.retry_in > down.retry_in
    clock.advance(second.retry_in)
    recorder.wait_for(BacklogSnapshot, 3)
    clock.advance(10)  # back to the normal interval
    recorder.wait_for(BacklogSnapshot, 4)

    ref.tell(DisableAgent(uuid))
    (disabled,) = recorder.wait_for(AgentDisabled)
    assert disabled.agent.config_state == "Disabled"
    ref.tell(DeleteAgent(uuid))
    recorder.wait_for(AgentDeleted)
    ref.tell(ReadAgent(uuid))
    assert recorder.wait_for(AgentNotFound) == [AgentNotFound(uuid, "read")]

    ref.stop(timeout=10)
    assert clock.pending() == 0  # the ticker went with it


def test_approval_can_rename_the_agent_in_the_same_change(clock, recorder):
    client = FakeClient()
    _poller(clock, recorder, client).on_receive(EnableAgent("u1", hostname="gocd-mesos-linux-0123abcd"))
    assert client.calls == [("enable", "u1")] and client.renamed_to == "gocd-mesos-linux-0123abcd"
    assert recorder.of(AgentEnabled) == [AgentEnabled(AGENT)]


@pytest.mark.parametrize(("version", "history"), [("25.1.0", True), ("19.10.0", False)])
def test_real_poller_reads_job_history(clock, recorder, version, history):
    sim = GoCDSimulator(clock=clock, version=version, username="admin", password=PASSWORD)
    sim.start()
    try:
        sim.schedule_jobs("app", count=2)
        uuid = sim.add_agent("a1")
        for _ in range(2):
            locator = remoting(sim, uuid, "get_work").json()["work"]["locator"]
            remoting(sim, uuid, "report_completed", {"locator": locator, "result": "Passed"})
        ref = GoCDPoller.start(
            settings=settings(sim.url, username="admin", password=PASSWORD),
            clock=clock,
            subscribers=(recorder,),
        )
        ref.tell(ReadJobHistory(uuid))
        ref.tell(ReadJobHistory("no-such-agent"))
        if history:
            assert recorder.wait_for(AgentJobHistory) == [AgentJobHistory(uuid, 2, clock.now())]
            assert recorder.wait_for(AgentNotFound) == [AgentNotFound("no-such-agent", "history")]
        else:
            failed = recorder.wait_for(AgentChangeFailed, 2)
            assert {(f.uuid, f.action) for f in failed} == {(uuid, "history"), ("no-such-agent", "history")}
            assert all("19.11.0+" in f.reason for f in failed)
            assert not any(path.endswith("/job_run_history") for _, path, _ in sim.requests)
        ref.stop(timeout=10)
    finally:
        sim.stop()
