"""The status page: the charts' drawing rule (pure), and ``/`` served over real HTTP on port 0."""

from __future__ import annotations

import pytest
import requests

from actors.config import Profile
from actors.fleet.states import FleetState
from actors.http.model import StatusModel
from actors.http.page import page_context, series, step_path
from actors.http.server import StatusServer
from actors.messages import (
    BacklogSnapshot,
    FleetAgent,
    FleetChanged,
    FleetView,
    JobReason,
    ScalePlan,
    ScheduledJob,
)
from tests.e2e_support import linux

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.mark.parametrize(
    ("steps", "start", "end", "top", "path"),
    [
        # One value all along: a flat line at its height.
        ([(0.0, 5.0)], 0.0, 100.0, 10.0, "M0,60 H600"),
        # A change draws a horizontal run, then a vertical jump.
        ([(0.0, 0.0), (50.0, 10.0)], 0.0, 100.0, 10.0, "M0,120 H300 V0 H600"),
        # An unchanged value adds no vertical segment.
        ([(0.0, 2.0), (25.0, 2.0), (75.0, 4.0)], 0.0, 100.0, 4.0, "M0,60 H150 H450 V0 H600"),
        # A step before the window starts the line at the window's start; older ones are dropped.
        ([(-50.0, 1.0), (-10.0, 3.0), (20.0, 0.0)], 0.0, 100.0, 3.0, "M0,0 H120 V120 H600"),
        # A step after the window is left out; values over the top are clipped to it.
        ([(10.0, 20.0), (100.0, 1.0)], 0.0, 100.0, 10.0, "M60,0 H600"),
        # Fractions keep one decimal.
        ([(0.0, 1.0)], 0.0, 100.0, 3.0, "M0,80 H600"),
        ([(1.0, 1.0)], 0.0, 300.0, 7.0, "M2,102.9 H600"),
        # Nothing to draw.
        ([], 0.0, 100.0, 10.0, ""),
        ([(0.0, 1.0)], 100.0, 100.0, 10.0, ""),
        ([(200.0, 1.0)], 0.0, 100.0, 10.0, ""),
    ],
)
def test_step_path(steps, start, end, top, path):
    assert step_path(steps, start=start, end=end, top=top) == path


def test_step_path_scales_to_the_size_given():
    assert step_path([(0.0, 1.0)], start=0.0, end=10.0, top=2.0, width=100, height=50) == "M0,25 H100"


def test_series_sums_the_states_asked_over_profiles():
    timeline = (
        (0.0, ((("a", "building"), 2), (("a", "idle"), 1), (("b", "building"), 3))),
        (5.0, ((("a", "idle"), 4),)),
    )
    assert series(timeline, ("building",)) == ((0.0, 5.0), (5.0, 0.0))
    assert series(timeline, ("building", "idle")) == ((0.0, 6.0), (5.0, 4.0))


def test_page_context_draws_both_charts_from_the_timelines(clock):
    model = StatusModel((linux(),))
    model.apply(FleetChanged(FleetView(agents=(FleetAgent("t1", "linux", FleetState.IDLE),))), clock.now())
    clock.advance(1800)
    agents = (FleetAgent("t1", "linux", FleetState.BUILDING), FleetAgent("t2", "linux", FleetState.IDLE))
    model.apply(FleetChanged(FleetView(agents=agents)), clock.now())
    clock.advance(1800)
    context = page_context(model.snapshot(), clock.now())
    waiting, fleet = context["charts"][0].lines
    assert waiting[1] == "" and fleet[1] == "M0,60 H300 V0 H600"
    busy, idle = context["charts"][1].lines
    assert busy[1] == "M0,120 H300 V0 H600" and busy[3] == "1800 agent-seconds"
    assert idle[1] == "M0,0 H300 H600" and idle[3] == "3600 agent-seconds"


LINUX = Profile(name="linux", image="img", min=1, max=5)


@pytest.fixture
def server(clock):
    made = StatusServer(host="127.0.0.1", port=0, clock=clock, profiles=(LINUX,))
    made.start()
    yield made
    made.stop()


def test_the_page_is_html_that_refreshes_itself_with_every_section(server, clock):
    job = ScheduledJob("p/1/s/1/j", "p", 1, "s", 1, "j")
    server.on_message(BacklogSnapshot(jobs=(job,), agents=(), fetched_at=clock.now()))
    server.on_message(
        ScalePlan(
            decided_at=clock.now(),
            reasons=(JobReason(job.locator, "capped-at-max", "linux", "max 5 agents reached"),),
        )
    )
    server.on_message(FleetChanged(FleetView(agents=(FleetAgent("t1", "linux", FleetState.BUILDING),))))
    clock.advance(125)
    page = requests.get(server.url, timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=UTF-8"
    html = page.text
    assert '<meta http-equiv="refresh" content="5">' in html
    for section in ('id="fleet"', 'id="waiting"', 'id="oldest"', 'id="charts"'):
        assert section in html, section
    assert '<tr><td>linux</td><td class="n">1</td><td class="n">1</td><td class="n">5</td>' in html
    assert "p/1/s/1/j" in html and "capped-at-max" in html and "max 5 agents reached" in html
    assert "Oldest wait: 2m 05s (linux, capped-at-max)" in html
    assert html.count("<svg") == 2 and '<path class="busy" d="M' in html
    # No script and no external asset: the page stands alone.
    assert "<script" not in html and "src=" not in html and "<link" not in html


def test_the_page_escapes_what_gocd_says(server, clock):
    locator = f"{SCRIPT}/1/s/1/j"
    server.on_message(
        ScalePlan(
            decided_at=clock.now(),
            reasons=(JobReason(locator, "no-matching-profile", None, f'needs "{SCRIPT}" & more'),),
        )
    )
    html = requests.get(server.url, timeout=10).text
    assert SCRIPT not in html
    assert ESCAPED in html and "&quot;" in html and "&amp; more" in html


def test_an_empty_system_has_a_page_too(server):
    page = requests.get(server.url, timeout=10)
    assert page.status_code == 200 and "No job is waiting." in page.text


def test_a_pipeline_named_like_a_script_is_shown_escaped(system):
    s = system()
    s.gocd.schedule_jobs(SCRIPT, resources=["windows"], duration_s=60)
    s.start_daemon()
    url = s.daemon.http_url
    s.events.wait_until(
        lambda _: ESCAPED in requests.get(url, timeout=10).text, what="the page listing the job"
    )
    html = requests.get(url, timeout=10).text
    assert SCRIPT not in html and "no-matching-profile" in html
