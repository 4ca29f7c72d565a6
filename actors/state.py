"""Small persisted state files: atomic writes and forgiving reads.

The daemon keeps a few facts across restarts in ``[state] dir``: the Mesos
framework id (the bridge) and, later, the fleet (the registry). A write goes
to a temporary file in the same directory, is fsynced, then renamed over the
target and the directory fsynced, so a crash leaves either the old or the new
content, never half of one. Reads return a default when the file is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any

__all__ = ["read_json", "read_text", "remove", "write_json", "write_text"]


def write_text(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically, creating its directory."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def write_json(path: str, value: Any) -> None:
    """Replace ``path`` with ``value`` as indented JSON, atomically."""
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_text(path: str, default: str | None = None) -> str | None:
    """The content of ``path`` without surrounding whitespace; ``default`` if it does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except FileNotFoundError:
        return default


def read_json(path: str, default: Any = None) -> Any:
    """The JSON value in ``path``; ``default`` if it does not exist (ValueError if it is not JSON)."""
    text = read_text(path)
    if text is None:
        return default
    try:
        return json.loads(text)
    except RecursionError:
        # json's C decoder recurses per level; a file nested thousands deep is not ours either.
        raise ValueError(f"{path}: JSON nested too deep") from None


def remove(path: str) -> None:
    """Delete ``path`` if it exists."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def _fsync_dir(directory: str) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
