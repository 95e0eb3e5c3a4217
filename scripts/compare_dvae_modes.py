"""Hard (Gumbel straight-through) vs soft (tempered softmax) dVAE codes: final CLIP similarity at equal steps.

Runs ``clipgen`` with the dvae generator in both modes over a few prompts and seeds, with
the same CLIP, steps, learning rate and temperature schedule, and prints the mean final
similarity per mode as JSON. For the soft mode it also scores the argmax-token image
(``final_tokens``): what the same logits look like as real dVAE tokens.

    OMP_NUM_THREADS=1 python scripts/compare_dvae_modes.py --clip /tmp/toyclip --steps 60

``--clip`` defaults to /tmp/toyclip when it exists, else a tiny random test CLIP. The dVAE
is a tiny random one built from the dall_e classes (``--dvae tiny``), a random one of the
real architecture (``--dvae real``, slow on a CPU), or a file (``--decoder PATH``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

TOY_CLIP = Path("/tmp/toyclip")
TOY_PROMPTS = ("a red circle", "a blue square on a white background", "a green star", "a yellow triangle")
ARCHS = {
    "tiny": {"n_init": 32, "n_hid": 64, "n_blk_per_group": 1, "vocab_size": 512},
    "real": {"n_init": 128, "n_hid": 256, "n_blk_per_group": 2, "vocab_size": 8192},
}


def default_clip(folder: Path) -> str:
    """The toy CLIP if it is there, else a tiny random test CLIP written to ``folder``."""
    if (TOY_CLIP / "open_clip_config.json").is_file():
        return str(TOY_CLIP)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from fixtures.checkpoints import write_tiny_clip

    return str(write_tiny_clip(folder / "tiny-clip"))


def write_decoder(folder: Path, arch: str) -> Path:
    """A random dall_e Decoder saved as OpenAI's decoder.pkl is (whole module)."""
    from dall_e import Decoder

    torch.manual_seed(0)
    path = folder / "decoder.pkl"
    torch.save(Decoder(**ARCHS[arch]), path)
    return path


def run_one(prompt: str, seed: int, hard: bool, args, perceptor, decoder: Path) -> dict:
    from clipgen.api import run
    from clipgen.generators.dvae.generator import one_hot
    from clipgen.guidance.objective import encode_targets, prompt_similarity
    from clipgen.guidance.prompts import parse_prompts
    from clipgen.config.settings import resolve_run_settings

    dvae = {"decoder": str(decoder), "trust_checkpoint": True, "hard": hard,
            "temperature": args.temperature, "temperature_end": args.temperature_end,
            "anneal_steps": args.steps}
    settings = resolve_run_settings(flags={
        "prompt": prompt, "generator": "dvae", "clip": [args.clip], "size": (args.size, args.size),
        "steps": args.steps, "cutn": args.cutn, "seed": seed, "lr": args.lr, "optimizer": args.optimizer,
        "out": args.out, "save_every": 0, "device": "cpu", "dvae": dvae,
    })
    seen = {}

    def keep_generator(state) -> None:
        seen["generator"] = state.generator

    result = run(settings, callbacks=[keep_generator], perceptor=perceptor)
    generator = seen["generator"]
    with torch.no_grad():
        tokens_image = generator.decode(one_hot(generator.tokens()[None], generator.vocab_size))
    targets = encode_targets(perceptor, parse_prompts(prompt), [])
    return {"prompt": prompt, "seed": seed, "initial": result.initial_similarity,
            "final": result.final_similarity,
            "final_tokens": prompt_similarity(perceptor, tokens_image, targets)}


def summarise(runs: list[dict]) -> dict:
    return {key: round(statistics.fmean(r[key] for r in runs), 4) for key in ("initial", "final", "final_tokens")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=None, help="CLIP spec (default: /tmp/toyclip, else a tiny test CLIP)")
    parser.add_argument("--dvae", choices=sorted(ARCHS), default="tiny")
    parser.add_argument("--decoder", default=None, help="A decoder .pkl/.safetensors instead of a random one")
    parser.add_argument("--prompts", nargs="*", default=list(TOY_PROMPTS))
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--cutn", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--temperature-end", type=float, default=None, help="Default: constant")
    parser.add_argument("--modes", nargs="*", choices=("soft", "hard"), default=["soft", "hard"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from clipgen.hardware import resolve_device
    from clipgen.guidance.perceptor import load_perceptor

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        args.clip = args.clip or default_clip(folder)
        args.out = str(folder / "out")
        decoder = Path(args.decoder) if args.decoder else write_decoder(folder, args.dvae)
        perceptor = load_perceptor([args.clip], resolve_device("cpu"), offline=True)
        report: dict = {"clip": args.clip, "dvae": args.decoder or args.dvae, "steps": args.steps,
                        "size": args.size, "cutn": args.cutn, "lr": args.lr, "optimizer": args.optimizer,
                        "temperature": [args.temperature, args.temperature_end], "threads": args.threads}
        started = time.perf_counter()
        for mode in args.modes:
            runs = [run_one(p, s, mode == "hard", args, perceptor, decoder) for p in args.prompts for s in args.seeds]
            report[mode] = {**summarise(runs), "runs": runs}
        report["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
