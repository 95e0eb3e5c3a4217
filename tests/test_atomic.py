"""Atomic writes: a file appears complete under its final name or not at all."""

import os

import pytest

from clipgen.atomic import atomic_path, write_bytes


def test_written_file_has_the_usual_mode(tmp_path):
    target = tmp_path / "a.png"
    write_bytes(target, b"data")
    umask = os.umask(0)
    os.umask(umask)
    assert target.read_bytes() == b"data"
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_failure_before_rename_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "run.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
