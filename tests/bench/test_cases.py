"""`clipgen bench`: every case runs the real loop and reports each stage."""

from __future__ import annotations

import json

from clipgen.bench.cases import CASES, STAGES


def test_bench_json_has_every_stage(run_cli, tiny_clip):
    code, out, err = run_cli(["bench", "--preset", "fourier-256-cut32", "--clip", tiny_clip, "--size", "32",
                              "--cutn", "2", "--steps", "2", "--warmup", "1", "--device", "cpu", "--json"])
    assert code == 0, err
    result = json.loads(out)
    assert set(result["stages"]) == set(STAGES)
    assert all(v >= 0 for v in result["stages"].values())
    assert abs(sum(result["stages"].values()) - result["seconds_per_step"]) < 0.05 * result["seconds_per_step"]
    assert result["steps_per_second"] > 0 and result["peak_memory_mb"] > 0


def test_bench_table_and_list(run_cli, tiny_clip):
    code, out, _ = run_cli(["bench", "--list"])
    assert code == 0 and all(name in out for name in CASES)
    code, out, _ = run_cli(["bench", "--preset", "clipdraw-224-cut8", "--clip", tiny_clip, "--size", "32",
                            "--cutn", "2", "--steps", "1", "--warmup", "0", "--device", "cpu"])
    assert code == 0 and "steps/s" in out and "backward" in out


def test_unknown_bench_preset(run_cli):
    code, _, err = run_cli(["bench", "--preset", "vqgan-265-cut32"])
    assert code == 2 and "did you mean 'vqgan-256-cut32'" in err


def test_vqgan_case_runs_the_real_architecture_briefly(bench_json):
    """The README's bench command, shrunk (size, cutouts, steps) so CI can afford it."""
    result = bench_json("--preset", "vqgan-256-cut32", "--size", "64", "--cutn", "4", "--cut-batch", "2",
                        "--precision", "fp32")
    assert result["precision"] == "fp32" and result["size"] == 64 and result["cut_batch"] == 2
    assert result["stages"]["generator"] > 0 and result["stages"]["backward"] > 0


def test_bench_times_the_run_loop(run_cli, tiny_clip, monkeypatch):
    """The step timed is the step a run takes: clipgen.run.loop.optimize, warm-up and all."""
    import clipgen.bench.cases as cases

    calls = []

    def recording(generator, objective, optimizer, steps, **kwargs):
        calls.append(steps)
        return real(generator, objective, optimizer, steps, **kwargs)

    real = cases.optimize
    monkeypatch.setattr(cases, "optimize", recording)
    result = cases.run_bench("pixels-256-cut32", steps=2, warmup=2, device="cpu", clip=tiny_clip, size=32, cutn=2)
    assert calls == [4] and result["steps"] == 2
    assert abs(sum(result["stages"].values()) - result["seconds_per_step"]) < 0.05 * result["seconds_per_step"]


def test_step_clock_leaves_the_warm_up_out():
    import torch

    from clipgen.bench.timer import StepClock
    from clipgen.generators.base import GeneratorContext
    from clipgen.generators.pixels import PixelGenerator, PixelOptions
    from clipgen.run.loop import make_optimizer, optimize

    class Marking:
        calls = 0

        def loss_and_backward(self, image, timer):
            Marking.calls += 1
            timer.mark("generator")
            loss = image.mean()
            loss.backward()
            timer.mark("backward")
            return loss.detach()

    generator = PixelGenerator((8, 8), PixelOptions(), GeneratorContext(torch.device("cpu")))
    clock = StepClock(torch.device("cpu"), warmup=2)
    optimize(generator, clock.objective(Marking()), make_optimizer("adam", generator.param_groups(0.1)), 5,
             callbacks=[clock.after_update, clock.after_callbacks])
    assert Marking.calls == 5 and clock.steps == 3
    assert set(clock.timer.totals) == {"generator", "backward", "optimizer", "callbacks"}
    per_step = clock.per_step(("generator", "backward", "optimizer", "callbacks"))
    assert abs(sum(per_step.values()) * 3 - clock.timer.elapsed()) < 0.05


def test_bad_bench_values_fail_on_the_schema_before_weights_are_written(run_cli, monkeypatch):
    import clipgen.bench.random_models as random_models

    def never(folder):
        raise AssertionError("weights written for settings that cannot run")

    monkeypatch.setattr(random_models, "random_vqgan", never)
    code, _, err = run_cli(["bench", "--preset", "vqgan-256-cut32", "--precision", "fp8"])
    assert code == 2 and err.strip().splitlines() == [
        "clipgen: error: precision (from command line): 'fp8' is not one of auto, fp32, bf16, fp16"]
    code, _, err = run_cli(["bench", "--preset", "vqgan-256-cut32", "--compile", "maybe"])
    assert code == 2 and "compile (from command line): 'maybe' is not one of auto, on, off" in err


def test_bench_reports_precision_and_chunks(bench_json):
    result = bench_json("--preset", "pixels-256-cut32", "--size", "32", "--cutn", "6", "--cut-batch", "4",
                        "--precision", "bf16")
    assert result["precision"] == "bf16" and result["cutn"] == 6 and result["cut_batch"] == 4


def test_frames_are_encoded_from_the_step_not_rendered_again(bench_json, monkeypatch):
    """A run renders a frame again only every --save-every steps; the bench, which encodes
    one every step, must not add that forward to every step it averages."""
    from clipgen.generators.pixels import PixelGenerator

    calls = []
    forward = PixelGenerator.forward
    monkeypatch.setattr(PixelGenerator, "forward", lambda self: calls.append(1) or forward(self))
    bench_json("--preset", "pixels-256-cut32", "--size", "16", "--cutn", "2")
    assert len(calls) == 1  # one timed step, no warm-up (the fixture's): its forward and nothing else


def test_prior_case_is_the_real_mini_and_times_whole_samples(run_cli, monkeypatch):
    """The case builds DALL-E Mini's architecture; here it is shrunk (2 layers, width 32;
    still 256 tokens) so CI can afford a sample."""
    import importlib.util
    from dataclasses import replace

    import pytest

    if importlib.util.find_spec("min_dalle") is None:
        pytest.skip("needs the dalle extra")
    from fixtures.checkpoints import TINY_DALLE

    from clipgen.bench import prior as prior_bench
    from clipgen.priors.dalle.loader import MINI, Architecture

    case = prior_bench.PRIOR_CASES["dalle-mini-prior"]
    assert case.architecture == MINI and case.sampling.guidance == 16.0 and "dalle-mini-prior" in CASES
    monkeypatch.setitem(prior_bench.PRIOR_CASES, "dalle-mini-prior",
                        replace(case, architecture=Architecture("tiny", **TINY_DALLE)))
    args = ["bench", "--preset", "dalle-mini-prior", "--steps", "1", "--warmup", "0", "--device", "cpu"]
    code, out, err = run_cli([*args, "--json"])
    assert code == 0, err
    result = json.loads(out)
    assert result["kind"] == "prior" and result["tokens"] == 256 and result["samples"] == 1
    assert result["seconds_per_sample"] > 0 and result["tokens_per_second"] > 0 and result["peak_memory_mb"] > 0
    code, out, err = run_cli(args)
    assert code == 0 and "s/sample" in out, err
    code, out, err = run_cli([*args, "--size", "64"])
    assert code == 2 and "--size time the optimisation loop" in err
