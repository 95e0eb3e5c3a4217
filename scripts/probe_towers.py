"""Can an image tower learn position and shape at all? A supervised probe.

    OMP_NUM_THREADS=2 python scripts/probe_towers.py resnet --seconds 130
    OMP_NUM_THREADS=2 python scripts/probe_towers.py vit --seconds 240

Trains the toy CLIP's image tower (from ``clipgen.toy.train_clip.TOWERS``) plus two linear
heads with cross-entropy on position and shape of single-shape world images, without
augmentation, and prints held-out accuracy on 500 images. A tower that cannot learn
position with labels will not learn it from captions either.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F


def labelled_single_shapes(seed: int, n: int):
    from clipgen.toy import world
    from clipgen.toy.train_clip import as_tensor, single_shapes

    samples = single_shapes(n, seed, end_seed=2**30)
    positions = torch.tensor([list(world.POSITIONS).index(s.label.position) for s in samples])
    shapes = torch.tensor([world.SHAPES.index(s.label.shape) for s in samples])
    return as_tensor(samples), positions, shapes


def main() -> None:
    from clipgen.toy import train_clip

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tower", choices=sorted(train_clip.TOWERS))
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tower = train_clip.build_model(args.tower).visual
    position_head, shape_head = torch.nn.Linear(128, 9), torch.nn.Linear(128, 6)
    params = [*tower.parameters(), *position_head.parameters(), *shape_head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)
    pool = [labelled_single_shapes(i, 128) for i in range(40)]
    started, step = time.perf_counter(), 0
    while time.perf_counter() - started < args.seconds:
        images, positions, shapes = pool[step % len(pool)]
        features = tower(train_clip.normalise(images))
        loss = F.cross_entropy(position_head(features), positions) + F.cross_entropy(shape_head(features), shapes)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
    images, positions, shapes = labelled_single_shapes(10**9, 500)
    with torch.no_grad():
        features = tower.eval()(train_clip.normalise(images))
    print(json.dumps({"tower": args.tower, "steps": step, "seconds": round(time.perf_counter() - started, 1),
                      "position": (position_head(features).argmax(1) == positions).float().mean().item(),
                      "shape": (shape_head(features).argmax(1) == shapes).float().mean().item()}))


if __name__ == "__main__":
    main()
