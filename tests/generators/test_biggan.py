"""The biggan generator on tiny BigGAN-deeps written in pytorch_pretrained_biggan's on-disk
format.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ppb = pytest.importorskip("pytorch_pretrained_biggan", reason="needs the biggan extra")

from fixtures.checkpoints import TINY_BIGGAN_CONFIG as TINY_CONFIG  # noqa: E402
from fixtures.checkpoints import write_tiny_biggan

from clipgen.errors import MissingDependencyError, MissingWeightsError, ModelError, SettingsError  # noqa: E402
from clipgen.generators.base import EncodesImages, GeneratorContext, Regularized  # noqa: E402
from clipgen.generators.biggan.classes import IMAGENET_CLASSES, class_label, find_class  # noqa: E402
from clipgen.generators.biggan.generator import (  # noqa: E402
    LOGIT_BOUND,
    BigGANGenerator,
    BigGANOptions,
    class_penalty,
    fit_to_size,
    latent_penalty,
)
from clipgen.generators.biggan.loader import load_biggan, num_conditions, synthesize  # noqa: E402

CPU = GeneratorContext(device=torch.device("cpu"), offline=True)

def make(folder, size=(32, 32), **options) -> BigGANGenerator:
    return BigGANGenerator(size, BigGANOptions(model_dir=str(folder), **options), CPU)


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize("legacy_format", [True, False], ids=["legacy", "zip"])
def test_loads_and_matches_the_package_forward(tmp_path, legacy_format):
    folder = write_tiny_biggan(tmp_path, legacy_format=legacy_format)
    reference = ppb.BigGAN(ppb.BigGANConfig.from_json_file(folder / "config.json"))
    reference.load_state_dict(torch.load(folder / "pytorch_model.bin", weights_only=True))
    reference.eval()
    model = load_biggan(folder / "config.json", folder / "pytorch_model.bin", torch.device("cpu"))
    assert not any(p.requires_grad for p in model.parameters())
    assert not any(name.endswith("weight_orig") for name, _ in model.named_parameters())  # folded
    torch.manual_seed(1)
    z, classes = torch.randn(1, 16) * 0.5, torch.softmax(torch.randn(1, 1000), -1)
    with torch.no_grad():
        expected = reference(z, classes, 0.5)
        shared = synthesize(model, z, classes, 0.5)
        rows = num_conditions(model)
        per_layer = synthesize(model, z.expand(rows, -1), classes.expand(rows, -1), 0.5)
    assert expected.shape == (1, 3, 32, 32) and expected.std() > 0.05  # not saturated
    torch.testing.assert_close(shared, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(per_layer, expected, atol=1e-5, rtol=1e-4)
    assert rows == 1 + 4  # the first linear layer and each of the four blocks


def test_per_layer_rows_condition_different_blocks(tiny_biggan):
    model = load_biggan(tiny_biggan / "config.json", tiny_biggan / "pytorch_model.bin", torch.device("cpu"))
    torch.manual_seed(0)
    z, classes = torch.randn(5, 16), torch.sigmoid(torch.randn(5, 1000))
    base = synthesize(model, z, classes, 1.0)
    for row in range(5):
        changed = z.clone()
        changed[row] += 1.0
        assert not torch.allclose(synthesize(model, changed, classes, 1.0), base)


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and len(message) < 400
    return message


def test_rejects_weights_that_do_not_match_the_config(tmp_path, tiny_biggan):
    other = dict(TINY_CONFIG, channel_width=8)
    folder = write_tiny_biggan(tmp_path / "wide", config=other)
    (folder / "config.json").write_text((tiny_biggan / "config.json").read_text())
    with pytest.raises(ModelError) as excinfo:
        make(folder)
    assert "do not belong together" in _one_line(excinfo)


def test_rejects_missing_tensor(tmp_path):
    folder = write_tiny_biggan(tmp_path, edit=lambda s: s.pop("generator.conv_to_rgb.weight_v"))
    with pytest.raises(ModelError) as excinfo:
        make(folder)
    assert "generator.conv_to_rgb.weight_v" in _one_line(excinfo)


@pytest.mark.parametrize("text, match", [
    ("{not json", "not valid JSON"),
    (json.dumps({k: v for k, v in TINY_CONFIG.items() if k != "layers"}), "has no 'layers'"),
    (json.dumps(dict(TINY_CONFIG, output_dim=64)), "make 32px images"),
])
def test_rejects_bad_config(tmp_path, tiny_biggan, text, match):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes((tiny_biggan / "pytorch_model.bin").read_bytes())
    (folder / "config.json").write_text(text)
    with pytest.raises(ModelError, match=match) as excinfo:
        make(folder)
    _one_line(excinfo)


def test_rejects_garbage_weights(tmp_path, tiny_biggan):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_biggan / "config.json").read_text())
    (folder / "pytorch_model.bin").write_bytes(b"<html>AccessDenied</html>")
    with pytest.raises(ModelError) as excinfo:
        make(folder)
    assert "pytorch_model.bin" in _one_line(excinfo)


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_weights_are_never_unpickled_freely(tmp_path, tiny_biggan):
    marker = tmp_path / "pwned"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_biggan / "config.json").read_text())
    torch.save({"embeddings.weight": _Exploit(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(ModelError):
        make(folder)
    assert not marker.exists()


def test_missing_files_name_the_fix(tmp_path, monkeypatch):
    with pytest.raises(MissingWeightsError, match="has no config.json.*biggan.model_dir"):
        BigGANOptions(model_dir=str(tmp_path))  # when the options are built, before any loading
    monkeypatch.setenv("CLIPGEN_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError) as excinfo:
        BigGANGenerator((128, 128), BigGANOptions(model="biggan-deep-128"), CPU)
    assert "clipgen models download biggan-deep-128" in _one_line(excinfo)


def test_missing_package_is_a_dependency_error(tiny_biggan, monkeypatch):
    for missing in ("pytorch_pretrained_biggan", "scipy"):
        class Absent:
            def find_spec(self, name, path=None, target=None, missing=missing):
                if name == missing or name.startswith(missing + "."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        with monkeypatch.context() as patch:
            for name in [m for m in sys.modules if m.split(".")[0] in ("pytorch_pretrained_biggan", missing)]:
                patch.delitem(sys.modules, name)
            patch.setattr(sys, "meta_path", [Absent(), *sys.meta_path])
            with pytest.raises(MissingDependencyError, match=r"pip install 'clipgen\[biggan\]'") as excinfo:
                make(tiny_biggan)
        assert excinfo.value.package == ("scipy" if missing == "scipy" else "pytorch-pretrained-biggan")


@pytest.mark.slow
def test_settings_resolve_without_importing_the_package():
    code = ("import sys; from clipgen.config.presets import load_preset; from clipgen.config.settings import resolve; "
            "p = load_preset('biggan'); s = resolve([('preset', p.values)]); "
            "assert s.generator == 'biggan', s; "
            "assert 'pytorch_pretrained_biggan' not in sys.modules; print('ok')")
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


# --------------------------------------------------------------------------- class names


def test_class_table():
    assert len(IMAGENET_CLASSES) == 1000
    assert class_label(207) == "golden retriever" and class_label(0) == "tench"
    assert class_label(999) == "toilet tissue"


@pytest.mark.parametrize("query, index", [
    ("golden retriever", 207), ("Golden-Retriever", 207), ("  golden   retriever ", 207),
    ("rooster", 7), ("cock", 7), ("207", 207),          # alias and index
    ("golden retreiver", 207), ("goldn retrever", 207),  # fuzzy
    ("missile", 657),                                    # the canonical name wins an alias clash
])
def test_find_class(query, index):
    assert find_class(query) == index


@pytest.mark.parametrize("query, listed", [
    ("retriever", ["golden retriever", "Labrador retriever"]),
    ("shark", ["tiger shark", "great white shark"]),
])
def test_unknown_class_lists_suggestions(query, listed):
    with pytest.raises(SettingsError) as excinfo:
        find_class(query, "biggan.class_name")
    message = _one_line(excinfo)
    assert message.startswith("biggan.class_name: no ImageNet class called")
    assert all(f"'{name}'" in message for name in listed)


def test_hopeless_class_and_bad_index():
    with pytest.raises(SettingsError, match="such as 'golden retriever'"):
        find_class("qqqqzzzz")
    with pytest.raises(SettingsError, match="0-999"):
        find_class("1000")


def test_class_options_are_checked_before_loading(tmp_path):
    with pytest.raises(SettingsError, match="fix_class needs biggan.class_name"):
        BigGANOptions(fix_class=True)
    with pytest.raises(SettingsError, match="did you mean"):
        BigGANOptions(class_name="golden retrievr dog")
    BigGANOptions(class_name="golden retriever", fix_class=True)
    from clipgen.config.settings import resolve_run_settings

    with pytest.raises(SettingsError, match="fix_class needs biggan.class_name"):
        resolve_run_settings(flags={"generator": "biggan"}, assignments=["biggan.fix_class=true"])


# --------------------------------------------------------------------------- parameterisation


@pytest.mark.parametrize("size", [(32, 32), (64, 64), (48, 24), (20, 40)])
def test_output_size_and_range(tiny_biggan, size):
    gen = make(tiny_biggan, size=size)
    image = gen()
    assert image.shape == (1, 3, size[1], size[0])
    assert torch.isfinite(image).all() and image.min() >= 0 and image.max() <= 1


def test_fit_to_size_crops_the_centre():
    square = torch.arange(16.0).view(1, 1, 4, 4).expand(1, 3, 4, 4)
    assert torch.equal(fit_to_size(square, 2, 4), square[..., 1:3, :])
    assert torch.equal(fit_to_size(square, 4, 2), square[..., :, 1:3])
    assert fit_to_size(square, 8, 8).shape[-2:] == (8, 8)


def test_parameters_and_layouts(tiny_biggan):
    gen = make(tiny_biggan)
    assert gen.z.shape == (5, 16) and gen.class_logits.shape == (5, 1000)
    assert [p for g in gen.param_groups(0.07) for p in g["params"]] == [gen.z, gen.class_logits]
    assert gen.z.abs().max() <= 2.0
    shared = make(tiny_biggan, latents="shared", truncation=0.5)
    assert shared.z.shape == (1, 16) and shared.z.abs().max() <= 1.0
    assert isinstance(gen, EncodesImages) and isinstance(gen, Regularized)


def test_class_name_initialises_or_fixes_the_class(tiny_biggan):
    for activation in ("sigmoid", "softmax"):
        gen = make(tiny_biggan, class_name="golden retriever", class_activation=activation)
        top, weight = gen.top_classes(1)[0]
        assert top == "golden retriever" and weight > 0.9
        assert gen.class_vector().sum(-1).max() < 1.5  # the other classes start small
    fixed = make(tiny_biggan, class_name="golden retriever", fix_class=True)
    assert fixed.class_logits is None
    assert [p for g in fixed.param_groups(0.07) for p in g["params"]] == [fixed.z]
    assert torch.equal(fixed.class_vector()[0].nonzero().flatten(), torch.tensor([207]))


def test_seed_gives_the_same_start(tiny_biggan):
    torch.manual_seed(3)
    first = make(tiny_biggan)().detach()
    torch.manual_seed(3)
    assert torch.equal(make(tiny_biggan)().detach(), first)


@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
def test_truncation_and_class_vector_stay_in_range(tiny_biggan, activation):
    """Push hard on everything for a few steps: after_step keeps z and the logits in range."""
    gen = make(tiny_biggan, truncation=0.4, class_activation=activation)
    optimizer = torch.optim.Adam(gen.param_groups(5.0))
    for step in range(1, 5):
        optimizer.zero_grad()
        (-(gen.z.abs().sum() + gen.class_logits.abs().sum()) - gen().mean()).backward()
        optimizer.step()
        gen.after_step(step)
    assert gen.z.abs().max() <= 0.8 + 1e-6 and torch.isclose(gen.z.abs().max(), torch.tensor(0.8))
    assert gen.class_logits.abs().max() <= LOGIT_BOUND
    classes = gen.class_vector()
    assert classes.min() >= 0 and classes.max() <= 1
    if activation == "softmax":
        torch.testing.assert_close(classes.sum(-1), torch.ones(5))
    image = gen()
    assert torch.isfinite(image).all() and image.min() >= 0 and image.max() <= 1


def test_regularization_loss(tiny_biggan):
    gen = make(tiny_biggan)
    loss = gen.regularization_loss()
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    assert gen.z.grad.abs().sum() > 0 and gen.class_logits.grad.abs().sum() > 0
    off = make(tiny_biggan, latent_weight=0.0, class_weight=0.0)
    assert off.regularization_loss() == 0


def test_penalties_measure_drift():
    torch.manual_seed(0)
    z = torch.nn.init.trunc_normal_(torch.empty(4, 4096), 0, 1, -2, 2)
    assert latent_penalty(z, 1.0) < 0.1
    assert latent_penalty(z * 0.5, 0.5) < 0.1  # truncation-aware target
    assert latent_penalty(z * 1.5 + 0.5, 1.0) > 0.5
    one_hot = torch.nn.functional.one_hot(torch.tensor([3, 7]), 1000).float()
    assert class_penalty(one_hot) == 0
    assert class_penalty(torch.full((2, 1000), 0.02)) > class_penalty(one_hot * 0.9 + 0.001)


def test_init_from_image_fits_the_image(tiny_biggan):
    torch.manual_seed(0)
    target = make(tiny_biggan, size=(32, 32))().detach()  # an image the generator can make
    torch.manual_seed(1)
    gen = make(tiny_biggan, size=(32, 32), init_steps=25)
    before = torch.nn.functional.mse_loss(gen(), target).item()
    with torch.no_grad():  # as the caller may hold it
        gen.init_from_image(target)
    after = torch.nn.functional.mse_loss(gen(), target).item()
    assert after < 0.6 * before
    assert gen.z.abs().max() <= 2.0


# --------------------------------------------------------------------------- end to end


def test_generate_end_to_end(tiny_clip, tiny_biggan, tmp_path):
    import clipgen

    result = clipgen.generate(
        "a red apple", generator="biggan", clip=[tiny_clip], size=(32, 32), steps=10, cutn=4,
        seed=0, out=str(tmp_path), save_every=0, biggan={"model_dir": str(tiny_biggan)},
    )
    assert result.image.size == (32, 32)
    assert len(result.history) == 10 and [h["step"] for h in result.history] == list(range(1, 11))
    assert all(np.isfinite(h["loss"]) for h in result.history)
    assert result.final_similarity > result.initial_similarity
    assert Path(result.paths["image"]).is_file()


def test_cli_generate_and_class_error(run_cli, tiny_clip, tiny_biggan, tmp_path):
    common = ["generate", "a red apple", "-g", "biggan", "--clip", tiny_clip, "--size", "32x32",
              "--steps", "2", "--cutn", "2", "--seed", "0", "--out", tmp_path, "--save-every", "0",
              "--quiet", "--set", f"biggan.model_dir={tiny_biggan}"]
    code, _, err = run_cli([*common, "--set", "biggan.class_name=golden retriever"])
    assert code == 0, err
    code, _, err = run_cli([*common, "--set", "biggan.class_name=retriever"])
    assert code == 2 and "golden retriever" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- registry and preset


def test_registry_entries():
    import re

    from clipgen import weights
    from clipgen.weights.entries.biggan import BIGGAN_CONFIG, BIGGAN_WEIGHTS

    assert set(weights.names("biggan-deep")) == {"biggan-deep-128", "biggan-deep-256", "biggan-deep-512"}
    for entry in weights.entries("biggan-deep"):
        assert [f.filename for f in entry.files] == [BIGGAN_CONFIG, BIGGAN_WEIGHTS]
        for spec in entry.files:
            assert spec.urls and all(u.startswith("https://") for u in spec.urls)
            assert any("s3.amazonaws.com/models.huggingface.co/biggan/" in u for u in spec.urls)
            assert spec.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
    weights_128 = weights.get_entry("biggan-deep-128").file(BIGGAN_WEIGHTS)
    assert weights_128.sha256.startswith("b86146a8") and "huggingface.co/osanseviero" in weights_128.urls[0]


def test_preset_resolves():
    from clipgen.config.presets import load_preset
    from clipgen.config.settings import resolve

    preset = load_preset("biggan")
    settings = resolve([(f"preset {preset.path}", preset.values)])
    assert settings.generator == "biggan" and settings.size == (256, 256)
    assert settings.lr == 0.07 and settings.steps < 21_000
    assert settings.options == BigGANOptions()


def test_a_bf16_model_draws_the_fp32_image_and_passes_fp32_gradients(tmp_path):
    folder = write_tiny_biggan(tmp_path)
    full = make(folder)
    half = BigGANGenerator((32, 32), BigGANOptions(model_dir=str(folder)),
                           GeneratorContext(torch.device("cpu"), offline=True, dtype=torch.bfloat16))
    assert next(half.biggan.parameters()).dtype == torch.bfloat16
    with torch.no_grad():
        half.z.copy_(full.z)
        want, got = full(), half()
    assert got.dtype == torch.float32 and want.std() > 0.01
    assert (got - want).abs().max() < 0.05  # bf16 keeps 8 bits of mantissa
    half().mean().backward()
    assert half.z.grad.dtype == torch.float32 and half.z.grad.abs().sum() > 0


def test_doubling_blocks_run_the_transposed_convolution_with_the_packages_maths(tiny_biggan):
    from clipgen.generators.biggan.loader import _upsampling_block_forward

    model = load_biggan(tiny_biggan / "config.json", tiny_biggan / "pytorch_model.bin", torch.device("cpu"))
    doubling = [layer for layer in model.generator.layers if getattr(layer, "up_sample", False)]
    assert doubling and all(getattr(b.forward, "func", None) is _upsampling_block_forward for b in doubling)
    block = doubling[0]
    torch.manual_seed(0)
    x = torch.randn(1, block.conv_0.in_channels, 4, 4).contiguous(memory_format=torch.channels_last)
    condition = torch.randn(1, block.bn_0.scale.in_features)
    results = []
    for forward in (ppb.model.GenBlock.forward.__get__(block), block.forward):
        x_ = x.clone().requires_grad_(True)
        out = forward(x_, condition, 0.5)
        out.backward(torch.linspace(-1, 1, out.numel()).view_as(out))
        results.append((out.detach(), x_.grad))
    (expected, expected_grad), (got, got_grad) = results
    assert got.shape == (1, block.conv_3.out_channels, 8, 8)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got_grad, expected_grad, atol=1e-5, rtol=1e-4)
