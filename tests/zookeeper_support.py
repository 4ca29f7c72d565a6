"""A real ZooKeeper server on loopback for the HA tests (Debian's ``zookeeper`` package).

:class:`ZooKeeperServer` runs ``org.apache.zookeeper.server.ZooKeeperServerMain``
from the installed jar in a temporary data dir, on a free loopback port; it can
be stopped and started again on the same port and data (sessions survive, as in
a real restart). :func:`zookeeper_jar` finds the jar, or returns None: the tests
then skip, saying what to install (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

#: Where Debian's zookeeper package puts its jar (it lists its dependencies in its manifest).
JARS = ("/usr/share/java/zookeeper.jar",)
SKIP_REASON = "no ZooKeeper server installed (apt-get install zookeeper, as .ci/run does)"


def zookeeper_jar() -> str | None:
    """The ZooKeeper server jar and a Java runtime to run it, or None."""
    if shutil.which("java") is None:
        return None
    return next((jar for jar in JARS if os.path.exists(jar)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ZooKeeperServer:
    """One standalone ZooKeeper on 127.0.0.1:``port`` with its data in ``data_dir``."""

    def __init__(self, jar: str, data_dir: Path) -> None:
        self.jar = jar
        self.data_dir = data_dir
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 (the server keeps writing)
        cfg = self.data_dir / "zoo.cfg"
        cfg.write_text(
            f"tickTime=500\ndataDir={self.data_dir}\nclientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
            # Sessions of 1-20 s: the tests use short ones.
            "minSessionTimeout=1000\nmaxSessionTimeout=20000\n"
        )
        self._process = subprocess.Popen(
            [
                "java",
                "-Xmx128m",
                "-cp",
                self.jar,
                "org.apache.zookeeper.server.ZooKeeperServerMain",
                str(cfg),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process.poll() is None, f"ZooKeeper exited; see {self.data_dir / 'server.log'}"
            if self._answers():
                return
            time.sleep(0.1)
        raise AssertionError(f"ZooKeeper did not answer within {timeout}s on {self.hosts}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait(10)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"srvr")
                return s.recv(64).startswith(b"Zookeeper version")
        except OSError:
            return False
