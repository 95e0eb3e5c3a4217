"""How much of the toy world a toy VQGAN keeps: encode held-out world images, decode the
nearest codes, and let the judge read the round trip (the ceiling for any prior over its
tokens). Also PSNR and how spread the codes are.

    OMP_NUM_THREADS=2 python scripts/vqgan_round_trip.py builtin:toy /path/to/vqgan-folder --images 300
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="builtin:NAME or a folder with model.yaml + last.ckpt")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from clipgen.generators.vqgan.taming import load_vqgan
    from clipgen.toy.judge import label_targets, load_shipped_judge
    from clipgen.toy.train_vqgan import decode_codes, held_out, image_codes
    from clipgen.weights import builtin

    judge = load_shipped_judge()
    images, labels = held_out(args.images)
    targets = label_targets(labels)
    for name in args.models:
        folder = (builtin.verified_folder(builtin.get("vqgan", name.split(":", 1)[1]))
                  if name.startswith("builtin:") else Path(name))
        model = load_vqgan(folder / "model.yaml", folder / "last.ckpt", torch.device("cpu")).float().eval()
        codes = torch.cat([image_codes(model, chunk) for chunk in images.split(64)])
        recon = torch.cat([decode_codes(model, chunk) for chunk in codes.split(64)])
        with torch.no_grad():
            read = judge(recon)
        right = {head: read[head].argmax(1) == targets[head] for head in ("colour", "shape", "background")}
        joint = (right["colour"] & right["shape"] & right["background"]).float().mean()
        mse = F.mse_loss(recon, images).item()
        counts = torch.bincount(codes.flatten(), minlength=model.codebook.shape[0]).float()
        p = counts[counts > 0] / counts.sum()
        grid = tuple(codes.shape[-2:])
        print(f"{name}: {grid[0]}x{grid[1]} tokens, {model.codebook.shape[0]} codes; PSNR {10 * math.log10(1 / mse):.2f} dB; "
              f"judge on the round trip: colour {right['colour'].float().mean():.1%}, shape "
              f"{right['shape'].float().mean():.1%}, background {right['background'].float().mean():.1%}, "
              f"all three {joint:.1%}; codes used {int((counts > 0).sum())}, entropy "
              f"{float(-(p * p.log()).sum()):.2f} nats", flush=True)


if __name__ == "__main__":
    main()
