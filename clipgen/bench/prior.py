"""`clipgen bench` for priors: seconds per sample of a token grid, with random-weight models
of the real architectures (nothing to download).

A sample is what a run's ``vqgan.init=prior`` draws per candidate: :func:`sample_grids` from
the text, one token at a time through the prior's key/value cache, guidance on (two rows
per sample: the text and the unconditioned one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from clipgen.bench import random_models
from clipgen.bench.timer import sync
from clipgen.hardware import peak_rss_mb, precision_name, resolve_device, resolve_precision
from clipgen.priors.dalle.loader import MINI, Architecture
from clipgen.priors.dalle.prior import DalleMini, DallePrior
from clipgen.priors.sampling import Sampling, sample_grids
from clipgen.run.plan import probe_cache


@dataclass(frozen=True)
class PriorCase:
    description: str
    prior_class: type[DallePrior]
    architecture: Architecture
    batch: int = 1  # samples drawn together (rows: twice that, guided)
    # min-dalle's generate_image defaults: supercondition 16, top_k 256, temperature 1.
    sampling: Sampling = Sampling(temperature=1.0, top_k=256, guidance=16.0)


PRIOR_CASES: dict[str, PriorCase] = {
    "dalle-mini-prior": PriorCase("DALL-E Mini prior (12 layers, width 1024), one 256-token sample, guidance 16",
                                  DalleMini, MINI),
}

TEXT = "a lighthouse on a cliff at dusk"


def run_prior_bench(name: str, samples: int = 1, warmup: int = 1, device: str = "auto",
                    precision: str = "auto") -> dict:
    """Time ``samples`` full samples (after ``warmup`` untimed ones) of the case's prior."""
    case = PRIOR_CASES[name]
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev, probe_cache())  # the cached probe, as runs use it
    prior = random_models.random_dalle(case.prior_class, case.architecture, dev, dtype)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    for seed in range(warmup):
        sample_grids(prior, TEXT, case.batch, seed=seed, sampling=case.sampling, batch_size=case.batch)
    sync(dev)
    start = time.perf_counter()
    for seed in range(samples):
        sample_grids(prior, TEXT, case.batch, seed=warmup + seed, sampling=case.sampling, batch_size=case.batch)
    sync(dev)
    elapsed = (time.perf_counter() - start) / max(samples, 1)
    peak = (torch.cuda.max_memory_allocated(dev) / 2**20) if dev.type == "cuda" else peak_rss_mb()
    return {
        "preset": name, "kind": "prior", "description": case.description, "device": str(dev),
        "precision": precision_name(dtype), "threads": torch.get_num_threads(), "samples": samples,
        "batch": case.batch, "tokens": prior.positions, "guidance": case.sampling.guidance,
        "top_k": case.sampling.top_k, "parameters": sum(p.numel() for p in prior.parameters()),
        "seconds_per_sample": elapsed / case.batch, "tokens_per_second": prior.positions * case.batch / elapsed,
        "peak_memory_mb": peak, "peak_memory_kind": "max allocated (CUDA)" if dev.type == "cuda" else "RSS",
    }
