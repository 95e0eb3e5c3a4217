"""Resume, signals, NaN recovery, disk faults, memory refusal, safe output paths."""

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import clipgen
from clipgen.api import RunInterrupted, resume
from clipgen.generators.base import GeneratorContext
from clipgen.generators.pixels import PixelGenerator, PixelOptions
from clipgen.run.loop import NumericalError, PlainLoss, make_optimizer, optimize
from clipgen.run.state import load_state

FAST = dict(size=(32, 32), cutn=2, generator="pixels", seed=7, augment=["affine", "noise"])


def _uninterrupted(tiny_clip, out, steps=12, **extra):
    return clipgen.generate("a red apple", clip=[tiny_clip], steps=steps, out=str(out), save_every=4,
                            **FAST, **extra)


def _stop_at(step):
    """A callback that presses Ctrl-C (a real SIGINT to this process) after ``step``."""
    def callback(state):
        if state.step == step:
            os.kill(os.getpid(), signal.SIGINT)
    return callback


def test_interrupt_and_resume_gives_identical_png_bytes(tiny_clip, tmp_path):
    reference = _uninterrupted(tiny_clip, tmp_path)
    with pytest.raises(RunInterrupted) as stopped:
        clipgen.generate("a red apple", clip=[tiny_clip], steps=12, out=str(tmp_path), save_every=4,
                         callbacks=[_stop_at(6)], **FAST)
    folder = stopped.value.folder
    assert stopped.value.step == 6 and load_state(folder).step == 6
    assert json.loads((folder / "run.json").read_text())["status"] == "interrupted"
    result = resume(folder)
    assert result.status == "finished" and len(result.history) == 12
    assert Path(result.paths["image"]).read_bytes() == Path(reference.paths["image"]).read_bytes()
    assert [p.name for p in result.paths["frames"]] == [p.name for p in reference.paths["frames"]]


def test_resume_can_extend_a_finished_run(tiny_clip, tmp_path):
    first = _uninterrupted(tiny_clip, tmp_path, steps=8)
    longer = resume(first.paths["folder"], steps=12)
    assert len(longer.history) == 12 and longer.history[:8] == first.history


def test_second_ctrl_c_stops_at_once_and_state_stays_consistent(tiny_clip, tmp_path):
    def twice(state):
        if state.step == 9:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        clipgen.generate("a red apple", clip=[tiny_clip], steps=20, out=str(tmp_path), save_every=4,
                         callbacks=[twice], **FAST)
    folder = tmp_path / "a-red-apple"
    assert load_state(folder).step == 8  # the last checkpoint before the hard stop
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temp files left


def _cli(*args):
    return [sys.executable, "-m", "clipgen", *map(str, args)]


def _wait_for(path: Path, process, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGKILL, -9)])
def test_real_process_interrupted_then_resumed(tiny_clip, tmp_path, sig, code):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--clip", tiny_clip, "--generator", "pixels", "--size", "32x32", "--cutn", "2",
              "--checkpoint-every", "3", "--save-every", "0", "--seed", "1", "--out", tmp_path, "-q"]
    process = subprocess.Popen(_cli("generate", "a red apple", "--steps", "100000", *common),
                               stderr=subprocess.PIPE, text=True, env=env)
    folder = tmp_path / "a-red-apple"
    _wait_for(folder / "state.pt", process)
    process.send_signal(sig)
    assert process.wait(timeout=120) == code
    saved = load_state(folder)  # always loadable, even after kill -9
    if sig == signal.SIGKILL:
        assert saved.step % 3 == 0  # only periodic checkpoints survive a kill -9
    total = saved.step + 2
    done = subprocess.run(_cli("resume", folder, "--steps", total, "-q", "--json"),
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "finished"
    # the same run, never interrupted, gives the same bytes
    reference = subprocess.run(_cli("generate", "a red apple", "--steps", total, *common),
                               capture_output=True, text=True, env=env)
    assert reference.returncode == 0, reference.stderr
    resumed_png = Path(summary["files"]["image"]).read_bytes()
    assert resumed_png == (tmp_path / "a-red-apple-2" / "a-red-apple.png").read_bytes()


def test_nan_step_is_recovered_with_a_warning(caplog):
    torch.manual_seed(0)
    generator = PixelGenerator((8, 8), PixelOptions(), GeneratorContext(torch.device("cpu")))
    optimizer = make_optimizer("adam", generator.param_groups(0.1))
    calls = []

    def objective(image):
        calls.append(1)
        loss = (image - 0.5).pow(2).mean()
        return loss * float("nan") if len(calls) == 3 else loss  # the third forward is poisoned

    with caplog.at_level(logging.WARNING, logger="clipgen"):
        last = optimize(generator, PlainLoss(objective), optimizer, steps=5)
    assert last == 5 and len(calls) == 6  # one retry
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    assert sum("non-finite" in r.message for r in caplog.records) == 1
    assert torch.isfinite(generator.logits).all()


def test_deferred_checks_rewind_to_the_last_verified_step():
    """As on a GPU: finiteness is read every 4 steps; a NaN at step 6 rewinds to step 4."""
    torch.manual_seed(0)
    generator = PixelGenerator((8, 8), PixelOptions(), GeneratorContext(torch.device("cpu")))
    optimizer = make_optimizer("adam", generator.param_groups(0.1))
    calls, seen = [], []

    def objective(image):
        calls.append(1)
        loss = (image - 0.5).pow(2).mean()
        return loss * float("nan") if len(calls) == 6 else loss

    last = optimize(generator, PlainLoss(objective), optimizer, steps=10, check_every=4,
                    callbacks=[lambda state: seen.append(state.step)])
    assert last == 10
    # 5..7 were reported before the check at 8 failed; then 5..10 were redone from step 4
    assert seen == [0, 1, 2, 3, 4, 5, 6, 7, 5, 6, 7, 8, 9, 10]
    assert len(calls) == 14
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    assert torch.isfinite(generator.logits).all()


def test_persistent_nan_stops_with_a_clear_error():
    generator = PixelGenerator((8, 8), PixelOptions(), GeneratorContext(torch.device("cpu")))
    before = generator.logits.detach().clone()
    optimizer = make_optimizer("adam", generator.param_groups(0.1))
    with pytest.raises(NumericalError, match="smaller --lr"):
        optimize(generator, PlainLoss(lambda image: image.mean() * float("nan")), optimizer, steps=5)
    assert torch.equal(generator.logits, before)  # the last good state is what remains


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


@pytest.mark.parametrize("generator, options", [
    ("fourier", {}), ("clipdraw", {"clipdraw": {"strokes": 8}}),
])
def test_resume_is_exact_for_other_generators(tiny_clip, tmp_path, generator, options):
    settings = dict(FAST, generator=generator, **options)
    reference = clipgen.generate("a boat", clip=[tiny_clip], steps=6, out=str(tmp_path), save_every=2,
                                 **settings)
    with pytest.raises(RunInterrupted) as stopped:
        clipgen.generate("a boat", clip=[tiny_clip], steps=6, out=str(tmp_path), save_every=2,
                         callbacks=[_stop_at(3)], **settings)
    resumed = resume(stopped.value.folder)
    assert Path(resumed.paths["image"]).read_bytes() == Path(reference.paths["image"]).read_bytes()


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
