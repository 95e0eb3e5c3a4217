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
