"""DALL-E dVAE: optimise logits over the 8192-code vocabulary at every cell of an 8x-downsampled grid.

The parameters are ``logits`` of shape ``(1, vocab, H/8, W/8)``. ``forward()`` turns them
into a relaxed one-hot over the vocabulary and decodes it with OpenAI's dVAE decoder:

- soft (``hard = false``): a softmax at the current temperature, so the decoder sees a
  blend of codes and every logit gets a gradient;
- hard (``hard = true``): Gumbel-softmax with a straight-through one-hot sample, so the
  decoder always sees real tokens while the gradient flows through the soft sample.

When no gradient is being taken (rendering frames, scoring the result) the generator
shows its mode instead of a random sample: the argmax tokens in hard mode, the tempered
softmax in soft mode. The temperature can anneal from ``temperature`` to
``temperature_end`` over ``anneal_steps``: it is a function of the finished step the loop
last gave :meth:`after_step`, so a resumed or rewound run is at the right temperature.

The decoder's six output channels are the parameters of a logit-Laplace distribution per
pixel; the first three, through a sigmoid and dall_e's ``unmap_pixels``, are the image.

Weights are the registry entry ``dalle-dvae`` (converted files preferred, see
:mod:`clipgen.generators.dvae.loader`) or local files; ``.pkl`` files are unpickled only through
the digest gate of :mod:`clipgen.generators.dvae.pickle_gate`.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from clipgen.config.typed import option
from clipgen.errors import ModelError, SettingsError
from clipgen.generators.base import Generator, GeneratorContext
from clipgen.generators.common import clamp_with_grad, existing_file, model_option, require_multiple
from clipgen.generators.dvae.loader import PartSource, converted_paths, entry_part, load_part
from clipgen.generators.dvae.pickle_gate import PickleSource, import_dall_e
from clipgen.generators.upsampling import convolve_doubled
from clipgen.hardware import convert_frozen
from clipgen.weights.entries.dvae import DVAE_DECODER, DVAE_ENCODER

DEFAULT_MODEL = "dalle-dvae"
FACTOR = 8  # the dVAE downsamples 8x (three 2x poolings / upsamplings)
SCHEDULES = ("linear", "exponential")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class DVAEOptions:
    model: str = model_option(DEFAULT_MODEL, "dalle-dvae", "dVAE")
    decoder: str | None = option(None, help="Local decoder.pkl, or a converted decoder.safetensors (overrides model)")
    encoder: str | None = option(None, help="Local encoder.pkl or encoder.safetensors (only for --init-image)")
    decoder_sha256: str | None = option(None, help="Pinned SHA-256 of the decoder .pkl: unpickled only if it matches")
    encoder_sha256: str | None = option(None, help="Pinned SHA-256 of the encoder .pkl: unpickled only if it matches")
    trust_checkpoint: bool = option(False, help="Unpickle .pkl files that have no pinned digest (files you trust)")
    # Soft won the comparison in scripts/compare_dvae_modes.py (issue #9), annealed or not.
    hard: bool = option(False, help="Gumbel-softmax with a straight-through one-hot sample instead of a softmax")
    temperature: float = option(1.0, help="Softmax temperature (at the start, when annealed)", min=0.01, max=100.0)
    temperature_end: float | None = option(0.1, help="Temperature after anneal_steps (none: constant)",
                                           min=0.01, max=100.0)
    schedule: str = option("exponential", help="How the temperature moves to temperature_end", choices=SCHEDULES)
    anneal_steps: int | None = option(None, help="Steps over which the temperature anneals (default: the run's steps)",
                                      min=1)
    blacklist: tuple[int, ...] = option((), help="Code ids never to use, e.g. 0,17,4093", min=0)
    init_scale: float = option(1.0, help="Standard deviation of the random starting logits", min=0.0, max=100.0)
    init_peak: float = option(12.0, help="Starting logit of each encoder token with --init-image", min=0.0, max=100.0)

    def __post_init__(self) -> None:
        for name in ("decoder_sha256", "encoder_sha256"):
            value = getattr(self, name)
            if value is not None and not _SHA256.fullmatch(value):
                raise SettingsError(f"dvae.{name}: expected 64 hexadecimal digits, got {value!r}")
        # Here rather than at load time, so a wrong path fails before CLIP or any model loads.
        for part in ("decoder", "encoder"):
            if getattr(self, part):
                existing_file(getattr(self, part), f"dVAE {part}", f"check dvae.{part}")


# --------------------------------------------------------------------------- pure helpers


def temperature_at(step: int, start: float, end: float | None, steps: int, schedule: str) -> float:
    """The temperature after ``step`` optimiser steps; constant once ``steps`` have passed."""
    if end is None:
        return start
    progress = min(max(step, 0) / max(steps, 1), 1.0)
    if schedule == "linear":
        return start + (end - start) * progress
    return start * (end / start) ** progress  # geometric: equal ratios per step


def blacklist_bias(blacklist: tuple[int, ...], vocab_size: int) -> torch.Tensor:
    """``(1, vocab, 1, 1)``: 0, or -inf for codes never to be used."""
    bad = sorted(set(blacklist))
    if bad and bad[-1] >= vocab_size:
        raise SettingsError(f"dvae.blacklist: code {bad[-1]} does not exist; this dVAE has codes 0..{vocab_size - 1}")
    if len(bad) >= vocab_size:
        raise SettingsError("dvae.blacklist bans every code; leave at least one")
    bias = torch.zeros(1, vocab_size, 1, 1)
    bias[0, bad] = -math.inf
    return bias


def one_hot(tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Token indices ``(B, h, w)`` -> float one-hot ``(B, vocab, h, w)``."""
    out = torch.zeros(tokens.shape[0], vocab_size, *tokens.shape[1:], device=tokens.device)
    return out.scatter_(1, tokens.unsqueeze(1), 1.0)


def relaxed_one_hot(logits: torch.Tensor, tau: float, hard: bool, sample: bool) -> torch.Tensor:
    """What the decoder sees, ``(B, vocab, h, w)``.

    ``sample``: Gumbel noise in hard mode (used while optimising); without it the hard mode
    is the argmax one-hot, the soft mode the tempered softmax either way.
    """
    if not hard:
        return F.softmax(logits / tau, dim=1)
    if sample:
        return F.gumbel_softmax(logits, tau=tau, hard=True, dim=1)
    return one_hot(logits.argmax(dim=1), logits.shape[1])


def peaked_logits(tokens: torch.Tensor, vocab_size: int, peak: float) -> torch.Tensor:
    """Logits whose softmax picks ``tokens``: ``peak`` at the token, 0 elsewhere."""
    return one_hot(tokens, vocab_size) * peak


def compute_in_weight_dtype(module: nn.Module) -> None:
    """dall_e's convolutions cast their input to fp32 off CUDA (and to fp16 on it, whatever
    the run asked for); these compute in their weights' dtype, the run's precision."""
    conv_class = import_dall_e().utils.Conv2d
    for conv in module.modules():
        if isinstance(conv, conv_class):
            conv.forward = functools.partial(_conv_in_weight_dtype, conv)


def _conv_in_weight_dtype(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x.to(conv.w.dtype), conv.w, conv.b, padding=(conv.kw - 1) // 2)


def double_inside_blocks(decoder: nn.Module) -> int:
    """Move each of dall_e's decoder upsamplings (nearest doubling at the end of groups 1-3)
    into the first block of the next group (:func:`_doubling_block_forward`); returns how
    many moved. Only a decoder laid out as dall_e's is changed."""
    groups = [getattr(decoder.blocks, f"group_{i}", None) for i in range(1, 5)]
    moved = 0
    for group, following in zip(groups, groups[1:]):
        first = getattr(following, "block_1", None)
        if isinstance(getattr(group, "upsample", None), nn.Upsample) and hasattr(first, "res_path"):
            group.upsample = nn.Identity()
            first.forward = functools.partial(_doubling_block_forward, first)
            moved += 1
    return moved


def _doubling_block_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """dall_e's ``DecoderBlock.forward`` of the doubled ``x``, from ``x``: the ReLUs and 1×1
    convolutions before its first 3×3 one (and the 1×1 of its skip path) commute with
    nearest-neighbour doubling, so they run on a quarter of the pixels, and the 3×3
    convolution takes the doubling in as one transposed convolution
    (:mod:`clipgen.generators.upsampling`)."""
    res = block.res_path
    h = res.relu_2(res.conv_1(res.relu_1(x)))
    h = convolve_doubled(h.to(res.conv_2.w.dtype), res.conv_2.w, res.conv_2.b, res.conv_2)
    h = res.conv_4(res.relu_4(res.conv_3(res.relu_3(h))))
    return F.interpolate(block.id_path(x), scale_factor=2.0, mode="nearest") + block.post_gain * h


# --------------------------------------------------------------------------- the generator


class DVAEGenerator(Generator):
    """Logits over the dVAE vocabulary on a token grid, decoded every step."""

    default_lr = 0.1
    # Published decoder (n_hid 256): activations kept for backward are ~1.2 GB at 256x256
    # (two 256-channel blocks at full size dominate), ~1500 image copies; logits, gradient,
    # Adam moments, softmax and codes (8192/64 values per pixel each) add ~250. Matches the
    # 4.3 GB peak RSS of scripts/bench_dvae_step.py with ViT-B-32 and 32 cutouts.
    memory_factor = 1800.0
    Options = DVAEOptions

    def __init__(self, size: tuple[int, int], options: DVAEOptions, context: GeneratorContext):
        require_multiple("dvae", size, FACTOR, f"the dVAE downsamples {FACTOR}x")
        super().__init__(size, options, context)
        self.anneal_steps = options.anneal_steps or max(1, context.steps)
        self.step = 0  # finished optimiser steps, as last told by after_step
        self._encoder: nn.Module | None = None  # loaded on the first init_from_image
        self._eps = float(import_dall_e().utils.logit_laplace_eps)
        source = _part_source(options, "decoder")

        def load():
            decoder = load_part(source, "Decoder", context.device)
            compute_in_weight_dtype(decoder)
            double_inside_blocks(decoder)
            # Channels-last: the layout oneDNN's and cuDNN's fast conv kernels want (see vqgan).
            convert_frozen(decoder, context.dtype, channels_last=True)
            return decoder

        self.decoder = context.frozen_model(("dvae-decoder", str(source)), load)
        if self.decoder.output_channels < 3:
            raise ModelError(f"this dVAE decoder makes {self.decoder.output_channels} channels; an image needs 3")
        self.vocab_size = int(self.decoder.vocab_size)
        self.register_buffer("bias", blacklist_bias(options.blacklist, self.vocab_size), persistent=False)
        self.tokens_hw = (self.height // FACTOR, self.width // FACTOR)
        # Drawn on the CPU so a seed gives the same start on every device.
        self.logits = nn.Parameter(self._draw().to(context.device))

    def _draw(self) -> torch.Tensor:
        return torch.randn(1, self.vocab_size, *self.tokens_hw) * self.options.init_scale

    @torch.no_grad()
    def random_start(self) -> None:
        self.logits.copy_(self._draw())

    @property
    def temperature(self) -> float:
        o = self.options
        return temperature_at(self.step, o.temperature, o.temperature_end, self.anneal_steps, o.schedule)

    def forward(self) -> torch.Tensor:
        codes = relaxed_one_hot(self.logits + self.bias, self.temperature, self.options.hard,
                                sample=torch.is_grad_enabled())
        return self.decode(codes)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``(1, vocab, h, w)`` code weights -> ``(1, 3, H, W)`` image in [0, 1]."""
        # dall_e's decoder takes fp32 codes; its first convolution casts them to the run's precision.
        stats = self.decoder(codes.contiguous(memory_format=torch.channels_last)).float()
        mean = torch.sigmoid(stats[:, :3])
        # dall_e.utils.unmap_pixels, with a clamp that still lets gradients pull
        # saturated pixels back into range (unmap_pixels' clamp would zero them).
        return clamp_with_grad((mean - self._eps) / (1 - 2 * self._eps), 0.0, 1.0)

    def after_step(self, step: int) -> None:
        self.step = step

    def encoder(self) -> nn.Module:
        """The dVAE encoder, loaded once per generator (``--zoom`` re-encodes every frame)."""
        if self._encoder is None:
            encoder = load_part(_part_source(self.options, "encoder"), "Encoder", self.logits.device)
            if int(encoder.vocab_size) != self.vocab_size:
                raise ModelError(f"the dVAE encoder has {encoder.vocab_size} codes, the decoder "
                                 f"{self.vocab_size}; use an encoder and decoder that belong together")
            # Kept outside the module tree: it is not part of what is optimised or saved.
            object.__setattr__(self, "_encoder", encoder)
        return self._encoder

    @torch.no_grad()
    def init_from_image(self, image: torch.Tensor) -> None:
        """Start from the tokens the dVAE encoder gives ``image`` (1, 3, H, W) in [0, 1]."""
        encoder = self.encoder()
        image = image.to(self.logits.device, torch.float32)
        map_pixels = import_dall_e().utils.map_pixels
        scores = encoder(map_pixels(image[:1])).float() + self.bias
        self.logits.copy_(peaked_logits(scores.argmax(dim=1), self.vocab_size, self.options.init_peak))

    @torch.no_grad()
    def tokens(self) -> torch.Tensor:
        """The current most likely token grid ``(h, w)``."""
        return (self.logits + self.bias).argmax(dim=1)[0]


def _part_source(options: DVAEOptions, part: str) -> PartSource:
    """Where the ``decoder``/``encoder`` comes from: a local file, else the registry entry."""
    local, pin = getattr(options, part), getattr(options, f"{part}_sha256")
    if local:
        path = Path(local).expanduser()  # the options checked that it exists
        if path.suffix == ".safetensors":
            return PartSource(converted=path)
        tensors, config = converted_paths(path.with_suffix(""))
        if tensors.is_file() and config.is_file():  # converted beside it: no unpickling
            return PartSource(converted=tensors)
        fix = f"check dvae.{part} or pin the right digest with dvae.{part}_sha256"
        return PartSource(pickled=PickleSource(path, pin, options.trust_checkpoint, fix))
    if options.decoder or options.encoder:
        other = "decoder" if part == "encoder" else "encoder"
        raise SettingsError(f"dvae.{other} is a local file but dvae.{part} is not set; give both "
                            f"(the {part} is needed {'to start from an image' if part == 'encoder' else 'to draw'})")
    filename = DVAE_DECODER if part == "decoder" else DVAE_ENCODER
    return entry_part(options.model, filename, trust_checkpoint=options.trust_checkpoint, pin=pin)
