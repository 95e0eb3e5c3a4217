"""The Python API as the README and examples/python_api.py use it."""

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_python_api_example_runs(tiny_clip, tmp_path):
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, str(root / "examples" / "python_api.py"), "--clip", tiny_clip,
         "--out", str(tmp_path), "--steps", "4"],
        capture_output=True, text=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "2"},
    )
    assert result.returncode == 0, result.stderr
    assert "after 4 steps" in result.stdout
    assert (tmp_path / "a-watercolour-lighthouse-at-dusk-blurry-0-3" / "run.json").exists()


def test_batch_from_python_takes_lines_and_a_shard_from_the_given_environment(tiny_clip, tmp_path):
    import clipgen

    outcomes = clipgen.batch(["a red apple", "a blue sky | seed=5", "a green hill"], out=tmp_path, clip=[tiny_clip],
                             size=(32, 32), steps=2, generator="pixels", set=["cutn=2", "save_every=0"],
                             shard="auto", environ={"JOB_COMPLETION_INDEX": "1", "CLIPGEN_SHARD_COUNT": "2"})
    assert [(o.item.line, o.status, o.seed) for o in outcomes] == [(2, "finished", 5)]
    assert outcomes[0].folder == tmp_path / "0001-a-blue-sky" and (tmp_path / "index.html").is_file()
