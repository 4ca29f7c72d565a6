"""Protocol-faithful simulators of a GoCD server and a Mesos master.

They speak the real wire formats over real HTTP on loopback, quirks included
(see ``../shared/reference/``), so that tests, the sandbox and benchmarks hit
the bugs that real servers would show users.
"""

from __future__ import annotations

import signal
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any


def serve_until_signal(sim: Any) -> int:
    """Start ``sim``, print its URL, serve until SIGINT or SIGTERM, stop it: a standalone main's end."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(sim.start(), flush=True)
    try:
        while not stop.wait(3600):
            pass
    finally:
        sim.stop()
    return 0


class QuietRequestHandler(BaseHTTPRequestHandler):
    """Both simulators' request handler base: a connection its client broke is dropped
    quietly, as a real server does.

    A client that gave up on a late answer (its timeout), or died with its keep-alive
    connection open (a SIGKILLed daemon), resets the connection; socketserver would print
    a traceback on stderr for it.
    """

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
