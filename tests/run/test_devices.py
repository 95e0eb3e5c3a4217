"""The CUDA path's correctness, checked where it can be without a GPU (host syncs inside
a step, tensors made on the wrong device), and on a GPU by the tests marked ``cuda``
(``pytest -m cuda``; skipped, with the reason, on a machine without one)."""

from __future__ import annotations

import os
import traceback

import pytest
import torch
from fixtures import tiny_options

from clipgen.api import generate, resume
from clipgen.config.settings import resolve_run_settings
from clipgen.generators import generator_names
from clipgen.run.interrupts import StopWhen
from clipgen.run.loop import forward_backward, optimize
from clipgen.run.plan import plan_run
from clipgen.run.session import build_session
from clipgen.run.single import RunInterrupted

#: Python-level reads of a tensor's value: on a GPU tensor each one waits for the device's queue.
HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")
#: Reads of tensors that live on the host in a GPU run too (so they wait for nothing): the
#: optimiser's step count (a CPU tensor unless ``capturable``) and the cutout boxes, drawn on the CPU.
HOST_SIDE = ((f"torch{os.sep}optim{os.sep}", None), (f"guidance{os.sep}cutouts.py", "resample_weights"))


def tiny_flags(request, name: str, out, device: str = "cpu", **flags) -> dict:
    """Settings for a short run of generator ``name`` with its tiny weights and the tiny CLIP."""
    options = tiny_options(request, name)
    return {"prompt": "a red apple", "generator": name, "clip": [request.getfixturevalue("tiny_clip")],
            "size": [32, 32], "cutn": 4, "device": device, "out": str(out), "seed": 0, "save_every": 0,
            name: options, **flags}


def tiny_settings(request, name: str, out, device: str = "cpu", **flags):
    return resolve_run_settings(flags=tiny_flags(request, name, out, device, **flags))


def _caller() -> str | None:
    """Where the read happened (the innermost frame outside torch and this file), or None
    for a read of a tensor that is on the host in a GPU run too."""
    stack = traceback.extract_stack()
    if any(path in f.filename and function in (None, f.name) for f in stack for path, function in HOST_SIDE):
        return None
    for frame in stack[::-1]:
        if f"{os.sep}torch{os.sep}" not in frame.filename and frame.filename != __file__:
            return f"{os.path.relpath(frame.filename)}:{frame.lineno}"
    return "?"


@pytest.fixture
def host_reads(monkeypatch):
    """A list that records every host read of a tensor's value while the test runs, with where."""
    calls: list[str] = []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            where = _caller()
            if where is not None:
                calls.append(f"{_name} at {where}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


@pytest.mark.parametrize("name", generator_names())
def test_steps_read_nothing_back_from_the_device(request, name, tmp_path, host_reads):
    """Between two finiteness checks a step never waits for the device: the loop's reads
    are the same for 1 step as for 4 (check_every is large, so only the last step checks)."""
    session = build_session(plan_run(tiny_settings(request, name, tmp_path, ema=0.9, latent_l2=0.01)))
    reads = []
    for steps in (1, 4):
        host_reads.clear()
        optimize(session.generator, session.objective, session.optimizer, steps, check_every=10**6,
                 average=session.average)
        reads.append(list(host_reads))
    extra = list(reads[1])
    for read in reads[0]:
        extra.remove(read) if read in extra else None
    assert not extra, f"{name}: 3 more steps read {len(extra)} values back: {sorted(set(extra))}"


@pytest.mark.parametrize("name", generator_names())
def test_generators_make_their_tensors_on_their_own_device(request, name, tmp_path):
    """Moved to the meta device, a generator still renders: nothing in its forward pass is
    made on the CPU by default, which on a GPU would be a copy or a device-mismatch error."""
    session = build_session(plan_run(tiny_settings(request, name, tmp_path)))
    generator = session.generator.to("meta")
    assert {t.device.type for t in [*generator.parameters(), *generator.buffers()]} <= {"meta"}
    image = generator()
    assert image.device.type == "meta" and tuple(image.shape[-2:]) == (32, 32)


# ---- on a GPU (pytest -m cuda) -----------------------------------------------------------------------------

PRECISIONS = ("fp32", "bf16", "fp16")
GPU = "cuda"


@pytest.mark.cuda
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", generator_names())
def test_each_generator_runs_on_cuda(request, name, precision, tmp_path):
    flags = tiny_flags(request, name, tmp_path, device=GPU, precision=precision, steps=12)
    first = generate(**flags)
    assert first.status == "finished" and all(torch.isfinite(torch.tensor([h["loss"] for h in first.history])))
    assert first.final_similarity > first.initial_similarity
    second = generate(**{**flags, "out": str(tmp_path / "again")})
    assert first.image.tobytes() == second.image.tobytes()  # the same seed, the same image on the GPU


@pytest.mark.cuda
@pytest.mark.parametrize("name", generator_names())
def test_a_gpu_state_resumes_on_the_gpu_and_on_the_cpu(request, name, tmp_path):
    flags = tiny_flags(request, name, tmp_path, device=GPU, steps=12, checkpoint_every=4)
    whole = generate(**{**flags, "out": str(tmp_path / "whole")})
    for device in (GPU, "cpu"):
        seen: list = []
        with pytest.raises(RunInterrupted) as stopped:  # stopped after step 5, its state saved there
            generate(**{**flags, "out": str(tmp_path / device)}, callbacks=[StopWhen(lambda: len(seen) > 5),
                                                                            seen.append])
        assert stopped.value.step == 5
        finished = resume(stopped.value.folder, device=device)
        assert finished.status == "finished" and len(finished.history) == 12
        assert str(finished.settings.device) == device
        if device == GPU:  # resuming is exact on the device it was saved on
            assert finished.image.tobytes() == whole.image.tobytes()


@pytest.mark.cuda
@pytest.mark.parametrize("name", generator_names())
def test_no_host_sync_inside_a_gpu_step(request, name, tmp_path):
    session = build_session(plan_run(tiny_settings(request, name, tmp_path, device=GPU)))
    generator, optimizer = session.generator, session.optimizer

    def step():
        optimizer.zero_grad(set_to_none=True)
        forward_backward(generator, session.objective)
        optimizer.step()

    step()  # the first step may set things up (lazy buffers, cuDNN's choice of kernels)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            step()
    except RuntimeError as exc:
        pytest.fail(f"{name}: a GPU step waits for the host: {exc}")
    finally:
        torch.cuda.set_sync_debug_mode("default")
