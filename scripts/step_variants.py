"""One process, one bench step (default vqgan-256-cut32, random weights, bf16), alternating
this release's code with each named change switched back off, step by step, so that both
see the same machine (this VM's speed drifts by several percent between processes).

    OMP_NUM_THREADS=2 python scripts/step_variants.py --threads 2 --rounds 10 unpacked
    OMP_NUM_THREADS=2 python scripts/step_variants.py --threads 2 --rounds 6 unpacked group-norm-v1 \\
        unfused-swish one-noise-draw taming-decoder     # all of them off together

Changes (each "off" is the previous release's way):
  unpacked        linear layers through F.linear, not packed weights (clipgen/packed_linear.py)
  group-norm-v1   the GroupNorm backward of commit b997ccf (per-channel sums as mul + sum)
  unfused-swish   the residual blocks' norm and swish as two autograd steps
  one-noise-draw  cutout noise in one randn_like on one core
  taming-decoder  taming's own Decoder.forward (its last swish as x * sigmoid(x))
  autograd-attention  ViT attention as attend() between head views, autograd's backward
  full-last-block     the ViT's last block computes every token, not only the class token
  bf16-softmax        the attention's softmax in the scores' bf16
  doubled-upsample    upsampling as doubling, then a 3×3 convolution (taming's and BigGAN's blocks)
  dvae-doubling       the dVAE decoder's doublings between its groups, as dall_e has them
"""
from __future__ import annotations

import argparse
import functools
import gc
import importlib.util
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent


def _previous_group_norm_backward():
    source = subprocess.run(["git", "-C", str(REPO), "show", "b997ccf:clipgen/generators/vqgan/group_norm.py"],
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "group_norm_v1.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("group_norm_v1", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._FrozenGroupNorm.backward


def switches() -> dict:
    """name -> (switch off, switch back on)."""
    import clipgen.generators.vqgan.group_norm as group_norm
    import clipgen.generators.vqgan.taming as taming
    import clipgen.guidance.augmentations as augmentations
    import clipgen.guidance.tower_kernels as tower_kernels
    import clipgen.packed_linear as packed_linear

    def setter(owner, name, value):
        return lambda: setattr(owner, name, value)

    def heads_then_rows(qkv, batch, heads):
        q, k, v = tower_kernels.head_views(qkv, batch, heads).unbind(0)
        return tower_kernels.attend(q, k, v).transpose(1, 2).reshape(qkv.shape[0], qkv.shape[1] // 3)

    def upsample_forwards(choose):
        from pytorch_pretrained_biggan.model import GenBlock
        from taming.modules.diffusionmodules.model import Upsample

        from clipgen.generators.biggan.loader import _upsampling_block_forward
        from clipgen.generators.vqgan.upsample import upsample_forward

        ours = {Upsample: upsample_forward, GenBlock: _upsampling_block_forward}

        def switch():
            for module in (o for o in gc.get_objects() if type(o) in ours and getattr(o, "up_sample", True)):
                module.forward = type(module).forward.__get__(module) if choose == "theirs" \
                    else functools.partial(ours[type(module)], module)
        return switch

    def dvae_doublings(ours):
        from dall_e.decoder import Decoder
        from torch import nn

        from clipgen.generators.dvae.generator import double_inside_blocks

        def switch():
            for decoder in (o for o in gc.get_objects() if type(o) is Decoder):
                if ours:
                    double_inside_blocks(decoder)
                    continue
                for i in (1, 2, 3):
                    getattr(decoder.blocks, f"group_{i}").upsample = nn.Upsample(scale_factor=2, mode="nearest")
                    vars(getattr(decoder.blocks, f"group_{i + 1}").block_1).pop("forward", None)
        return switch

    def own_attention():  # the Function's apply again (it is inherited, so the override goes)
        vars(tower_kernels._TokenRowsAttention).get("apply") and delattr(tower_kernels._TokenRowsAttention, "apply")

    packing, split_at = packed_linear.packing_available, augmentations.NOISE_SPLIT_AT
    class_token_forward, probabilities = tower_kernels.ClassTokenBlock.forward, tower_kernels._probabilities
    backward, fused, decode = group_norm._FrozenGroupNorm.backward, taming.group_norm_silu, taming._decode
    return {
        "unpacked": (setter(packed_linear, "packing_available", lambda: False),
                     setter(packed_linear, "packing_available", packing)),
        "group-norm-v1": (setter(group_norm._FrozenGroupNorm, "backward", _previous_group_norm_backward()),
                          setter(group_norm._FrozenGroupNorm, "backward", backward)),
        "unfused-swish": (setter(taming, "group_norm_silu", lambda module, x: F.silu(module(x))),
                          setter(taming, "group_norm_silu", fused)),
        "one-noise-draw": (setter(augmentations, "NOISE_SPLIT_AT", 2**62),
                           setter(augmentations, "NOISE_SPLIT_AT", split_at)),
        "taming-decoder": (setter(taming, "_decode", lambda decoder, h, checkpointed: decoder(h)),
                           setter(taming, "_decode", decode)),
        "autograd-attention": (setter(tower_kernels._TokenRowsAttention, "apply", heads_then_rows), own_attention),
        "full-last-block": (setter(tower_kernels.ClassTokenBlock, "forward",
                                   lambda self, x, attn_mask=None, **kwargs: self.block(x, attn_mask=attn_mask, **kwargs)),
                            setter(tower_kernels.ClassTokenBlock, "forward", class_token_forward)),
        "bf16-softmax": (setter(tower_kernels, "_probabilities", lambda scores: scores.softmax(-1)),
                         setter(tower_kernels, "_probabilities", probabilities)),
        "doubled-upsample": (upsample_forwards("theirs"), upsample_forwards("ours")),
        "dvae-doubling": (dvae_doublings(False), dvae_doublings(True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("off", nargs="+", help="changes to switch off in the variant steps")
    parser.add_argument("--preset", default="vqgan-256-cut32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from clipgen.bench.cases import case_session, one_step

    available = switches()
    chosen = [available[name] for name in args.off]
    _, session = case_session(args.preset, Path(tempfile.mkdtemp()), device="cpu", precision="bf16")

    def step(off: bool) -> float:
        for switch_off, switch_on in chosen:
            (switch_off if off else switch_on)()
        started = time.perf_counter()
        one_step(session)
        return time.perf_counter() - started

    for off in (False, True, False, True):  # warm-up, both ways
        step(off)
    times = {False: [], True: []}
    for r in range(args.rounds):
        for off in ((False, True) if r % 2 == 0 else (True, False)):
            times[off].append(step(off))
    now, before = statistics.median(times[False]), statistics.median(times[True])
    print(f"{args.preset}, {args.threads} threads, median of {args.rounds} steps each: with the changes "
          f"{now:.3f} s, with {' + '.join(args.off)} off {before:.3f} s ({(before - now) * 1e3:+.1f} ms)")


if __name__ == "__main__":
    main()
