"""One process, one VQGAN 256² + ViT-B-32 (random weights, 32 cutouts, fp32) step,
alternating the previous implementations (torchvision roi_align cutouts, taming's
x * sigmoid residual blocks, a contiguous decoder) with this release's, step by step,
so that both see the same machine: on a VM whose speed drifts by a quarter within
minutes, separate runs cannot resolve a 10% change.

    OMP_NUM_THREADS=2 python scripts/step_ab.py 2 3      # threads, rounds
"""
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
import torch
threads = int(sys.argv[1])
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
torch.set_num_threads(threads)
from dataclasses import replace
from torchvision.ops import roi_align
import clipgen.guidance.cutouts as cutouts
from clipgen.bench import random_models
from clipgen.config.settings import resolve_run_settings
from clipgen.run.plan import plan_run
from clipgen.run.session import build_session
from taming.modules.diffusionmodules.model import ResnetBlock

new_crop = cutouts.crop_and_resize
def old_crop(image, boxes, size):
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes], dim=1).to(image.dtype)
    return roi_align(image, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)

tmp = Path(tempfile.mkdtemp())
flags = {"prompt": "a lighthouse", "generator": "vqgan", "clip": ["ViT-B-32:none"], "size": [256, 256], "cutn": 32,
         "device": "cpu", "seed": 0, "out": str(tmp / "out"), "save_every": 0, "precision": "fp32", "vqgan": {}}
settings = resolve_run_settings(flags=flags)
settings = replace(settings, options=replace(settings.options, **random_models.random_vqgan(tmp / "w")))
s = build_session(plan_run(settings))
vq = s.generator.vqgan
blocks = [m for m in vq.modules() if isinstance(m, ResnetBlock)]
new_forwards = [b.forward for b in blocks]

def configure(new: bool):
    cutouts.crop_and_resize = new_crop if new else old_crop
    for b, f in zip(blocks, new_forwards):
        if new: b.forward = f
        else: b.__dict__.pop("forward", None)
    fmt = torch.channels_last if new else torch.contiguous_format
    for part in (vq.decoder, vq.post_quant_conv):
        part.to(memory_format=fmt)
    vq.channels_last = new

def step():
    s.generator.zero_grad(set_to_none=True)
    t = time.perf_counter()
    s.objective.loss_and_backward(s.generator())
    s.optimizer.step()
    return time.perf_counter() - t

times = {"old": [], "new": []}
for label in ("old", "new"):
    configure(label == "new"); step()  # warm-up per layout
for r in range(rounds):
    for label in ("old", "new"):
        configure(label == "new"); times[label].append(step())
    print(r, {k: round(v[-1], 2) for k, v in times.items()}, flush=True)
med = {k: statistics.median(v) for k, v in times.items()}
print(json.dumps({"threads": threads, "rounds": rounds, "median": med, "speedup": med["old"] / med["new"], "all": times}))
