"""Story schedules, zoom/pan/rotate animations, masked edits."""

import numpy as np
import pytest
from fixtures import REPO_ROOT
from PIL import Image

import clipgen
from clipgen.errors import PromptError
from clipgen.run.story import parse_story, segment_weights

FAST = dict(size=(32, 32), cutn=2, seed=3, augment=["affine"])


def test_parse_story_and_weights():
    segments = parse_story("a forest:0-150|a forest on fire:1.5:150-300")
    assert [(s.prompt.text, s.prompt.weight, s.start, s.end) for s in segments] == [
        ("a forest", 1.0, 0, 150), ("a forest on fire", 1.5, 150, 300)]
    assert segment_weights(segments, 150, 0) == [1.0, 0.0]
    assert segment_weights(segments, 151, 0) == [0.0, 1.0]
    fading = segment_weights(segments, 150, 10)
    assert 0 < fading[0] < 1 and 0 < fading[1] < 1


@pytest.mark.parametrize("spec", ["a forest", "a forest:10-5", ""])
def test_bad_story_specs(spec):
    with pytest.raises(PromptError):
        parse_story(spec)


def test_story_switches_target_at_the_scheduled_step(tiny_clip, tmp_path):
    seen = []

    def record_targets(state):
        # the targets the objective will use for the next step
        seen.append((state.step + 1, state.objective_targets()))

    result = clipgen.generate(story="a red apple:0-4|a blue boat:4-8", clip=[tiny_clip], steps=8,
                              out=str(tmp_path), save_every=0, generator="pixels",
                              callbacks=[record_targets], **FAST)
    assert result.status == "finished"
    import torch

    from clipgen.guidance.perceptor import load_perceptor

    model = load_perceptor((tiny_clip,), torch.device("cpu")).models[0]
    apple, boat = model.encode_text(["a red apple", "a blue boat"])
    by_step = dict(seen)
    for step in (2, 3, 4):
        assert torch.allclose(by_step[step][0].embeds[0], apple, atol=1e-5)
    for step in (5, 8):
        assert torch.allclose(by_step[step][0].embeds[0], boat, atol=1e-5)


def test_zoom_animation_frame_count_in_mp4(run_cli, tiny_clip, tmp_path):
    code, _, err = run_cli(["generate", "a spiral", "--clip", tiny_clip, "--size", "32x32", "--steps", "12",
                            "--cutn", "2", "--save-every", "2", "--zoom", "1.1", "--rotate", "5",
                            "--pan", "1,0", "--video", "--fps", "6", "--out", tmp_path, "-q"])
    assert code == 0, err
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(tmp_path / "a-spiral" / "a-spiral.mp4"))
    next(reader)
    assert sum(1 for _ in reader) == 7  # steps 0, 2, …, 12


def test_zoom_needs_a_generator_that_encodes_images(run_cli, tiny_clip, tmp_path):
    code, _, err = run_cli(["generate", "x", "--clip", tiny_clip, "-g", "clipdraw", "--zoom", "1.1",
                            "--out", tmp_path / "o", "-q"])
    assert code == 2 and "cannot re-encode" in err


def test_mask_keeps_everything_outside_it(tiny_clip, tmp_path):
    init = tmp_path / "init.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(init)
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[8:24, 8:24] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    result = clipgen.generate("a red apple", clip=[tiny_clip], init_image=str(init),
                              mask=str(tmp_path / "mask.png"), steps=10, lr=0.5, out=str(tmp_path / "o"),
                              save_every=0, generator="pixels", **FAST)
    before = np.asarray(Image.open(init)).astype(int)
    after = np.asarray(result.image).astype(int)
    outside = mask == 0
    assert np.abs(after[outside] - before[outside]).max() <= 1
    assert np.abs(after[~outside] - before[~outside]).mean() > 2  # the masked part did change


def test_mask_without_init_image_is_an_error(run_cli, tiny_clip, tmp_path):
    Image.new("L", (8, 8), 255).save(tmp_path / "m.png")
    code, _, err = run_cli(["generate", "x", "--clip", tiny_clip, "--mask", tmp_path / "m.png",
                            "--out", tmp_path / "o", "-q"])
    assert code == 2 and "--mask needs --init-image" in err


def test_example_story_preset_runs(run_cli, tiny_clip, tmp_path):
    preset = REPO_ROOT / "examples" / "toy-story.toml"
    code, _, err = run_cli(["generate", "--preset", preset, "--clip", tiny_clip, "--size", "32x32",
                            "--steps", "20", "--set", "cutn=2", "--out", tmp_path, "-q"])
    assert code == 0, err
    assert (tmp_path / "a-red-circle" / "a-red-circle.png").exists()


def test_example_story_file_runs(run_cli, tiny_clip, tmp_path):
    story = REPO_ROOT / "examples" / "story.txt"
    code, _, err = run_cli(["generate", "--story", story, "--clip", tiny_clip, "--size", "32x32",
                            "--steps", "6", "--cutn", "2", "--save-every", "0", "--out", tmp_path, "-q"])
    assert code == 0, err
    assert (tmp_path / "a-quiet-forest-at-dawn" / "a-quiet-forest-at-dawn.png").exists()
