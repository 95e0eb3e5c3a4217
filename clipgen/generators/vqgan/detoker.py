"""min-dalle's ``detoker.pt`` as a decoder-only taming VQGAN (the registry's ``dalle-vqgan``).

``detoker.pt`` is the state dict of min-dalle's ``VQGanDetokenizer``: the decoder half of
the VQGAN f16-16384 that DALL-E Mini/Mega write tokens for (dalle-mini's fine-tune of the
ImageNet model), converted from Flax with taming's module names. Its tree is

- ``embedding`` (16384 × 256): the codebook, taming's ``quantize.embedding``;
- ``post_quant_conv``: the same module as taming's;
- ``decoder``: ``conv_in``, ``mid.{block_1, attn_1, block_2}``, ``up.{0..4}.{block.{0..2},
  attn.{0..2}, upsample.conv}``, ``norm_out``, ``conv_out``, exactly the names and shapes of
  taming's ``Decoder`` with the ImageNet f16-16384 ddconfig below (ResnetBlock's
  ``norm1/conv1/norm2/conv2/nin_shortcut``, AttnBlock's ``norm/q/k/v/proj_out``).

So the mapping is three prefix rules, checked to cover both trees exactly. Two differences
in maths: this decoder draws ``[0, 1]``, not taming's ``[-1, 1]``
(:meth:`DecoderOnlyVQGAN.decode` converts), and min-dalle's GroupNorms use PyTorch's
default eps 1e-5 where taming's (and the Flax original's) use 1e-6; the converted model
keeps taming's.

There is no encoder, so the model cannot turn an image into tokens: ``init`` from an image
is refused with a clear error; prior starts and random tokens work.
"""

from __future__ import annotations

from pathlib import Path

import torch

from clipgen.errors import ModelError
from clipgen.generators.vqgan.taming import TamingVQGAN, VQGANConfig, use_fast_kernels
from clipgen.hardware import convert_frozen
from clipgen.weights.checkpoints import load_checkpoint, state_dict_of
from clipgen.weights.entries.dalle import DETOKER_FILE

__all__ = ["DETOKER_CONFIG", "DETOKER_FILE", "DecoderOnlyVQGAN", "convert_state", "load_detoker", "taming_key"]

#: taming's ImageNet f16-16384 model.yaml, the architecture of the detokenizer.
DETOKER_CONFIG = VQGANConfig(
    kind="vq", embed_dim=256, n_embed=16384,
    ddconfig={"double_z": False, "z_channels": 256, "resolution": 256, "in_channels": 3, "out_ch": 3,
              "ch": 128, "ch_mult": [1, 1, 2, 2, 4], "num_res_blocks": 2, "attn_resolutions": [16],
              "dropout": 0.0},
)

#: min-dalle key prefix -> taming key prefix.
KEY_PREFIXES = {"embedding.": "quantize.embedding.", "post_quant_conv.": "post_quant_conv.", "decoder.": "decoder."}


class DecoderOnlyVQGAN(TamingVQGAN):
    """A :class:`TamingVQGAN` without ``encoder``/``quant_conv``: decodes, cannot encode."""

    def __init__(self, config: VQGANConfig):
        super().__init__(config)
        del self.encoder, self.quant_conv

    def set_compute(self, dtype: torch.dtype, channels_last: bool) -> None:
        for part in (self.decoder, self.post_quant_conv):
            convert_frozen(part, dtype, channels_last)
        self.compute_dtype = dtype
        self.channels_last = channels_last

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """Latents -> image in about ``[-1, 1]``, taming's convention, which the generator
        maps to ``[0, 1]``. This decoder was trained to draw ``[0, 1]`` directly (min-dalle
        and dalle-mini clip its output to that range), hence the ``2x - 1``."""
        return super().decode(z_q).mul(2).sub(1)

    def encode_tokens(self, image: torch.Tensor) -> torch.Tensor:
        raise ModelError("the VQGAN 'dalle-vqgan' is a decoder only (min-dalle's detoker.pt has no encoder), so it "
                         "cannot start from an image; drop the init image or use vqgan.model=imagenet-f16-16384")


def taming_key(key: str) -> str | None:
    """The taming name of a ``VQGanDetokenizer`` state-dict key (None: not one of its parts)."""
    for prefix, target in KEY_PREFIXES.items():
        if key.startswith(prefix):
            return target + key[len(prefix):]
    return None


def convert_state(state: dict, expected: dict, path: Path, fix: str) -> dict[str, torch.Tensor]:
    """``detoker.pt``'s tensors under taming's names, every expected key present, shapes checked."""
    converted = {}
    for key, value in state.items():
        target = taming_key(key) if isinstance(key, str) else None
        if target is None or target not in expected:
            raise ModelError(f"{path} holds {key!r}, which min-dalle's VQGanDetokenizer does not have; "
                             f"is it a detoker.pt? {fix}")
        if not isinstance(value, torch.Tensor) or value.shape != expected[target].shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ModelError(f"{path}: {key!r} has shape {shape}, the f16-16384 decoder needs "
                             f"{tuple(expected[target].shape)}; is it a detoker.pt? {fix}")
        converted[target] = value.float()
    missing = [k for k in expected if k not in converted]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ModelError(f"{path} lacks the weights of {missing[0]!r}{more}; the file is damaged; {fix}")
    return converted


def load_detoker(path: str | Path, device: torch.device, fix: str = "check the file") -> DecoderOnlyVQGAN:
    """A frozen, eval-mode decoder-only VQGAN on ``device`` from min-dalle's ``detoker.pt``."""
    path = Path(path)
    with torch.device("meta"):
        model = DecoderOnlyVQGAN(DETOKER_CONFIG)
    state = state_dict_of(load_checkpoint(path, fix=fix), path, fix, what="detokenizer")
    model.load_state_dict(convert_state(state, model.state_dict(), path, fix), strict=True, assign=True)
    model.requires_grad_(False)
    use_fast_kernels(model)
    return model.eval().to(device)
