"""Shared fixtures: a tiny open_clip model saved the way real local checkpoints are."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CLIPGEN_OFFLINE", "1")

import pytest
import torch
from fixtures.checkpoints import write_tiny_biggan, write_tiny_clip, write_tiny_dvae, write_tiny_vqgan

# Two cores: never let one test process grab more threads than there are cores,
# and keep runs reproducible.
torch.set_num_threads(min(int(os.environ.get("OMP_NUM_THREADS") or 2), 2, os.cpu_count() or 1))

def _fp32_faster():
    from clipgen.kernel_rates import PrecisionProbe

    return PrecisionProbe(machine="pinned by tests/conftest.py", capability="pinned", threads=1, fp32_matmul=100.0,
                          bf16_matmul=10.0, fp32_conv=100.0, bf16_conv=10.0)


FP32_FASTER = _fp32_faster()


@pytest.fixture(autouse=True)
def _same_precision_on_every_cpu(monkeypatch):
    """``--precision auto`` measures bf16 against fp32 and picks bf16 where it is faster (and
    the toy trainers ask the CPU flags); tests pin the fp32 answer so their numbers do not
    depend on the CI machine's CPU. The bf16 paths are tested by asking for them explicitly;
    the probe itself by tests of its own."""
    import clipgen.hardware

    monkeypatch.setattr(clipgen.hardware, "cpu_has_fast_bf16", lambda: False)
    monkeypatch.setattr(clipgen.hardware, "cached_precision_probe", lambda folder: FP32_FASTER)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    """Path of a tiny random-weight CLIP as a local directory; pass it to --clip."""
    return str(write_tiny_clip(tmp_path_factory.mktemp("tiny-clip")))


#: The import each optional extra provides; a fixture for a model of that extra skips without it.
_EXTRAS = {"vqgan": "taming.modules.vqvae.quantize", "dvae": "dall_e", "biggan": "pytorch_pretrained_biggan"}


def _tiny(tmp_path_factory, extra: str, name: str, write, **options):
    pytest.importorskip(_EXTRAS[extra], reason=f"needs the {extra} extra")
    return write(tmp_path_factory.mktemp(name), **options)


@pytest.fixture(scope="session")
def tiny_vqgan(tmp_path_factory):
    """``(model.yaml, last.ckpt)`` of a tiny taming VQGAN (f4, 256 codes)."""
    return _tiny(tmp_path_factory, "vqgan", "vqgan", write_tiny_vqgan)


@pytest.fixture(scope="session")
def tiny_gumbel(tmp_path_factory):
    """``(model.yaml, last.ckpt)`` of a tiny taming Gumbel VQGAN."""
    return _tiny(tmp_path_factory, "vqgan", "gumbel", write_tiny_vqgan, kind="gumbel")


@pytest.fixture(scope="session")
def tiny_dvae(tmp_path_factory):
    """``(encoder.pkl, decoder.pkl)`` of a tiny DALL-E dVAE (512 codes)."""
    return _tiny(tmp_path_factory, "dvae", "dvae", write_tiny_dvae)


@pytest.fixture(scope="session")
def tiny_biggan(tmp_path_factory):
    """A folder with config.json + pytorch_model.bin of a tiny BigGAN-deep (32 px)."""
    return _tiny(tmp_path_factory, "biggan", "biggan", write_tiny_biggan)


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in-process: ``run_cli([...]) -> (exit_code, stdout, stderr)``."""
    from clipgen.cli.app import main

    def invoke(args):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        else:  # main always exits
            code = 0
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


@pytest.fixture
def bench_json(run_cli, tiny_clip):
    """``bench_json(*args) -> dict``: one timed CPU step of ``clipgen bench --json`` with the tiny CLIP."""
    def bench(*args: str) -> dict:
        code, out, err = run_cli(["bench", *args, "--clip", tiny_clip, "--steps", "1", "--warmup", "0",
                                  "--device", "cpu", "--json"])
        assert code == 0, err
        return json.loads(out)

    return bench


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` skip, with the reason, where torch sees no CUDA GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False); "
                                   "scripts/gpu_check.sh runs these on one")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
