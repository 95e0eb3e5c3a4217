"""Helpers that more than one generator needs, so no generator imports another.

Nothing here imports an optional extra: a generator's ``Options`` can use these checks
while settings are resolved, before any model (or its package) is loaded.
"""

from __future__ import annotations

from pathlib import Path

import torch

from clipgen import weights
from clipgen.config.typed import option
from clipgen.errors import MissingWeightsError, SettingsError


class _StraightThroughClamp(torch.autograd.Function):
    """Clamp forward; backward lets through only gradients that point back into range.

    A plain clamp zeroes the gradient of every saturated pixel, so a pixel stuck at 0
    could never be told to brighten; passing everything would keep pushing it further
    out. This passes a gradient exactly when following it moves the value inwards.
    """

    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.lo, ctx.hi = lo, hi
        ctx.save_for_backward(x)
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        outside = x - x.clamp(ctx.lo, ctx.hi)
        # Descent moves x by -grad: keep grad where that does not push x further out.
        return grad * (grad * outside >= 0), None, None


def clamp_with_grad(x: torch.Tensor, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    return _StraightThroughClamp.apply(x, lo, hi)


#: ``--init-search`` draws pixel and Fourier starts with a std up to this many times the
#: generator's own ``init_std`` (log-uniform): their own start is near-flat noise, and 64
#: of those look alike to CLIP; over this range some starts are already colour fields.
SEARCH_STD_RANGE = 100.0


def search_std(init_std: float) -> float:
    """A start's std for ``--init-search``: log-uniform in ``[init_std, SEARCH_STD_RANGE × init_std]``."""
    return init_std * SEARCH_STD_RANGE ** float(torch.rand(()))


def round_to_multiple(value: int, factor: int) -> int:
    """The nearest positive multiple of ``factor`` (what to suggest for a size that does not fit)."""
    return max(factor, round(value / factor) * factor)


def require_multiple(generator: str, size: tuple[int, int], factor: int, reason: str) -> None:
    """SettingsError unless both sides of ``size`` (width, height) are multiples of ``factor``."""
    width, height = size
    if width % factor or height % factor:
        raise SettingsError(
            f"{generator} needs a size that is a multiple of {factor} ({reason}); got {width}x{height}, "
            f"try {round_to_multiple(width, factor)}x{round_to_multiple(height, factor)}"
        )


def model_option(default: str, kind: str, noun: str, extra: tuple[str, ...] = (), note: str = ""):
    """The ``model`` option of a generator with registered weights: a registry name of ``kind``."""
    return option(default, help=f"Registered {noun} (see: clipgen models list){note}",
                  choices=weights.names(kind) + extra)


def existing_file(value: str, what: str, fix: str) -> Path:
    """``value`` as a path to a file that exists, else MissingWeightsError ``"<what> <path> does not exist; <fix>"``."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise MissingWeightsError(f"{what} {path} does not exist; {fix}")
    return path


def registry_files(model: str, kind: str, offline: bool) -> tuple[dict[str, Path], str]:
    """``(files by name, how-to-fix)`` of a downloaded registry entry.

    Never downloads from inside a run; offline or not, a missing model is a
    MissingWeightsError naming ``clipgen models download NAME``.
    """
    entry = weights.get_entry(model, kind=kind)
    files = weights.ensure(entry, offline=offline, download_missing=False)
    return files, f"fetch it again with: clipgen models download {entry.name}"
