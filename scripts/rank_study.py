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

    from clipgen.generators.base import GeneratorContext
    from clipgen.generators.vqgan.generator import VQGANGenerator, VQGANOptions
    from clipgen.guidance.perceptor import load_perceptor
    from clipgen.guidance.scoring import augmented_similarity_matrix, similarity_matrix
    from clipgen.outputs.images import tensor_to_pil
    from clipgen.priors.base import PriorContext
    from clipgen.priors.registry import decoder_of, load_prior
    from clipgen.priors.sampling import Sampling, sample_grids
    from clipgen.toy import world
    from clipgen.toy.evaluate import (COUNT_SET, POSITION_SET, PROMPT_SET, Judged, prompt_seed, prompt_text,
                                      wanted_attributes)
    from clipgen.toy.judge import load_shipped_judge, read_attributes

    cpu = torch.device("cpu")
    prompts = {"basic": PROMPT_SET, "position": POSITION_SET, "count": COUNT_SET}[args.prompt_set][: args.prompts]
    judge = load_shipped_judge()
    prior = load_prior("toy", PriorContext(cpu, offline=True))
    sampling = Sampling(guidance=prior.default_guidance)
    decoder = VQGANGenerator((world.SIZE, world.SIZE), VQGANOptions(model=decoder_of("toy")),
                             GeneratorContext(device=cpu, offline=True))
    resnet = load_perceptor(("toy",), cpu, offline=True)
    vit = load_perceptor(("toy-vit",), cpu, offline=True)
    both = load_perceptor(("toy", "toy-vit"), cpu, offline=True)

    def whole(perceptor):
        return lambda images, text: similarity_matrix(perceptor, images, [text])[:, 0]

    def augmented(perceptor):
        return lambda images, text: augmented_similarity_matrix(perceptor, images, [text], args.views)[:, 0]

    rankings = {"toy": whole(resnet), "toy-vit": whole(vit), "toy+toy-vit": whole(both),
                f"toy, {args.views} augmented views": augmented(resnet),
                f"toy-vit, {args.views} augmented views": augmented(vit),
                f"toy+toy-vit, {args.views} augmented views": augmented(both)}

    rows = []  # per prompt: judged flags and every ranking's scores, for all samples
    for entry in prompts:
        text = prompt_text(*entry)
        wanted = wanted_attributes(entry)
        tokens = sample_grids(prior, text, args.samples, prompt_seed(text), sampling)
        images = [tensor_to_pil(image) for image in decoder.decode_tokens(tokens)]
        judged = [Judged(text, wanted, seen, 0.0, "") for seen in read_attributes(judge, images)]
        cb = [j.colour_and_background for j in judged]
        three = [j.all_three for j in judged]
        scores = {name: rank(images, text).tolist() for name, rank in rankings.items()}
        rows.append({"prompt": text, "colour_and_background": cb, "all_three": three, "scores": scores})
        print(f"{text}: {sum(cb)}/{len(cb)} colour+background, {sum(three)} all three", flush=True)

    sizes = [n for n in (8, 16, 32, 64, 128, 256, 512) if n <= args.samples]
    table = {}
    for n in sizes:
        line = {"oracle": [any(r["colour_and_background"][:n]) for r in rows],
                "random": [sum(r["colour_and_background"][:n]) / n for r in rows]}
        line3 = {"oracle": [any(r["all_three"][:n]) for r in rows],
                 "random": [sum(r["all_three"][:n]) / n for r in rows]}
        for name in rankings:
            picks = [max(range(n), key=lambda i: r["scores"][name][i]) for r in rows]
            line[name] = [r["colour_and_background"][p] for r, p in zip(rows, picks)]
            line3[name] = [r["all_three"][p] for r, p in zip(rows, picks)]
        table[n] = {name: (sum(line[name]) / len(rows), sum(line3[name]) / len(rows)) for name in line}
        print(f"\n{n} samples per prompt: colour+background / all three of the top-ranked sample")
        for name, (a, b) in table[n].items():
            print(f"  {name:36s} {a:4.0%} / {b:4.0%}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rank-study.json").write_text(json.dumps({"rows": rows, "table": table}, indent=2))


if __name__ == "__main__":
    main()
