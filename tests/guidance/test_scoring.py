"""Scores: `clipgen score` and `classify` agree with the library."""

import json

import pytest
from PIL import Image


@pytest.fixture(scope="module")
def two_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imgs")
    paths = []
    for name, colour in (("red.png", (220, 30, 30)), ("blue.png", (30, 30, 220))):
        Image.new("RGB", (48, 48), colour).save(folder / name)
        paths.append(str(folder / name))
    return paths


def test_score_json_matches_the_library(run_cli, tiny_clip, two_images):
    import torch

    from clipgen.guidance.perceptor import load_perceptor
    from clipgen.guidance.scoring import similarity_matrix

    code, out, err = run_cli(["score", *two_images, "--prompt", "a red square", "--prompt", "blue",
                              "--clip", tiny_clip, "--json"])
    assert code == 0, err
    rows = json.loads(out)
    assert len(rows) == 4 and all(-1 <= r["similarity"] <= 1 for r in rows)
    perceptor = load_perceptor((tiny_clip,), torch.device("cpu"))
    expected = similarity_matrix(perceptor, [Image.open(p) for p in two_images], ["a red square", "blue"])
    assert rows[1]["similarity"] == pytest.approx(float(expected[0, 1]), abs=1e-5)


def test_classify_probabilities_sum_to_one(run_cli, tiny_clip, two_images):
    code, out, err = run_cli(["classify", two_images[0], "--labels", "a cat,a dog,a giraffe",
                              "--clip", tiny_clip, "--json"])
    assert code == 0, err
    probabilities = json.loads(out)["probabilities"]
    assert set(probabilities) == {"a cat", "a dog", "a giraffe"}
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(0 <= p <= 1 for p in probabilities.values())


def test_classify_needs_two_labels_and_a_real_image(run_cli, tiny_clip, two_images, tmp_path):
    code, _, err = run_cli(["classify", two_images[0], "--labels", "a cat", "--clip", tiny_clip])
    assert code == 2 and "at least two" in err
    code, _, err = run_cli(["classify", tmp_path / "missing.png", "--labels", "a,b", "--clip", tiny_clip])
    assert code == 2 and "does not exist" in err


def test_held_out_scores_come_from_the_named_model_and_differ_from_the_guide(tiny_clip, tmp_path):
    import json
    from pathlib import Path

    import clipgen
    from fixtures.checkpoints import write_tiny_clip

    other = str(write_tiny_clip(tmp_path / "other", seed=5))
    result = clipgen.generate("a red apple", clip=[tiny_clip], eval_clip=[other], eval_views=4, size=(32, 32),
                              cutn=2, generator="pixels", seed=2, steps=3, out=str(tmp_path / "o"),
                              augment=["noise"], save_every=0)
    record = json.loads(Path(result.paths["run_json"]).read_text())
    assert list(record["held_out"]) == [other] and record["held_out"] == result.held_out
    scores = record["held_out"][other]
    assert set(scores) == {"score", "augmented"}
    assert scores["score"] != pytest.approx(result.final_similarity, abs=1e-4)
    assert scores["augmented"] != pytest.approx(scores["score"], abs=1e-6)


def test_score_augment_averages_views_and_is_deterministic(run_cli, tiny_clip, two_images):
    args = ["score", *two_images, "-p", "a red square", "--clip", tiny_clip, "--augment", "6", "--json"]
    code, out, _ = run_cli(args)
    again = run_cli(args)[1]
    plain = json.loads(run_cli(["score", *two_images, "-p", "a red square", "--clip", tiny_clip, "--json"])[1])
    assert code == 0 and out == again
    augmented = json.loads(out)
    assert [r["image"] for r in augmented] == two_images
    assert all(a["similarity"] != p["similarity"] for a, p in zip(augmented, plain))
