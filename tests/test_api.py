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
