"""Build a taming-transformers VQGAN from its real on-disk format, without Lightning.

A model is two files: the OmegaConf-style ``.yaml`` the authors trained with and the
PyTorch-Lightning ``.ckpt`` it saved. From the yaml we take only ``model.target`` and
``model.params.{embed_dim, n_embed, ddconfig}``; the modules come from the pure-torch
half of the ``taming`` package (``taming.modules.diffusionmodules.model`` and
``taming.modules.vqvae.quantize``). ``taming.models`` is never imported: it pulls in
pytorch-lightning and builds the training loss (LPIPS, discriminator) we do not need.

From the checkpoint we copy exactly the tensors our modules declare — ``encoder.*``,
``decoder.*``, ``quant_conv.*``, ``post_quant_conv.*``, ``quantize.*`` — with their shapes
checked, ignoring ``loss.*`` and Lightning's bookkeeping. The checkpoint is read by
:func:`clipgen.weights.checkpoints.load_checkpoint` (``weights_only=True``, see there).
"""

from __future__ import annotations

import contextlib
import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.utils.checkpoint
from torch import nn

from clipgen.errors import MissingDependencyError, ModelError, one_line
from clipgen.generators.vqgan.group_norm import group_norm, group_norm_silu
from clipgen.generators.vqgan.quantise import nearest_codes
from clipgen.generators.vqgan.upsample import upsample_forward
from clipgen.hardware import convert_frozen
from clipgen.weights.checkpoints import load_checkpoint, state_dict_of

VQ_TARGET = "taming.models.vqgan.VQModel"
GUMBEL_TARGET = "taming.models.vqgan.GumbelVQ"
TARGETS = {VQ_TARGET: "vq", GUMBEL_TARGET: "gumbel"}

#: The parts of a VQModel the generator needs (the rest of a checkpoint is ignored).
PREFIXES = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.", "quantize.")

_DDCONFIG_KEYS = ("ch", "out_ch", "ch_mult", "num_res_blocks", "attn_resolutions",
                  "in_channels", "resolution", "z_channels")


def _taming_modules():
    """The two pure-torch taming modules; a clear error when the extra is missing."""
    try:
        from taming.modules.diffusionmodules import model as diffusion
        from taming.modules.vqvae import quantize
    except ModuleNotFoundError as exc:
        package = "einops" if exc.name == "einops" else "taming-transformers-rom1504"
        raise MissingDependencyError(package, "vqgan", "The vqgan generator") from None
    return diffusion, quantize


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class VQGANConfig:
    """What the yaml says about the architecture."""

    kind: str  # "vq" or "gumbel"
    embed_dim: int
    n_embed: int
    ddconfig: dict[str, Any]
    kl_weight: float = 5e-4

    @property
    def downsampling(self) -> int:
        """Pixels per token along each axis: one halving per resolution level but the last."""
        return 2 ** (len(self.ddconfig["ch_mult"]) - 1)


def read_config(path: str | Path) -> VQGANConfig:
    """Parse a taming yaml with a safe loader and check the fields we use."""
    try:
        import yaml
    except ModuleNotFoundError:
        raise MissingDependencyError("pyyaml", "vqgan", "Reading VQGAN configs") from None
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"cannot read VQGAN config {path}: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelError(f"VQGAN config {path} is not valid YAML ({one_line(exc)}); fix or replace the file") from None

    def need(mapping, key, where):
        if not isinstance(mapping, dict) or key not in mapping:
            raise ModelError(f"VQGAN config {path} has no {where}; is it a taming-transformers model.yaml?")
        return mapping[key]

    model = need(data, "model", "'model' section")
    target = need(model, "target", "model.target")
    if target not in TARGETS:
        raise ModelError(
            f"VQGAN config {path}: model.target {target!r} is not supported; "
            f"expected {VQ_TARGET} or {GUMBEL_TARGET}"
        )
    params = need(model, "params", "model.params")
    ddconfig = need(params, "ddconfig", "model.params.ddconfig")
    for key in _DDCONFIG_KEYS:
        need(ddconfig, key, f"model.params.ddconfig.{key}")
    embed_dim = need(params, "embed_dim", "model.params.embed_dim")
    n_embed = need(params, "n_embed", "model.params.n_embed")
    ints = {"embed_dim": embed_dim, "n_embed": n_embed, "ddconfig.ch": ddconfig["ch"],
            "ddconfig.z_channels": ddconfig["z_channels"], "ddconfig.num_res_blocks": ddconfig["num_res_blocks"]}
    for key, value in ints.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelError(f"VQGAN config {path}: model.params.{key} must be a positive whole number, got {value!r}")
    if not isinstance(ddconfig["ch_mult"], list) or not ddconfig["ch_mult"]:
        raise ModelError(f"VQGAN config {path}: model.params.ddconfig.ch_mult must be a non-empty list")
    kl_weight = params.get("kl_weight", 5e-4)
    return VQGANConfig(kind=TARGETS[target], embed_dim=embed_dim, n_embed=n_embed,
                       ddconfig=dict(ddconfig), kl_weight=float(kl_weight))


# --------------------------------------------------------------------------- model


class TamingVQGAN(nn.Module):
    """The first stage of a VQModel/GumbelVQ, attribute names matching the checkpoint."""

    def __init__(self, config: VQGANConfig):
        super().__init__()
        diffusion, quantize = _taming_modules()
        self.config = config
        dd = config.ddconfig
        # taming's Decoder announces the latent shape with print(); keep stdout clean.
        with contextlib.redirect_stdout(io.StringIO()):
            self.encoder = diffusion.Encoder(**dd)
            self.decoder = diffusion.Decoder(**dd)
        self.quant_conv = nn.Conv2d(dd["z_channels"], config.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, dd["z_channels"], 1)
        if config.kind == "gumbel":
            if not hasattr(quantize, "GumbelQuantize"):
                # The old 'taming-transformers' 0.0.1 on PyPI predates Gumbel models.
                raise MissingDependencyError("taming-transformers-rom1504", "vqgan", "Gumbel VQGAN models")
            # As in taming.models.vqgan.GumbelVQ (its proj reads quant_conv's output).
            self.quantize = quantize.GumbelQuantize(
                dd["z_channels"], config.embed_dim, n_embed=config.n_embed,
                kl_weight=config.kl_weight, temp_init=1.0,
            )
        else:
            quantizer = getattr(quantize, "VectorQuantizer2", None) or quantize.VectorQuantizer
            self.quantize = quantizer(config.n_embed, config.embed_dim, beta=0.25)

    @property
    def codebook(self) -> torch.Tensor:
        """``(n_embed, embed_dim)``; GumbelQuantize keeps it in ``embed``, the others in ``embedding``."""
        table = self.quantize.embed if self.config.kind == "gumbel" else self.quantize.embedding
        return table.weight

    compute_dtype = torch.float32
    channels_last = False
    checkpointing = False

    def set_compute(self, dtype: torch.dtype, channels_last: bool) -> None:
        """Run the convolutional parts in ``dtype`` (the codebook stays fp32: it is compared
        with the fp32 latents being optimised)."""
        for part in (self.encoder, self.decoder, self.quant_conv, self.post_quant_conv):
            convert_frozen(part, dtype, channels_last)
        self.compute_dtype = dtype
        self.channels_last = channels_last

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """Quantised latents -> image in about ``[-1, 1]`` (fp32)."""
        h = z_q.to(self.compute_dtype)
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        h = self.post_quant_conv(h)
        return _decode(self.decoder, h, checkpointed=self.checkpointing and torch.is_grad_enabled()).float()

    def encode_latents(self, image: torch.Tensor) -> torch.Tensor:
        """Image in ``[-1, 1]`` -> the encoder's latents before quantisation ``(B, C, h, w)``, fp32."""
        return self.quant_conv(self.encoder(image.to(self.compute_dtype))).float()

    def encode_tokens(self, image: torch.Tensor) -> torch.Tensor:
        """Image in ``[-1, 1]`` -> token indices ``(B, h, w)``, as the real model encodes."""
        h = self.encode_latents(image)
        if self.config.kind == "gumbel":
            # GumbelQuantize samples in training; its mode is the argmax of the logits.
            return self.quantize.proj(h.to(self.quantize.proj.weight.dtype)).argmax(dim=1)
        return nearest_codes(h, self.codebook)


def _decode(decoder: nn.Module, h: torch.Tensor, checkpointed: bool) -> torch.Tensor:
    """taming's ``Decoder.forward``, its last norm and swish one
    :func:`~clipgen.generators.vqgan.group_norm.group_norm_silu`; checkpointed, each
    resolution level is recomputed in backward instead of kept (the full-resolution levels
    hold most of a step's activations)."""
    def level(i_level: int, x: torch.Tensor) -> torch.Tensor:
        up = decoder.up[i_level]
        for i_block in range(decoder.num_res_blocks + 1):
            x = up.block[i_block](x, None)
            if len(up.attn) > 0:
                x = up.attn[i_block](x)
        return up.upsample(x) if i_level != 0 else x

    h = decoder.conv_in(h)
    h = decoder.mid.block_2(decoder.mid.attn_1(decoder.mid.block_1(h, None)), None)
    for i_level in reversed(range(decoder.num_resolutions)):
        h = torch.utils.checkpoint.checkpoint(level, i_level, h, use_reentrant=False) if checkpointed \
            else level(i_level, h)
    if decoder.give_pre_end:
        return h
    return decoder.conv_out(group_norm_silu(decoder.norm_out, h))  # taming's nonlinearity() is swish


def _attention_forward(self, x: torch.Tensor) -> torch.Tensor:
    """taming's ``AttnBlock.forward`` (one head over all positions) without its permuted
    ``bmm`` copies: ``scaled_dot_product_attention``, or on a CPU, up to 4096 positions,
    three plain kernels (its flash kernel with 512-wide heads over 16² positions, forward +
    backward in bf16: 2.6 ms against 0.8 on a 2-core Zen 5 EPYC)."""
    h = self.norm(x)
    q, k, v = self.q(h), self.k(h), self.v(h)
    b, c, height, width = q.shape
    q, k, v = (t.reshape(b, c, height * width).transpose(1, 2).unsqueeze(1) for t in (q, k, v))
    if q.device.type == "cpu" and height * width <= 4096:
        out = torch.softmax(q @ k.transpose(-2, -1) * c ** -0.5, dim=-1) @ v
    else:
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    out = out.squeeze(1).transpose(1, 2).reshape(b, c, height, width)
    return x + self.proj_out(out)


def _resnet_forward(self, x: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
    """taming's ``ResnetBlock.forward`` with each norm and swish as one
    :func:`~clipgen.generators.vqgan.group_norm.group_norm_silu`: no sigmoid, multiply and
    their two backwards over every 256²×128 activation, and no norm output kept for them."""
    h = self.conv1(group_norm_silu(self.norm1, x))
    if temb is not None:
        h = h + self.temb_proj(torch.nn.functional.silu(temb))[:, :, None, None]
    h = self.conv2(self.dropout(group_norm_silu(self.norm2, h)))
    if self.in_channels != self.out_channels:
        x = self.conv_shortcut(x) if self.use_conv_shortcut else self.nin_shortcut(x)
    return x + h


def use_fast_kernels(model: nn.Module) -> None:
    """Swap taming's attention and residual blocks' forwards for the fused ones above, its
    GroupNorms' for :func:`~clipgen.generators.vqgan.group_norm.group_norm` and its
    upsamplings' for one transposed convolution (:mod:`clipgen.generators.upsampling`)."""
    diffusion, _ = _taming_modules()
    for module in model.modules():
        if isinstance(module, diffusion.AttnBlock):
            module.forward = _attention_forward.__get__(module)
        elif isinstance(module, diffusion.ResnetBlock):
            module.forward = _resnet_forward.__get__(module)
        elif isinstance(module, nn.GroupNorm):
            module.forward = functools.partial(group_norm, module)
        elif isinstance(module, diffusion.Upsample):
            module.forward = functools.partial(upsample_forward, module)


def extract_state(checkpoint: Any, path: Path, fix: str) -> dict[str, torch.Tensor]:
    """The model's ``state_dict`` from a Lightning checkpoint (or a bare state dict)."""
    state = state_dict_of(checkpoint, path, fix)
    return {k: v for k, v in state.items() if isinstance(k, str) and k.startswith(PREFIXES)}


def load_vqgan(config_path: str | Path, checkpoint_path: str | Path, device: torch.device,
               fix: str = "check the file") -> TamingVQGAN:
    """A frozen, eval-mode VQGAN on ``device`` with the checkpoint's weights."""
    config = read_config(config_path)
    return load_weights(config, checkpoint_path, device, fix)


def load_weights(config: VQGANConfig, checkpoint_path: str | Path, device: torch.device,
                 fix: str = "check the file") -> TamingVQGAN:
    checkpoint_path = Path(checkpoint_path)
    # Built on the meta device: no time spent initialising weights that are replaced anyway.
    with torch.device("meta"):
        model = TamingVQGAN(config)
    state = extract_state(load_checkpoint(checkpoint_path, fix=fix), checkpoint_path, fix)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ModelError(
            f"checkpoint {checkpoint_path} lacks {missing[0]!r}{more} needed by its config; "
            f"the yaml and ckpt do not belong together or the file is damaged; {fix}"
        )
    for key, tensor in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ModelError(
                f"checkpoint {checkpoint_path}: {key!r} has shape {shape}, the config needs "
                f"{tuple(tensor.shape)}; the yaml and ckpt do not belong together; {fix}"
            )
    # assign=True adopts the (memory-mapped) tensors instead of copying into meta ones.
    model.load_state_dict({k: state[k].float() for k in expected}, strict=True, assign=True)
    model.requires_grad_(False)
    use_fast_kernels(model)
    return model.eval().to(device)
