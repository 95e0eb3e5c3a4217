"""The toy world's vocabulary: reading attributes back out of a prompt."""

import pytest

from clipgen.toy.vocab import prompt_attributes
from clipgen.toy.world import caption, sample


@pytest.mark.parametrize("text, expected", [
    ("a red star on a blue background", {"colour": "red", "shape": "star", "background": "blue", "count": 1}),
    ("two yellow squares", {"colour": "yellow", "shape": "square", "count": 2}),
    ("a green star at the top left", {"colour": "green", "shape": "star", "position": "top left", "count": 1}),
    ("a large white ring in the center on an orange background",
     {"colour": "white", "shape": "ring", "background": "orange", "position": "center", "size": "large",
      "count": 1}),
])
def test_prompt_attributes(text, expected):
    assert prompt_attributes(text) == expected


@pytest.mark.parametrize("seed", range(30))
def test_full_captions_read_back_as_their_labels(seed):
    label = sample(seed).label
    found = prompt_attributes(caption(label))
    assert found["colour"] == label.colour and found["shape"] == label.shape
    assert found["background"] == label.background and found["count"] == label.count
    if label.position:
        assert found["position"] == label.position
