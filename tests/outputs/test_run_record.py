"""``run.json``: written when a run starts, completed when it ends, read back by batches."""

from __future__ import annotations

import json

from clipgen import __version__
from clipgen.outputs.run_record import RunRecord, is_finished, read_record


def test_a_record_starts_running_and_is_completed_in_place(tmp_path):
    record = RunRecord(tmp_path, {"steps": 3})
    assert read_record(tmp_path) == {"clipgen": __version__, "status": "running", "settings": {"steps": 3}}
    assert not is_finished(tmp_path)
    path = record.complete(status="finished", final_similarity=0.5)
    assert path == tmp_path / "run.json" and is_finished(tmp_path)
    assert json.loads(path.read_text())["settings"] == {"steps": 3}


def test_missing_or_corrupt_records_read_as_none(tmp_path):
    assert read_record(tmp_path) is None
    (tmp_path / "run.json").write_text("{not json")
    assert read_record(tmp_path) is None and not is_finished(tmp_path)
