"""The dvae generator on tiny dVAEs built from the dall_e classes and saved as the real .pkl
files are.
"""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("dall_e", reason="needs the dvae extra")


from fixtures.checkpoints import sha256, write_tiny_dvae  # noqa: E402

import clipgen  # noqa: E402
import clipgen.generators.dvae.generator as dvae_module  # noqa: E402
from clipgen.config.settings import resolve_run_settings  # noqa: E402
from clipgen.errors import MissingDependencyError, MissingWeightsError, ModelError, SettingsError  # noqa: E402
from clipgen.generators import get_generator_class  # noqa: E402
from clipgen.generators.base import EncodesImages, GeneratorContext  # noqa: E402
from clipgen.generators.dvae.generator import (  # noqa: E402
    DVAEGenerator,
    DVAEOptions,
    blacklist_bias,
    one_hot,
    relaxed_one_hot,
    temperature_at,
)
from clipgen.generators.dvae.loader import PartSource, convert_pickle, load_converted, load_part  # noqa: E402
from clipgen.generators.dvae.pickle_gate import PickleSource, unpickle_module  # noqa: E402
from clipgen.run.loop import PlainLoss, optimize  # noqa: E402
from clipgen.run.state import trainable_state  # noqa: E402

CPU = GeneratorContext(device=torch.device("cpu"), offline=True)
def options(paths, **kw) -> DVAEOptions:
    base = {"encoder": str(paths[0]), "decoder": str(paths[1]), "trust_checkpoint": True}
    return DVAEOptions(**{**base, **kw})


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- end to end


def test_generate_end_to_end(tiny_clip, tiny_dvae, tmp_path):
    result = clipgen.generate(
        "a red apple", generator="dvae", clip=[tiny_clip], size=(32, 32), steps=10, cutn=4, seed=0,
        out=str(tmp_path), save_every=0, device="cpu",
        dvae={"encoder": str(tiny_dvae[0]), "decoder": str(tiny_dvae[1]), "trust_checkpoint": True},
    )
    assert result.image.size == (32, 32)
    assert Path(result.paths["image"]).is_file()
    assert [h["step"] for h in result.history] == list(range(1, 11))
    assert all(math.isfinite(h["loss"]) for h in result.history)
    assert result.final_similarity > result.initial_similarity


def test_pinned_digest_needs_no_trust(tiny_dvae):
    pinned = options(tiny_dvae, trust_checkpoint=False, decoder_sha256=sha256(tiny_dvae[1]))
    gen = DVAEGenerator((32, 16), pinned, CPU)
    image = gen()
    assert image.shape == (1, 3, 16, 32)
    assert torch.isfinite(image).all() and image.min() >= 0 and image.max() <= 1
    assert gen.logits.shape == (1, 512, 2, 4)
    assert [p for g in gen.param_groups(0.1) for p in g["params"]] == [gen.logits]
    assert not any(p.requires_grad for p in gen.decoder.parameters())


@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_gradients_reach_the_logits(tiny_dvae, hard):
    gen = DVAEGenerator((32, 32), options(tiny_dvae, hard=hard), CPU)
    gen().mean().backward()
    assert gen.logits.grad is not None and gen.logits.grad.abs().sum() > 0


def test_size_must_be_a_multiple_of_8(tiny_dvae, monkeypatch, tmp_path):
    cls = get_generator_class("dvae")
    assert cls is DVAEGenerator
    assert cls((64, 24), options(tiny_dvae), CPU)().shape == (1, 3, 24, 64)
    # Checked before any weights: the default registry entry is not downloaded here.
    monkeypatch.setenv("CLIPGEN_HOME", str(tmp_path))
    with pytest.raises(SettingsError, match="multiple of 8.*try 40x32") as exc:
        cls((38, 32), DVAEOptions(), CPU)
    one_line(exc)


# --------------------------------------------------------------------------- safe loading


def test_unpinned_pickle_is_refused_without_trust(tiny_dvae):
    with pytest.raises(ModelError, match="no pinned SHA-256.*--trust-checkpoint") as exc:
        DVAEGenerator((32, 32), options(tiny_dvae, trust_checkpoint=False), CPU)
    one_line(exc)


class _Plant:
    """Unpickling this creates ``marker``: what a hostile .pkl could do instead."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (Path(self.marker),)


def test_the_planted_pickle_is_live(tmp_path):
    # Proves the plant below would act if it were unpickled the way dall_e.load_model does.
    marker, plant = tmp_path / "pwned", tmp_path / "decoder.pkl"
    torch.save(_Plant(marker), plant)
    torch.load(plant, weights_only=False)
    assert marker.exists()


def test_digest_mismatch_is_refused_before_unpickling(tiny_dvae, tmp_path):
    marker, plant = tmp_path / "pwned", tmp_path / "decoder.pkl"
    torch.save(_Plant(marker), plant)
    pinned = options((tiny_dvae[0], plant), trust_checkpoint=True, decoder_sha256=sha256(tiny_dvae[1]))
    with pytest.raises(ModelError, match="fails SHA-256 verification.*refusing to unpickle") as exc:
        DVAEGenerator((32, 32), pinned, CPU)
    one_line(exc)
    assert not marker.exists()


def test_trusted_file_is_still_limited_to_the_allow_list(tmp_path):
    marker, plant = tmp_path / "pwned", tmp_path / "decoder.pkl"
    torch.save(_Plant(marker), plant)
    with pytest.raises(ModelError, match="which a DALL-E dVAE file does not need") as exc:
        DVAEGenerator((32, 32), DVAEOptions(decoder=str(plant), encoder=str(plant), trust_checkpoint=True), CPU)
    one_line(exc)
    assert not marker.exists()


def test_wrong_module_class_is_refused(tiny_dvae):
    source = PickleSource(tiny_dvae[0], None, True, "check it")
    with pytest.raises(ModelError, match="holds dall_e.encoder.Encoder, not dall_e's Decoder"):
        unpickle_module(tiny_dvae[0].read_bytes(), source, "Decoder")


def test_legacy_format_with_old_upsample_layers(tmp_path, tiny_dvae):
    paths = write_tiny_dvae(tmp_path, legacy_format=True, old_upsample=True)
    assert not __import__("zipfile").is_zipfile(paths[1])
    legacy = DVAEGenerator((32, 32), options(paths), CPU)
    current = DVAEGenerator((32, 32), options(tiny_dvae), CPU)  # same seed, zip format
    codes = one_hot(torch.randint(512, (1, 4, 4)), 512)
    assert torch.equal(legacy.decode(codes), current.decode(codes))


def test_missing_dall_e_names_the_extra(monkeypatch, tiny_dvae):
    monkeypatch.setitem(sys.modules, "dall_e", None)
    with pytest.raises(MissingDependencyError, match=r"clipgen\[dvae\]"):
        DVAEGenerator((32, 32), options(tiny_dvae), CPU)


def test_bad_pin_is_a_settings_error():
    with pytest.raises(SettingsError, match="decoder_sha256: expected 64 hexadecimal digits"):
        clipgen.config.settings.resolve_run_settings(flags={"generator": "dvae", "dvae": {"decoder_sha256": "abc"}})


@pytest.mark.parametrize("part", ["decoder", "encoder"])
def test_missing_local_file_fails_when_the_options_are_built(tmp_path, part):
    with pytest.raises(MissingWeightsError, match=f"dVAE {part} .*nope.pkl does not exist; check dvae.{part}") as exc:
        resolve_run_settings(flags={"generator": "dvae", "dvae": {part: str(tmp_path / "nope.pkl")}})
    one_line(exc)


# --------------------------------------------------------------------------- conversion


@pytest.mark.parametrize("part", ["Encoder", "Decoder"])
def test_converted_safetensors_match_the_pickle(tiny_dvae, tmp_path, part):
    pkl = tiny_dvae[0] if part == "Encoder" else tiny_dvae[1]
    source = PickleSource(pkl, sha256(pkl), False, "check it")
    pickled = load_part(PartSource(pickled=source), part, torch.device("cpu"))
    tensors, config = convert_pickle(source, part, tmp_path / pkl.stem)
    assert (tensors.name, config.name) == (f"{pkl.stem}.safetensors", f"{pkl.stem}.json")
    converted = load_converted(tensors, part)
    assert type(converted) is type(pickled)
    torch.manual_seed(1)
    x = torch.rand(1, 3, 32, 32) if part == "Encoder" else torch.softmax(torch.randn(1, 512, 4, 4), 1)
    with torch.no_grad():
        assert torch.equal(converted(x), pickled(x))


@pytest.fixture
def cached_entry(monkeypatch, tmp_path, tiny_dvae) -> Path:
    """The tiny files placed in a fresh cache as the ``dalle-dvae`` entry."""
    monkeypatch.setenv("CLIPGEN_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "dalle-dvae"
    folder.mkdir(parents=True)
    for path in tiny_dvae:
        shutil.copy(path, folder / path.name)
    return folder


def test_cli_convert_then_runs_never_unpickle(cached_entry, run_cli):
    _, _, err = run_cli(["models", "convert", "dalle-dvae"])
    # (The exit status is not checked here: clipgen.cli.app.main currently exits 0 when a
    # `models` command fails; see the report on issue #9.)
    assert "--trust-checkpoint" in err and len(err.strip().splitlines()) == 1
    assert not list(cached_entry.glob("*.safetensors"))
    code, out, err = run_cli(["models", "convert", "dalle-dvae", "--trust-checkpoint"])
    assert code == 0, err
    written = {Path(line).name for line in out.split()}
    assert written == {"encoder.safetensors", "encoder.json", "decoder.safetensors", "decoder.json"}
    for pkl in cached_entry.glob("*.pkl"):
        pkl.unlink()  # later runs must not need (or unpickle) them
    gen = DVAEGenerator((32, 32), DVAEOptions(), CPU)
    assert gen().shape == (1, 3, 32, 32)
    gen.init_from_image(torch.rand(1, 3, 32, 32))


def test_digest_recorded_by_download_pins_the_file(cached_entry):
    from clipgen import weights
    from clipgen.generators.dvae.loader import convert_entry
    from clipgen.weights.records import write_record

    entry = weights.get_entry("dalle-dvae")
    for spec in entry.files:  # as clipgen's download records what it fetched
        path = cached_entry / spec.filename
        write_record(path, sha256(path), source=spec.urls[0], published=False)
    DVAEGenerator((32, 32), DVAEOptions(), CPU)  # no trust needed
    with open(cached_entry / "decoder.pkl", "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(ModelError, match="fails SHA-256 verification"):
        convert_entry("dalle-dvae", trust_checkpoint=True)


def test_registry_entry_not_downloaded(monkeypatch, tmp_path):
    monkeypatch.setenv("CLIPGEN_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="clipgen models download dalle-dvae"):
        DVAEGenerator((32, 32), DVAEOptions(), CPU)


# --------------------------------------------------------------------------- behaviour


def test_temperature_schedules():
    assert temperature_at(5, 1.0, None, 10, "linear") == 1.0
    assert temperature_at(5, 1.0, 0.5, 10, "linear") == pytest.approx(0.75)
    assert temperature_at(5, 1.0, 0.25, 10, "exponential") == pytest.approx(0.5)
    assert temperature_at(50, 1.0, 0.25, 10, "exponential") == pytest.approx(0.25)


def test_the_finished_step_drives_the_temperature(tiny_dvae):
    gen = DVAEGenerator((32, 32), options(tiny_dvae, temperature=2.0, temperature_end=1.0,
                                          schedule="linear", anneal_steps=4), CPU)
    seen = [gen.temperature]  # before any after_step: step 0
    for step in range(1, 5):
        gen.after_step(step)
        seen.append(gen.temperature)
    assert seen == [2.0, 1.75, 1.5, 1.25, 1.0]
    gen.after_step(1)  # a pure function of the step: told an earlier step, it goes back
    assert gen.temperature == 1.75
    # The step is the loop's, not state of the generator's own: nothing to save or restore.
    assert set(trainable_state(gen)) == {"logits"} and "step" not in gen.state_dict()


def _temperatures(monkeypatch, gen, steps: int, nan_at: int | None) -> list[float]:
    """The temperature of every forward of ``optimize`` (the ``nan_at``-th objective call is NaN)."""
    used, calls = [], []
    real = dvae_module.relaxed_one_hot

    def spy(logits, tau, hard, sample):
        used.append(tau)
        return real(logits, tau, hard, sample)

    def objective(image):
        calls.append(1)
        loss = (image * torch.linspace(0, 1, image.numel()).view_as(image)).sum()
        return loss * float("nan") if len(calls) == nan_at else loss

    monkeypatch.setattr(dvae_module, "relaxed_one_hot", spy)
    assert optimize(gen, PlainLoss(objective), torch.optim.Adam(gen.param_groups(0.1)), steps) == steps
    monkeypatch.undo()
    return used


def test_temperature_after_a_nan_rewind_matches_an_uninterrupted_run(tiny_dvae, monkeypatch):
    def make():
        torch.manual_seed(0)
        return DVAEGenerator((16, 16), options(tiny_dvae, temperature=2.0, temperature_end=0.5,
                                               schedule="linear", anneal_steps=6), CPU)

    plain = _temperatures(monkeypatch, make(), steps=6, nan_at=None)
    assert plain == [temperature_at(s, 2.0, 0.5, 6, "linear") for s in range(6)]
    rewound = _temperatures(monkeypatch, make(), steps=6, nan_at=3)
    # Step 3 goes NaN and is redone from step 2: every later forward is at the plain run's temperature.
    assert rewound == plain[:3] + plain[2:]


def test_hard_mode_renders_its_tokens_and_obeys_the_blacklist(tiny_dvae):
    gen = DVAEGenerator((32, 32), options(tiny_dvae, hard=True, blacklist=(7, 9)), CPU)
    with torch.no_grad():
        gen.logits[:, 7] = 100.0  # the favourite code everywhere, but banned
        image = gen()
        tokens = gen.tokens()
        assert not torch.isin(tokens, torch.tensor([7, 9])).any()
        assert torch.equal(image, gen.decode(one_hot(tokens[None], 512)))
    # With gradients: a Gumbel sample (straight-through), still one token per cell, never a banned one.
    codes = relaxed_one_hot(gen.logits + gen.bias, 1.0, hard=True, sample=True)
    assert torch.allclose(codes.sum(dim=1), torch.ones(1, 4, 4))
    assert not torch.isin(codes.argmax(dim=1), torch.tensor([7, 9])).any()
    with pytest.raises(SettingsError, match="code 512 does not exist"):
        blacklist_bias((512,), 512)


def test_the_encoder_is_loaded_once_for_every_init_from_image(tiny_dvae, monkeypatch):
    loaded = []
    real = dvae_module.load_part

    def counting(source, expected, device):
        loaded.append(expected)
        return real(source, expected, device)

    monkeypatch.setattr(dvae_module, "load_part", counting)
    gen = DVAEGenerator((32, 32), options(tiny_dvae), CPU)
    for seed in range(3):  # as --zoom does, once per saved frame
        gen.init_from_image(torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(seed)))
    assert loaded == ["Decoder", "Encoder"]
    assert set(trainable_state(gen)) == {"logits"}  # the encoder is not saved with the run


def test_init_from_image_uses_the_encoder_tokens(tiny_dvae):
    gen = DVAEGenerator((32, 32), options(tiny_dvae, hard=True), CPU)
    assert isinstance(gen, EncodesImages)
    image = torch.rand(1, 3, 32, 32)
    gen.init_from_image(image)
    encoder = torch.load(tiny_dvae[0], weights_only=False)
    from dall_e import map_pixels

    with torch.no_grad():
        expected = encoder(map_pixels(image)).argmax(dim=1)[0]
    assert torch.equal(gen.tokens(), expected)
    assert gen.logits.max() == DVAEOptions().init_peak


def test_local_decoder_without_encoder_names_the_option(tiny_dvae):
    gen = DVAEGenerator((32, 32), DVAEOptions(decoder=str(tiny_dvae[1]), trust_checkpoint=True), CPU)
    with pytest.raises(SettingsError, match="dvae.encoder is not set"):
        gen.init_from_image(torch.rand(1, 3, 32, 32))


def test_preset_resolves():
    from clipgen.config.settings import resolve_run_settings

    settings = resolve_run_settings(preset="dvae")
    assert settings.generator == "dvae" and isinstance(settings.options, DVAEOptions)
    assert settings.options.anneal_steps is None  # anneals over the run's own steps


def test_anneal_defaults_to_the_run_steps(tiny_dvae):
    from dataclasses import replace

    generator = DVAEGenerator((16, 16), options(tiny_dvae), replace(CPU, steps=7))
    assert generator.anneal_steps == 7


def test_a_bf16_decoder_draws_the_fp32_image_and_passes_fp32_gradients(tiny_dvae):
    full = DVAEGenerator((32, 32), options(tiny_dvae), CPU)
    half = DVAEGenerator((32, 32), options(tiny_dvae), GeneratorContext(torch.device("cpu"), offline=True,
                                                                       dtype=torch.bfloat16))
    assert next(half.decoder.parameters()).dtype == torch.bfloat16
    codes = torch.softmax(full.logits.detach() * 3, dim=1)
    with torch.no_grad():
        want, got = full.decode(codes), half.decode(codes)
    assert got.dtype == torch.float32 and want.std() > 1e-3
    assert (got - want).abs().max() < 0.1 * want.std()  # bf16 keeps 8 bits of mantissa
    half().mean().backward()
    assert half.logits.grad.dtype == torch.float32 and half.logits.grad.abs().sum() > 0


def test_the_decoder_doubles_inside_its_blocks_with_dall_es_maths(tiny_dvae):
    from clipgen.generators.dvae.generator import _doubling_block_forward, compute_in_weight_dtype

    gen = DVAEGenerator((32, 32), options(tiny_dvae), CPU)
    reference = load_part(dvae_module._part_source(options(tiny_dvae), "decoder"), "Decoder", torch.device("cpu"))
    compute_in_weight_dtype(reference)  # the same convolutions, doubling as dall_e does
    blocks = gen.decoder.blocks
    assert all(isinstance(getattr(blocks, f"group_{i}").upsample, torch.nn.Identity) for i in (1, 2, 3))
    assert all(getattr(getattr(blocks, f"group_{i}").block_1.forward, "func", None) is _doubling_block_forward
               for i in (2, 3, 4))
    torch.manual_seed(0)
    codes = torch.softmax(torch.randn(1, gen.vocab_size, 4, 4) * 3, dim=1)
    results = []
    for decoder in (reference, gen.decoder):
        x = codes.clone().requires_grad_(True)
        out = decoder(x)
        out.backward(torch.linspace(-1, 1, out.numel()).view_as(out))
        results.append((out.detach(), x.grad))
    (want, want_grad), (have, have_grad) = results
    assert have.shape == want.shape == (1, 2 * reference.output_channels, 32, 32)
    torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(have_grad, want_grad, atol=1e-5, rtol=1e-4)
