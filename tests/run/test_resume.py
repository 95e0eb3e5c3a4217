"""Interrupt and resume: Ctrl-C, SIGTERM, SIGKILL, a second Ctrl-C; resumed runs are byte-
identical.
"""

import json
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


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGKILL, -9)])
def test_real_process_interrupted_then_resumed(run_cli, tiny_clip, tmp_path, sig, code):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--clip", tiny_clip, "--generator", "pixels", "--size", "32x32", "--cutn", "2",
              "--checkpoint-every", "3", "--save-every", "0", "--seed", "1", "--out", tmp_path, "-q",
              # the subprocesses' --precision auto would measure this CPU; the in-process run's is pinned to fp32
              "--precision", "fp32"]
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
    # the same run, never interrupted (in this process: a third cold start adds nothing), gives the same
    # bytes at the same thread count; across thread counts a matmul may split its sums differently
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code, _, err = run_cli(["generate", "a red apple", "--steps", total, *common])
    finally:
        torch.set_num_threads(threads)
    assert code == 0, err
    resumed_png = Path(summary["files"]["image"]).read_bytes()
    assert resumed_png == (tmp_path / "a-red-apple-2" / "a-red-apple.png").read_bytes()


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


def test_resume_with_latent_l2_and_a_cut_schedule_gives_identical_png_bytes(tiny_clip, tmp_path):
    extra = dict(latent_l2=0.01, latent_l2_decay=0.5, cut_schedule="overview:0-40%,mixed:40-70%")
    reference = _uninterrupted(tiny_clip, tmp_path, **extra)
    with pytest.raises(RunInterrupted) as stopped:
        clipgen.generate("a red apple", clip=[tiny_clip], steps=12, out=str(tmp_path), save_every=4,
                         callbacks=[_stop_at(6)], **FAST, **extra)
    result = resume(stopped.value.folder)
    assert Path(result.paths["image"]).read_bytes() == Path(reference.paths["image"]).read_bytes()
    plain = _uninterrupted(tiny_clip, tmp_path)
    assert [h["loss"] for h in plain.history] != [h["loss"] for h in reference.history]
