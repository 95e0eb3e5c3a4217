"""Does bf16 keep optimisation quality? Same prompts, seeds and steps in fp32 and in bf16;
every final image is scored by the same fp32 CLIP, so only the run's precision differs.

    OMP_NUM_THREADS=2 python scripts/precision_quality.py --preset toy-vqgan --steps 60

Prints JSON: mean fp32-scored similarity per precision and their relative difference.
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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from clipgen import api
    from clipgen.guidance.perceptor import load_perceptor
    from clipgen.guidance.scoring import similarity_matrix
    from clipgen.toy.evaluate import PROMPT_SET, prompt_text

    scorer = load_perceptor(("toy",), torch.device("cpu"), offline=True)
    prompts = [prompt_text(*p) for p in PROMPT_SET[: args.prompts]]
    report: dict = {"preset": args.preset, "steps": args.steps, "prompts": len(prompts)}
    with tempfile.TemporaryDirectory() as out:
        for precision in ("fp32", "bf16"):
            sims, started = [], time.perf_counter()
            for seed, prompt in enumerate(prompts):
                result = api.generate(prompt, preset=args.preset, steps=args.steps, seed=seed, out=out,
                                      save_every=0, precision=precision, candidates=1, offline=True)
                sims.append(float(similarity_matrix(scorer, [result.image], [prompt])[0, 0]))
            report[precision] = {"mean_similarity": sum(sims) / len(sims), "similarities": sims,
                                 "seconds": round(time.perf_counter() - started, 1)}
    fp32, bf16 = report["fp32"]["mean_similarity"], report["bf16"]["mean_similarity"]
    report["relative_difference"] = (bf16 - fp32) / abs(fp32)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
