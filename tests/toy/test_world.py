"""The toy world: procedural shapes, their labels and captions."""

import numpy as np
import pytest

from clipgen.toy.world import COLOURS, SHAPES, Label, caption, sample


def test_same_seed_same_image_and_caption():
    a, b = sample(123), sample(123)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert a.caption == b.caption and a.label == b.label
    assert not np.array_equal(np.asarray(a.image), np.asarray(sample(124).image))


@pytest.mark.parametrize("seed", range(40))
def test_label_matches_the_drawing(seed):
    s = sample(seed)
    pixels = np.asarray(s.image).astype(int)
    assert pixels.shape == (64, 64, 3)
    colour = np.array(COLOURS[s.label.colour])
    background = np.array(COLOURS[s.label.background])
    assert np.abs(pixels[0, 0] - background).max() <= 2 or np.abs(pixels[63, 63] - background).max() <= 2
    for p in s.placed:
        centre = pixels[int(p.cy), int(p.cx)]
        # a ring is hollow: its centre shows the background
        expected = background if s.label.shape == "ring" else colour
        assert np.abs(centre - expected).max() <= 30, (s.caption, centre, expected)
    assert len(s.placed) == s.label.count


def test_position_label_matches_where_the_shape_is():
    label = Label("red", "circle", "blue", "small", 1, "top left")
    s = sample(5, label=label)
    p = s.placed[0]
    assert p.cx < 32 and p.cy < 32


def test_captions_name_the_attributes():
    label = Label("orange", "star", "white", "large", 1, "center")
    assert caption(label) == "a large orange star in the center on a white background"
    plural = Label("red", "cross", "orange", "small", 3, None)
    assert caption(plural) == "three red crosses on an orange background"


def test_all_shapes_and_colours_appear():
    labels = [sample(i).label for i in range(400)]
    assert {l.shape for l in labels} == set(SHAPES)
    assert {l.colour for l in labels} == set(COLOURS)
