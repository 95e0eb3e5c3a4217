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
from dataclasses import replace
from pathlib import Path

import torch


def load(name: str):
    import open_clip

    from clipgen import builtin

    model = builtin.get("clip", name)
    folder = builtin.verified_folder(model) if model else Path(name)
    clip, _, _ = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    return clip.float().eval()


@torch.no_grad()
def shape_confusions(model, tokenizer, n: int) -> list[tuple[str, str, int]]:
    """(true shape, read shape, count) for the misread shapes, most common first."""
    from clipgen.toy import world
    from clipgen.toy.train_clip import HELD_OUT_SEED, as_tensor, normalise, single_shapes

    singles = single_shapes(n, HELD_OUT_SEED, first_seed=HELD_OUT_SEED)
    features = model.encode_image(normalise(as_tensor(singles)), normalize=True)
    confused = Counter()
    for sample, feature in zip(singles, features):
        texts = [world.caption(replace(sample.label, shape=shape)) for shape in world.SHAPES]
        read = world.SHAPES[int((model.encode_text(tokenizer(texts), normalize=True) @ feature).argmax())]
        if read != sample.label.shape:
            confused[(sample.label.shape, read)] += 1
    return [(truth, read, count) for (truth, read), count in confused.most_common()]


def main() -> None:
    import open_clip

    from clipgen.toy.train_clip import zero_shot_accuracy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = open_clip.get_tokenizer("ViT-B-32", context_length=24)
    for name in args.models:
        model = load(name)
        print(json.dumps({"model": name, "images": args.images,
                          "zero_shot": zero_shot_accuracy(model, tokenizer, n=args.images),
                          "shape_confusions": shape_confusions(model, tokenizer, args.images)}), flush=True)


if __name__ == "__main__":
    main()
