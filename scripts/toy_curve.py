"""How judged success grows with the steps: one run per prompt, every saved frame judged.

    OMP_NUM_THREADS=2 python scripts/toy_curve.py toy --out /tmp/toy-curve
    OMP_NUM_THREADS=2 python scripts/toy_curve.py toy --seed 1 --set cutn=16 --every 20

Prints, per frame step, the share of prompts whose frame the judge reads with the prompt's
colour and background, and with all three of colour, shape and background (the report's
figures for the final frame, with ``candidates=1``), then the mean seconds per image;
writes OUT/curve.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("--out", type=Path, default=Path("toy-curve"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=20, help="first N of the fixed set")
    parser.add_argument("--seed", type=int, default=0, help="added to every prompt's seed")
    parser.add_argument("--every", type=int, default=10, help="judge a frame every N steps")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import time

    from clipgen import api
    from clipgen.toy.evaluate import PROMPT_SET, prompt_seed, prompt_text, wanted_attributes
    from clipgen.toy.judge import load_shipped_judge, read_attributes

    judge = load_shipped_judge()
    hits: dict[int, list[tuple[bool, bool]]] = {}
    seconds = []
    for entry in PROMPT_SET[: args.prompts]:
        text, wanted = prompt_text(*entry), wanted_attributes(entry)
        started = time.perf_counter()
        result = api.generate(text, preset=args.preset, out=str(args.out), seed=prompt_seed(text, args.seed),
                              offline=True, set=[*args.set, "candidates=1", f"save_every={args.every}"])
        seconds.append(time.perf_counter() - started)
        frames = sorted((Path(result.paths["image"]).parent / "frames").glob("*.png"))
        images = []
        for frame in frames:
            with Image.open(frame) as image:
                images.append(image.convert("RGB"))
        for frame, seen in zip(frames, read_attributes(judge, images)):
            colour_and_background = all(seen[k] == wanted[k] for k in ("colour", "background"))
            hits.setdefault(int(frame.stem), []).append(
                (colour_and_background, colour_and_background and seen["shape"] == wanted["shape"]))
    curve = {step: {"colour_and_background": sum(c for c, _ in h) / len(h), "all_three": sum(a for _, a in h) / len(h)}
             for step, h in sorted(hits.items())}
    for step, rates in curve.items():
        print(f"step {step}: colour+background {rates['colour_and_background']:.0%}, "
              f"all three {rates['all_three']:.0%}")
    print(f"{sum(seconds) / len(seconds):.2f} s/image")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "curve.json").write_text(json.dumps({"preset": args.preset, "set": args.set, "seed": args.seed,
                                                     "curve": curve, "seconds": seconds}, indent=2))


if __name__ == "__main__":
    main()
