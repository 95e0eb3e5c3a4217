"""Shared fixtures: a tiny open_clip model saved the way real local checkpoints are."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CLIPGEN_OFFLINE", "1")

import pytest
import torch

# Two cores: never let one test process grab more threads than there are cores,
# and keep runs reproducible.
torch.set_num_threads(min(int(os.environ.get("OMP_NUM_THREADS") or 2), 2, os.cpu_count() or 1))

TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def write_tiny_clip(directory, seed: int = 0):
    """An open_clip ``local-dir`` checkpoint: open_clip_config.json + open_clip_model.safetensors."""
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_CLIP_CONFIG)
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "model_cfg": TINY_CLIP_CONFIG,
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
    }
    (directory / "open_clip_config.json").write_text(json.dumps(config))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "open_clip_model.safetensors"))
    return directory


@pytest.fixture(autouse=True)
def _same_precision_on_every_cpu(monkeypatch):
    """``--precision auto`` picks bf16 on CPUs with AMX/AVX-512-BF16 and fp32 elsewhere;
    tests pin the fp32 answer so their numbers do not depend on the CI machine's CPU.
    The bf16 paths are tested by asking for them explicitly."""
    import clipgen.precision

    monkeypatch.setattr(clipgen.precision, "cpu_has_fast_bf16", lambda: False)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    """Path of a tiny random-weight CLIP as a local directory; pass it to --clip."""
    return str(write_tiny_clip(tmp_path_factory.mktemp("tiny-clip")))


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in-process: ``run_cli([...]) -> (exit_code, stdout, stderr)``."""
    from clipgen.cli import main

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
