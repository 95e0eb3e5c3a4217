"""The perceptor: CLIP in the run's precision."""

from __future__ import annotations

import torch

from clipgen.guidance.perceptor import load_perceptor

CPU = torch.device("cpu")


def test_bf16_clip_embeds_close_to_fp32(tiny_clip):
    images = torch.rand(4, 3, 32, 32)
    fp32 = load_perceptor((tiny_clip,), CPU, offline=True).models[0]
    bf16 = load_perceptor((tiny_clip,), CPU, offline=True, dtype=torch.bfloat16).models[0]
    assert next(bf16.model.visual.parameters()).dtype == torch.bfloat16
    a, b = fp32.encode_image(images), bf16.encode_image(images)
    assert b.dtype == torch.float32  # the loss is always computed in fp32
    assert (a * b).sum(-1).min() > 0.99
