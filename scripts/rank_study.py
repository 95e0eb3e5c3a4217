"""How well each CLIP ranking picks the judge-accepted prior sample (the DALL-E recipe's rerank).

    OMP_NUM_THREADS=2 python scripts/rank_study.py --samples 128 --out /tmp/rank-study

For every prompt of the fixed set, draws ``--samples`` toy-prior samples (the seed
``toy_report.py`` gives that prompt), decodes them, has the judge read each, and scores
each with every ranking below. Prints, for the first 32, 64, … samples: how often the
sample each ranking puts first is right in colour + background and in all three, against
the oracle (any sample right) and a random pick (the mean). Nothing here changes what
``toy-dalle`` does; it tells which ``--rank-clip`` and how many ``--candidates`` to ship.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--prompt-set", choices=("basic", "position", "count"), default="basic")
    parser.add_argument("--views", type=int, default=16, help="augmented views per sample")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("rank-study"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from clipgen.guidance.perceptor import load_perceptor
    from clipgen.guidance.scoring import augmented_similarity_matrix, similarity_matrix
    from clipgen.toy.evaluate import PROMPT_SETS, Judged, PriorImages, prompt_seed, prompt_text, wanted_attributes
    from clipgen.toy.judge import load_shipped_judge, read_attributes

    cpu = torch.device("cpu")
    prompts = PROMPT_SETS[args.prompt_set][: args.prompts]
    judge = load_shipped_judge()
    samples = PriorImages("toy")
    models = {name: load_perceptor((name,), cpu, offline=True) for name in ("toy", "toy-vit")}
    views = f", {args.views} augmented views"

    def scores_of(images, text) -> dict[str, list[float]]:
        """Every ranking's score of every image. Both CLIPs together are the mean of the
        two (what the ensemble computes, each model's views drawn from the same seed)."""
        out = {}
        for name, perceptor in models.items():
            out[name] = similarity_matrix(perceptor, images, [text])[:, 0]
            out[name + views] = augmented_similarity_matrix(perceptor, images, [text], args.views)[:, 0]
        out["toy+toy-vit"] = (out["toy"] + out["toy-vit"]) / 2
        out["toy+toy-vit" + views] = (out["toy" + views] + out["toy-vit" + views]) / 2
        return {name: value.tolist() for name, value in out.items()}

    rows = []  # per prompt: judged flags and every ranking's scores, for all samples
    for entry in prompts:
        text = prompt_text(*entry)
        wanted = wanted_attributes(entry)
        images = samples(text, args.samples, prompt_seed(text))
        judged = [Judged(text, wanted, seen, 0.0, "") for seen in read_attributes(judge, images)]
        cb = [j.colour_and_background for j in judged]
        three = [j.all_three for j in judged]
        scores = scores_of(images, text)
        rows.append({"prompt": text, "colour_and_background": cb, "all_three": three, "scores": scores})
        print(f"{text}: {sum(cb)}/{len(cb)} colour+background, {sum(three)} all three", flush=True)

    sizes = [n for n in (8, 16, 32, 64, 128, 256, 512) if n <= args.samples]
    table = {}
    for n in sizes:
        table[n] = {name: (pick_rate(rows, n, name, "colour_and_background"), pick_rate(rows, n, name, "all_three"))
                    for name in ("oracle", "random", *rows[0]["scores"])}
        print(f"\n{n} samples per prompt: colour+background / all three of the top-ranked sample")
        for name, (a, b) in table[n].items():
            print(f"  {name:36s} {a:4.0%} / {b:4.0%}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rank-study.json").write_text(json.dumps({"rows": rows, "table": table}, indent=2))


def pick_rate(rows: list[dict], n: int, name: str, measure: str) -> float:
    """Over prompts, how often the first ``n`` samples' pick is right in ``measure``: the
    top-scored by ranking ``name``, any right one (``oracle``), or a random one (the mean)."""
    if name == "oracle":
        hits = [any(r[measure][:n]) for r in rows]
    elif name == "random":
        hits = [sum(r[measure][:n]) / n for r in rows]
    else:
        hits = [r[measure][max(range(n), key=r["scores"][name].__getitem__)] for r in rows]
    return sum(hits) / len(rows)


if __name__ == "__main__":
    main()
