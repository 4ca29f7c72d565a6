"""Atomic state files: write, read back, replace, remove."""

from __future__ import annotations

import os

import pytest

from actors import state


def test_text_round_trip_creates_the_directory(tmp_path):
    path = str(tmp_path / "deep" / "framework_id")
    assert state.read_text(path) is None
    assert state.read_text(path, "none") == "none"
    state.write_text(path, "F-0001\n")
    assert state.read_text(path) == "F-0001"
    state.write_text(path, "F-0002\n")
    assert state.read_text(path) == "F-0002"
    assert os.listdir(tmp_path / "deep") == ["framework_id"]  # no temp file left behind


def test_json_round_trip_and_remove(tmp_path):
    path = str(tmp_path / "fleet.json")
    assert state.read_json(path, default={}) == {}
    state.write_json(path, {"b": [1, 2], "a": "x"})
    assert state.read_json(path) == {"a": "x", "b": [1, 2]}
    state.remove(path)
    state.remove(path)  # idempotent
    assert state.read_json(path) is None


def test_a_failed_write_keeps_the_old_content(tmp_path, monkeypatch):
    path = str(tmp_path / "f")
    state.write_text(path, "old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        state.write_text(path, "new")
    assert state.read_text(path) == "old"
    assert os.listdir(tmp_path) == ["f"]


def test_json_nested_too_deep_is_not_json(tmp_path):
    path = tmp_path / "fleet.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested too deep"):
        state.read_json(str(path))
