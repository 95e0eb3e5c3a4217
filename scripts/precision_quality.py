"""Do bf16 and torch.compile keep optimisation quality? Same prompts, seeds and steps in
plain fp32 and in the variant (bf16, or fp32 with the CLIP towers compiled); every final
image is scored by the same fp32 CLIP, so only the variant differs.

    OMP_NUM_THREADS=2 python scripts/precision_quality.py --preset toy-vqgan --steps 60
    OMP_NUM_THREADS=2 python scripts/precision_quality.py --preset toy-fourier --steps 20 --variant compile
    OMP_NUM_THREADS=2 python scripts/precision_quality.py --preset toy-vqgan --random-generator dvae --steps 30

``--random-generator dvae|biggan`` swaps the preset's generator for that architecture with
random weights (the bench's, in the real file formats): no real weights are needed to see
whether its decoder in bf16 steers the optimisation elsewhere than in fp32.

Prints JSON: mean fp32-scored similarity per variant and their relative difference.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="toy-vqgan")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--prompts", type=int, default=5, help="how many of the toy prompt set")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", choices=("bf16", "compile"), default="bf16", help="what is compared with fp32")
    parser.add_argument("--random-generator", choices=("vqgan", "dvae", "biggan"), default=None,
                        help="the preset's guidance with this generator, random weights")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from clipgen import api
    from clipgen.guidance.perceptor import load_perceptor
    from clipgen.guidance.scoring import similarity_matrix
    from clipgen.toy.evaluate import PROMPT_SET, prompt_text

    scorer = load_perceptor(("toy",), torch.device("cpu"), offline=True)
    prompts = [prompt_text(*p) for p in PROMPT_SET[: args.prompts]]
    report: dict = {"preset": args.preset, "steps": args.steps, "prompts": len(prompts),
                    "random_generator": args.random_generator}
    with tempfile.TemporaryDirectory() as out:
        generator: dict = {}
        if args.random_generator:
            from pathlib import Path

            from clipgen.bench.cases import write_random_weights
            weights = write_random_weights(args.random_generator, Path(out) / "weights")
            generator = {"generator": args.random_generator, args.random_generator: weights}
            if args.random_generator == "dvae":  # random dVAE weights come without an encoder: no image starts
                generator["init_search"] = 0
        runs = {"fp32": {"precision": "fp32", "compile": "off"},
                args.variant: {"precision": "bf16", "compile": "off"} if args.variant == "bf16" else
                {"precision": "fp32", "compile": "on"}}
        for name, flags in runs.items():
            sims, started = [], time.perf_counter()
            for seed, prompt in enumerate(prompts):
                result = api.generate(prompt, preset=args.preset, steps=args.steps, seed=seed, out=out,
                                      save_every=0, candidates=1, offline=True, **generator, **flags)
                sims.append(float(similarity_matrix(scorer, [result.image], [prompt])[0, 0]))
            report[name] = {"mean_similarity": sum(sims) / len(sims), "similarities": sims,
                            "seconds": round(time.perf_counter() - started, 1)}
    fp32, variant = report["fp32"]["mean_similarity"], report[args.variant]["mean_similarity"]
    report["relative_difference"] = (variant - fp32) / abs(fp32)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
