"""Zero-shot accuracy of a toy-world CLIP, per attribute, on held-out single-shape images.

    OMP_NUM_THREADS=2 python scripts/toy_zero_shot.py toy toy-vit --images 600

Each name is a built-in CLIP (``toy``, ``toy-vit``) or an open_clip folder written by
``clipgen toy train-clip``. For every image and attribute, the model picks among the
full captions that differ from the truth only in that attribute.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import torch


def shape_confusions(readings) -> list[tuple[str, str, int]]:
    """(true shape, read shape, count) for the misread shapes, most common first."""
    confused = Counter((s.label.shape, read["shape"]) for s, read in readings if read["shape"] != s.label.shape)
    return [(truth, read, count) for (truth, read), count in confused.most_common()]


def main() -> None:
    from clipgen.guidance.perceptor import load_perceptor
    from clipgen.toy.train_clip import reading_accuracy, zero_shot_readings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.models:
        clip = load_perceptor((name,), torch.device("cpu"), offline=True).models[0]
        readings = zero_shot_readings(clip.model, clip.tokenizer, n=args.images)
        print(json.dumps({"model": name, "images": args.images, "zero_shot": reading_accuracy(readings),
                          "shape_confusions": shape_confusions(readings)}), flush=True)


if __name__ == "__main__":
    main()
