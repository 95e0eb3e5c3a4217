"""VQGAN: optimise continuous latents that are snapped to a taming-transformers codebook.

The parameters are latents ``z`` of shape ``(1, embed_dim, H/f, W/f)`` (``f`` the
model's downsampling factor). ``forward()`` replaces every latent by its nearest
codebook entry, keeping ``z``'s gradient (straight-through), decodes, and maps the
decoder's ``[-1, 1]`` to ``[0, 1]`` with a clamp that still passes gradients pointing
back into range. After each step :meth:`after_step` clamps ``z`` per channel to the
codebook's range, so latents never wander where no code lives.

Weights are a registry entry (``model``, see :mod:`clipgen.weights`) or a local
``config`` yaml + ``checkpoint`` ckpt pair, both checked to exist when the options are
built. A run never downloads: a missing entry is a :class:`MissingWeightsError` naming
``clipgen models download NAME``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from clipgen import weights
from clipgen.config.typed import option
from clipgen.errors import SettingsError
from clipgen.generators.base import Generator, GeneratorContext
from clipgen.generators.common import clamp_with_grad, existing_file, model_option, registry_files, require_multiple
from clipgen.generators.vqgan.detoker import DETOKER_CONFIG, DETOKER_FILE, load_detoker
from clipgen.generators.vqgan.quantise import NearestCodes
from clipgen.generators.vqgan.taming import load_weights, nearest_codes, read_config
from clipgen.priors.base import PriorStart
from clipgen.priors.registry import PRIORS, decoder_of, priors_for
from clipgen.weights import builtin

DEFAULT_MODEL = "imagenet-f16-16384"


@dataclass(frozen=True)
class VQGANOptions:
    model: str = model_option(DEFAULT_MODEL, "vqgan", "VQGAN", extra=builtin.names("vqgan"),
                              note=", or the built-in toy")
    config: str | None = option(None, help="Local taming model.yaml (with checkpoint; overrides model)")
    checkpoint: str | None = option(None, help="Local taming .ckpt (with config; overrides model)")
    checkpointing: bool = option(False, help="Recompute decoder activations in backward: less memory, "
                                             "~30% slower; for sizes that do not fit otherwise")
    init: str = option("random", help="Start tokens: random, or prior (the best of --candidates prior samples "
                                      "by CLIP; --keep of them are refined)", choices=("random", "prior"))
    prior: str | None = option(None, help=f"Prior for init=prior: {', '.join(sorted(PRIORS))} (default: the "
                                          "one whose tokens this model decodes)")
    temperature: float = option(1.0, help="Prior sampling temperature", min=0.01, max=100.0)
    top_k: int = option(0, help="Prior samples from the k likeliest codes (0: all; 1: greedy)", min=0)
    guidance: float | None = option(None, help="Prior classifier-free guidance (DALL-E's supercondition factor; "
                                               "default: the prior's own)", min=0.0, max=1000.0)

    def __post_init__(self) -> None:
        if self.init == "prior":
            self._check_prior()
        if not (self.config or self.checkpoint):
            return
        if not (self.config and self.checkpoint):
            given, other = ("config", "checkpoint") if self.config else ("checkpoint", "config")
            raise SettingsError(
                f"vqgan.{given} needs vqgan.{other} too (--vqgan-config and --vqgan-checkpoint go together)"
            )
        # Here rather than at load time, so a wrong path fails before CLIP or any model loads.
        existing_file(self.config, "VQGAN config", "check --vqgan-config")
        existing_file(self.checkpoint, "VQGAN checkpoint", "check --vqgan-checkpoint")

    def _check_prior(self) -> None:
        if self.config or self.checkpoint:
            raise SettingsError("vqgan.init=prior needs a named VQGAN model whose tokens a prior writes, not a local "
                                "config/checkpoint pair; drop --vqgan-config/--vqgan-checkpoint")
        if self.prior is None:
            if not priors_for(self.model):
                pairs = ", ".join(f"{name} (vqgan.model={decoder})" for name, (_, decoder) in sorted(PRIORS.items()))
                raise SettingsError(f"no prior writes tokens for the VQGAN {self.model!r}; priors: {pairs}")
            return
        decoder = decoder_of(self.prior)
        if decoder != self.model:
            raise SettingsError(f"the prior {self.prior!r} writes tokens of the VQGAN {decoder!r}, not "
                                f"{self.model!r}; add --set vqgan.model={decoder}")

    def prior_start(self) -> PriorStart | None:
        """What to sample start tokens from, or None for random tokens."""
        if self.init != "prior":
            return None
        name = self.prior or priors_for(self.model)[0]
        return PriorStart(name, self.temperature, self.top_k, self.guidance)


def vector_quantize(z: torch.Tensor, codebook: torch.Tensor, search=nearest_codes) -> torch.Tensor:
    """Nearest codebook entry per position of ``z`` (B, C, h, w); gradient passes to ``z``."""
    indices = search(z, codebook)
    z_q = F.embedding(indices, codebook).movedim(-1, 1)
    # Written as z_q + (z - z) rather than z + (z_q - z): the forward value is then
    # exactly the codebook entry (no rounding), the gradient still the identity.
    return z_q.detach() + (z - z.detach())


class VQGANGenerator(Generator):
    """Latents on a taming VQGAN token grid, quantised and decoded every step."""

    default_lr = 0.1
    Options = VQGANOptions

    def __init__(self, size: tuple[int, int], options: VQGANOptions, context: GeneratorContext):
        super().__init__(size, options, context)
        config_path, checkpoint_path, fix = _model_files(options, context)
        # The yaml alone: cheap, and it fixes the downsampling. min-dalle's detoker has none (detoker.py).
        config = read_config(config_path) if config_path else DETOKER_CONFIG
        factor = config.downsampling
        require_multiple("vqgan", size, factor, f"this model downsamples {factor}x")

        def load():
            model = (load_weights(config, checkpoint_path, context.device, fix) if config_path
                     else load_detoker(checkpoint_path, context.device, fix))
            # Channels-last is the layout of oneDNN's and cuDNN's fast conv kernels, fp32 included
            # since torch 2.14 (AVX2, 2 threads, 128 channels at 256², forward + input gradient:
            # 143 GFLOP/s against 75 contiguous; the 256² step 12.3 → 11.6 s).
            model.set_compute(context.dtype, channels_last=True)
            return model

        self.vqgan = context.frozen_model(("vqgan", str(config_path), str(checkpoint_path)), load)
        self.vqgan.checkpointing = options.checkpointing
        self.code_search = NearestCodes()
        codebook = self.vqgan.codebook
        # Per-channel range of the codebook, shaped to broadcast over (1, C, h, w).
        self.register_buffer("z_min", codebook.min(dim=0).values.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("z_max", codebook.max(dim=0).values.view(1, -1, 1, 1), persistent=False)
        self.tokens_hw = (self.height // factor, self.width // factor)
        # Random codebook entries, as VQGAN-CLIP starts. Drawn on the CPU so a seed gives
        # the same start on every device.
        self.z = nn.Parameter(self._embed(self._random_tokens()))

    def _random_tokens(self, block: int = 1) -> torch.Tensor:
        """Random codes, each repeated over a ``block``² patch of the grid."""
        h, w = self.tokens_hw
        coarse = torch.randint(self.codebook.shape[0], (1, -(-h // block), -(-w // block)))
        tokens = coarse.repeat_interleave(block, dim=1).repeat_interleave(block, dim=2)[:, :h, :w]
        return tokens.to(self.codebook.device)

    @torch.no_grad()
    def random_start(self) -> None:
        """Random codes at one of several scales (each over 1², 2², 4² or 8² tokens): the
        per-token start decodes to the same fine noise every time, while large patches of
        one code give starts with areas of their own colour for the search to choose from."""
        block = 2 ** int(torch.randint(0, 4, ()))
        self.z.copy_(self._embed(self._random_tokens(block)))

    @property
    def codebook(self) -> torch.Tensor:
        return self.vqgan.codebook

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token indices ``(1, h, w)`` -> latents ``(1, C, h, w)``."""
        return F.embedding(tokens, self.codebook).movedim(-1, 1).contiguous()

    def forward(self) -> torch.Tensor:
        z_q = vector_quantize(self.z, self.codebook, self.code_search)
        return clamp_with_grad(self.vqgan.decode(z_q).add(1).div(2), 0.0, 1.0)

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        self.z.copy_(torch.maximum(torch.minimum(self.z, self.z_max), self.z_min))

    @torch.no_grad()
    def init_from_image(self, image: torch.Tensor) -> None:
        """Start from the tokens the VQGAN's encoder gives ``image`` (1, 3, H, W) in [0, 1]."""
        image = image.to(self.z.device, self.z.dtype)
        tokens = self.vqgan.encode_tokens(image.mul(2).sub(1))
        self.z.copy_(self._embed(tokens[:1]))

    @torch.no_grad()
    def init_from_tokens(self, tokens: torch.Tensor) -> None:
        """Start from a token grid ``(h, w)`` (a prior's sample)."""
        if tuple(tokens.shape[-2:]) != self.tokens_hw:
            raise SettingsError(f"the start tokens are a {tokens.shape[-2]}×{tokens.shape[-1]} grid; this VQGAN at "
                                f"{self.width}x{self.height} needs {self.tokens_hw[0]}×{self.tokens_hw[1]}")
        self.z.copy_(self._embed(tokens.reshape(1, *self.tokens_hw).to(self.z.device)))

    @torch.no_grad()
    def decode_tokens(self, tokens: torch.Tensor, batch: int = 16) -> torch.Tensor:
        """Images ``(n, 3, H, W)`` in [0, 1] for token grids ``(n, h, w)``, ``batch`` at a time."""
        images = []
        for chunk in tokens.to(self.codebook.device).split(batch):
            z_q = F.embedding(chunk, self.codebook).movedim(-1, 1)
            images.append(self.vqgan.decode(z_q).add(1).div(2).clamp(0, 1))
        return torch.cat(images)

    @torch.no_grad()
    def tokens(self) -> torch.Tensor:
        """The current token grid ``(h, w)`` (what the image is made of)."""
        return nearest_codes(self.z, self.codebook)[0]


def _model_files(options: VQGANOptions, context: GeneratorContext) -> tuple[Path | None, Path, str]:
    """(config, checkpoint, how-to-fix) for a local pair (checked by the options), the built-in
    toy, or a registry entry (config None for the yaml-less dalle-vqgan)."""
    if options.config:
        paths = Path(options.config).expanduser(), Path(options.checkpoint).expanduser()
        return paths[0], paths[1], "check --vqgan-config and --vqgan-checkpoint"
    shipped = builtin.get("vqgan", options.model)
    if shipped is not None:
        folder = builtin.verified_folder(shipped)
        return folder / weights.VQGAN_CONFIG, folder / weights.VQGAN_CHECKPOINT, "reinstall clipgen"
    files, fix = registry_files(options.model, "vqgan", context.offline)
    if DETOKER_FILE in files:  # min-dalle's decoder (dalle-vqgan): one file, no yaml
        return None, files[DETOKER_FILE], fix
    return files[weights.VQGAN_CONFIG], files[weights.VQGAN_CHECKPOINT], fix
