"""Compute precision: which dtype the frozen models (CLIP, generator decoders) run in.

Only frozen networks change precision. The optimised parameters, their optimiser
state, the loss and the targets stay fp32: bf16's 8-bit mantissa is plenty for
activations but would swallow small Adam updates to the parameters.
"""

from __future__ import annotations

import torch

from clipgen.errors import SettingsError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


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


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """The dtype for ``--precision name`` on ``device``; ``auto`` picks the fast one."""
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_has_fast_bf16():
            return torch.bfloat16
        return torch.float32
    if name not in DTYPES:
        raise SettingsError(f"unknown precision {name!r}; valid: auto, {', '.join(DTYPES)}")
    dtype = DTYPES[name]
    if dtype == torch.float16 and device.type == "cpu":
        raise SettingsError("--precision fp16 is for GPUs (CPUs have no fast fp16 path); "
                            "use --precision bf16 or fp32 on the CPU")
    return dtype


def precision_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in DTYPES.items()}[dtype]


def convert_frozen(module: torch.nn.Module, dtype: torch.dtype, channels_last: bool = False) -> torch.nn.Module:
    """Cast a frozen network's weights once (not per step, as autocast would) and, for
    conv nets, store them channels-last, the layout oneDNN/cuDNN's fast kernels want."""
    module.to(dtype=dtype)
    if channels_last:
        module.to(memory_format=torch.channels_last)
    return module
