"""Candidates: N seeds ranked by a CLIP model (the guide or another), the best kept."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import clipgen
from clipgen.guidance.perceptor import load_perceptor
from clipgen.guidance.prompts import parse_prompts
from clipgen.run.candidates import rank_scores


@pytest.fixture(scope="module")
def other_clip(tmp_path_factory):
    from fixtures.checkpoints import write_tiny_clip

    return str(write_tiny_clip(tmp_path_factory.mktemp("rank-clip"), seed=1))


def test_kept_images_are_the_best_under_the_ranking_model(tiny_clip, other_clip, tmp_path):
    result = clipgen.generate("a red apple|blurry:-0.5", clip=[tiny_clip], rank_clip=[other_clip],
                              candidates=3, keep=2, size=(32, 32), steps=2, cutn=2, seed=10,
                              save_every=0, out=str(tmp_path))
    folder = Path(result.paths["folder"])
    record = json.loads((folder / "run.json").read_text())
    assert [c["seed"] for c in record["candidates"]] == [10, 11, 12]
    # recompute every candidate's score with the ranking model, independently
    ranker = load_perceptor((other_clip,), torch.device("cpu"))
    images = [Image.open(Path(c["run"]) / "a-red-apple-blurry-0-5.png") for c in record["candidates"]]
    scores = rank_scores(ranker, images, tuple(parse_prompts("a red apple|blurry:-0.5")))
    best = sorted(range(3), key=lambda i: -scores[i])[:2]
    assert [k["seed"] for k in record["kept"]] == [10 + i for i in best]
    assert record["kept"][0]["score"] == pytest.approx(scores[best[0]], abs=1e-5)
    best_run = Path(record["candidates"][best[0]]["run"])
    assert (folder / "best-1.png").read_bytes() == (best_run / "a-red-apple-blurry-0-5.png").read_bytes()
    assert (folder / "best-2.png").exists() and not (folder / "best-3.png").exists()
    assert result.paths["image"] == folder / "best-1.png"


def test_keep_more_than_candidates_is_an_error(run_cli, tiny_clip, tmp_path):
    code, _, err = run_cli(["generate", "x", "--clip", tiny_clip, "--candidates", "2", "--keep", "3",
                            "--out", tmp_path / "o", "-q"])
    assert code == 2 and "--keep 3" in err and not (tmp_path / "o").exists()



def test_vector_candidates_keep_their_svg_and_the_summary_names_real_folders(tiny_clip, tmp_path):
    import io

    from rich.console import Console

    from clipgen.cli.progress import print_summary

    result = clipgen.generate("a red apple", clip=[tiny_clip], generator="clipdraw", size=(32, 32), steps=2,
                              cutn=2, candidates=2, seed=3, save_every=1, out=str(tmp_path),
                              clipdraw={"strokes": 4})
    folder = tmp_path / "a-red-apple"
    record = json.loads((folder / "run.json").read_text())
    best_run = Path(record["kept"][0]["run"])
    assert result.paths["svg"] == folder / "best-1.svg"
    assert (folder / "best-1.svg").read_bytes() == (best_run / "a-red-apple.svg").read_bytes()
    buffer = io.StringIO()
    print_summary(Console(file=buffer, width=400), result)
    frames_line = next(line for line in buffer.getvalue().splitlines() if line.startswith("frames"))
    assert frames_line.split() == ["frames", "3", "in", str(best_run / "frames")]
    assert len(list((best_run / "frames").glob("*.png"))) == 3
