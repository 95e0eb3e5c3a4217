"""Frozen linear layers on the CPU with their weights packed once for oneDNN.

torch's ``F.linear`` on a CPU hands its weight to the GEMM in the plain layout on every
call, and its fp32 GEMM is MKL's, which on AMD parts takes an AVX2 code path. A frozen
weight can be packed once into oneDNN's blocked layout instead (what ``torch.compile``'s
CPU backend does for frozen models). ViT-B-32's MLP over 32 cutouts, ``(1600, 768) @
(768, 3072)``, on a 2-core AMD EPYC (Zen 5, AVX-512-BF16): bf16 780–830 GFLOP/s through
``F.linear`` against 980–1010 packed at 2 threads (450–485 against 508–517 at 1), fp32
213 against 485–493; the products are equal in bf16 and within 4e-6 relative in fp32.

A frozen layer packs twice, the weight for the forward and its transpose for the input's
gradient, so each costs one more copy of the weight per direction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: The dtypes oneDNN's packed linear takes on a CPU.
PACKED_DTYPES = (torch.float32, torch.bfloat16)

#: Smaller weights go through ``F.linear``: there the call, not the GEMM, is the cost (the
#: toy CLIPs' 128-wide layers: 33.1–34.7 ms a quickstart step packed, 32.9–35.0 not), and
#: their products stay bit for bit what they were. ViT-B's smallest layer has 590 k.
MIN_PACKED_ELEMENTS = 2**18

_mkldnn = torch.ops.mkldnn


def derivation_key(tensor: torch.Tensor) -> tuple:
    """What a copy derived from a frozen ``tensor`` (a packed weight, a summed kernel, kept
    norms) depends on: its storage, dtype, place, layout and in-place changes. A kept copy
    whose key no longer matches is made again."""
    return (tensor.data_ptr(), tensor.dtype, tensor.device, tensor.stride(), tensor._version)


def packing_available() -> bool:
    """Whether this torch build has oneDNN's packed linear, and oneDNN is switched on."""
    return (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and hasattr(_mkldnn, "_linear_pointwise") and hasattr(_mkldnn, "_reorder_linear_weight"))


def pack_weight(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """``weight`` (``out × in``) in oneDNN's layout for products with about ``rows`` rows."""
    return _mkldnn._reorder_linear_weight(weight.detach().contiguous(), rows)


def packed_product(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weightᵀ + bias`` for a 2-D ``x`` and a weight from :func:`pack_weight`."""
    return _mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


class _PackedLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, packed: torch.Tensor, packed_transposed: torch.Tensor,
                bias: torch.Tensor | None):
        ctx.packed_transposed = packed_transposed
        return packed_product(x, packed, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return packed_product(grad.contiguous(), ctx.packed_transposed), None, None, None


class PackedLinear:
    """``F.linear(x, weight, bias)`` for one frozen weight, through copies of it packed for
    oneDNN at the first call on a CPU (and again if the weight changes: another dtype, a
    move). A weight that trains, another device or dtype, ``torch.compile`` (which packs
    on its own) or a torch without the kernels go through ``F.linear``."""

    def __init__(self, rows: int = 1024, input_grad: bool = True):
        self.rows = rows  # the products' typical row count, which oneDNN picks its blocking for
        self.input_grad = input_grad  # without it, only the forward copy is packed
        self._packed: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self._packed_for: tuple | None = None

    def __call__(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        if not (x.device == weight.device and x.dtype == weight.dtype and self.prepare(weight, bias)):
            return F.linear(x, weight, bias)
        rows = x.reshape(-1, x.shape[-1]).contiguous()
        if self.input_grad:
            out = _PackedLinear.apply(rows, *self._packed, bias)
        elif x.requires_grad and torch.is_grad_enabled():
            raise RuntimeError("this packed linear keeps no copy for the input's gradient (input_grad=False)")
        else:
            out = packed_product(rows, self._packed[0], bias)
        return out.view(*x.shape[:-1], out.shape[-1])

    def __getstate__(self) -> dict:
        # oneDNN's packed tensors cannot be copied or pickled; a copy packs its own when used
        return {**self.__dict__, "_packed": None, "_packed_for": None}

    def __deepcopy__(self, memo) -> PackedLinear:
        copied = PackedLinear.__new__(PackedLinear)
        copied.__dict__.update(self.__getstate__())
        return copied

    def prepare(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> bool:
        """Pack ``weight`` now if it can be (a model calls this once it is loaded, so the
        copies are not made among a first step's activations); whether it is packed."""
        usable = (weight.device.type == "cpu" and weight.dtype in PACKED_DTYPES and not weight.requires_grad
                  and weight.numel() >= MIN_PACKED_ELEMENTS
                  and (bias is None or not bias.requires_grad) and not torch.compiler.is_compiling()
                  and packing_available())
        key = derivation_key(weight)
        if usable and self._packed_for != key:
            self._packed = (pack_weight(weight, self.rows),
                            pack_weight(weight.t(), self.rows) if self.input_grad else None)
            self._packed_for = key
        return usable


class FrozenLinear(nn.Module):
    """An ``nn.Linear`` whose product goes through :class:`PackedLinear`; the layer is kept
    for its weights and their state-dict keys."""

    def __init__(self, linear: nn.Linear, rows: int = 1024):
        super().__init__()
        self.linear = linear
        self.product = PackedLinear(rows)

    @property
    def weight(self) -> torch.Tensor:  # open_clip reads a block's c_fc.weight for its dtype
        return self.linear.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.product(x, self.linear.weight, self.linear.bias)

    def prepare_packed(self) -> None:
        self.product.prepare(self.linear.weight, self.linear.bias)


def prepare_packed(model: nn.Module) -> None:
    """Pack every packed-weight layer of ``model`` for its weights' current dtype."""
    for module in model.modules():
        if module is not model and hasattr(module, "prepare_packed"):
            module.prepare_packed()
