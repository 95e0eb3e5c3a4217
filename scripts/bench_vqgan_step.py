"""Seconds per optimisation step of VQGAN+CLIP with the real architectures and random weights.

Writes the ImageNet f16-16384 architecture (random weights) in the real on-disk format,
then times ``clipgen.generate`` steps with ViT-B-32 (random weights, ``ViT-B-32:none``).

    OMP_NUM_THREADS=2 python scripts/bench_vqgan_step.py --size 256 --cutn 32 --steps 6
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import clipgen
from clipgen.bench.random_models import random_vqgan

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--cutn", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        vqgan = random_vqgan(folder)
        stamps: list[float] = []
        result = clipgen.generate(
            "a lighthouse", generator="vqgan", clip=["ViT-B-32:none"], size=(args.size, args.size),
            steps=args.steps, cutn=args.cutn, seed=0, out=str(folder / "out"), save_every=0,
            vqgan=vqgan,
            callbacks=[lambda state: stamps.append(time.perf_counter())],
        )
    per_step = [b - a for a, b in zip(stamps[1:], stamps[2:])]  # skip the first (warm-up) step
    print(json.dumps({
        "size": args.size, "cutn": args.cutn, "threads": args.threads, "steps_timed": len(per_step),
        "seconds_per_step": round(sum(per_step) / len(per_step), 3),
        "peak_rss_mb": round(result.peak_rss_mb, 1),
    }))


if __name__ == "__main__":
    main()
