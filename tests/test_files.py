"""Tests for ier.files: atomic writes replace the target only on success and leave no temp files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ier import files


def test_write_text_creates_folders_and_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "notes.txt"
    assert files.atomic_write_text(target, "first") == target
    files.atomic_write_text(target, "second, é")
    assert target.read_text(encoding="utf-8") == "second, é"
    assert sorted(p.name for p in target.parent.iterdir()) == ["notes.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with files.atomic_open(target, "wb") as handle:
            handle.write(b"new but incomplete")
            raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_atomic_path_is_a_hidden_unique_sibling_renamed_on_success(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    with files.atomic_path(target) as first, files.atomic_path(target) as second:
        assert first.parent == second.parent == tmp_path
        assert first != second and first.name.startswith(".clip.mp4.")
        assert not target.exists()
        first.write_bytes(b"1")
        second.write_bytes(b"2")
    assert target.read_bytes() == b"1"  # the outer block finished last and won
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_write_json_formats_and_round_trips(tmp_path: Path) -> None:
    data = {"name": "café", "path": Path("x/y"), "n": [1, 2]}
    path = files.atomic_write_json(tmp_path / "out.json", data, default=str, ensure_ascii=False)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and "café" in text and '\n  "n": [' in text
    assert json.loads(text) == {"name": "café", "path": "x/y", "n": [1, 2]}
    compact = files.atomic_write_json(tmp_path / "line.json", [1, "é"], indent=None)
    assert compact.read_text(encoding="utf-8") == '[1, "\\u00e9"]\n'
    with pytest.raises(TypeError):
        files.atomic_write_json(tmp_path / "bad.json", {"p": Path("x")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["line.json", "out.json"]


def test_fsync_only_when_asked_and_bad_modes_are_refused(tmp_path, monkeypatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    files.atomic_write_text(tmp_path / "cheap.txt", "x")
    assert synced == []
    files.atomic_write_text(tmp_path / "precious.txt", "x", fsync=True)
    assert len(synced) == 1
    for mode in ("a", "r", "w+"):
        with pytest.raises(ValueError, match="mode"):
            with files.atomic_open(tmp_path / "m.txt", mode):
                pass
