"""The "Offline toy world" report: every toy preset on the fixed 20-prompt set, judged.

    OMP_NUM_THREADS=2 python scripts/toy_report.py toy toy-fourier toy-vqgan --out /tmp/toy-report

Prints (and writes to OUT/report.json) per preset: the share of prompts whose image the
judge reads with the prompt's colour and background, with all three of colour, shape and
background, and the mean seconds per image (including any candidates).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--out", type=Path, default=Path("toy-report"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=20, help="first N of the fixed set")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting for every preset (numbers only), e.g. --set steps=80")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from clipgen.toy.evaluate import PROMPT_SET, evaluate_preset
    from clipgen.toy.judge import load_shipped_judge

    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = float(value) if "." in value else int(value)
    judge = load_shipped_judge()
    reports = []
    for preset in args.presets:
        report = evaluate_preset(preset, args.out / Path(preset).stem, prompts=PROMPT_SET[: args.prompts], judge=judge,
                                 **overrides)
        reports.append(report)
        print(f"{preset}: colour+background {report['colour_and_background']:.0%}, all three "
              f"{report['all_three']:.0%}, shape {report['shape']:.0%}, "
              f"{report['seconds_per_image']:.1f} s/image", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps({"overrides": overrides, "reports": reports}, indent=2))


if __name__ == "__main__":
    main()
