"""The batch contact sheet: finished runs only, relative links, user text escaped."""

from __future__ import annotations

import json

from clipgen.outputs.contact_sheet import write_index
from clipgen.outputs.run_record import write_record


def _run(out, name, prompt, status="finished"):
    folder = out / name
    folder.mkdir(parents=True)
    write_record(folder, {"status": status, "prompt": prompt, "seed": 3, "final_similarity": 0.25, "seconds": 1.5,
                          "files": {"image": str(folder / "image.png")}})
    return folder


def test_index_links_finished_runs_and_escapes_prompts(tmp_path):
    _run(tmp_path, "0000-a", 'a <script>alert("x")</script> & more')
    _run(tmp_path, "0001-b", "still running", status="running")
    (tmp_path / "0002-c").mkdir()  # no run.json at all
    page = write_index(tmp_path).read_text()
    assert page.count("<figure>") == 1
    assert '<img src="0000-a/image.png"' in page and 'href="0000-a/run.json"' in page
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in page
    assert "still running" not in page and json.loads((tmp_path / "0000-a" / "run.json").read_text())["seed"] == 3


def test_index_shows_each_held_out_score(tmp_path):
    folder = _run(tmp_path, "0000-a", "a red star")
    record = json.loads((folder / "run.json").read_text())
    record["held_out"] = {"toy<vit>": {"score": 0.8123, "augmented": 0.7012}, "other": {"score": 0.5}}
    write_record(folder, record)
    page = write_index(tmp_path).read_text()
    assert "held-out toy&lt;vit&gt; 0.812 · augmented 0.701" in page
    assert "held-out other 0.500 · <a" in page
