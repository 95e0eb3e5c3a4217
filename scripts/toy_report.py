"""The "Offline toy world" report: toy presets on a fixed 20-prompt set, judged.

    OMP_NUM_THREADS=2 python scripts/toy_report.py toy toy-fourier toy-vqgan --out /tmp/toy-report
    OMP_NUM_THREADS=2 python scripts/toy_report.py toy-dalle --set steps=0 --prompt-set position
    OMP_NUM_THREADS=2 python scripts/toy_report.py prior:toy --samples 8      # raw prior samples
    OMP_NUM_THREADS=2 python scripts/toy_report.py prior:toy --set vqgan.guidance=1.5   # other sampling settings

Prints (and writes to OUT/report.json) per preset: the share of prompts whose image the
judge reads with the prompt's colour and background, with all three of colour, shape and
background, with everything the prompt names (position or count too), and the mean
seconds per image (including any candidates). ``prior:NAME`` judges raw prior samples
(no CLIP ranking, no refinement), ``--samples`` per prompt.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="+", help="preset names, or prior:NAME for raw prior samples")
    parser.add_argument("--out", type=Path, default=Path("toy-report"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=20, help="first N of the fixed set")
    parser.add_argument("--prompt-set", choices=("basic", "position", "count"), default="basic")
    parser.add_argument("--samples", type=int, default=8, help="prior samples per prompt (prior:NAME)")
    parser.add_argument("--seed", type=int, default=0, help="added to every prompt's seed (another draw per prompt)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a --set override for every preset, e.g. --set steps=80 --set vqgan.init=prior")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from clipgen.toy.evaluate import PROMPT_SETS, evaluate_preset, evaluate_prior_samples
    from clipgen.toy.judge import load_shipped_judge

    prompts = PROMPT_SETS[args.prompt_set][: args.prompts]
    judge = load_shipped_judge()
    reports = []
    for preset in args.presets:
        if preset.startswith("prior:"):
            report = evaluate_prior_samples(preset.split(":", 1)[1], args.samples, prompts=prompts, judge=judge,
                                            sampling=prior_sampling(args.set), seed=args.seed)
        else:
            report = evaluate_preset(preset, args.out / Path(preset).stem, prompts=prompts, judge=judge,
                                     assignments=args.set, seed=args.seed)
        reports.append(report)
        print(f"{preset} [{args.prompt_set}, {report['prompts']} images]: colour+background "
              f"{report['colour_and_background']:.0%}, all three {report['all_three']:.0%}, all named "
              f"{report['all_named']:.0%}, shape {report['shape']:.0%}, {report['seconds_per_image']:.2f} s/image",
              flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps({"set": args.set, "prompt_set": args.prompt_set,
                                                      "reports": reports}, indent=2))


def prior_sampling(assignments: list[str]) -> dict:
    """The prior's sampling settings that ``--set vqgan.temperature=… vqgan.top_k=… vqgan.guidance=…``
    change (the keys a preset's prior start takes)."""
    kinds = {"temperature": float, "top_k": int, "guidance": float}
    given = dict(a.split("=", 1) for a in assignments)
    unknown = sorted(k for k in given if k.removeprefix("vqgan.") not in kinds or not k.startswith("vqgan."))
    if unknown:
        raise SystemExit(f"toy_report.py: prior:NAME takes only vqgan.temperature, vqgan.top_k and vqgan.guidance, "
                         f"not {', '.join(unknown)}")
    return {key.removeprefix("vqgan."): kinds[key.removeprefix("vqgan.")](value) for key, value in given.items()}


if __name__ == "__main__":
    main()
