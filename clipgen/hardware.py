"""The machine: which device a run uses, which precision frozen models compute in, and
whether a run's memory fits, all decided before anything is allocated.

Devices: ``auto`` picks CUDA, then Apple MPS, then the CPU. Precision: only frozen
networks change dtype; the optimised parameters, their optimiser state, the loss and the
targets stay fp32 (bf16's 8-bit mantissa is plenty for activations but would swallow
small Adam updates). Memory: a rough peak estimate, to refuse impossible sizes up front.
"""

from __future__ import annotations

import os
import re
import resource
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from clipgen.errors import DeviceError, SettingsError
from clipgen.kernel_rates import DTYPES, PrecisionProbe, cached_precision_probe

# --------------------------------------------------------------------------- devices


def resolve_device(name: str) -> torch.device:
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match:
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} requested but CUDA is not available here; use --device cpu or auto")
        index = int(match.group(1) or 0)
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} does not exist: this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s); use cuda:0..")
        return torch.device("cuda", index)
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceError("device 'mps' requested but Apple MPS is not available; use --device cpu or auto")
        return torch.device("mps")
    raise DeviceError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N, mps")


# --------------------------------------------------------------------------- precision

def cpu_has_fast_bf16() -> bool:
    """True where the CPU has bf16 matrix instructions (AVX-512 BF16 or AMX)."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    for name in checks:
        check = getattr(torch.cpu, name, None)
        try:
            if check is not None and check():
                return True
        except (RuntimeError, AttributeError):
            continue
    return False


def resolve_precision(name: str, device: torch.device, probe_cache: Path | None = None) -> torch.dtype:
    """The dtype for ``--precision name`` on ``device``; ``auto`` picks the fast one."""
    return choose_precision(name, device, probe_cache).dtype


@dataclass(frozen=True)
class PrecisionChoice:
    """What ``--precision`` resolved to, and why (``run.json`` and ``--dry-run`` show it)."""

    dtype: torch.dtype
    reason: str
    probe: PrecisionProbe | None = None

    def to_dict(self) -> dict:
        return {"precision": precision_name(self.dtype), "reason": self.reason,
                "probe": self.probe.to_dict() if self.probe else None}


def choose_precision(name: str, device: torch.device, probe_cache: Path | None = None) -> PrecisionChoice:
    """``--precision name`` on ``device``. On a CPU, ``auto`` times bf16 against fp32 (once
    per machine and torch version when ``probe_cache`` is a folder): CPU flags alone cannot
    tell an AMX part (bf16 ~6× fp32) from AVX-512-BF16 (~2×) from AVX2, where bf16 runs on
    reference kernels 5–10× slower."""
    if name == "auto":
        if device.type == "cuda":
            if torch.cuda.is_bf16_supported():
                return PrecisionChoice(torch.bfloat16, "auto: bf16 is supported by this GPU")
            return PrecisionChoice(torch.float16, "auto: this GPU has no bf16")
        if device.type != "cpu":
            return PrecisionChoice(torch.float32, f"auto: fp32 on {device.type}")
        probe = cached_precision_probe(probe_cache)
        faster = "bf16" if probe.bf16_speedup > 1.1 else "fp32"
        return PrecisionChoice(DTYPES[faster], f"auto: measured bf16 at {probe.bf16_speedup:.2f}× fp32 "
                               f"on this CPU ({probe.capability})", probe)
    if name not in DTYPES:
        raise SettingsError(f"unknown precision {name!r}; valid: auto, {', '.join(DTYPES)}")
    dtype = DTYPES[name]
    if dtype == torch.float16 and device.type == "cpu":
        raise SettingsError("--precision fp16 is for GPUs (CPUs have no fast fp16 path); "
                            "use --precision bf16 or fp32 on the CPU")
    return PrecisionChoice(dtype, "given")


def precision_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in DTYPES.items()}[dtype]


def convert_frozen(module: torch.nn.Module, dtype: torch.dtype, channels_last: bool = False) -> torch.nn.Module:
    """Cast a frozen network's weights once (not per step, as autocast would) and, for
    conv nets, store them channels-last, the layout oneDNN/cuDNN's fast kernels want."""
    module.to(dtype=dtype)
    if channels_last:
        module.to(memory_format=torch.channels_last)
    return module


# --------------------------------------------------------------------------- memory

_BYTES = 4  # fp32
#: Live copies of a full-size image during a step (output, autograd intermediates, grads,
#: optimiser moments of pixel-sized parameters). Generators with big decoders raise it.
DEFAULT_IMAGE_FACTOR = 24.0
# Activation bytes kept for backward per cutout at 224² through a ViT-B-class tower.
_PER_CUTOUT_224 = 40 * 2**20


def estimate_bytes(width: int, height: int, cutn: int, clip_sizes: tuple[int, ...] = (224,),
                   image_factor: float = DEFAULT_IMAGE_FACTOR, cut_batch: int = 0,
                   dtype: torch.dtype = torch.float32) -> int:
    """Peak bytes of one step. Cutouts go through CLIP ``cut_batch`` at a time (0: all),
    so only one chunk's activations are alive; half-precision halves activations."""
    scale = torch.finfo(dtype).bits / 32
    image = width * height * 3 * _BYTES * image_factor * (0.5 + 0.5 * scale)  # fp32 params/grads stay
    alive = min(cutn, cut_batch) if cut_batch else cutn
    cutouts = sum(alive * _PER_CUTOUT_224 * (size / 224) ** 2 for size in clip_sizes) * scale
    return int(image + cutouts)


def available_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_fits(width: int, height: int, cutn: int, device: torch.device, need: int) -> None:
    """Raise SettingsError naming the knobs when a run estimated at ``need`` bytes would not fit."""
    have = available_bytes(device)
    if have is not None and need > have:
        raise SettingsError(
            f"size {width}x{height} with {cutn} cutouts needs about {gib(need)} (estimate) but "
            f"{device.type} has {gib(have)} available; use a smaller --size, --cut-batch or --cutn")


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
