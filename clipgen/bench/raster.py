"""Benchmark of the stroke rasteriser: forward + backward time and peak memory.

Each case runs in a fresh Python process so that ``ru_maxrss`` (the peak resident set,
which is what counts for torch's allocations on the CPU) belongs to that case alone.

    python -m clipgen.bench.raster                 # the default cases, JSON lines
    python -m clipgen.bench.raster --case 256 224 --radius 0.1 --width 1  # one case, here
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

#: (strokes, canvas side, radius, width): CLIPDraw's own setting and a large one, each
#: as initialised and with long wide strokes (the cost late in a run).
DEFAULT_CASES = ((256, 224, 0.1, 1.0), (256, 224, 0.5, 8.0), (1024, 512, 0.1, 1.0), (1024, 512, 0.5, 8.0))


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def bench_case(strokes: int, side: int, repeats: int = 3, device: str = "cpu", threads: int | None = None,
               segments: int = 1, seed: int = 0, radius: float = 0.1, width: float = 1.0) -> dict:
    """Time ``repeats`` forward+backward passes of a fresh CLIPDraw generator.

    ``radius`` and ``width`` are the initial spread (fraction of the canvas) and stroke
    width: CLIPDraw starts at 0.1 and 1 px, strokes grow while optimising, and the cost
    grows with the area their bounding boxes cover. Returns a dict of seconds (median
    over repeats, after one warm-up) and the peak RSS of this process in MiB;
    meaningful for memory only in a fresh process.
    """
    import torch

    from clipgen.generators.base import GeneratorContext
    from clipgen.generators.clipdraw.generator import ClipDrawGenerator, ClipDrawOptions
    from clipgen.generators.clipdraw.raster import estimate_pairs

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    options = ClipDrawOptions(strokes=strokes, segments=segments, radius=radius, init_width=width)
    generator = ClipDrawGenerator((side, side), options, GeneratorContext(device=torch.device(device)))
    weights = torch.rand(1, 3, side, side, device=device)
    forward, backward = [], []
    for _ in range(repeats + 1):
        generator.zero_grad(set_to_none=True)
        start = time.perf_counter()
        image = generator()
        _sync(device)
        middle = time.perf_counter()
        (image * weights).sum().backward()
        _sync(device)
        forward.append(middle - start)
        backward.append(time.perf_counter() - middle)
    forward, backward = sorted(forward[1:]), sorted(backward[1:])
    result = {
        "strokes": strokes,
        "size": side,
        "segments": segments,
        "radius": radius,
        "width": width,
        "device": device,
        "threads": torch.get_num_threads(),
        # Stroke-pixel pairs evaluated after culling: what the time scales with.
        "pairs_m": round(estimate_pairs(generator.points, generator.widths, (side, side)) / 1e6, 2),
        "forward_s": round(forward[len(forward) // 2], 4),
        "backward_s": round(backward[len(backward) // 2], 4),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
    result["step_s"] = round(result["forward_s"] + result["backward_s"], 4)
    if device.startswith("cuda"):
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run_cases(cases=DEFAULT_CASES, repeats: int = 3, device: str = "cpu", threads: int | None = None) -> list[dict]:
    """Each case in a fresh interpreter (for a clean peak RSS); returns their dicts."""
    results = []
    for strokes, side, radius, width in cases:
        command = [sys.executable, "-m", "clipgen.bench.raster", "--case", str(strokes), str(side),
                   "--radius", str(radius), "--width", str(width), "--repeats", str(repeats), "--device", device]
        if threads:
            command += ["--threads", str(threads)]
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=os.environ.copy())
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs=2, type=int, metavar=("STROKES", "SIDE"))
    parser.add_argument("--radius", type=float, default=0.1)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.case:
        results = [bench_case(*args.case, repeats=args.repeats, device=args.device, threads=args.threads,
                              radius=args.radius, width=args.width)]
    else:
        results = run_cases(repeats=args.repeats, device=args.device, threads=args.threads)
    for result in results:
        sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
