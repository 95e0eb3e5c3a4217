"""The plan: every check that needs no model runs before any model is loaded, and
settings are final once planned (seed drawn once, offline never leaking between runs)."""

from __future__ import annotations

import os
import json
import re
import socket
from pathlib import Path

import huggingface_hub.constants as hub_constants
import open_clip
import pytest
from fixtures.checkpoints import write_tiny_clip
from fixtures.hub_server import HubServer

import clipgen
from clipgen.config.settings import resolve_run_settings
from clipgen.hardware import gib
from clipgen.run.batch import parse_batch_text, run_batch
from clipgen.run.plan import estimate_peak, plan_run


@pytest.fixture
def no_model_loading(monkeypatch):
    """Every CLIP load goes through open_clip.create_model: make reaching it a failure."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the cheap checks ran")

    monkeypatch.setattr(open_clip, "create_model", refuse)


def point_hub_at(monkeypatch, url: str) -> None:
    """huggingface_hub builds file URLs from a template made at import; move both."""
    monkeypatch.setattr(hub_constants, "ENDPOINT", url)
    monkeypatch.setattr(hub_constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")


@pytest.fixture
def online(monkeypatch, tmp_path):
    """No offline switch anywhere, and an empty Hugging Face cache of this test's own."""
    monkeypatch.delenv("CLIPGEN_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


def _bad_inputs(tmp_path: Path) -> dict[str, list[str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    not_image = tmp_path / "not-image.png"
    not_image.write_text("hello")
    return {
        "lr nan": ["--lr", "nan"],
        "lr inf": ["--lr", "inf"],
        "out under a file": ["--out", str(a_file / "sub")],
        "missing vqgan config": ["--generator", "vqgan", "--vqgan-config", "/nonexistent.yaml",
                                 "--vqgan-checkpoint", "/nonexistent.ckpt"],
        "missing image prompt": ["--image-prompt", str(tmp_path / "missing.png")],
        "init image not an image": ["--init-image", str(not_image)],
        "unknown augmentation": ["--augment", "swirl"],
        "keep more than candidates": ["--candidates", "2", "--keep", "3"],
        "zoom without frames": ["--zoom", "1.1", "--save-every", "0"],
        "unknown clip": ["--clip", "ViT-Q-99:openai"],
    }


@pytest.mark.parametrize("case", list(_bad_inputs(Path("/tmp"))))
def test_cheap_checks_run_before_any_model(run_cli, no_model_loading, online, tmp_path, case):
    args = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    code, _, err = run_cli(["generate", "a cat", "--out", str(out), "--steps", "1", *args])
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clipgen: error: "), err
    assert not out.exists()


@pytest.mark.parametrize("generator", ["dvae", "vqgan"])
def test_a_size_the_generator_cannot_make_is_refused_before_clip(run_cli, no_model_loading, tmp_path, generator,
                                                                request):
    if generator == "dvae":
        encoder, decoder = request.getfixturevalue("tiny_dvae")
        options = [f"dvae.decoder={decoder}", f"dvae.encoder={encoder}", "dvae.trust_checkpoint=true"]
    else:
        config, checkpoint = request.getfixturevalue("tiny_vqgan")
        options = [f"vqgan.config={config}", f"vqgan.checkpoint={checkpoint}"]
    sets = [arg for option in options for arg in ("--set", option)]
    code, _, err = run_cli(["generate", "a cat", "--generator", generator, "--size", "30x30", *sets,
                            "--out", str(tmp_path / "out"), "--clip", "ViT-B-32:openai"])
    assert code == 2 and "multiple of" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_unreachable_network_fails_at_once_with_one_line(run_cli, online, monkeypatch, tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: connection refused
    point_hub_at(monkeypatch, f"http://127.0.0.1:{port}")
    called = []
    monkeypatch.setattr(open_clip, "create_model", lambda *a, **k: called.append(a))
    code, _, err = run_cli(["generate", "a cat", "--clip", "ViT-B-32:openai", "--out", str(tmp_path), "--steps", "1"])
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "cannot be reached" in err and "--offline" in err and "--clip DIR" in err
    assert called == []  # it did not start huggingface_hub's minute of retries


def _estimate(clip: str) -> str:
    settings = resolve_run_settings(flags={"prompt": "a cat", "clip": [clip], "size": "512x512", "cutn": 64})
    plan = plan_run(settings)
    return gib(estimate_peak(plan.settings, plan.inputs.clip, plan.dtype))


def test_dry_run_estimate_is_the_one_that_refuses(run_cli, tiny_clip, tmp_path, monkeypatch):
    args = ["generate", "a cat", "--clip", tiny_clip, "--size", "512x512", "--cutn", "64", "--out", str(tmp_path)]
    code, _, err = run_cli([*args, "--dry-run"])
    assert code == 0
    printed = re.search(r"estimated peak memory: ([\d.]+ GiB)", err).group(1)
    assert printed == _estimate(tiny_clip)
    # The tiny CLIP takes 32 px cutouts: they cost far less than a 224 px model's.
    assert printed != _estimate("ViT-B-32:none")
    monkeypatch.setattr("clipgen.hardware.available_bytes", lambda device: 1)
    code, _, err = run_cli(args)
    assert code == 2 and f"needs about {printed}" in err


def test_seed_is_drawn_once_and_recorded(tiny_clip, tmp_path):
    settings = resolve_run_settings(flags={"prompt": "a cat", "clip": [tiny_clip], "out": str(tmp_path)})
    assert settings.seed is None
    plan = plan_run(settings)
    assert plan.settings.seed is not None and plan.settings.seed == plan.with_settings(steps=3).settings.seed


@pytest.mark.parametrize("save_every", [0, 1])
def test_candidates_summary_names_folders_that_exist(tiny_clip, tmp_path, save_every):
    from rich.console import Console

    from clipgen.cli.progress import print_summary

    result = clipgen.generate("a red apple", clip=[tiny_clip], generator="pixels", size=(16, 16), cutn=2, steps=2,
                              candidates=2, save_every=save_every, out=str(tmp_path), seed=1)
    console = Console(record=True, width=400)
    print_summary(console, result)
    text = console.export_text()
    named = [Path(p) for p in re.findall(r"(?:^|\s)(/\S+/\S+)", text, re.M)]
    assert named and all(p.exists() for p in named), text
    assert ("none saved" in text) == (save_every == 0)


@pytest.mark.slow
def test_an_offline_line_leaves_the_next_line_online(online, monkeypatch, tmp_path, tiny_clip):
    repo = write_tiny_clip(tmp_path / "hub-repo", seed=3)
    environ = dict(os.environ)
    items = parse_batch_text(f"a red apple | offline=true clip={tiny_clip}\n"
                             "a blue boat | clip=hf-hub:clipgen-test/tiny\n")
    common = {"generator": "pixels", "size": "16x16", "cutn": 2, "steps": 1, "save_every": 0,
              "out": str(tmp_path / "out"), "seed": 0}
    resolved = []

    def resolve(item):
        settings = resolve_run_settings(flags={**common, "prompt": item.prompt}, assignments=list(item.overrides))
        resolved.append(settings.offline)
        return settings

    with HubServer("clipgen-test/tiny", repo) as hub:
        point_hub_at(monkeypatch, hub.url)
        outcomes = run_batch(items, resolve, tmp_path / "out")
    assert [o.status for o in outcomes] == ["finished", "finished"], [o.error for o in outcomes]
    assert resolved == [True, False]
    assert any(path.endswith("open_clip_config.json") for _, path in hub.requests)
    assert dict(os.environ) == environ and hub_constants.HF_HUB_OFFLINE is False


def test_precision_choice_and_probe_reach_dry_run_and_run_json(run_cli, tiny_clip, tmp_path):
    args = ["generate", "a cat", "--clip", tiny_clip, "--size", "32x32", "--cutn", "2", "--steps", "1",
            "--out", str(tmp_path), "--device", "cpu"]
    code, _, err = run_cli([*args, "--dry-run"])
    assert code == 0
    assert "precision: fp32 (auto: measured bf16 at 0.10× fp32" in err  # conftest's pinned probe
    assert "matmul fp32 100.0 / bf16 10.0" in err
    code, _, err = run_cli(args)
    assert code == 0, err
    (record,) = tmp_path.glob("*/run.json")
    precision = json.loads(record.read_text())["precision"]
    assert precision["precision"] == "fp32" and precision["probe"]["bf16_speedup"] == 0.1
    code, _, err = run_cli([*args, "--precision", "bf16", "--dry-run"])
    assert "precision: bf16 (given)" in err
