"""The roofline: how far a bench step is from what this machine's arithmetic allows.

A step's FLOPs are counted op by op (torch's own formulas, ``torch.utils.flop_counter``)
and split into convolutions and matrix products, the two kinds of kernel a CPU runs at
different peaks. Each peak is measured here, on the case's own most expensive shape of
that kind, at the bench's thread count. ``floor = conv FLOPs / conv peak + matmul FLOPs /
matmul peak`` is the time a step would take if every FLOP ran at the machine's best and
nothing else cost anything; ``efficiency = floor / measured step`` is the figure that stays
comparable across machines, where seconds do not.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from clipgen.kernel_rates import DTYPES, conv_rate, matmul_rate

aten = torch.ops.aten
PACKED_LINEAR = torch.ops.mkldnn._linear_pointwise  # clipgen.packed_linear's product: (x, packed weight, ...)
CONV_OPS = {aten.convolution, aten._convolution, aten.convolution_backward}
# attention kernels count, but have no probe shape
MATMUL_OPS = {aten.mm, aten.addmm, aten.bmm, aten.baddbmm, PACKED_LINEAR}


def _packed_linear_flops(x, packed, *args, out_val=None, **kwargs) -> int:
    return 2 * x.shape[0] * x.shape[1] * packed.shape[0]


#: Formulas for ops torch's flop counter does not know.
FLOP_FORMULAS = {PACKED_LINEAR: _packed_linear_flops}


@dataclass
class FlopTally:
    """FLOPs of the ops seen, by kind, and the shape that cost the most of each kind."""

    conv: int = 0
    matmul: int = 0
    by_shape: dict = field(default_factory=lambda: defaultdict(int))  # (kind, shape) -> FLOPs

    @property
    def total(self) -> int:
        return self.conv + self.matmul

    def heaviest(self, kind: str) -> tuple | None:
        shapes = [(flops, shape) for (k, shape), flops in self.by_shape.items() if k == kind]
        return max(shapes)[1] if shapes else None


class CountFlops(TorchDispatchMode):
    """Counts every op with a FLOP formula into a :class:`FlopTally` while active."""

    def __init__(self):
        super().__init__()
        self.tally = FlopTally()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        formula = FLOP_FORMULAS.get(packet) or flop_registry.get(packet)
        if formula is not None:
            flops = int(formula(*args, **kwargs, out_val=out))
            kind = "conv" if packet in CONV_OPS else "matmul"
            setattr(self.tally, kind, getattr(self.tally, kind) + flops)
            if packet in CONV_OPS or packet in MATMUL_OPS:
                self.tally.by_shape[(kind, _shape_key(packet, args))] += flops
        return out


def _shape_key(packet, args) -> tuple:
    """What a peak measurement needs: conv ``(c_in, c_out, h, w, kernel, stride, padding)``
    of the forward convolution (a backward counts as the forward it differentiates);
    matmul ``(m, k, n)``."""
    if packet in CONV_OPS:
        x, weight, rest = (args[1], args[2], args[4:]) if packet is aten.convolution_backward else \
            (args[0], args[1], args[3:])
        stride, padding = int(rest[0][0]), int(rest[1][0])
        return (int(x.shape[1]), int(weight.shape[0]), int(x.shape[-2]), int(x.shape[-1]), int(weight.shape[-1]),
                stride, padding)
    if packet is PACKED_LINEAR:
        x, packed = args[0], args[1]
        return (int(x.shape[0]), int(x.shape[1]), int(packed.shape[0]))
    a, b = [t for t in args if isinstance(t, torch.Tensor) and t.ndim >= 2][-2:]
    batch = a.shape[0] if a.ndim == 3 else 1
    return (int(batch * a.shape[-2]), int(a.shape[-1]), int(b.shape[-1]))


def count_flops(step) -> FlopTally:
    """The FLOPs of calling ``step()`` once, eagerly: compiled modules run uncompiled here,
    since the count is of the model's arithmetic, which compiling does not change."""
    with CountFlops() as counter:
        torch.compiler.disable(step, recursive=True)()
    return counter.tally


def measure_peaks(tally: FlopTally, precisions: tuple[str, ...], device: torch.device,
                  min_seconds: float = 0.3) -> dict[str, dict[str, float]]:
    """``{precision: {"conv": FLOP/s, "matmul": FLOP/s}}`` on the tally's heaviest shapes."""
    peaks: dict[str, dict[str, float]] = {}
    conv, matmul = tally.heaviest("conv"), tally.heaviest("matmul")
    for name in precisions:
        dtype = DTYPES[name]
        peaks[name] = {}
        if matmul:
            m, k, n = (min(d, 4096) for d in matmul)  # a bounded probe; peaks flatten long before
            peaks[name]["matmul"] = matmul_rate(m, k, n, dtype, device, min_seconds=min_seconds)
        if conv:
            c_in, c_out, h, w, kernel, stride, padding = conv
            peaks[name]["conv"] = conv_rate(c_in, c_out, h, w, dtype, device, kernel=kernel, stride=stride,
                                            padding=padding, min_seconds=min_seconds)
    return peaks


def floor_seconds(tally: FlopTally, peaks: dict[str, float]) -> float:
    """Seconds a step would take with every FLOP at its kind's peak."""
    seconds = tally.matmul / peaks["matmul"] if tally.matmul else 0.0
    if tally.conv:
        seconds += tally.conv / peaks.get("conv", peaks.get("matmul", float("inf")))
    return seconds


def roofline_precisions(device: torch.device, measured_precision: str) -> tuple[str, ...]:
    precisions = ("fp32", "bf16") if device.type == "cpu" else ("fp32", "bf16", "fp16")
    return precisions if measured_precision in precisions else (*precisions, measured_precision)


def roofline(tally: FlopTally, measured_seconds: float, measured_precision: str, device: torch.device,
             precisions: tuple[str, ...] | None = None, earlier_peaks: dict | None = None) -> dict:
    """The bench's ``roofline`` entry: FLOPs, peaks and floor per precision, and the
    measured step's efficiency against the floor of the precision it ran in.

    Peaks are measured now and, with ``earlier_peaks`` (measured before the timed steps),
    the higher of the two is kept: on a machine whose speed drifts, a peak caught in a
    slow moment would make the floor too slow and the efficiency too high."""
    precisions = precisions or roofline_precisions(device, measured_precision)
    peaks = measure_peaks(tally, precisions, device)
    for name, kinds in (earlier_peaks or {}).items():
        for kind, rate in kinds.items():
            if name in peaks:
                peaks[name][kind] = max(peaks[name].get(kind, 0.0), rate)
    floors = {name: floor_seconds(tally, peaks[name]) for name in precisions}
    return {
        "flops_per_step": tally.total, "conv_flops": tally.conv, "matmul_flops": tally.matmul,
        "conv_shape": tally.heaviest("conv"), "matmul_shape": tally.heaviest("matmul"),
        "peaks_gflops": {name: {kind: round(rate / 1e9, 1) for kind, rate in p.items()} for name, p in peaks.items()},
        "floor_seconds": floors,
        "precision": measured_precision,
        "efficiency": floors[measured_precision] / measured_seconds if measured_seconds > 0 else None,
    }


def profile_step(step, rows: int) -> list[dict]:
    """torch.profiler over one ``step()``: the ``rows`` ops with the most self time, with
    their call counts (where a thread goes idle shows as many calls of a cheap op)."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        step()
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:rows]
    total = sum(e.self_cpu_time_total for e in prof.key_averages()) or 1
    return [{"op": e.key, "calls": e.count, "self_ms": round(e.self_cpu_time_total / 1e3, 2),
             "total_ms": round(e.cpu_time_total / 1e3, 2), "self_share": round(e.self_cpu_time_total / total, 4)}
            for e in events]
