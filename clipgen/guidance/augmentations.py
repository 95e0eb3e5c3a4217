"""Cutout augmentations: what makes each of CLIP's views of the image a little different.

Pure modules over a ``(n, C, H, W)`` batch of cutouts, each drawing its own randomness per
cutout from torch's generator on the batch's device (no host sync).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import nn

from clipgen.errors import SettingsError, did_you_mean

# Each entry builds one module; parameters follow what VQGAN-CLIP and pixray use. "affine" and
# "perspective" are drawn like kornia's RandomAffine / RandomPerspective but warp together,
# once: see RandomWarp.
AUGMENTATIONS: dict[str, Callable[[], nn.Module]] = {
    "affine": lambda: RandomWarp(affine=True),
    "perspective": lambda: RandomWarp(perspective=True),
    "flip": lambda: K.RandomHorizontalFlip(p=0.5),
    "jitter": lambda: ColourJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.05, p=0.7),
    "erasing": lambda: K.RandomErasing(scale=(0.1, 0.4), ratio=(0.3, 1 / 0.3), p=0.5),
    "sharpness": lambda: K.RandomSharpness(sharpness=0.3, p=0.5),
    "grayscale": lambda: K.RandomGrayscale(p=0.1),
    "noise": lambda: CutoutNoise(max_std=0.1),
}
_WARPS = ("affine", "perspective")


class RandomWarp(nn.Module):
    """A random affine map (rotation ±``degrees``, shift ±``translate`` of the size, x-shear
    ±``shear`` degrees, about the centre; with probability ``p_affine``) followed by a random
    perspective (each corner moved inwards by up to ``distortion / 2`` of the size; with
    probability ``p_perspective``), drawn per cutout as kornia's RandomAffine and
    RandomPerspective draw them, composed into one homography and resampled once.

    kornia resamples for each (two grid samplings forward and backward, plus the
    bookkeeping of its sequential container): 79 of a 1540 ms ViT-B-32 step at 32 cutouts
    on 2 Zen 5 cores. One resampling also blurs less. Outside the image the border pixels
    continue (kornia's perspective filled black there)."""

    def __init__(self, affine: bool = False, perspective: bool = False, degrees: float = 15, translate: float = 0.1,
                 shear: float = 5, p_affine: float = 0.7, distortion: float = 0.2, p_perspective: float = 0.7):
        super().__init__()
        self.affine, self.perspective = affine, perspective
        self.degrees, self.translate, self.shear, self.p_affine = degrees, translate, shear, p_affine
        self.distortion, self.p_perspective = distortion, p_perspective

    def combined(self, other: "RandomWarp") -> "RandomWarp":
        return RandomWarp(self.affine or other.affine, self.perspective or other.perspective, self.degrees,
                          self.translate, self.shear, self.p_affine, self.distortion, self.p_perspective)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        matrix = torch.eye(3, device=x.device).expand(n, 3, 3)
        if self.affine:
            matrix = self.draw_affine(n, height, width, x.device)
        if self.perspective:
            matrix = self.draw_perspective(n, height, width, x.device) @ matrix
        return warp(x, matrix)

    def draw_affine(self, n: int, height: int, width: int, device: torch.device) -> torch.Tensor:
        """``(n, 3, 3)`` pixel-space maps ``T(centre + shift) · R · Shear · T(−centre)``."""
        def uniform(spread: float) -> torch.Tensor:
            return (torch.rand(n, device=device) * 2 - 1) * spread

        angle = torch.deg2rad(uniform(self.degrees))
        shift_x, shift_y = uniform(self.translate * width), uniform(self.translate * height)
        shear = torch.tan(torch.deg2rad(uniform(self.shear)))
        chosen = (torch.rand(n, device=device) < self.p_affine).float()
        angle, shift_x, shift_y, shear = angle * chosen, shift_x * chosen, shift_y * chosen, shear * chosen
        cos, sin = angle.cos(), angle.sin()
        a, b, c, d = cos, cos * shear - sin, sin, sin * shear + cos  # R @ [[1, shear], [0, 1]]
        centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
        offset_x = centre_x + shift_x - (a * centre_x + b * centre_y)
        offset_y = centre_y + shift_y - (c * centre_x + d * centre_y)
        zero, one = torch.zeros_like(a), torch.ones_like(a)
        return torch.stack([a, b, offset_x, c, d, offset_y, zero, zero, one], -1).view(n, 3, 3)

    def draw_perspective(self, n: int, height: int, width: int, device: torch.device) -> torch.Tensor:
        """``(n, 3, 3)`` homographies taking the corners to points up to ``distortion / 2`` of the
        size inwards."""
        right, bottom = width - 1.0, height - 1.0
        # Built from Python numbers on the device: a tensor of them would be a host-to-device copy.
        xs = torch.zeros(4, device=device)
        xs[1:3] = right
        ys = torch.zeros(4, device=device)
        ys[2:] = bottom
        corners = torch.stack([xs, ys], -1)
        inwards = 1 - 2 * (corners > 0).float()  # towards the middle: + at 0, − at the far side
        chosen = (torch.rand(n, 1, 1, device=device) < self.p_perspective).float()
        reach = torch.rand(n, 4, 2, device=device) * inwards * chosen * (self.distortion / 2)
        reach[..., 0] *= right
        reach[..., 1] *= bottom
        return homography(corners.expand(n, 4, 2), corners + reach)


def homography(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(n, 3, 3)`` maps taking each of ``source``'s four ``(n, 4, 2)`` points to ``target``'s
    (the direct linear transform, ``h₃₃ = 1``). ``solve_ex``: no error check, so no device sync."""
    x, y = source.unbind(-1)
    u, v = target.unbind(-1)
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], -1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], -1)
    system = torch.cat([rows_u, rows_v], dim=1)  # (n, 8, 8)
    h, _ = torch.linalg.solve_ex(system, torch.cat([u, v], dim=1))
    return torch.cat([h, torch.ones_like(h[:, :1])], dim=1).view(-1, 3, 3)


def warp(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Resample ``(n, C, H, W)`` so that pixel ``p`` of the result is ``x`` at ``matrix⁻¹ p``
    (pixel coordinates, bilinear, border pixels continued outside)."""
    n, _, height, width = x.shape
    # The adjugate is the inverse up to a scale, which the division by the third row cancels.
    inverse = adjugate(matrix)
    xs = torch.arange(width, device=x.device, dtype=torch.float32)
    ys = torch.arange(height, device=x.device, dtype=torch.float32)

    def row(i: int) -> torch.Tensor:  # (n, H, W): one broadcast sum, not a (n, H·W, 3) product
        along_x = inverse[:, i, 0, None, None] * xs + inverse[:, i, 2, None, None]
        return along_x + inverse[:, i, 1, None, None] * ys[:, None]

    depth = row(2)
    # Source pixels to grid_sample's coordinates (align_corners=False: pixel i's centre is
    # (2i + 1)/W − 1). The grid needs no gradient, so in place.
    grid_x = (row(0) / depth).mul_(2 / width).add_(1 / width - 1)
    grid_y = (row(1) / depth).mul_(2 / height).add_(1 / height - 1)
    grid = torch.stack([grid_x, grid_y], dim=-1)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def adjugate(matrix: torch.Tensor) -> torch.Tensor:
    """``(n, 3, 3)`` adjugates: ``det · matrix⁻¹``, with no inversion kernel (32 tiny inverses
    cost 1.5 ms on a CPU; these are a few products)."""
    c0, c1, c2 = matrix.unbind(-1)
    return torch.stack([torch.linalg.cross(c1, c2), torch.linalg.cross(c2, c0), torch.linalg.cross(c0, c1)], dim=1)


#: From this many values on, CPU noise is drawn in two halves (see :func:`cpu_noise`).
NOISE_SPLIT_AT = 2**21


class CutoutNoise(nn.Module):
    """Gaussian noise with a per-cutout strength drawn from U(0, max_std)."""

    def __init__(self, max_std: float):
        super().__init__()
        self.max_std = max_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        strength = torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) * self.max_std
        large = x.device.type == "cpu" and x.numel() >= NOISE_SPLIT_AT and x.shape[0] > 1
        noise = cpu_noise(x) if large else torch.randn_like(x)
        return noise.mul_(strength).add_(x)  # the same sum as x + strength·noise, in the noise's memory


_noise_worker: ThreadPoolExecutor | None = None


def cpu_noise(like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise shaped like ``like``, its two halves (along the batch) drawn
    from two generators seeded from torch's, on two cores when torch may use two.

    torch's CPU generator is serial: 32 cutouts at 224² took 12 ms of a 1.5 s step on
    one core while the other waited. The halves and their seeds do not depend on the
    thread count, so a seed makes the same image at any ``--threads``."""
    global _noise_worker
    seeds = torch.randint(2**62, (2,)).tolist()  # from the run's stream: a resumed run draws the same
    noise = torch.empty_like(like)
    half = like.shape[0] // 2

    def fill(part: torch.Tensor, seed: int) -> None:
        part.normal_(generator=torch.Generator().manual_seed(seed))

    if torch.get_num_threads() < 2:
        fill(noise[:half], seeds[0])
        fill(noise[half:], seeds[1])
        return noise
    if _noise_worker is None:
        _noise_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clipgen-noise")
    second = _noise_worker.submit(fill, noise[half:], seeds[1])
    fill(noise[:half], seeds[0])
    second.result()
    return noise


#: Rec. 601 luma: the grey a colour jitter keeps fixed.
LUMA = (0.299, 0.587, 0.114)


class ColourJitter(nn.Module):
    """Brightness, contrast, saturation and hue, each factor drawn per cutout, all applied
    to a cutout with probability ``p``. Everything stays on the image's device: kornia's
    ColorJitter tests each factor with a Python ``.any()``, which on a GPU waits for the
    device four times a step. Hue turns colours about the grey axis (a linear map).

    The four steps compose to one colour map per cutout, ``A·x + v``: brightness and
    contrast scale, saturation mixes towards the luma grey and hue rotates about the grey
    axis (3×3 matrices), and the contrast's pivot, the cutout's mean luma, only shifts
    every channel alike (saturation and hue keep grey). So a cutout costs one reduction
    and one 3×3 map over its pixels, not a dozen full passes each way."""

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float, p: float):
        super().__init__()
        self.brightness, self.contrast, self.saturation, self.hue, self.p = brightness, contrast, saturation, hue, p
        # A buffer, so it moves with the module: made in the step, it would be a host-to-device copy.
        self.register_buffer("luma", torch.tensor(LUMA), persistent=False)

    def draw(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per cutout: the brightness, contrast and saturation factors, the hue angle, and
        whether it is jittered at all."""
        n = x.shape[0]

        def spread(width: float) -> torch.Tensor:  # U(-width, width), one per cutout
            return (torch.rand(n, device=x.device, dtype=x.dtype) * 2 - 1) * width

        brightness, contrast, saturation = 1 + spread(self.brightness), 1 + spread(self.contrast), 1 + spread(self.saturation)
        hue = spread(self.hue) * 2 * math.pi
        chosen = torch.rand(n, 1, 1, 1, device=x.device) < self.p
        return brightness, contrast, saturation, hue, chosen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        brightness, contrast, saturation, hue, chosen = self.draw(x)
        luma = self.luma.to(x.dtype)
        scale = (brightness * contrast).view(-1, 1, 1)
        towards_grey = saturation.view(-1, 1, 1) * torch.eye(3, device=x.device, dtype=x.dtype) \
            + (1 - saturation).view(-1, 1, 1) * luma.view(1, 1, 3)
        colour = scale * (hue_rotation(hue) @ towards_grey)  # (n, 3, 3)
        mean_luma = torch.einsum("c,nchw->n", luma, x) / (x.shape[2] * x.shape[3])
        shift = ((1 - contrast) * brightness * mean_luma).view(-1, 1, 1, 1)
        # Out of place: the product's output is a view, and autograd replays in-place changes
        # of a view with copies in backward (14.2 against 17.4 ms for 32 cutouts at 224²).
        out = torch.einsum("nij,njhw->nihw", colour, x) + shift
        return torch.where(chosen, out.clamp(0, 1), x)


def hue_rotation(angle: torch.Tensor) -> torch.Tensor:
    """``(n, 3, 3)``: rotations by ``angle`` (radians) about the grey axis (1, 1, 1)/√3."""
    eye = torch.eye(3, device=angle.device, dtype=angle.dtype)  # made on the device: no copy from the host
    axis = torch.full((3,), 3 ** -0.5, device=angle.device, dtype=angle.dtype)
    cross = (eye.roll(1, 0) - eye.roll(-1, 0)) * 3 ** -0.5  # [axis]×: [[0, -1, 1], [1, 0, -1], [-1, 1, 0]] / √3
    cos, sin = angle.cos().view(-1, 1, 1), angle.sin().view(-1, 1, 1)
    return cos * eye + sin * cross + (1 - cos) * torch.outer(axis, axis)


def augmentation_modules(names: list[str]) -> list[nn.Module]:
    """The modules for ``names`` in order, with affine and perspective as one warp where the
    first of them stands."""
    modules: list[nn.Module] = []
    warp_at = None
    for name in names:
        module = AUGMENTATIONS[name]()
        if name in _WARPS and warp_at is not None:
            modules[warp_at] = modules[warp_at].combined(module)
            continue
        if name in _WARPS:
            warp_at = len(modules)
        modules.append(module)
    return modules


def check_augmentations(names: tuple[str, ...]) -> None:
    for name in names:
        if name not in AUGMENTATIONS:
            raise SettingsError(f"unknown augmentation {name!r}; {did_you_mean(name, AUGMENTATIONS)}")


