"""Benchmark of the stroke rasteriser: forward + backward time and peak memory of one case.

Peak RSS (``ru_maxrss``, what counts for torch's allocations on the CPU) covers the whole
process, so the memory figure means something only in a fresh process per case;
``scripts/bench_clipdraw.py`` runs each case so.
"""

from __future__ import annotations

import time

import torch

from clipgen.bench.timer import sync
from clipgen.generators.base import GeneratorContext
from clipgen.generators.clipdraw.generator import ClipDrawGenerator, ClipDrawOptions
from clipgen.generators.clipdraw.raster import estimate_pairs
from clipgen.hardware import peak_rss_mb

#: (strokes, canvas side, radius, width): CLIPDraw's own setting and a large one, each
#: as initialised and with long wide strokes (the cost late in a run).
DEFAULT_CASES = ((256, 224, 0.1, 1.0), (256, 224, 0.5, 8.0), (1024, 512, 0.1, 1.0), (1024, 512, 0.5, 8.0))


def bench_case(strokes: int, side: int, repeats: int = 3, device: str = "cpu", threads: int | None = None,
               segments: int = 1, seed: int = 0, radius: float = 0.1, width: float = 1.0) -> dict:
    """Time ``repeats`` forward+backward passes of a fresh CLIPDraw generator.

    ``radius`` and ``width`` are the initial spread (fraction of the canvas) and stroke
    width: CLIPDraw starts at 0.1 and 1 px, strokes grow while optimising, and the cost
    grows with the area their bounding boxes cover. Returns a dict of seconds (median
    over repeats, after one warm-up) and the peak RSS of this process in MiB;
    meaningful for memory only in a fresh process.
    """
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
        sync(device)
        middle = time.perf_counter()
        (image * weights).sum().backward()
        sync(device)
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
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    result["step_s"] = round(result["forward_s"] + result["backward_s"], 4)
    if device.startswith("cuda"):
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result
