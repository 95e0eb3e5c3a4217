"""Similarity vs steps for the biggan generator (tiny random-weight BigGAN) under the toy CLIP.

A check for the preset's step count. Baselines: pixels and fourier.

    OMP_NUM_THREADS=2 python scripts/converge_biggan.py CLIP_SPEC [STEPS]
"""
import json, sys, tempfile, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
torch.set_num_threads(2)
import clipgen  # noqa: E402
from clipgen.guidance.objective import encode_targets, prompt_similarity  # noqa: E402
from clipgen.guidance.perceptor import load_perceptor  # noqa: E402
from clipgen.guidance.prompts import parse_prompts  # noqa: E402
from fixtures.checkpoints import write_tiny_biggan  # noqa: E402

CLIP = sys.argv[1]
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 200
EVERY = 25
PROMPTS = ["a red circle on a white background", "a blue star"]
# 64 px output (4 upsamplings), wider than the test fixture so it is a less trivial prior.
CONFIG = {"output_dim": 64, "z_dim": 32, "class_embed_dim": 32, "channel_width": 8, "num_classes": 1000,
          "layers": [[True, 16, 16], [False, 16, 8], [True, 8, 4], [True, 4, 2], [True, 2, 1]],
          "attention_layer_position": 3, "eps": 1e-4, "n_stats": 51}

tmp = Path(tempfile.mkdtemp())
folder = write_tiny_biggan(tmp / "biggan", config=CONFIG)
perceptor = load_perceptor((CLIP,), torch.device("cpu"), offline=True)
rows = []
for prompt in PROMPTS:
    targets = encode_targets(perceptor, parse_prompts(prompt), [])
    for generator, extra in [("biggan", {"biggan": {"model_dir": str(folder)}}),
                             ("biggan", {"biggan": {"model_dir": str(folder), "latents": "shared"}}),
                             ("pixels", {}), ("fourier", {})]:
        for seed in (0, 1):
            curve = {}

            def record(state):
                if state.step % EVERY == 0:
                    curve[state.step] = round(prompt_similarity(perceptor, state.image(), targets), 4)

            start = time.perf_counter()
            clipgen.generate(prompt, generator=generator, clip=[CLIP], size=(64, 64), steps=STEPS, cutn=16,
                             seed=seed, out=str(tmp / "out"), save_every=0, callbacks=[record], **extra)
            label = generator + ("" if not extra or "latents" not in extra["biggan"] else "-shared")
            rows.append({"prompt": prompt, "generator": label, "seed": seed, "curve": curve,
                         "seconds": round(time.perf_counter() - start, 1)})
            print(json.dumps(rows[-1]), flush=True)
