"""The DALL-E pipeline with the shipped toy prior: sample, rank with the ranking CLIP,
keep the best K, refine them from their tokens; ``--steps 0`` ranks only; resume."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from PIL import Image

import clipgen
from clipgen.api import RunInterrupted, resume
from clipgen.errors import SettingsError

PROMPT = "a red star on a blue background"
SHORT = dict(preset="toy-dalle", candidates=6, keep=2, seed=11, offline=True)


def _pixels(path) -> bytes:
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()


def _record(folder) -> dict:
    return json.loads((Path(folder) / "run.json").read_text())


def test_keeps_the_k_best_by_the_ranking_clip_and_refines_them(tmp_path):
    result = clipgen.generate(PROMPT, out=str(tmp_path), steps=4, save_every=2, **SHORT)
    record = _record(result.paths["folder"])
    scores = [c["score"] for c in record["candidates"]]
    best_two = sorted(range(6), key=lambda i: -scores[i])[:2]
    assert [k["candidate"] for k in record["kept"]] == best_two
    assert record["rank_clip"] == ["toy"] and record["status"] == "finished"
    folder = result.paths["folder"]
    assert len(list((folder / "candidates").glob("candidate-*.png"))) == 6
    assert (folder / "candidates.png").is_file() and "score" in (folder / "index.html").read_text()
    for kept in record["kept"]:
        sub = folder / f"kept-{kept['rank']}"
        assert _record(sub)["status"] == "finished" and _record(sub)["steps_done"] == 4
        assert len(list((sub / "frames").glob("*.png"))) >= 2  # refinement frames
        # Refinement starts from the sampled tokens: its first state decodes to the candidate.
        assert (folder / f"best-{kept['rank']}.png").read_bytes() == (sub / Path(_record(sub)["files"]["image"]).name).read_bytes()
    # The result is the kept image the ranking CLIP prefers after refinement.
    best = max(record["kept"], key=lambda k: k["score_after"])
    assert result.paths["image"] == Path(best["image"]) and record["best"] == best["rank"]
    first = record["kept"][0]
    assert Path(first["image_before"]).read_bytes() == Path(record["candidates"][first["candidate"]]["image"]).read_bytes()


class TokenCounter:
    def __init__(self):
        self.seen = []

    def on_prior_token(self, done, total):
        self.seen.append((done, total))

    def __call__(self, state):
        raise AssertionError("no optimisation step with --steps 0")


def test_steps_0_is_prior_plus_rerank_and_writes_no_frames(tmp_path):
    counter = TokenCounter()
    result = clipgen.generate(PROMPT, out=str(tmp_path), steps=0, callbacks=[counter], **SHORT)
    # One progress call per token position (16×16 tokens, the 6 samples in one batch).
    assert counter.seen[-1] == (256, 256) and len(counter.seen) == 256
    folder = result.paths["folder"]
    record = _record(folder)
    assert not list(folder.glob("kept-*")) and result.paths["frames"] == []
    top = record["kept"][0]
    assert top["score_before"] == max(c["score"] for c in record["candidates"])
    candidate = Image.open(record["candidates"][top["candidate"]]["image"])
    assert _pixels(folder / "best-1.png") == candidate.convert("RGB").tobytes()


def test_refinement_starts_exactly_from_the_sample(tmp_path):
    from clipgen.config.settings import resolve_run_settings
    from clipgen.run.plan import plan_run
    from clipgen.run.session import make_generator

    result = clipgen.generate(PROMPT, out=str(tmp_path), steps=0, **SHORT)
    record = _record(result.paths["folder"])
    plan = plan_run(resolve_run_settings("toy-dalle", {"prompt": PROMPT, "seed": 1, "offline": True}))
    generator = make_generator(plan)
    tokens = torch.tensor(record["kept"][0]["tokens"])
    generator.init_from_tokens(tokens)
    assert torch.equal(generator.tokens(), tokens)
    with torch.no_grad():
        assert torch.allclose(generator(), generator.decode_tokens(tokens[None]), atol=1e-6)


def test_an_interrupted_prior_run_resumes_to_the_same_images(tmp_path):
    # A strong pull towards the sampled latents: a resumed refinement that lost them (and
    # pulled towards its random start instead) draws other pixels.
    anchored = dict(SHORT, latent_l2=0.05)
    reference = clipgen.generate(PROMPT, out=str(tmp_path / "a"), steps=6, save_every=3, **anchored)

    calls = {"n": 0}

    def stop_in_second_refinement(state):
        calls["n"] += 1
        if calls["n"] == 6 + 2:  # the first refinement's 6 steps, then two of the second
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(RunInterrupted) as stopped:
        clipgen.generate(PROMPT, out=str(tmp_path / "b"), steps=6, save_every=3, callbacks=[stop_in_second_refinement],
                         **anchored)
    folder = stopped.value.folder
    assert folder.name == reference.paths["folder"].name and _record(folder)["status"] == "interrupted"
    result = resume(folder)
    for rank in (1, 2):  # pixels, not bytes: the PNG text chunks name the (different) folders
        assert _pixels(folder / f"best-{rank}.png") == _pixels(reference.paths["folder"] / f"best-{rank}.png")
    assert _record(folder)["status"] == "finished" and result.paths["image"].name == reference.paths["image"].name


def test_a_prior_for_another_vqgan_is_refused_before_anything_loads(tmp_path):
    with pytest.raises(SettingsError, match="vqgan.model=dalle-vqgan"):
        clipgen.generate(PROMPT, preset="toy-vqgan", out=str(tmp_path), set=["vqgan.init=prior", "vqgan.prior=dalle-mini"])
    with pytest.raises(SettingsError, match="no prior writes tokens"):
        clipgen.generate(PROMPT, preset="vqgan", out=str(tmp_path), set=["vqgan.init=prior", "vqgan.model=imagenet-f16-1024"])
    assert not list(tmp_path.iterdir())


def test_toy_vqgan_can_start_from_the_prior(tmp_path):
    result = clipgen.generate(PROMPT, preset="toy-vqgan", out=str(tmp_path), steps=2, candidates=4, seed=3,
                              save_every=0, offline=True, set=["vqgan.init=prior"])
    record = _record(result.paths["folder"])
    assert record["kind"] == "prior" and record["prior"]["name"] == "toy" and len(record["candidates"]) == 4
    # The preset searches shape starts; the prior's best sample is the start instead.
    assert record["settings"]["init_search"] == 0 and "start_search" not in record


def test_steps_0_without_a_prior_is_an_error(run_cli, tmp_path):
    code, _, err = run_cli(["generate", PROMPT, "--preset", "toy", "--steps", "0", "--out", str(tmp_path)])
    assert code == 2 and "--steps 0" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_batch_with_the_prior_preset_writes_and_resumes(run_cli, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red star on a blue background\na white ring on a black background | seed=4\n")
    out = tmp_path / "out"
    args = ["batch", prompts, "--preset", "toy-dalle", "--out", out, "--json", "--set", "candidates=4",
            "--set", "steps=2", "--set", "save_every=0"]
    code, stdout, err = run_cli(args)
    assert code == 0, err
    rows = json.loads(stdout)
    assert [r["status"] for r in rows] == ["finished", "finished"]
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        assert _record(folder)["kind"] == "prior" and (folder / "best-1.png").is_file()
    assert "best-1.png" in (out / "index.html").read_text()
    code, stdout, err = run_cli([*args, "--resume"])
    assert code == 0 and [r["status"] for r in json.loads(stdout)] == ["skipped", "skipped"]
