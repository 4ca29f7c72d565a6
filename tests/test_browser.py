"""The status page in a real browser: Debian's chromium, driven through chromedriver.

The sandbox runs (both simulators and a system, its status server on a free port);
headless chromium loads ``/``, the test fails on any console error or a missing
section, and keeps a screenshot. ``.ci/run`` installs chromium and chromium-driver;
where they are missing (a developer's machine) the test says so and skips.
"""

from __future__ import annotations

import io
import re
import shutil
import threading
from pathlib import Path

import pytest

from actors.config import HttpSettings
from actors.sandbox import run_sandbox

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)


class _Lines(io.StringIO):
    """The sandbox's output, with an event set once the status URL is printed."""

    def __init__(self) -> None:
        super().__init__()
        self.url = ""
        self.ready = threading.Event()
        #: Set at the first live line: the demo's first plans and agents are in by then.
        self.live = threading.Event()

    def write(self, text: str) -> int:
        found = re.search(r"status (http://\S+)", text)
        if found and not self.url:
            self.url = found.group(1)
            self.ready.set()
        if text.startswith("t="):
            self.live.set()
        return super().write(text)


def test_the_status_page_renders_in_chromium_with_no_console_error(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    out, stop = _Lines(), threading.Event()
    sandbox = threading.Thread(
        target=run_sandbox,
        kwargs={
            "duration": None,
            "time_scale": 10.0,
            "out": out,
            "stop_event": stop,
            "line_every": 1.0,
            "listen": HttpSettings(host="127.0.0.1", port=0),
        },
        daemon=True,
    )
    sandbox.start()
    try:
        assert out.ready.wait(60), out.getvalue()
        assert out.live.wait(60), out.getvalue()
        options = Options()
        options.binary_location = CHROMIUM
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1400"):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            browser.get(out.url)
            for section in ("connections", "fleet", "waiting", "charts"):
                assert browser.find_elements("id", section), f"section {section} missing"
            assert browser.find_elements("css selector", "svg"), "no chart"
            shot = tmp_path / "status-page.png"
            assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
            errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            assert errors == [], errors
        finally:
            browser.quit()
    finally:
        stop.set()
        sandbox.join(60)
