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


def test_resnet_batch_norms_fold_into_their_convolutions_exactly():
    import open_clip
    from torch import nn

    from clipgen.guidance.perceptor import fold_batch_norms

    model = open_clip.create_model("RN50", pretrained=None).visual
    # Random running statistics, as trained weights have; fresh ones would be the identity.
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        before = model(images)
        folded = fold_batch_norms(model)
        after = model(images)
    assert folded == 3 + sum(3 + (b.downsample is not None) for layer in
                             (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4)


def test_vit_towers_are_left_alone(tiny_clip):
    from clipgen.guidance.perceptor import fold_batch_norms

    model = load_perceptor((tiny_clip,), CPU, offline=True).models[0]
    assert fold_batch_norms(model.model.visual) == 0
