"""--ema: the average the frames are rendered from, and exact resume with it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

import clipgen
from clipgen.api import RunInterrupted, resume
from clipgen.run.averaging import ParameterAverage

FAST = dict(size=(32, 32), cutn=2, generator="pixels", seed=11, augment=["affine", "noise"], save_every=4)


def test_the_average_follows_the_recurrence_and_is_swapped_in_only_inside_the_block():
    p = torch.nn.Parameter(torch.tensor([0.0, 1.0]))
    optimizer = torch.optim.SGD([p], lr=1.0)
    average = ParameterAverage(optimizer, decay=0.5)
    expected = None
    for target in (torch.tensor([2.0, 2.0]), torch.tensor([4.0, 0.0]), torch.tensor([0.0, 8.0])):
        with torch.no_grad():
            p.copy_(target)
        average.update()
        expected = target.clone() if expected is None else 0.5 * expected + 0.5 * target
    assert torch.equal(optimizer.state[p]["ema"], expected)  # [2, 2] -> [3, 1] -> [1.5, 4.5]
    with average.applied():
        assert torch.equal(p.detach(), torch.tensor([1.5, 4.5]))
    assert torch.equal(p.detach(), torch.tensor([0.0, 8.0]))


def test_before_any_update_the_raw_parameters_are_rendered():
    p = torch.nn.Parameter(torch.tensor([3.0]))
    average = ParameterAverage(torch.optim.Adam([p]), decay=0.9)
    with average.applied():
        assert float(p.detach()) == 3.0


def test_ema_changes_the_written_image(tiny_clip, tmp_path):
    raw = clipgen.generate("a red apple", clip=[tiny_clip], steps=8, out=str(tmp_path / "a"), **FAST)
    averaged = clipgen.generate("a red apple", clip=[tiny_clip], steps=8, out=str(tmp_path / "b"), ema=0.7, **FAST)
    # The optimiser sees the same raw parameters, so the losses agree; only what is written differs.
    assert [h["loss"] for h in raw.history] == [h["loss"] for h in averaged.history]
    assert Path(raw.paths["image"]).read_bytes() != Path(averaged.paths["image"]).read_bytes()


def test_resume_with_ema_gives_identical_png_bytes(tiny_clip, tmp_path):
    reference = clipgen.generate("a red apple", clip=[tiny_clip], steps=12, out=str(tmp_path), ema=0.8,
                                 **FAST)

    def stop_at_6(state):
        if state.step == 6:
            os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(RunInterrupted) as stopped:
        clipgen.generate("a red apple", clip=[tiny_clip], steps=12, out=str(tmp_path), ema=0.8,
                         callbacks=[stop_at_6], **FAST)
    result = resume(stopped.value.folder)
    assert Path(result.paths["image"]).read_bytes() == Path(reference.paths["image"]).read_bytes()
    assert [p.read_bytes() for p in result.paths["frames"]] == [p.read_bytes() for p in reference.paths["frames"]]
