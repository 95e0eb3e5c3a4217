"""Seconds per optimisation step of dVAE+CLIP with the real architectures and random weights.

Saves a DALL-E dVAE decoder of the published architecture (dall_e defaults: n_hid 256,
2 blocks per group, 8192 codes; random weights) as a whole-module pickle, as OpenAI's
decoder.pkl is, converts it to safetensors as ``clipgen models convert`` does, then times
``clipgen.generate`` steps with ViT-B-32 (random weights, ``ViT-B-32:none``).

    OMP_NUM_THREADS=1 python scripts/bench_dvae_step.py --size 256 --cutn 32 --steps 4 --threads 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import clipgen
from clipgen.bench.random_models import random_dvae


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--cutn", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hard", action="store_true", help="Gumbel straight-through codes (default: soft)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        torch.manual_seed(0)
        dvae = random_dvae(folder)  # dall_e defaults = the published decoder architecture
        stamps: list[float] = []
        result = clipgen.generate(
            "a lighthouse", generator="dvae", clip=["ViT-B-32:none"], size=(args.size, args.size),
            steps=args.steps, cutn=args.cutn, seed=0, out=str(folder / "out"), save_every=0, device="cpu",
            dvae={**dvae, "hard": args.hard},
            callbacks=[lambda state: stamps.append(time.perf_counter())],
        )
    per_step = [b - a for a, b in zip(stamps[1:], stamps[2:])]  # skip the first (warm-up) step
    print(json.dumps({
        "size": args.size, "cutn": args.cutn, "threads": args.threads, "hard": args.hard,
        "steps_timed": len(per_step), "seconds_per_step": round(sum(per_step) / len(per_step), 3),
        "peak_rss_mb": round(result.peak_rss_mb, 1),
    }))


if __name__ == "__main__":
    main()
