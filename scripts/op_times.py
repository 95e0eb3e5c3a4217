"""Wall time of every aten op in one step of a bench case (random weights; default
vqgan-256-cut32), timed call by call by a dispatch mode, split into matrix products /
convolutions and the rest, with the rest's heaviest ops by name and by shape.

torch.profiler's self times overstate ops that write a fresh large tensor on a VM where
first-touch page faults are dear (5.5 µs each on a 2-core Zen 5 EPYC: 26 ms for a 19 MB
tensor whose kernel takes 1 ms); here each op is timed as it runs in the step.

    OMP_NUM_THREADS=2 python scripts/op_times.py --threads 2 --precision bf16 [--preset CASE]
"""
from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

MATRIX_OPS = ("mm", "addmm", "bmm", "convolution", "convolution_backward", "mkldnn_convolution", "_linear_pointwise")


class OpTimes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.seconds: dict[tuple, float] = collections.defaultdict(float)
        self.calls: dict[tuple, int] = collections.defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        started = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        key = (func.__name__, tuple(tuple(a.shape) for a in args[:3] if isinstance(a, torch.Tensor)))
        self.seconds[key] += time.perf_counter() - started
        self.calls[key] += 1
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vqgan-256-cut32", help="a loop case of clipgen bench --list")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    parser.add_argument("--rows", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from clipgen.bench.cases import case_session, one_step

    with tempfile.TemporaryDirectory() as folder:
        _, session = case_session(args.preset, Path(folder), device="cpu", precision=args.precision)
        for _ in range(2):
            one_step(session)
        times = OpTimes()
        started = time.perf_counter()
        with times:
            one_step(session)
        total = time.perf_counter() - started
    matrix = sum(s for (name, _), s in times.seconds.items() if name.split(".")[0] in MATRIX_OPS)
    print(f"step {total * 1e3:.0f} ms: matrix products and convolutions {matrix * 1e3:.0f} ms, "
          f"the rest {(total - matrix) * 1e3:.0f} ms")
    rest = {key: s for key, s in times.seconds.items() if key[0].split(".")[0] not in MATRIX_OPS}
    by_name: dict[str, float] = collections.defaultdict(float)
    for (name, _), seconds in rest.items():
        by_name[name] += seconds
    print("the rest, by op:")
    for name, seconds in sorted(by_name.items(), key=lambda item: -item[1])[:args.rows]:
        print(f"  {seconds * 1e3:7.1f} ms  {name}")
    print("the rest, by op and input shapes:")
    for key, seconds in sorted(rest.items(), key=lambda item: -item[1])[:args.rows]:
        print(f"  {seconds * 1e3:7.1f} ms  {times.calls[key]:4d} calls  {key[0]} {key[1]}")


if __name__ == "__main__":
    main()
