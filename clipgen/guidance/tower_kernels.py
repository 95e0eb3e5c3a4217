"""Faster kernels for frozen open_clip image towers: the same maths, fewer and bigger ops.

Each function rewrites one kind of layer in place and returns how many it changed; they
only touch layers whose forward they know, and leave everything else as it is.

:func:`rewrite_tower` applies all of them; each alone:

- :func:`fold_batch_norms` (ResNet towers): one conv kernel per layer instead of three.
- :func:`pack_attention` (ViT towers): open_clip's ``nn.MultiheadAttention`` transposes a
  batch-first input to sequence-first before its input projection, and a linear layer
  over that non-contiguous 3-D input runs as a batched matmul against the weight expanded
  over the sequence, which bf16's kernels materialise: on a 2-core AVX-512-BF16 EPYC,
  ViT-B-32's 32 cutouts copied 177 MB per layer and direction, 2.6 of a 7.8 s step.
  Packed, the projection is one plain matmul over all tokens, then :func:`attend`.
- :func:`linear_patch_embed` (ViT towers): a patch convolution whose stride is its kernel
  is a reshape and one matmul; its input gradient as a conv ran at 21 GFLOP/s there.
- :func:`pack_mlps` (ViT towers): every matrix product of a block (the attention's two
  projections, the MLP's two layers) and the patch embedding go through weights packed
  once for oneDNN (:mod:`clipgen.packed_linear`).
- :func:`class_token_last_block` (ViT towers pooled at the class token): the last block
  computes only the class token's output, the one the tower reads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.modified_resnet import Bottleneck, ModifiedResNet
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
from torch import nn

from clipgen.packed_linear import FrozenLinear, PackedLinear


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold a frozen BatchNorm into the convolution before it: ``bn(conv(x)) == conv'(x)``.

    In eval mode a BatchNorm is a per-channel affine map; folded, a step runs one kernel
    instead of three (conv, batch-norm forward, batch-norm backward) per layer."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    bias = (conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)) - bn.running_mean
    conv.bias = nn.Parameter(bias * scale + bn.bias, requires_grad=False)


def fold_batch_norms(visual: nn.Module) -> int:
    """Fold every BatchNorm of an open_clip ``ModifiedResNet`` (the RN50-style towers and the
    toy CLIP) into its convolution; returns how many were folded. Other towers are left
    as they are: only these modules' forwards are known to apply each ``bnN`` right after
    ``convN`` (and ``downsample[1]`` after ``downsample[0]``)."""
    if not isinstance(visual, ModifiedResNet):
        return 0
    folded = 0
    for module in [visual, *(m for m in visual.modules() if isinstance(m, Bottleneck))]:
        for i in (1, 2, 3):
            conv, bn = getattr(module, f"conv{i}", None), getattr(module, f"bn{i}", None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                fold_conv_bn(conv, bn)
                setattr(module, f"bn{i}", nn.Identity())
                folded += 1
        down = getattr(module, "downsample", None)
        if isinstance(down, nn.Sequential) and isinstance(getattr(down, "1", None), nn.BatchNorm2d):
            fold_conv_bn(getattr(down, "0"), getattr(down, "1"))
            setattr(down, "1", nn.Identity())
            folded += 1
    return folded


class PackedSelfAttention(nn.Module):
    """``nn.MultiheadAttention``'s batch-first self-attention, sharing its parameters, with
    the input projection as one matmul over ``(N·L, E)`` rows. Called with anything else
    (cross-attention, weights asked for) it hands over to the original module."""

    def __init__(self, attention: nn.MultiheadAttention):
        super().__init__()
        self.original = attention
        self.heads = attention.num_heads
        self.in_proj, self.out_proj = PackedLinear(), PackedLinear()

    def forward(self, query, key, value, need_weights: bool = True, attn_mask=None, **kwargs):
        if need_weights or kwargs or key is not query or value is not query or query.dim() != 3:
            return self.original(query, key, value, need_weights=need_weights, attn_mask=attn_mask, **kwargs)
        mha = self.original
        batch, length, width = query.shape
        qkv = self.in_proj(query.reshape(batch * length, width), mha.in_proj_weight, mha.in_proj_bias)
        if attn_mask is None and explicit_attention(qkv, batch * self.heads, length, length):
            out = _TokenRowsAttention.apply(qkv, batch, self.heads)
        else:
            q, k, v = head_views(qkv, batch, self.heads).unbind(0)
            if attn_mask is not None and attn_mask.dtype != torch.bool:
                attn_mask = attn_mask.to(q.dtype)
            out = attend(q, k, v, attn_mask).transpose(1, 2).reshape(batch * length, width)
        return self.out_proj(out, mha.out_proj.weight, mha.out_proj.bias).view(batch, length, width), None

    def prepare_packed(self) -> None:
        mha = self.original
        self.in_proj.prepare(mha.in_proj_weight, mha.in_proj_bias)
        self.out_proj.prepare(mha.out_proj.weight, mha.out_proj.bias)


#: Attention-probability elements (batch × heads × length²) up to which a CPU step uses
#: explicit attention: 32 ViT-B cutouts at 224² (length 50, 197 or 257) are 1–25 M.
EXPLICIT_ATTENTION_LIMIT = 2**25


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``softmax(q kᵀ / √d + mask) v`` over ``(N, heads, L, d)``. On a CPU, in half precision
    or for short sequences, as three explicit kernels: there flash attention's blocked
    loops lose to one batched matmul each way (forward + backward of ViT-B-32's
    ``(32, 12, 50, 64)`` on 2 AVX-512-BF16 cores: 57 → 12 ms in bf16, 23 → 17 ms in fp32;
    at length 257 in bf16 338 → 130 ms, in fp32 flash wins, 367 against 493). Elsewhere,
    and where the probabilities would take too much memory to keep for backward, SDPA."""
    n, heads, length, dim = q.shape
    if not explicit_attention(q, n * heads, length, k.shape[-2]):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = q @ k.transpose(-2, -1) * dim ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    return scores.softmax(dim=-1) @ v


def head_views(qkv: torch.Tensor, batch: int, heads: int) -> torch.Tensor:
    """The input projection's ``(N·L, 3·E)`` rows as ``(3, N, heads, L, d)``: q, k and v
    split into heads, as views."""
    rows, width = qkv.shape[0], qkv.shape[1] // 3
    return qkv.view(batch, rows // batch, 3, heads, width // heads).permute(2, 0, 3, 1, 4)


def explicit_attention(like: torch.Tensor, batch_heads: int, length: int, key_length: int) -> bool:
    """Whether :func:`attend`'s three explicit kernels beat SDPA for these tensors."""
    return (like.device.type == "cpu" and (like.dtype != torch.float32 or length <= 64)
            and batch_heads * length * key_length <= EXPLICIT_ATTENTION_LIMIT)


def _probabilities(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension, computed in fp32 for half-precision scores: torch's
    CPU softmax over bf16 rows of 50 is twice as slow as over fp32 ones, conversions
    included (ViT-B-32's 384 × 50 rows at 2 threads: 0.81 against 0.39 ms)."""
    return torch.softmax(scores, -1, dtype=torch.promote_types(scores.dtype, torch.float32)).to(scores.dtype)


class _TokenRowsAttention(torch.autograd.Function):
    """:func:`attend` without a mask, from the input projection's ``(N·L, 3·E)`` rows to the
    ``(N·L, E)`` rows the output projection takes, with a backward written for the layout.

    Heads are batched in the products, tokens are rows in the projections: autograd's
    backward through the views in between stacked the three head-major gradients and then
    copied them to token rows, and copied ``k`` transposed in forward. Here one copy puts
    ``q, k, v`` head-major, the gradients' products write straight into one buffer, and the
    products take ``kᵀ``, ``pᵀ`` and ``vᵀ`` as transposed views. ViT-B-32's ``(32, 12, 50, 64)``
    forward + backward in bf16 on 2 Zen 5 cores 5.7 → 4.8 ms (bit for bit the same values),
    then the softmax in fp32 below."""

    @staticmethod
    def forward(ctx, qkv: torch.Tensor, batch: int, heads: int) -> torch.Tensor:
        rows, width = qkv.shape[0], qkv.shape[1] // 3
        length, dim = rows // batch, width // heads
        qkv_heads = head_views(qkv, batch, heads).reshape(3, batch * heads, length, dim)
        q, k, v = qkv_heads.unbind(0)
        probs = _probabilities(torch.bmm(q, k.transpose(1, 2)).mul_(dim ** -0.5))
        ctx.save_for_backward(qkv_heads, probs)
        ctx.shape = (batch, heads, length, dim)
        return torch.bmm(probs, v).view(batch, heads, length, dim).transpose(1, 2).reshape(rows, width)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        qkv_heads, probs = ctx.saved_tensors
        batch, heads, length, dim = ctx.shape
        q, k, v = qkv_heads.unbind(0)
        grad = grad.view(batch, length, heads, dim).transpose(1, 2).reshape(batch * heads, length, dim)
        grads = torch.empty_like(qkv_heads)
        torch.bmm(probs.transpose(1, 2), grad, out=grads[2])
        grad_scores = torch._softmax_backward_data(torch.bmm(grad, v.transpose(1, 2)), probs, -1, probs.dtype)
        grad_scores.mul_(dim ** -0.5)
        torch.bmm(grad_scores, k, out=grads[0])
        torch.bmm(grad_scores.transpose(1, 2), q, out=grads[1])
        return grads.view(3, batch, heads, length, dim).permute(1, 3, 0, 2, 4).reshape(batch * length, 3 * heads * dim), None, None


def pack_attention(visual: nn.Module) -> int:
    """Give every batch-first self-attention block of an open_clip ViT tower a
    :class:`PackedSelfAttention`; returns how many blocks changed."""
    if not isinstance(visual, VisionTransformer):
        return 0
    packed = 0
    for block in visual.modules():
        if not isinstance(block, ResidualAttentionBlock) or hasattr(block, "ln_1_kv"):
            continue
        mha = block.attn
        if (isinstance(mha, nn.MultiheadAttention) and mha.batch_first and mha._qkv_same_embed_dim
                and mha.in_proj_bias is not None and mha.bias_k is None and not mha.add_zero_attn
                and mha.dropout == 0.0):
            block.attn = PackedSelfAttention(mha)
            packed += 1
    return packed


class LinearPatchEmbed(nn.Module):
    """A ``Conv2d(3, width, p, stride=p, bias=False)`` as a reshape and one matmul, with the
    conv's output shape; the conv is kept for its weight (and its state-dict key)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv
        self.patch = conv.kernel_size
        self.product = PackedLinear()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (ph, pw), (n, c, h, w) = self.patch, x.shape
        gh, gw = h // ph, w // pw
        patches = x[:, :, :gh * ph, :gw * pw].reshape(n, c, gh, ph, gw, pw).permute(0, 2, 4, 1, 3, 5)
        weight = self.conv.weight
        out = self.product(patches.reshape(n * gh * gw, c * ph * pw), weight.reshape(weight.shape[0], -1))
        # (N, width, gh, gw) as a view: open_clip's reshape + permute to tokens is then free
        return out.view(n, gh, gw, -1).permute(0, 3, 1, 2)

    def prepare_packed(self) -> None:
        weight = self.conv.weight
        self.product.prepare(weight.reshape(weight.shape[0], -1))


def linear_patch_embed(visual: nn.Module) -> int:
    """Replace an open_clip ViT's patch convolution with :class:`LinearPatchEmbed`."""
    conv = getattr(visual, "conv1", None)
    if not (isinstance(visual, VisionTransformer) and isinstance(conv, nn.Conv2d) and conv.bias is None
            and conv.stride == conv.kernel_size and conv.padding in ((0, 0), 0) and conv.dilation == (1, 1)
            and conv.groups == 1):
        return 0
    visual.conv1 = LinearPatchEmbed(conv)
    return 1


def pack_mlps(visual: nn.Module) -> int:
    """Give the MLP layers of every block of an open_clip ViT tower packed weights
    (:class:`~clipgen.packed_linear.FrozenLinear`); returns how many layers changed."""
    if not isinstance(visual, VisionTransformer):
        return 0
    packed = 0
    for block in visual.modules():
        if isinstance(block, ResidualAttentionBlock):
            for name in ("c_fc", "c_proj"):
                layer = getattr(block.mlp, name, None)
                if type(layer) is nn.Linear:
                    setattr(block.mlp, name, FrozenLinear(layer))
                    packed += 1
    return packed


class ClassTokenBlock(nn.Module):
    """A ViT's last residual block for a tower that reads only the class token (token 0)
    of its output: every token still gives keys and values, but only the class token's
    query, attention output and MLP are computed, and the block returns that one token as
    a sequence of length 1. The other tokens' outputs never reach the embedding, so
    nothing the tower returns changes; ViT-B-32 skips ~9/12 of a block's products for 49
    of its 50 tokens. Called with a mask it runs the whole block."""

    def __init__(self, block: ResidualAttentionBlock):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        block = self.block
        if attn_mask is not None or kwargs or x.dim() != 3:
            return block(x, attn_mask=attn_mask, **kwargs)
        attention, mha = block.attn, block.attn.original
        batch, length, width = x.shape
        qkv = attention.in_proj(block.ln_1(x).reshape(batch * length, width), mha.in_proj_weight, mha.in_proj_bias)
        q, k, v = head_views(qkv, batch, attention.heads).unbind(0)
        out = attend(q[:, :, :1], k, v).reshape(batch, width)  # (N, heads, 1, d): heads side by side
        token = x[:, 0] + block.ls_1(attention.out_proj(out, mha.out_proj.weight, mha.out_proj.bias))
        token = token + block.ls_2(block.mlp(block.ln_2(token)))
        return token[:, None]


def class_token_last_block(visual: nn.Module) -> int:
    """Give an open_clip ViT tower pooled at the class token (no attention pooler, no token
    outputs) a :class:`ClassTokenBlock` as its last block, once its attention is packed;
    returns how many blocks changed (0 or 1)."""
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if not (isinstance(visual, VisionTransformer) and blocks and getattr(visual, "pool_type", None) == "tok"
            and visual.attn_pool is None and not visual.output_tokens and visual.transformer.batch_first
            and isinstance(blocks[-1], ResidualAttentionBlock) and isinstance(blocks[-1].attn, PackedSelfAttention)):
        return 0
    blocks[-1] = ClassTokenBlock(blocks[-1])
    return 1


def rewrite_tower(visual: nn.Module) -> None:
    """Every rewrite above that applies to this open_clip image tower, in place."""
    fold_batch_norms(visual)
    pack_attention(visual)
    linear_patch_embed(visual)
    pack_mlps(visual)
    class_token_last_block(visual)
