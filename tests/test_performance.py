"""The fast paths of issue #8 compute what the plain paths compute."""

from __future__ import annotations

import pytest
import torch

from clipgen.guidance.cutouts import Cutouts
from clipgen.errors import SettingsError
from clipgen.bench.timer import StageTimer
from clipgen.guidance.objective import Objective, encode_targets
from clipgen.guidance.perceptor import load_perceptor
from clipgen.hardware import resolve_precision
from clipgen.guidance.prompts import parse_prompts
from fixtures.checkpoints import write_tiny_vqgan

CPU = torch.device("cpu")


def _objective(tiny_clip, cutn: int, cut_batch: int, dtype=torch.float32) -> Objective:
    perceptor = load_perceptor((tiny_clip,), CPU, offline=True, dtype=dtype)
    targets = encode_targets(perceptor, parse_prompts("a red circle"), [])
    # Cutouts as large as the image: every crop is the whole image, so chunking cannot
    # change which views CLIP sees and the results must agree exactly.
    cutouts = Cutouts(cutn, 1.0, perceptor.input_sizes)
    return Objective(perceptor, cutouts, targets, tv_weight=0.3, cut_batch=cut_batch)


def test_cutout_chunks_give_the_same_loss_and_gradient(tiny_clip):
    torch.manual_seed(0)
    pixels = torch.rand(1, 3, 32, 32)
    results = []
    for cut_batch in (0, 2):
        param = pixels.clone().requires_grad_(True)
        objective = _objective(tiny_clip, cutn=5, cut_batch=cut_batch)
        assert objective.chunks() == ([5] if cut_batch == 0 else [2, 2, 1])
        loss = objective.loss_and_backward(param * 1.0)
        results.append((loss, param.grad.clone()))
        # the plain forward agrees with the chunked one
        assert torch.allclose(loss, objective(pixels), atol=1e-6)
    (loss_all, grad_all), (loss_chunked, grad_chunked) = results
    assert torch.allclose(loss_all, loss_chunked, atol=1e-6)
    assert grad_all.abs().sum() > 0
    assert torch.allclose(grad_all, grad_chunked, atol=1e-7)


def test_stage_timer_charges_each_stage(tiny_clip):
    objective = _objective(tiny_clip, cutn=4, cut_batch=2)
    timer = StageTimer(CPU)
    param = torch.rand(1, 3, 32, 32, requires_grad=True)
    objective.loss_and_backward(param * 1.0, timer)
    assert set(timer.totals) == {"generator", "cutouts", "clip", "backward"}
    assert all(v >= 0 for v in timer.totals.values()) and timer.totals["clip"] > 0


def test_bf16_clip_embeds_close_to_fp32(tiny_clip):
    images = torch.rand(4, 3, 32, 32)
    fp32 = load_perceptor((tiny_clip,), CPU, offline=True).models[0]
    bf16 = load_perceptor((tiny_clip,), CPU, offline=True, dtype=torch.bfloat16).models[0]
    assert next(bf16.model.visual.parameters()).dtype == torch.bfloat16
    a, b = fp32.encode_image(images), bf16.encode_image(images)
    assert b.dtype == torch.float32  # the loss is always computed in fp32
    assert (a * b).sum(-1).min() > 0.99


def test_precision_resolution(monkeypatch):
    import clipgen.hardware as precision

    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    assert resolve_precision("auto", CPU) == torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    assert resolve_precision("auto", CPU) == torch.float32
    assert resolve_precision("bf16", CPU) == torch.bfloat16
    with pytest.raises(SettingsError, match="fp16 is for GPUs"):
        resolve_precision("fp16", CPU)


def test_fp16_on_cpu_is_one_line_exit_2(run_cli, tiny_clip, tmp_path):
    code, _, err = run_cli(["generate", "a cat", "--clip", tiny_clip, "--device", "cpu", "--precision", "fp16",
                            "--out", tmp_path / "out", "--steps", "1"])
    assert code == 2 and "fp16 is for GPUs" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_fused_attention_matches_taming_attention():
    from taming.modules.diffusionmodules.model import AttnBlock

    from clipgen.generators.vqgan.taming import _attention_forward

    torch.manual_seed(0)
    block = AttnBlock(64).eval()
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        expected = AttnBlock.forward(block, x)
        got = _attention_forward(block, x)
    assert torch.allclose(expected, got, atol=1e-5)


def test_decoder_checkpointing_changes_memory_not_maths(tiny_vqgan):
    torch.manual_seed(0)
    from clipgen.generators.base import GeneratorContext
    from clipgen.generators.vqgan.generator import VQGANGenerator, VQGANOptions

    options = VQGANOptions(config=str(tiny_vqgan[0]), checkpoint=str(tiny_vqgan[1]))
    gen = VQGANGenerator((64, 64), options, GeneratorContext(device=CPU, offline=True))
    outputs = []
    for checkpointing in (False, True):
        gen.vqgan.checkpointing = checkpointing
        gen.z.grad = None
        image = gen()
        (image * torch.linspace(0, 1, image.numel()).view_as(image)).sum().backward()
        outputs.append((image.detach(), gen.z.grad.clone()))
    assert torch.allclose(outputs[0][0], outputs[1][0], atol=1e-6)
    assert torch.allclose(outputs[0][1], outputs[1][1], atol=1e-5)


def test_bf16_vqgan_decodes_close_to_fp32(tiny_vqgan):
    from dataclasses import replace

    from clipgen.generators.vqgan.generator import VQGANGenerator, VQGANOptions
    from clipgen.generators.base import GeneratorContext

    CONTEXT = GeneratorContext(device=CPU, offline=True)

    options = VQGANOptions(config=str(tiny_vqgan[0]), checkpoint=str(tiny_vqgan[1]))
    torch.manual_seed(0)
    fp32 = VQGANGenerator((64, 64), options, CONTEXT)
    torch.manual_seed(0)
    bf16 = VQGANGenerator((64, 64), options, replace(CONTEXT, dtype=torch.bfloat16))
    assert bf16.z.dtype == torch.float32  # what the optimiser updates stays fp32
    a, b = fp32(), bf16()
    assert b.dtype == torch.float32
    assert (a - b).abs().mean() < 0.02


def test_bench_reports_precision_and_chunks(bench_json):
    result = bench_json("--preset", "pixels-256-cut32", "--size", "32", "--cutn", "6", "--cut-batch", "4",
                        "--precision", "bf16")
    assert result["precision"] == "bf16" and result["cutn"] == 6 and result["cut_batch"] == 4
