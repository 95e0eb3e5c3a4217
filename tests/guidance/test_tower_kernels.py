"""Faster kernels for frozen CLIP towers: each rewrite computes what the layer it replaces did."""

from __future__ import annotations

import open_clip
import pytest
import torch
from open_clip.transformer import VisionTransformer
from torch import nn

from clipgen.guidance.perceptor import load_perceptor
from clipgen.guidance.tower_kernels import (EXPLICIT_ATTENTION_LIMIT, ClassTokenBlock, LinearPatchEmbed,
                                            PackedSelfAttention, _TokenRowsAttention, attend, class_token_last_block,
                                            fold_batch_norms, linear_patch_embed, pack_attention, pack_mlps)
import clipgen.packed_linear as packed_linear
from clipgen.packed_linear import FrozenLinear

CPU = torch.device("cpu")


def _vit(seed: int = 0) -> VisionTransformer:
    torch.manual_seed(seed)
    tower = VisionTransformer(image_size=32, patch_size=8, width=64, layers=2, heads=4, mlp_ratio=4.0,
                              output_dim=32).eval().requires_grad_(False)
    for p in tower.parameters():  # trained-looking weights: biases and embeddings are zero at init
        p.add_(torch.randn_like(p) * 0.02)
    return tower


def _output_and_input_grad(tower: nn.Module, images: torch.Tensor):
    images = images.clone().requires_grad_(True)
    out = tower(images)
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    return out.detach(), images.grad


@pytest.mark.parametrize("rewrite, replaced, count", [(pack_attention, PackedSelfAttention, 2),
                                                      (linear_patch_embed, LinearPatchEmbed, 1),
                                                      (pack_mlps, FrozenLinear, 4)])
def test_vit_rewrites_keep_the_output_and_its_gradient(rewrite, replaced, count, monkeypatch):
    monkeypatch.setattr(packed_linear, "MIN_PACKED_ELEMENTS", 0)  # this tower's layers are small
    tower, images = _vit(), torch.rand(3, 3, 32, 32)
    before = _output_and_input_grad(tower, images)
    changed = rewrite(tower)
    after = _output_and_input_grad(tower, images)
    assert changed == count
    assert sum(isinstance(m, replaced) for m in tower.modules()) == changed
    for old, new in zip(before, after):
        assert torch.allclose(old, new, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_class_token_last_block_keeps_the_embedding_and_its_gradient(dtype, monkeypatch):
    monkeypatch.setattr(packed_linear, "MIN_PACKED_ELEMENTS", 0)
    tower, images = _vit().to(dtype), torch.rand(3, 3, 32, 32, dtype=dtype)
    pack_attention(tower)
    before = _output_and_input_grad(tower, images)
    assert class_token_last_block(tower) == 1
    assert isinstance(tower.transformer.resblocks[-1], ClassTokenBlock)
    assert not isinstance(tower.transformer.resblocks[0], ClassTokenBlock)
    after = _output_and_input_grad(tower, images)
    tolerance = dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
    for old, new in zip(before, after):
        assert torch.allclose(old.float(), new.float(), **tolerance)


def test_class_token_last_block_leaves_towers_that_read_every_token():
    for options in (dict(pool_type="avg"), dict(output_tokens=True)):
        torch.manual_seed(0)
        tower = VisionTransformer(image_size=32, patch_size=8, width=64, layers=2, heads=4, mlp_ratio=4.0,
                                  output_dim=32, **options).eval()
        pack_attention(tower)
        assert class_token_last_block(tower) == 0
    assert class_token_last_block(_vit()) == 0  # attention not packed: the block is not one it knows


def test_linear_patch_embed_drops_the_remainder_as_the_convolution_does():
    conv = nn.Conv2d(3, 16, 8, stride=8, bias=False)
    images = torch.rand(2, 3, 35, 43)  # 4 × 5 whole patches; the conv ignores the rest
    expected = conv(images)
    out = LinearPatchEmbed(conv)(images)
    assert out.shape == expected.shape == (2, 16, 4, 5)
    assert torch.allclose(out, expected, atol=1e-5)


def test_packed_attention_hands_cross_attention_and_weight_requests_to_the_original():
    mha = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    packed = PackedSelfAttention(mha)
    x, context = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
    out, weights = packed(x, x, x, need_weights=True)
    assert weights is not None and weights.shape == (2, 5, 5)
    assert torch.allclose(out, mha(x, x, x)[0], atol=1e-6)
    cross, _ = packed(x, context, context, need_weights=False)
    assert torch.allclose(cross, mha(x, context, context, need_weights=False)[0], atol=1e-6)
    mask = torch.triu(torch.full((5, 5), float("-inf")), 1)  # the text tower's causal mask
    masked, _ = packed(x, x, x, need_weights=False, attn_mask=mask)
    assert torch.allclose(masked, mha(x, x, x, need_weights=False, attn_mask=mask)[0], atol=1e-5)


@pytest.mark.parametrize("length", [9, 80])  # explicit in fp32 only for short sequences
@pytest.mark.parametrize("masked", [False, True])
def test_attend_matches_scaled_dot_product_attention(length, masked):
    q, k, v = (torch.randn(2, 3, length, 16, requires_grad=True) for _ in range(3))
    mask = torch.triu(torch.full((length, length), float("-inf")), 1) if masked else None
    out = attend(q, k, v, mask)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(out, expected, atol=1e-5)
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    expected_grads = torch.autograd.grad(expected.sum(), (q, k, v))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, expected_grads))


def _heads_then_rows(qkv: torch.Tensor, batch: int, heads: int) -> torch.Tensor:
    rows, width = qkv.shape[0], qkv.shape[1] // 3
    q, k, v = qkv.view(batch, rows // batch, 3, heads, width // heads).permute(2, 0, 3, 1, 4).unbind(0)
    return attend(q, k, v).transpose(1, 2).reshape(rows, width)


def test_token_rows_attention_has_the_exact_gradient():
    qkv = torch.randn(3 * 5, 3 * 8, dtype=torch.float64, requires_grad=True)  # 3 images, 5 tokens, 2 heads
    assert torch.autograd.gradcheck(lambda x: _TokenRowsAttention.apply(x, 3, 2), (qkv,))
    assert torch.allclose(_TokenRowsAttention.apply(qkv, 3, 2), _heads_then_rows(qkv, 3, 2))


def test_token_rows_attention_in_bf16_is_as_close_to_fp64_as_autograds():
    qkv = torch.randn(4 * 50, 3 * 96, dtype=torch.float64) * 2
    grad = torch.randn(4 * 50, 96, dtype=torch.float64)
    results = {}
    for name, attention, dtype in (("exact", _heads_then_rows, torch.float64), ("autograd", _heads_then_rows, torch.bfloat16),
                                   ("ours", _TokenRowsAttention.apply, torch.bfloat16)):
        rows = qkv.to(dtype).detach().requires_grad_(True)
        out = attention(rows, 4, 3)
        out.backward(grad.to(dtype))
        results[name] = (out.double(), rows.grad.double())
    for part in (0, 1):
        exact = results["exact"][part]
        ours, autograds = ((results[n][part] - exact).abs().mean() for n in ("ours", "autograd"))
        assert ours <= 1.1 * autograds and ours < 0.005 * exact.abs().max()


def test_attend_falls_back_to_sdpa_past_its_memory_limit(monkeypatch):
    q = torch.randn(1, 1, 8, 4, dtype=torch.bfloat16)
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **kw: calls.append(1) or real(*a, **kw))
    attend(q, q, q)
    assert calls == []  # 64 probabilities: explicit
    monkeypatch.setattr("clipgen.guidance.tower_kernels.EXPLICIT_ATTENTION_LIMIT", 63)
    attend(q, q, q)
    assert calls == [1]
    assert EXPLICIT_ATTENTION_LIMIT >= 32 * 12 * 257 ** 2  # ViT-B's longest sequence at 224², 32 cutouts


def test_the_perceptor_loads_vit_towers_rewritten(tiny_clip):
    visual = load_perceptor((tiny_clip,), CPU, offline=True).models[0].model.visual
    assert isinstance(visual.conv1, LinearPatchEmbed)
    blocks = visual.transformer.resblocks
    assert all(isinstance(block.attn, PackedSelfAttention) for block in blocks[:-1])
    assert isinstance(blocks[-1], ClassTokenBlock) and isinstance(blocks[-1].block.attn, PackedSelfAttention)
    assert fold_batch_norms(visual) == 0  # no BatchNorms in a ViT


def test_bf16_packed_tower_stays_close_to_fp32():
    images = torch.rand(4, 3, 32, 32)
    fp32 = _vit()(images)
    tower = _vit().to(torch.bfloat16)
    pack_attention(tower), linear_patch_embed(tower)
    bf16 = tower(images.to(torch.bfloat16)).float()
    assert torch.nn.functional.cosine_similarity(fp32, bf16, dim=-1).min() > 0.99


def test_resnet_batch_norms_fold_into_their_convolutions_exactly():
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


