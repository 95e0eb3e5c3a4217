"""One run's failure paths: a full disk, out of memory, sizes that cannot fit, paths from
prompts.
"""

import errno
from pathlib import Path

import pytest
import torch

import clipgen
from clipgen.run.state import load_state

FAST = dict(size=(32, 32), cutn=2, generator="pixels", seed=7, augment=["affine", "noise"])


def _uninterrupted(tiny_clip, out, steps=12, **extra):
    return clipgen.generate("a red apple", clip=[tiny_clip], steps=steps, out=str(out), save_every=4,
                            **FAST, **extra)


def test_disk_full_keeps_earlier_frames(tiny_clip, tmp_path, monkeypatch):
    import clipgen.outputs.writer as writer

    real_save = writer.save_png

    def save_until_full(path, image, metadata=None):
        if path.name == "000008.png":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(path, image, metadata)

    monkeypatch.setattr(writer, "save_png", save_until_full)
    with pytest.raises(clipgen.errors.OutputError, match="disk full"):
        _uninterrupted(tiny_clip, tmp_path)
    frames = sorted(p.name for p in (tmp_path / "a-red-apple" / "frames").iterdir())
    assert frames == ["000000.png", "000004.png"]


def test_paths_in_prompts_stay_inside_the_output_folder(tiny_clip, tmp_path):
    result = clipgen.generate("../../etc/passwd", clip=[tiny_clip], steps=1, out=str(tmp_path / "o"),
                              save_every=0, **FAST)
    assert Path(result.paths["folder"]).resolve().parent == (tmp_path / "o").resolve()
    assert Path(result.paths["folder"]).name == "etc-passwd"


def test_size_that_cannot_fit_is_refused_with_an_estimate(run_cli, tiny_clip, tmp_path, monkeypatch):
    import clipgen.hardware

    monkeypatch.setattr(clipgen.hardware, "available_bytes", lambda device: 2**30)
    code, _, err = run_cli(["generate", "x", "--clip", tiny_clip, "--size", "4096x4096",
                            "--out", tmp_path / "o", "-q"])
    assert code == 2 and "needs about" in err and "GiB" in err and "--size" in err
    assert not (tmp_path / "o").exists()


def test_out_of_memory_names_the_knobs_and_saves_state(tiny_clip, tmp_path, monkeypatch):
    import clipgen.guidance.objective

    real_step = clipgen.guidance.objective.Objective.loss_and_backward
    calls = []

    def loss_and_backward(self, image, timer=None):
        calls.append(1)
        if len(calls) == 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_step(self, image, timer)

    monkeypatch.setattr(clipgen.guidance.objective.Objective, "loss_and_backward", loss_and_backward)
    with pytest.raises(clipgen.errors.ClipgenError, match="--size or --cutn") as failure:
        _uninterrupted(tiny_clip, tmp_path)
    assert "clipgen resume" in str(failure.value)
    assert load_state(tmp_path / "a-red-apple").step == 3
