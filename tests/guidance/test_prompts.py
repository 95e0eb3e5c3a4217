"""Prompt syntax: weights, stops, colons in text, escapes."""

import math

import pytest

from clipgen.errors import PromptError
from clipgen.guidance.prompts import Prompt, parse_image_prompt, parse_prompts


@pytest.mark.parametrize("spec, expected", [
    ("a red apple", [Prompt("a red apple", 1.0)]),
    ("a red apple:1.5|blurry:-0.5", [Prompt("a red apple", 1.5), Prompt("blurry", -0.5)]),
    ("a cat:1:0.5", [Prompt("a cat", 1.0, 0.5)]),
    ("a cat:2:-0.25", [Prompt("a cat", 2.0, -0.25)]),
    ("ratio 16:9 poster", [Prompt("ratio 16:9 poster")]),
    ("ratio 16:9", [Prompt("ratio 16:9")]),
    ("meet at 10:30", [Prompt("meet at 10:30")]),
    ("ratio 16:9:2.0", [Prompt("ratio 16:9", 2.0)]),
    ("a sign saying \\:1", [Prompt("a sign saying :1")]),
    ("left \\| right", [Prompt("left | right")]),
    ("note: draw this", [Prompt("note: draw this")]),
    ("  spaced  :  2  ", [Prompt("spaced", 2.0)]),
    ("sky:1e-1", [Prompt("sky", 0.1)]),
])
def test_parse_prompts(spec, expected):
    assert parse_prompts(spec) == expected


def test_default_stop_is_minus_infinity():
    assert parse_prompts("x")[0].stop == -math.inf


def test_empty_spec_gives_no_prompts():
    assert parse_prompts("   ") == []


@pytest.mark.parametrize("spec, fragment", [
    ("a||b", "empty part"),
    ("|a", "empty part"),
    (":1.5", "no text"),
    ("a:0", "weight 0"),
    ("blurry:-1", "only negative"),
])
def test_malformed_prompts_raise(spec, fragment):
    with pytest.raises(PromptError, match=fragment):
        parse_prompts(spec)


def test_image_prompt_weight_and_colon_paths():
    assert parse_image_prompt("img.png:0.5").weight == 0.5
    assert parse_image_prompt("img.png").path == "img.png"
    parsed = parse_image_prompt("C:/pics/a.png:2")
    assert (parsed.path, parsed.weight) == ("C:/pics/a.png", 2.0)
