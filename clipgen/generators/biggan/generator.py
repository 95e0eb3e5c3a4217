"""BigGAN (BigSleep): search BigGAN-deep's noise and class inputs for what CLIP wants to see.

The parameters are noise vectors ``z`` and logits over the 1000 ImageNet classes. The
class vector fed to BigGAN is ``sigmoid(logits)`` (BigSleep: classes mix freely) or
``softmax(logits)`` (a distribution over classes). With ``latents = "per-layer"`` (the
default, as BigSleep) every generator block gets its own ``z`` and class vector; with
``"shared"`` one of each conditions the whole network, as BigGAN was trained.

``z`` starts as a truncated normal (``|z| <= 2*truncation``, BigGAN's truncation trick)
and :meth:`after_step` keeps it there. :meth:`regularization_loss` keeps the search in
the region BigGAN was trained on: it penalises drift of each noise vector's mean, std,
skew and kurtosis from the truncated normal's, and class mass outside the top class
(BigSleep's two terms, rescaled to this project's loss units).

BigGAN-deep makes square images of one size (128, 256 or 512 px). The generator renders
at that native size, crops the centre to the requested aspect ratio and resizes to the
requested size; a size other than the native one costs sharpness (upscaled) or wasted
detail (downscaled), never correctness, so any ``--size`` works.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from clipgen.config.typed import option
from clipgen.errors import MissingWeightsError, SettingsError
from clipgen.generators.base import Generator, GeneratorContext
from clipgen.generators.biggan.classes import IMAGENET_CLASSES, class_label, find_class
from clipgen.generators.biggan.loader import load_biggan, num_conditions, synthesize
from clipgen.generators.common import model_option, registry_files
from clipgen.weights.entries.biggan import BIGGAN_CONFIG, BIGGAN_WEIGHTS

DEFAULT_MODEL = "biggan-deep-256"
ACTIVATIONS = ("sigmoid", "softmax")
LATENT_LAYOUTS = ("per-layer", "shared")

#: Std and excess kurtosis of a standard normal truncated to [-2, 2] (scipy.stats.truncnorm).
TRUNCNORM_STD = 0.8796256610342398
TRUNCNORM_KURTOSIS = -0.6344632828703505
#: BigSleep multiplies its CLIP cosine similarity by 100; this project's prompt loss moves
#: about 1 per unit of cosine, so BigSleep's regularisers are divided by this to keep its balance.
BIGSLEEP_CLIP_SCALE = 100.0
#: BigSleep's class penalty: the mean of (50 * p)^2 over every class but the top one.
BIGSLEEP_CLASS_SCALE = 50.0
#: Initial class logits: BigSleep starts every class at sigmoid(-3.9) ~ 0.02 (std 0.3).
SIGMOID_START, LOGIT_NOISE = -3.9, 0.3
#: With class_name: that class near 1, the others near 0 (sigmoid) or ~5% in all (softmax).
CLASS_LOGIT = {"sigmoid": 4.0, "softmax": 10.0}
OTHER_LOGIT = {"sigmoid": -8.0, "softmax": 0.0}
#: Logits are kept within +-this so no class saturates beyond recall (sigmoid'(10) ~ 5e-5).
LOGIT_BOUND = 10.0


@dataclass(frozen=True)
class BigGANOptions:
    model: str = model_option(DEFAULT_MODEL, "biggan-deep", "BigGAN-deep")
    model_dir: str | None = option(None, help="Local folder with config.json + pytorch_model.bin (overrides model)")
    class_name: str | None = option(None, help="ImageNet class to start from, e.g. 'golden retriever' (or 0-999)")
    fix_class: bool = option(False, help="Keep class_name fixed; only the noise is searched")
    class_activation: str = option("sigmoid", choices=ACTIVATIONS,
                                   help="Class logits -> class vector: sigmoid (BigSleep) or softmax")
    latents: str = option("per-layer", choices=LATENT_LAYOUTS,
                          help="One noise + class vector per generator block (BigSleep), or one shared")
    truncation: float = option(1.0, min=0.02, max=1.0,
                               help="Noise stays within +-2*truncation; also picks BigGAN's batch-norm statistics")
    latent_weight: float = option(1.0, min=0.0, help="Keep noise in-distribution (1 = BigSleep's weight)")
    class_weight: float = option(1.0, min=0.0, help="Class sparsity: mass off the top class (1 = BigSleep's weight)")
    init_steps: int = option(60, min=0, max=10_000,
                             help="With --init-image: Adam steps fitting the generator to it by pixel MSE")

    def __post_init__(self) -> None:
        # Here rather than at load time, so a bad class or path fails before CLIP or any model loads.
        _class_index(self)
        if self.model_dir:
            folder = Path(self.model_dir).expanduser()
            for name in (BIGGAN_CONFIG, BIGGAN_WEIGHTS):
                if not (folder / name).is_file():
                    raise MissingWeightsError(f"BigGAN folder {folder} has no {name}; it needs {BIGGAN_CONFIG} "
                                              f"and {BIGGAN_WEIGHTS} (check biggan.model_dir)")


class BigGANGenerator(Generator):
    """Noise and class logits fed through a frozen BigGAN-deep."""

    default_lr = 0.07  # BigSleep's
    Options = BigGANOptions
    # BigGAN's forward+backward activations, in image-sized copies at its native size:
    # measured ~360 MB for BigGAN-deep-256 at 256 px and ~1.15 GB for -512 at 512 px (CPU).
    memory_factor = 450.0

    def __init__(self, size: tuple[int, int], options: BigGANOptions, context: GeneratorContext):
        super().__init__(size, options, context)
        class_index = _class_index(options)
        config_path, weights_path, fix = _model_files(options, context)
        self.biggan = context.frozen_model(("biggan", str(config_path), str(weights_path)),
                                           lambda: load_biggan(config_path, weights_path, context.device, fix,
                                                              context.dtype))
        config = self.biggan.config
        if class_index is not None and config.num_classes != len(IMAGENET_CLASSES):
            raise SettingsError(f"biggan.class_name needs a model of the {len(IMAGENET_CLASSES)} ImageNet "
                                f"classes; this one has {config.num_classes}")
        self.truncation = float(options.truncation)
        rows = num_conditions(self.biggan) if options.latents == "per-layer" else 1
        # Drawn on the CPU so a seed gives the same start on every device.
        self.class_index = class_index
        z, logits = self._draw(rows)
        self.z = nn.Parameter(z.to(context.device))
        if options.fix_class:
            one_hot = F.one_hot(torch.tensor([class_index]), config.num_classes).float()
            self.register_buffer("fixed_classes", one_hot.to(context.device), persistent=False)
            self.class_logits = None
        else:
            self.class_logits = nn.Parameter(logits.to(context.device))

    def _draw(self, rows: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A start (noise, class logits), on the CPU so a seed gives it on every device."""
        config = self.biggan.config
        z = nn.init.trunc_normal_(torch.empty(rows, config.z_dim), 0.0, 1.0, -2.0, 2.0) * self.truncation
        if self.options.fix_class:
            return z, None
        return z, initial_logits(rows, config.num_classes, self.options.class_activation, self.class_index)

    @torch.no_grad()
    def random_start(self) -> None:
        z, logits = self._draw(self.z.shape[0])
        self.z.copy_(z)
        if self.class_logits is not None:
            self.class_logits.copy_(logits)

    def class_vector(self) -> torch.Tensor:
        """``(rows, num_classes)``: what BigGAN is conditioned on, each entry in ``[0, 1]``."""
        if self.class_logits is None:
            return self.fixed_classes
        if self.options.class_activation == "softmax":
            return torch.softmax(self.class_logits, dim=-1)
        return torch.sigmoid(self.class_logits)

    def render(self) -> torch.Tensor:
        """The native-resolution image ``(1, 3, R, R)`` in ``[0, 1]``."""
        classes = self.class_vector()
        if classes.shape[0] != self.z.shape[0]:  # a fixed class serves every row
            classes = classes.expand(self.z.shape[0], -1)
        # tanh output: (-1, 1) maps strictly inside (0, 1), so no clamp is needed.
        return synthesize(self.biggan, self.z, classes, self.truncation).add(1).div(2)

    def forward(self) -> torch.Tensor:
        return fit_to_size(self.render(), self.height, self.width)

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        bound = 2.0 * self.truncation
        self.z.clamp_(-bound, bound)
        if self.class_logits is not None:
            self.class_logits.clamp_(-LOGIT_BOUND, LOGIT_BOUND)

    def regularization_loss(self) -> torch.Tensor:
        """BigSleep's latent and class penalties, weighted and in this project's loss units."""
        loss = self.z.new_zeros(())
        if self.options.latent_weight:
            loss = loss + self.options.latent_weight * latent_penalty(self.z, self.truncation)
        if self.options.class_weight and self.class_logits is not None:
            loss = loss + self.options.class_weight * class_penalty(self.class_vector())
        return loss / BIGSLEEP_CLIP_SCALE

    def init_from_image(self, image: torch.Tensor) -> None:
        """Fit noise and classes to ``image`` (1, 3, H, W) in [0, 1]: ``init_steps`` Adam
        steps on pixel MSE plus the regulariser (BigGAN has no encoder to invert it)."""
        target = image.to(self.z.device, self.z.dtype)
        optimizer = torch.optim.Adam(self.param_groups(self.default_lr))
        with torch.enable_grad():  # callers may hold no_grad; this fit needs gradients
            for _ in range(self.options.init_steps):
                optimizer.zero_grad(set_to_none=True)
                loss = F.mse_loss(self(), target) + self.regularization_loss()
                loss.backward()
                optimizer.step()
                self.after_step(0)  # the fit comes before the run's first step

    @torch.no_grad()
    def top_classes(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` strongest classes (averaged over rows) with their weights, for reports."""
        mass = self.class_vector().mean(dim=0)
        values, indices = mass.topk(min(k, mass.numel()))
        named = mass.numel() == len(IMAGENET_CLASSES)
        names = [class_label(i) if named else str(i) for i in indices.tolist()]
        return list(zip(names, values.tolist()))


# --------------------------------------------------------------------------- pure helpers


def initial_logits(rows: int, num_classes: int, activation: str, class_index: int | None) -> torch.Tensor:
    """Starting class logits ``(rows, num_classes)``; drawn on the CPU from torch's RNG.

    Without a class: BigSleep's start, every class a little (sigmoid) or a near-uniform
    distribution (softmax). With one: that class dominates and the others stay searchable.
    """
    if class_index is None:
        mean = SIGMOID_START if activation == "sigmoid" else 0.0
        return torch.randn(rows, num_classes) * LOGIT_NOISE + mean
    logits = torch.randn(rows, num_classes) * LOGIT_NOISE + OTHER_LOGIT[activation]
    logits[:, class_index] = CLASS_LOGIT[activation]
    return logits


def latent_penalty(z: torch.Tensor, truncation: float) -> torch.Tensor:
    """Mean over rows of |mean| + |std - s| + |skew| + |kurtosis - k|, where s and k are
    those of the truncated normal the noise starts from (BigSleep's, made truncation-aware)."""
    mean = z.mean(dim=1, keepdim=True)
    centred = z - mean
    std = centred.pow(2).mean(dim=1, keepdim=True).sqrt()
    scores = centred / std.clamp_min(1e-8)
    skew = scores.pow(3).mean(dim=1)
    kurtosis = scores.pow(4).mean(dim=1) - 3.0
    return (mean.squeeze(1).abs() + (std.squeeze(1) - TRUNCNORM_STD * truncation).abs()
            + skew.abs() + (kurtosis - TRUNCNORM_KURTOSIS).abs()).mean()


def class_penalty(classes: torch.Tensor) -> torch.Tensor:
    """BigSleep's sparsity term: mean of (50 p)^2 over every class except each row's top one."""
    rest = classes.topk(classes.shape[-1] - 1, dim=-1, largest=False).values
    return (BIGSLEEP_CLASS_SCALE * rest).pow(2).mean()


def fit_to_size(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Centre-crop a square ``image`` to the aspect ``width:height``, then resize to it."""
    side = image.shape[-1]
    if width >= height:
        crop_h, crop_w = max(1, round(side * height / width)), side
    else:
        crop_h, crop_w = side, max(1, round(side * width / height))
    top, left = (side - crop_h) // 2, (side - crop_w) // 2
    image = image[..., top:top + crop_h, left:left + crop_w]
    if (crop_h, crop_w) == (height, width):
        return image
    # Bilinear weights are non-negative, so the result stays within [0, 1].
    return F.interpolate(image, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


def _class_index(options: BigGANOptions) -> int | None:
    if options.fix_class and not options.class_name:
        raise SettingsError("biggan.fix_class needs biggan.class_name (--set biggan.class_name='golden retriever')")
    return find_class(options.class_name, "biggan.class_name") if options.class_name else None


def _model_files(options: BigGANOptions, context: GeneratorContext) -> tuple[Path, Path, str]:
    """(config.json, pytorch_model.bin, how-to-fix) for a local folder or a registry entry."""
    if options.model_dir:  # the options checked that both files are there
        folder = Path(options.model_dir).expanduser()
        return folder / BIGGAN_CONFIG, folder / BIGGAN_WEIGHTS, "check biggan.model_dir"
    files, fix = registry_files(options.model, "biggan-deep", context.offline)
    return files[BIGGAN_CONFIG], files[BIGGAN_WEIGHTS], fix
