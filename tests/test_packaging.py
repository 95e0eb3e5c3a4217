"""Presets must reach users who install the wheel, not only an editable checkout."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from clipgen.weights import builtin

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_presets_work_from_a_non_editable_install(tmp_path):
    pytest.importorskip("hatchling")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist")], check=True)
    wheel = next((tmp_path / "dist").glob("clipgen-*.whl"))
    shipped = {p.stem for p in (ROOT / "presets").glob("*.toml")}
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"clipgen/presets/{name}.toml" for name in shipped} <= set(names)

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                    str(wheel)], check=True)
    probe = ("import clipgen, clipgen.config.presets as p, json; from clipgen.config.settings import resolve_run_settings;"
             "from clipgen.weights import builtin;"
             "shipped = sorted(str(builtin.verified_folder(m)) for m in builtin.BUILTIN.values());"
             "print(json.dumps({'file': clipgen.__file__, 'presets': sorted(p.available_presets()),"
             "'steps': resolve_run_settings(preset='draft').steps, 'models': shipped}))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    found = json.loads(out)
    assert found["file"].startswith(str(site))  # the installed copy, not the checkout
    assert set(found["presets"]) == shipped and found["steps"] == 100
    # the toy world's weights ship inside the wheel, intact (digests checked on load)
    assert len(found["models"]) == len(builtin.BUILTIN) and all(m.startswith(str(site)) for m in found["models"])
