"""Kernel rates of this machine: FLOP/s of a matmul and a convolution in a given dtype,
and the precision probe that ``--precision auto`` decides by on a CPU.

Rates are the best of a few calls, so that a one-off (oneDNN building its primitive, a
page fault) does not count; a kernel whose first call alone fills the time budget is
not called again, which keeps the probe under a second where bf16 is 50× slower.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from clipgen.atomic import write_text
from clipgen.packed_linear import PACKED_DTYPES, pack_weight, packed_product, packing_available

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _best_seconds(fn, device: torch.device, min_seconds: float, max_repeats: int = 50) -> float:
    """The fastest of repeated calls of ``fn`` on ``device`` for about ``min_seconds``; a
    first call that alone takes that long is the answer (a kernel that slow needs no
    second look)."""
    def timed() -> float:
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    best = timed()
    if best >= min_seconds:
        return best
    spent, repeats = 0.0, 0
    while (spent < min_seconds or repeats < 2) and repeats < max_repeats:
        took = timed()
        best, spent, repeats = min(best, took), spent + took, repeats + 1
    return best


@torch.no_grad()
def matmul_rate(m: int, k: int, n: int, dtype: torch.dtype, device: torch.device = torch.device("cpu"),
                min_seconds: float = 0.2) -> float:
    """FLOP/s of an ``(m, k) @ (k, n)`` matmul in ``dtype``: the faster of ``torch.mm`` and,
    on a CPU that has it, the packed-weight kernel frozen layers use
    (:mod:`clipgen.packed_linear`), so that a peak is the best this machine does."""
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    seconds = _best_seconds(lambda: torch.mm(a, b), device, min_seconds)
    if device.type == "cpu" and dtype in PACKED_DTYPES and packing_available():
        packed = pack_weight(b.t(), m)
        seconds = min(seconds, _best_seconds(lambda: packed_product(a, packed), device, min_seconds))
    return 2 * m * k * n / seconds


@torch.no_grad()
def conv_rate(channels_in: int, channels_out: int, height: int, width: int, dtype: torch.dtype,
              device: torch.device = torch.device("cpu"), kernel: int = 3, stride: int = 1,
              padding: int | None = None, batch: int = 1, min_seconds: float = 0.2) -> float:
    """FLOP/s of a ``kernel``² convolution (same padding unless given) on a channels-last
    input, the layout oneDNN's fast kernels want."""
    padding = kernel // 2 if padding is None else padding
    x = torch.randn(batch, channels_in, height, width, device=device).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels_out, channels_in, kernel, kernel, device=device).to(dtype)
    w = w.contiguous(memory_format=torch.channels_last)
    out_h = (height + 2 * padding - kernel) // stride + 1
    out_w = (width + 2 * padding - kernel) // stride + 1
    flops = 2 * batch * channels_out * out_h * out_w * channels_in * kernel * kernel
    return flops / _best_seconds(lambda: F.conv2d(x, w, stride=stride, padding=padding), device, min_seconds)


@dataclass(frozen=True)
class PrecisionProbe:
    """bf16 against fp32 on this CPU: a matmul and a conv of CLIP-/VQGAN-like shapes, GFLOP/s."""

    machine: str
    capability: str
    threads: int
    fp32_matmul: float
    bf16_matmul: float
    fp32_conv: float
    bf16_conv: float

    @property
    def bf16_speedup(self) -> float:
        """Geometric mean of the matmul and conv speed-ups."""
        return ((self.bf16_matmul / self.fp32_matmul) * (self.bf16_conv / self.fp32_conv)) ** 0.5

    def to_dict(self) -> dict:
        return {**asdict(self), "bf16_speedup": round(self.bf16_speedup, 3)}


#: What the probe's matmul times; a probe stored by a release that timed other kernels is measured again.
PROBE_KERNELS = "mm or packed linear"


def machine_key() -> str:
    """CPU model, capability, threads, torch version and the kernels timed: what a probe's figures
    depend on."""
    return f"{cpu_model()} | {torch.backends.cpu.get_cpu_capability()} | {torch.get_num_threads()} threads | " \
           f"torch {torch.__version__} | {PROBE_KERNELS}"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_precision_probe(min_seconds: float = 0.04) -> PrecisionProbe:
    """Under a second: both kernels in both precisions, each the best of a few calls.
    Shapes: a ViT-B token block ``(128, 768) @ (768, 768)``, a 3×3 conv at 64 channels, 32²
    (small, so that bf16 on reference kernels, 50× slower, still answers quickly)."""
    rates = {}
    for name in ("fp32", "bf16"):
        dtype = DTYPES[name]
        rates[f"{name}_matmul"] = matmul_rate(128, 768, 768, dtype, min_seconds=min_seconds) / 1e9
        rates[f"{name}_conv"] = conv_rate(64, 64, 32, 32, dtype, min_seconds=min_seconds) / 1e9
    return PrecisionProbe(machine_key(), torch.backends.cpu.get_cpu_capability(), torch.get_num_threads(),
                          **{k: round(v, 2) for k, v in rates.items()})


def cached_precision_probe(folder: Path | None) -> PrecisionProbe:
    """The probe for this machine from ``folder`` (``precision-probe-<key hash>.json``),
    measured and written there the first time; measured every time when ``folder`` is None."""
    key = machine_key()
    data = read_measurement(folder, "precision-probe", key)
    try:
        return PrecisionProbe(**{f.name: data[f.name] for f in fields(PrecisionProbe)})
    except (TypeError, KeyError):
        pass  # absent, unreadable or from an older layout: measure again and rewrite it
    probe = measure_precision_probe()
    if folder is not None:
        write_measurement(folder, "precision-probe", key, probe.to_dict())
    return probe


# --------------------------------------------------------------------------- stored measurements

def _measurement_path(folder: Path, kind: str, key: str) -> Path:
    return Path(folder) / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def read_measurement(folder: Path | None, kind: str, key: str) -> dict | None:
    """The figures of ``kind`` stored for ``key`` in ``folder``; None when there are none,
    they cannot be read, or the file holds another key's (a hash collision)."""
    if folder is None:
        return None
    try:
        data = json.loads(_measurement_path(folder, kind, key).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("key") == key else None


def write_measurement(folder: Path, kind: str, key: str, figures: dict) -> None:
    """Store ``figures`` for ``key``; a read-only cache only means measuring again next time."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        write_text(_measurement_path(folder, kind, key), json.dumps({"key": key, **figures}, indent=2))
    except OSError:
        pass
