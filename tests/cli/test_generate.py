"""`clipgen generate` end to end with the tiny local CLIP: files, seeds, bad input, flags and
help read from the settings schema.
"""

import json
from pathlib import Path

import pytest
from PIL import Image

from clipgen.config.settings import Settings


def _generate(run_cli, tiny_clip, out, *extra):
    return run_cli(["generate", "a red apple", "--clip", tiny_clip, "--size", "64x64", "--steps", "20",
                    "--cutn", "8", "--seed", "3", "--out", out, "-q", "--json", *extra])


def _count_mp4_frames(path: Path) -> int:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    next(reader)  # metadata
    return sum(1 for _ in reader)


@pytest.mark.parametrize("generator", ["pixels", "fourier"])
def test_end_to_end_files_video_and_similarity(run_cli, tiny_clip, tmp_path, generator):
    code, out, err = _generate(run_cli, tiny_clip, tmp_path, "--generator", generator,
                               "--save-every", "5", "--video", "--gif")
    assert code == 0, err
    summary = json.loads(out)
    folder = tmp_path / "a-red-apple"
    image = Image.open(folder / "a-red-apple.png")
    assert image.size == (64, 64)
    # frames at steps 0, 5, 10, 15, 20
    frames = sorted((folder / "frames").glob("*.png"))
    assert [f.name for f in frames] == [f"{s:06d}.png" for s in (0, 5, 10, 15, 20)]
    assert _count_mp4_frames(folder / "a-red-apple.mp4") == len(frames)
    assert Image.open(folder / "a-red-apple.gif").n_frames == len(frames)
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "finished"
    settings = Settings.from_dict(record["settings"])
    assert settings.generator == generator and settings.size == (64, 64) and settings.seed == 3
    assert Settings.from_dict(settings.to_dict()) == settings
    assert len(record["history"]) == 20
    # the optimisation did its job: the clean image matches the prompt better than at the start
    assert summary["final_similarity"] > summary["initial_similarity"]
    # PNGs carry the prompt, seed and settings
    assert image.text["prompt"] == "a red apple" and image.text["seed"] == "3"
    assert json.loads(image.text["clipgen:settings"])["generator"] == generator


def test_same_seed_gives_identical_png_bytes(run_cli, tiny_clip, tmp_path):
    for _ in range(2):
        code, _, err = _generate(run_cli, tiny_clip, tmp_path, "--save-every", "0")
        assert code == 0, err
    first = (tmp_path / "a-red-apple" / "a-red-apple.png").read_bytes()
    second = (tmp_path / "a-red-apple-2" / "a-red-apple.png").read_bytes()
    assert first == second


def test_different_seed_gives_different_image(run_cli, tiny_clip, tmp_path):
    _generate(run_cli, tiny_clip, tmp_path / "a", "--save-every", "0")
    _generate(run_cli, tiny_clip, tmp_path / "b", "--save-every", "0", "--seed", "4")
    assert (tmp_path / "a/a-red-apple/a-red-apple.png").read_bytes() != \
        (tmp_path / "b/a-red-apple/a-red-apple.png").read_bytes()


def test_image_prompt_and_init_image(run_cli, tiny_clip, tmp_path):
    picture = tmp_path / "in.png"
    Image.new("RGB", (50, 30), (200, 30, 30)).save(picture)
    code, out, err = run_cli(["generate", "--image-prompt", f"{picture}:2", "--init-image", picture,
                              "--clip", tiny_clip, "--size", "32x32", "--steps", "3", "--cutn", "2",
                              "--out", tmp_path / "o", "-q", "--json", "--save-every", "0"])
    assert code == 0, err
    assert Path(json.loads(out)["files"]["image"]).name == "in.png"
    # started from the red init image, three small steps later it is still mostly red
    red, green, blue = Image.open(json.loads(out)["files"]["image"]).resize((1, 1)).getpixel((0, 0))
    assert red > 120 and green < 100 and blue < 100


BAD_INPUTS = [
    (["generate", "a||b"], "empty part"),
    (["generate", ""], "empty prompt"),
    (["generate", "x", "--size", "0x64"], "below the minimum"),
    (["generate", "x", "--size", "64"], "expected 2 values"),
    (["generate", "x", "--steps", "-5"], "below the minimum"),
    (["generate", "x", "--steps", "abc"], "--steps"),
    (["generate", "x", "--cutn", "0"], "below the minimum"),
    (["generate", "x", "--generator", "vqgann2"], "unknown generator"),
    (["generate", "x", "--optimizer", "adan"], "not one of adam, adamw, sgd"),
    (["generate", "x", "--augment", "blur9"], "unknown augmentation"),
    (["generate", "x", "--preset", "nosuchpreset"], "unknown preset"),
    (["generate", "x", "--set", "nosuch=1"], "unknown setting 'nosuch'"),
    (["generate", "x", "--init-image", "/nonexistent/init.png"], "does not exist"),
    (["generate", "x", "--image-prompt", "NOTANIMAGE"], "is not an image"),
    (["generate", "x", "--device", "tpu"], "unknown device"),
    (["generate", "x", "--video", "--save-every", "0"], "need frames"),
    (["generate", "x", "--bogus-flag"], "No such option"),
    (["generate", "x", "--size", "100000x100000"], "above the maximum"),
    (["generate", "x", "--cut-pow", "0"], "below the minimum"),
    (["generate", "x", "--lr", "-1"], "below the minimum"),
    (["generate", "x", "--fps", "0", "--video"], "below the minimum"),
    (["generate", "x", "--clip", "ViT-B-32:nosuchtag"], "unknown pretrained tag"),
    (["generate", "x", "--clip", "/nonexistent/clip-folder"], "no such file or folder"),
    (["generate", "x", "--device", "cuda:7"], "cuda"),
    (["generate", "x", "--augment", "affine,nope"], "unknown augmentation 'nope'"),
    (["generate", "x", "--set", "fourier.decay=abc"], "expected a number"),
    (["generate", "apple:0"], "weight 0"),
    (["generate", "blurry:-1"], "only negative weights"),
    (["generate", "--image-prompt", "/nonexistent/p.png"], "does not exist"),
    (["generate", "--prompt-file", "/nonexistent/prompt.txt"], "does not exist"),
    (["generate", "--prompt-file", "BINARYFILE"], "binary"),
    (["generate", "--prompt-file", "LATIN1FILE"], "not UTF-8"),
    (["generate", "x", "--preset", "BADPRESET"], "expected a whole number"),
    (["generate", "x", "-g", "vqgan", "--vqgan-config", "VQYAML", "--vqgan-checkpoint", "VQCORRUPT",
      "--size", "32x32"], "VQCORRUPT"),
    (["generate", "x", "-g", "vqgan", "--vqgan-config", "VQYAML", "--vqgan-checkpoint", "VQBADSHAPE",
      "--size", "32x32"], "shape"),
    (["generate", "x", "-g", "vqgan", "--vqgan-config", "VQYAML", "--vqgan-checkpoint", "VQGOOD",
      "--size", "34x32"], "multiple"),
    (["resume", "EMPTYDIR"], "no state.pt"),
    (["resume", "CORRUPTSTATE"], "corrupt or truncated"),
]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """Broken inputs of every kind, by placeholder name."""
    root = tmp_path_factory.mktemp("bad")
    files = {
        "NOTANIMAGE": root / "not-an-image.png", "BINARYFILE": root / "prompt.bin",
        "LATIN1FILE": root / "prompt-latin1.txt", "BADPRESET": root / "bad.toml",
        "EMPTYDIR": root / "empty-run", "CORRUPTSTATE": root / "corrupt-run",
    }
    files["NOTANIMAGE"].write_text("hello")
    files["BINARYFILE"].write_bytes(b"\x00\x01\x02 a red apple")
    files["LATIN1FILE"].write_bytes("une pomme rouge sur la table, fa\u00e7on C\u00e9zanne".encode("latin-1"))
    files["BADPRESET"].write_text('steps = "many"\n')
    files["EMPTYDIR"].mkdir()
    files["CORRUPTSTATE"].mkdir()
    (files["CORRUPTSTATE"] / "state.pt").write_bytes(b"PK\x03\x04 truncated")
    try:
        from fixtures.checkpoints import write_tiny_vqgan
    except pytest.skip.Exception:  # the vqgan extra is not installed
        return files
    yaml_path, good = write_tiny_vqgan(root / "vq")
    _, corrupt = write_tiny_vqgan(root / "vq-corrupt")
    corrupt.write_bytes(corrupt.read_bytes()[:200])

    def misshape(state):
        key = next(k for k in state if k.startswith("decoder.") and state[k].dim() == 4)
        state[key] = state[key][:, :1].clone()

    _, badshape = write_tiny_vqgan(root / "vq-badshape", edit=misshape)
    files.update(VQYAML=yaml_path, VQGOOD=good, VQCORRUPT=corrupt, VQBADSHAPE=badshape)
    return files


@pytest.mark.parametrize("args, fragment", BAD_INPUTS, ids=[" ".join(a[1:])[:40] for a, _ in BAD_INPUTS])
def test_bad_input_one_line_exit_2_nothing_written(run_cli, tiny_clip, tmp_path, bad_files, args, fragment):
    if any(a.startswith("VQ") for a in args) and "VQYAML" not in bad_files:
        pytest.skip("needs the vqgan extra")
    fragment = str(bad_files.get(fragment, fragment))
    args = [str(bad_files.get(a, a)) for a in args]
    out_dir = tmp_path / "out"
    extra = [] if args[0] == "resume" else ["--clip", tiny_clip, "--out", out_dir]
    code, _, err = run_cli([*args, *extra, "-q"])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clipgen: error:"), err
    assert fragment in lines[0]
    assert "Traceback" not in err
    assert not out_dir.exists()


def test_unknown_clip_and_missing_weights(run_cli, tmp_path):
    code, _, err = run_cli(["generate", "x", "--clip", "ViT-B-99:openai", "--out", tmp_path / "o", "-q"])
    assert code == 2 and "unknown CLIP architecture 'ViT-B-99'" in err
    code, _, err = run_cli(["generate", "x", "--clip", "ViT-B-32:openai", "--offline", "--out", tmp_path / "o", "-q"])
    assert code == 2 and "not cached" in err and "--clip DIR" in err
    assert not (tmp_path / "o").exists()


def test_unwritable_output_directory(run_cli, tiny_clip, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run_cli(["generate", "x", "--clip", tiny_clip, "--out", blocker / "sub", "-q"])
    assert code == 2 and "is a file" in err


def test_corrupt_clip_checkpoint(run_cli, tiny_clip, tmp_path):
    import shutil

    broken = tmp_path / "broken-clip"
    shutil.copytree(tiny_clip, broken)
    weights = broken / "open_clip_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    code, _, err = run_cli(["generate", "x", "--clip", broken, "--out", tmp_path / "o", "-q"])
    assert code == 2 and "could not be loaded" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_vqgan_weights_missing_offline_names_the_download_command(run_cli, tiny_clip, tmp_path, monkeypatch):
    pytest.importorskip("taming", reason="needs the vqgan extra")
    monkeypatch.setenv("CLIPGEN_HOME", str(tmp_path / "empty-cache"))
    code, _, err = run_cli(["generate", "x", "--generator", "vqgan", "--clip", tiny_clip, "--offline",
                            "--size", "64x64", "--out", tmp_path / "o", "-q"])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "clipgen models download imagenet-f16-16384" in err
    assert not (tmp_path / "o").exists()


# Every flag of `generate` as users know it, by help panel ("/" joins a flag's other spellings).
# The schema-built command must keep them all, and new generator options get no flag of their
# own (they reach users through --set GENERATOR.KEY=VALUE and presets).
GENERATE_FLAGS = {
    "Generator": "--generator/-g --size --init-image --init-weight --mask --vqgan --vqgan-config "
                 "--vqgan-checkpoint --biggan --biggan-dir --biggan-class --truncation --trust-checkpoint",
    "Guidance (CLIP)": "--clip --image-prompt --cutn --cut-pow --cut-schedule --augment --tv-weight --candidates --keep "
                       "--rank-clip --eval-clip",
    "Optimisation": "--steps --lr --optimizer --seed --device --precision --cut-batch --compile --init-search --ema "
                    "--latent-l2 --latent-l2-decay",
    "Animation": "--story --story-blend --zoom --pan --rotate",
    "Output": "--out --save-every --checkpoint-every --video/--no-video --gif/--no-gif --fps --quiet/-q --json",
    "Settings": "--prompt-file --dry-run --preset --set --offline/--online",
}


def _click_command(name: str):
    import typer.main

    from clipgen.cli.app import app

    return typer.main.get_command(app).commands[name]


def test_generate_keeps_every_flag_name_short_flag_and_panel():
    panels: dict[str, set[str]] = {}
    for param in _click_command("generate").params:
        if param.param_type_name == "option":
            spelled = "/".join([*param.opts, *param.secondary_opts])
            panels.setdefault(param.rich_help_panel, set()).add(spelled)
    assert panels == {panel: set(flags.split()) for panel, flags in GENERATE_FLAGS.items()}


def test_generate_flag_help_and_ranges_come_from_the_settings_fields():
    import dataclasses

    from clipgen.cli.generate import SETTING_FLAGS

    fields = {f.name: f for f in dataclasses.fields(Settings)}
    params = {p.name: p for p in _click_command("generate").params}
    for name in (n for names in SETTING_FLAGS.values() for n in names):
        own = fields[name].metadata["help"].rstrip(".")
        assert own and params[name].help.startswith(own.rstrip(")")), name
        assert params[name].default is None  # not given: the preset or the Settings default applies
    assert "(1 to 4,096)" in params["cutn"].help
    assert "one of adam, adamw, sgd" in params["optimizer"].help
    assert "one of auto, fp32, bf16, fp16" in params["precision"].help
    assert "repeatable" in params["clip"].help


def test_generate_help_names_every_registered_generator(run_cli):
    from clipgen.generators import generator_names

    code, out, _ = run_cli(["generate", "--help"])
    assert code == 0
    helptext = " ".join(out.replace("│", " ").split())  # as read, the panels' borders and wrapping aside
    assert all(f"{name}," in helptext or f"{name})" in helptext for name in generator_names())
    assert "clipgen generators" in helptext


def test_shortcut_flags_land_in_their_generator_section(run_cli, monkeypatch):
    import clipgen.cli.generate as generate_module

    seen = []
    monkeypatch.setattr(generate_module, "_dry_run", seen.append)
    args = ["generate", "x", "-g", "biggan", "--biggan-class", "golden retriever", "--truncation", "0.5",
            "--image-prompt", "a.png", "--image-prompt", "b.png:2", "--augment", "flip,noise", "--dry-run"]
    code, _, err = run_cli(args)
    assert code == 0, err
    settings = seen[0]
    assert settings.options.class_name == "golden retriever" and settings.options.truncation == 0.5
    assert settings.image_prompts == ("a.png", "b.png:2") and settings.augment == ("flip", "noise")
    code, _, err = run_cli(["generate", "x", "-g", "dvae", "--trust-checkpoint", "--dry-run"])
    assert code == 0, err
    assert seen[1].options.trust_checkpoint is True
    code, _, err = run_cli(["generate", "x", "-g", "dvae", "--set", "dvae.trust_checkpoint=true", "--dry-run"])
    assert code == 0, err
    assert seen[2].options.trust_checkpoint is True  # the flag left out does not override --set or presets


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_one_line_errors_before_any_model_loads(run_cli, tmp_path, monkeypatch, value):
    import clipgen.guidance.perceptor
    import clipgen.run.session

    def never(*args, **kwargs):
        raise AssertionError("a model was loaded for settings that cannot run")

    monkeypatch.setattr(clipgen.guidance.perceptor, "load_perceptor", never)
    monkeypatch.setattr(clipgen.run.session, "load_perceptor", never, raising=False)
    code, _, err = run_cli(["generate", "a cat", "--lr", value, "--out", tmp_path / "out", "-q"])
    assert code == 2 and "Traceback" not in err and "AssertionError" not in err
    assert err.strip().splitlines() == [
        f"clipgen: error: lr (from command line): {value} is not a finite number; give a number such as 0.1"]
    assert not (tmp_path / "out").exists()
    code, _, err = run_cli(["generate", "a cat", "--set", f"zoom={value}", "--out", tmp_path / "out", "-q"])
    assert code == 2 and err.strip().splitlines() == [
        f"clipgen: error: zoom (from --set): {value} is not a finite number; give a number such as 1.0"]
