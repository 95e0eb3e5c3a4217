"""Seconds per optimisation step of BigGAN+CLIP with the real architectures and random weights.

Writes BigGAN-deep-128/256/512 (the exact configs pytorch_pretrained_biggan converted the
released weights with; random weights) in the package's on-disk format, then times
``clipgen.generate`` steps with ViT-B-32 (random weights, ``ViT-B-32:none``). Also times
the generator alone (forward + backward), which is what one ``init_steps`` step costs.

    OMP_NUM_THREADS=1 python scripts/bench_biggan_step.py --model 256 --cutn 32 --steps 5 --threads 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import clipgen
from clipgen.bench.random_models import random_biggan
from clipgen.generators.base import GeneratorContext
from clipgen.generators.biggan.generator import BigGANGenerator, BigGANOptions


def generator_seconds(folder: Path, size: int, repeats: int = 3) -> float:
    """Mean seconds of one generator forward + backward (no CLIP), after one warm-up."""
    gen = BigGANGenerator((size, size), BigGANOptions(model_dir=str(folder)),
                          GeneratorContext(device=torch.device("cpu")))
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        (gen().mean() + gen.regularization_loss()).backward()
        times.append(time.perf_counter() - start)
    return sum(times[1:]) / repeats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=int, default=256, choices=(128, 256, 512), help="BigGAN-deep resolution")
    parser.add_argument("--size", type=int, default=None, help="Image size (default: the model's own)")
    parser.add_argument("--cutn", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = args.size or args.model
    with tempfile.TemporaryDirectory() as tmp:
        options = random_biggan(Path(tmp) / "biggan", args.model)
        generator_only = generator_seconds(Path(options["model_dir"]), size)
        stamps: list[float] = []
        result = clipgen.generate(
            "a lighthouse", generator="biggan", clip=["ViT-B-32:none"], size=(size, size),
            steps=args.steps, cutn=args.cutn, seed=0, out=str(Path(tmp) / "out"), save_every=0,
            biggan=options,
            callbacks=[lambda state: stamps.append(time.perf_counter())],
        )
    per_step = [b - a for a, b in zip(stamps[1:], stamps[2:])]  # skip the first (warm-up) step
    print(json.dumps({
        "model": f"biggan-deep-{args.model}", "size": size, "cutn": args.cutn, "threads": args.threads,
        "steps_timed": len(per_step), "seconds_per_step": round(sum(per_step) / len(per_step), 3),
        "generator_fwd_bwd_seconds": round(generator_only, 3), "peak_rss_mb": round(result.peak_rss_mb, 1),
    }))


if __name__ == "__main__":
    main()
