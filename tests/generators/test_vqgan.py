"""The vqgan generator on tiny VQGANs written in the real taming/Lightning on-disk format."""

from __future__ import annotations

import copy
import pickle
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

yaml = pytest.importorskip("yaml", reason="needs the vqgan extra")
pytest.importorskip("taming.modules.vqvae.quantize", reason="needs the vqgan extra")
from fixtures.checkpoints import write_tiny_vqgan  # noqa: E402
from taming.modules.diffusionmodules.model import AttnBlock  # noqa: E402

from clipgen.errors import MissingWeightsError, ModelError, SettingsError  # noqa: E402
from clipgen.generators.base import EncodesImages, GeneratorContext  # noqa: E402
from clipgen.generators.common import clamp_with_grad  # noqa: E402
from clipgen.generators.vqgan.generator import VQGANGenerator, VQGANOptions, vector_quantize  # noqa: E402
from clipgen.generators.vqgan.taming import _attention_forward, _resnet_forward  # noqa: E402
from clipgen.weights.checkpoints import Opaque, load_checkpoint  # noqa: E402

CPU = GeneratorContext(device=torch.device("cpu"), offline=True)


def make(paths, size=(64, 64)) -> VQGANGenerator:
    options = VQGANOptions(config=str(paths[0]), checkpoint=str(paths[1]))
    return VQGANGenerator(size, options, CPU)


# --------------------------------------------------------------------------- loading


def test_real_lightning_ckpt_needs_more_than_plain_weights_only(tiny_vqgan):
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tiny_vqgan[1], weights_only=True)
    checkpoint = load_checkpoint(tiny_vqgan[1])
    (callback,) = checkpoint["callbacks"]
    assert issubclass(callback, Opaque) and callback.target.endswith("model_checkpoint.ModelCheckpoint")
    assert isinstance(checkpoint["callbacks"][callback]["best_k_models"]["epoch=000006.ckpt"], Opaque)
    assert checkpoint["global_step"] == 123_456
    assert "pytorch_lightning" not in sys.modules


@pytest.mark.parametrize("kind", ["vq", "gumbel"])
@pytest.mark.parametrize("legacy_format", [False, True], ids=["zip", "legacy"])
def test_loads_weights_and_renders(tmp_path, kind, legacy_format):
    paths = write_tiny_vqgan(tmp_path, kind, legacy_format=legacy_format)
    gen = make(paths)
    saved = load_checkpoint(paths[1])["state_dict"]
    loaded = gen.vqgan.state_dict()
    assert set(loaded) == {k for k in saved if not k.startswith("loss.")}
    assert all(torch.equal(loaded[k], saved[k]) for k in loaded)
    assert gen.z.shape == (1, 4, 16, 16)  # 64 px / f4
    image = gen()
    assert image.shape == (1, 3, 64, 64)
    assert torch.isfinite(image).all() and image.min() >= 0 and image.max() <= 1
    assert [p for g in gen.param_groups(0.1) for p in g["params"]] == [gen.z]
    assert not any(p.requires_grad for p in gen.vqgan.parameters())


def test_gumbel_uses_its_own_codebook(tiny_gumbel):
    gen = make(tiny_gumbel)
    saved = load_checkpoint(tiny_gumbel[1])["state_dict"]
    assert torch.equal(gen.codebook, saved["quantize.embed.weight"])
    assert gen.codebook.shape == (128, 4)


def test_non_square_sizes_that_are_multiples(tiny_vqgan):
    gen = make(tiny_vqgan, size=(96, 32))
    assert gen().shape == (1, 3, 32, 96)


@pytest.mark.parametrize("size", [(63, 64), (64, 30)])
def test_size_must_be_a_multiple_of_the_downsampling(tiny_vqgan, tmp_path, size):
    with pytest.raises(SettingsError, match="multiple of 4"):
        make(tiny_vqgan, size=size)
    # Checked from the yaml alone, before the weights are read: garbage weights are not reached.
    junk = tmp_path / "last.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SettingsError, match=r"multiple of 4.*try 64x"):
        make((tiny_vqgan[0], junk), size=size)


def _one_line_model_error(excinfo) -> str:
    message = str(excinfo.value)
    assert isinstance(excinfo.value, ModelError)
    assert "\n" not in message and len(message) < 400
    return message


def test_rejects_checkpoint_missing_a_decoder_key(tmp_path):
    paths = write_tiny_vqgan(tmp_path, edit=lambda s: s.pop("decoder.conv_out.weight"))
    with pytest.raises(ModelError) as excinfo:
        make(paths)
    assert "decoder.conv_out.weight" in _one_line_model_error(excinfo)


def test_rejects_misshaped_tensor(tmp_path):
    def edit(state):
        state["post_quant_conv.weight"] = torch.zeros(16, 8, 1, 1)

    paths = write_tiny_vqgan(tmp_path, edit=edit)
    with pytest.raises(ModelError) as excinfo:
        make(paths)
    message = _one_line_model_error(excinfo)
    assert "post_quant_conv.weight" in message and "(16, 8, 1, 1)" in message


def test_rejects_unknown_target(tmp_path, tiny_vqgan):
    data = yaml.safe_load(tiny_vqgan[0].read_text())
    data["model"]["target"] = "taming.models.cond_transformer.Net2NetTransformer"
    bad = tmp_path / "model.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ModelError) as excinfo:
        make((bad, tiny_vqgan[1]))
    assert "Net2NetTransformer" in _one_line_model_error(excinfo)


def test_rejects_gumbel_yaml_with_plain_checkpoint(tiny_vqgan, tiny_gumbel):
    with pytest.raises(ModelError) as excinfo:
        make((tiny_gumbel[0], tiny_vqgan[1]))
    assert "do not belong together" in _one_line_model_error(excinfo)


def test_rejects_garbage_checkpoint(tmp_path, tiny_vqgan):
    junk = tmp_path / "last.ckpt"
    junk.write_bytes(b"<html>login required</html>")
    with pytest.raises(ModelError) as excinfo:
        make((tiny_vqgan[0], junk))
    assert str(junk) in _one_line_model_error(excinfo)


def test_yaml_is_parsed_safely(tmp_path, tiny_vqgan):
    bad = tmp_path / "model.yaml"
    bad.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ModelError) as excinfo:
        make((bad, tiny_vqgan[1]))
    assert "not valid YAML" in _one_line_model_error(excinfo)


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_hostile_globals_become_inert(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "callbacks": _Exploit(marker)}, path)
    checkpoint = load_checkpoint(path)
    assert not marker.exists()
    assert isinstance(checkpoint["callbacks"], Opaque)


def test_blocked_modules_fail_loudly(tmp_path):
    class Shell:
        def __reduce__(self):
            import os

            return (os.system, ("true",))

    path = tmp_path / "evil.ckpt"
    torch.save({"x": Shell()}, path)
    with pytest.raises(ModelError) as excinfo:
        load_checkpoint(path)
    _one_line_model_error(excinfo)


def test_missing_local_files_and_half_pairs_fail_when_the_options_are_built(tmp_path, tiny_vqgan):
    with pytest.raises(MissingWeightsError, match="VQGAN checkpoint .*nope.ckpt does not exist; check --vqgan-checkpoint"):
        VQGANOptions(config=str(tiny_vqgan[0]), checkpoint=str(tmp_path / "nope.ckpt"))
    with pytest.raises(MissingWeightsError, match="VQGAN config .*nope.yaml does not exist; check --vqgan-config"):
        VQGANOptions(config=str(tmp_path / "nope.yaml"), checkpoint=str(tiny_vqgan[1]))
    with pytest.raises(SettingsError, match="needs vqgan.checkpoint"):
        VQGANOptions(config=str(tiny_vqgan[0]))
    with pytest.raises(SettingsError, match="needs vqgan.config"):
        VQGANOptions(checkpoint=str(tiny_vqgan[1]))


def test_registry_model_not_downloaded_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPGEN_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError) as excinfo:
        VQGANGenerator((64, 64), VQGANOptions(model="gumbel-f8-8192"), CPU)
    assert "clipgen models download gumbel-f8-8192" in str(excinfo.value)


# --------------------------------------------------------------------------- parameterisation


def test_straight_through_quantisation():
    torch.manual_seed(0)
    codebook = torch.randn(10, 4)
    z = torch.randn(1, 4, 3, 5, requires_grad=True)
    z_q = vector_quantize(z, codebook)
    rows = z_q.detach().movedim(1, -1).reshape(-1, 4)
    # every position is exactly some codebook row, and the nearest one
    matches = (rows[:, None, :] == codebook[None]).all(-1)
    assert matches.any(1).all()
    nearest = torch.cdist(z.detach().movedim(1, -1).reshape(-1, 4), codebook).argmin(1)
    assert torch.equal(matches.float().argmax(1), nearest)
    weight = torch.randn_like(z_q)
    (z_q * weight).sum().backward()
    assert torch.equal(z.grad, weight)  # identity gradient: straight through


def test_clamp_with_grad_passes_only_inward_gradients():
    x = torch.tensor([-0.5, 0.5, 1.5, -0.5, 1.5], requires_grad=True)
    y = clamp_with_grad(x)
    assert torch.equal(y.detach(), torch.tensor([0.0, 0.5, 1.0, 0.0, 1.0]))
    # loss gradients: +1 asks to decrease, -1 to increase
    y.backward(torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0]))
    # below range asked to go lower: blocked; above range asked lower: passed; etc.
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0, 1.0, -1.0, 0.0]))


def test_forward_is_decoded_codebook_and_grad_reaches_z(tiny_vqgan):
    torch.manual_seed(0)
    gen = make(tiny_vqgan)
    image = gen()
    image.mean().backward()
    assert gen.z.grad is not None and gen.z.grad.abs().sum() > 0
    # the start is made of codebook entries
    tokens = gen.tokens()
    assert torch.equal(gen.z.detach(), gen.codebook[tokens].movedim(-1, 0)[None])


def test_after_step_clamps_per_channel_to_codebook_range(tiny_vqgan):
    gen = make(tiny_vqgan)
    with torch.no_grad():
        gen.z.mul_(100)
    gen.after_step(1)
    lo, hi = gen.codebook.min(0).values, gen.codebook.max(0).values
    per_channel = gen.z.detach()[0].flatten(1)
    assert (per_channel.min(1).values >= lo).all() and (per_channel.max(1).values <= hi).all()
    assert torch.isclose(per_channel.max(1).values, hi).all()  # clamped, not rescaled


@pytest.mark.parametrize("which", ["tiny_vqgan", "tiny_gumbel"])
def test_init_from_image_uses_the_encoder(request, which):
    gen = make(request.getfixturevalue(which))
    assert isinstance(gen, EncodesImages)
    image = torch.rand(1, 3, 64, 64)
    gen.init_from_image(image)
    vq = gen.vqgan
    with torch.no_grad():
        h = vq.quant_conv(vq.encoder(image * 2 - 1))
        if vq.config.kind == "gumbel":
            expected = vq.quantize.proj(h).argmax(1)[0]
        else:
            expected = torch.cdist(h[0].flatten(1).T, gen.codebook).argmin(1).view(16, 16)
    assert torch.equal(gen.tokens(), expected)
    assert gen().shape == (1, 3, 64, 64)


# --------------------------------------------------------------------------- optimisation


def _clip_similarity_run(tiny_clip: str, paths, steps: int = 8) -> tuple[float, float]:
    """A minimal CLIP-guided loop (not the project's) to check the generator can be steered."""
    import json

    import open_clip
    from safetensors.torch import load_file

    cfg = json.loads((Path(tiny_clip) / "open_clip_config.json").read_text())
    clip = open_clip.CLIP(**cfg["model_cfg"]).eval().requires_grad_(False)
    clip.load_state_dict(load_file(str(Path(tiny_clip) / "open_clip_model.safetensors")))
    tokens = open_clip.tokenize(["a red apple"], context_length=cfg["model_cfg"]["text_cfg"]["context_length"])
    text = torch.nn.functional.normalize(clip.encode_text(tokens), dim=-1)

    def similarity(image):
        small = torch.nn.functional.interpolate(image, size=32, mode="bilinear", antialias=True)
        return (torch.nn.functional.normalize(clip.encode_image(small), dim=-1) * text).sum()

    torch.manual_seed(0)
    gen = make(paths)
    optimiser = torch.optim.Adam(gen.param_groups(0.1))
    with torch.no_grad():
        first = similarity(gen()).item()
    for step in range(1, steps + 1):
        optimiser.zero_grad()
        (-similarity(gen())).backward()
        optimiser.step()
        gen.after_step(step)
    with torch.no_grad():
        return first, similarity(gen()).item()


@pytest.mark.parametrize("which", ["tiny_vqgan", "tiny_gumbel"])
def test_clip_guidance_raises_similarity(request, tiny_clip, which):
    first, last = _clip_similarity_run(tiny_clip, request.getfixturevalue(which))
    assert last > first


def test_generate_end_to_end(tiny_clip, tiny_vqgan, tmp_path):
    api = pytest.importorskip("clipgen.api", reason="clipgen.api is not written yet")
    result = api.generate(
        "a red apple", generator="vqgan", clip=[tiny_clip], size=(64, 64), steps=10, cutn=8,
        seed=0, out=str(tmp_path), save_every=0,
        vqgan={"config": str(tiny_vqgan[0]), "checkpoint": str(tiny_vqgan[1])},
    )
    assert result.image.size == (64, 64)
    assert all(np.isfinite(h["loss"]) for h in result.history)
    assert result.final_similarity > result.initial_similarity
    assert Path(result.paths["image"]).is_file()
    assert "pytorch_lightning" not in sys.modules


# --------------------------------------------------------------------------- no Lightning


class _Forbid:
    """A meta-path finder that makes importing Lightning or taming's training side fail."""

    PREFIXES = ("pytorch_lightning", "lightning", "taming.models", "taming.main", "taming.modules.losses")

    def find_spec(self, name, path=None, target=None):
        if name.startswith(self.PREFIXES):
            raise ImportError(f"test forbids importing {name}")
        return None


def test_never_imports_lightning_or_taming_models(tiny_vqgan, tiny_gumbel, monkeypatch):
    monkeypatch.setattr(sys, "meta_path", [_Forbid(), *sys.meta_path])
    for paths in (tiny_vqgan, tiny_gumbel):
        gen = make(paths)
        gen().mean().backward()
    assert not [m for m in sys.modules if m.startswith(_Forbid.PREFIXES)]


def test_missing_taming_is_a_dependency_error(tiny_vqgan, monkeypatch):
    from clipgen.errors import MissingDependencyError

    class Absent:
        def find_spec(self, name, path=None, target=None):
            if name == "taming" or name.startswith("taming."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    for name in [m for m in sys.modules if m == "taming" or m.startswith("taming.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [Absent(), *sys.meta_path])
    with pytest.raises(MissingDependencyError, match=r"pip install 'clipgen\[vqgan\]'"):
        make(tiny_vqgan)


def test_preset_resolves():
    from clipgen.config.presets import load_preset
    from clipgen.config.settings import resolve

    preset = load_preset("vqgan")
    settings = resolve([(f"preset {preset.path}", preset.values)])
    assert settings.generator == "vqgan" and settings.size == (256, 256)
    assert settings.lr == 0.1 and settings.cutn == 32 and settings.optimizer == "adam"
    assert settings.options == VQGANOptions()


# --------------------------------------------------------------------------- fast paths


@pytest.mark.parametrize("side", [8, 65])  # explicit kernels on the CPU up to 4096 positions, SDPA above
def test_fused_attention_matches_taming_attention(side):
    torch.manual_seed(0)
    block = AttnBlock(64).eval().requires_grad_(False)
    x = torch.randn(2, 64, side, side)
    grads = []
    for forward in (AttnBlock.forward, _attention_forward):
        x_ = x.clone().requires_grad_()
        out = forward(block, x_)
        (out * torch.linspace(-1, 1, side)).sum().backward()
        grads.append((out.detach(), x_.grad))
    (expected, expected_grad), (got, got_grad) = grads
    assert torch.allclose(expected, got, atol=1e-5) and torch.allclose(expected_grad, got_grad, atol=1e-4)


@pytest.mark.parametrize("channels_in, channels_out", [(64, 64), (64, 128)])
def test_silu_residual_block_matches_taming_block(channels_in, channels_out):
    from taming.modules.diffusionmodules.model import ResnetBlock

    torch.manual_seed(0)
    block = ResnetBlock(in_channels=channels_in, out_channels=channels_out, temb_channels=0, dropout=0.0).eval()
    x = torch.randn(2, channels_in, 8, 8, requires_grad=True)
    expected = ResnetBlock.forward(block, x, None)
    got = _resnet_forward(block, x, None)
    assert torch.allclose(expected, got, atol=1e-5)
    upstream = torch.randn_like(got)
    (want,) = torch.autograd.grad(expected, x, upstream)
    (have,) = torch.autograd.grad(got, x, upstream)
    assert torch.allclose(want, have, atol=1e-5)


def test_decoder_checkpointing_changes_memory_not_maths(tiny_vqgan):
    torch.manual_seed(0)
    gen = make(tiny_vqgan)
    outputs = []
    for checkpointing in (False, True):
        gen.vqgan.checkpointing = checkpointing
        gen.z.grad = None
        image = gen()
        (image * torch.linspace(0, 1, image.numel()).view_as(image)).sum().backward()
        outputs.append((image.detach(), gen.z.grad.clone()))
    assert torch.allclose(outputs[0][0], outputs[1][0], atol=1e-6)
    assert torch.allclose(outputs[0][1], outputs[1][1], atol=1e-5)


def test_bf16_vqgan_decodes_close_to_fp32(tiny_vqgan):
    options = VQGANOptions(config=str(tiny_vqgan[0]), checkpoint=str(tiny_vqgan[1]))
    torch.manual_seed(0)
    fp32 = VQGANGenerator((64, 64), options, CPU)
    torch.manual_seed(0)
    bf16 = VQGANGenerator((64, 64), options, replace(CPU, dtype=torch.bfloat16))
    assert bf16.z.dtype == torch.float32  # what the optimiser updates stays fp32
    a, b = fp32(), bf16()
    assert b.dtype == torch.float32
    assert (a - b).abs().mean() < 0.02


def test_generators_sharing_kept_models_share_one_decoder_with_their_own_settings(tiny_vqgan):
    from clipgen.generators.base import FrozenModels, GeneratorContext
    from clipgen.generators.vqgan.generator import VQGANGenerator, VQGANOptions

    kept = FrozenModels()
    context = GeneratorContext(device=torch.device("cpu"), offline=True, kept=kept)
    first = VQGANGenerator((32, 32), VQGANOptions(config=str(tiny_vqgan[0]), checkpoint=str(tiny_vqgan[1])), context)
    assert first.vqgan.checkpointing is False
    second = VQGANGenerator((32, 32), VQGANOptions(config=str(tiny_vqgan[0]), checkpoint=str(tiny_vqgan[1]),
                                                   checkpointing=True), context)
    assert second.vqgan is first.vqgan and len(kept) == 1 and second.vqgan.checkpointing is True
    alone = VQGANGenerator((32, 32), VQGANOptions(config=str(tiny_vqgan[0]), checkpoint=str(tiny_vqgan[1])),
                           GeneratorContext(device=torch.device("cpu"), offline=True))
    assert alone.vqgan is not first.vqgan


def _channels_last_group_norm(dtype, requires_grad=False):
    torch.manual_seed(0)
    norm = torch.nn.GroupNorm(8, 32, eps=1e-6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    norm.requires_grad_(requires_grad)
    # A large mean against the spread: the backward must not cancel it away in bf16.
    x = (torch.randn(2, 32, 12, 12) * 0.5 + 4).to(dtype).contiguous(memory_format=torch.channels_last)
    return norm.to(dtype), x.requires_grad_()


@pytest.mark.parametrize("with_silu", [False, True])
def test_frozen_group_norm_is_torchs_forward_with_a_backward_as_exact_as_torchs(with_silu):
    from clipgen.generators.vqgan.group_norm import group_norm, group_norm_silu

    def torchs(x, weight, bias):
        y = F.group_norm(x, 8, weight, bias, 1e-6)
        return F.silu(y) if with_silu else y

    norm, x = _channels_last_group_norm(torch.bfloat16)
    upstream = torch.randn(x.shape).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    got = (group_norm_silu if with_silu else group_norm)(norm, x)
    assert got.grad_fn.name().startswith("_FrozenGroupNorm")
    assert torch.equal(got, torchs(x, norm.weight, norm.bias))  # forward: torch's kernels
    (have,) = torch.autograd.grad(got, x, upstream)
    (want,) = torch.autograd.grad(torchs(x, norm.weight, norm.bias), x, upstream)
    x64 = x.detach().double().requires_grad_()
    reference = torchs(x64, norm.weight.double(), norm.bias.double())
    (exact,) = torch.autograd.grad(reference, x64, upstream.double())
    scale = exact.abs().max()
    assert have.is_contiguous(memory_format=torch.channels_last)
    assert (have.double() - exact).abs().max() / scale < 2 * (want.double() - exact).abs().max() / scale + 1e-3
    assert (have.double() - exact).abs().max() / scale < 0.02


@pytest.mark.parametrize("case", ["fp32", "trainable", "contiguous"])
def test_group_norm_goes_through_torch_where_its_backward_is_fast_or_weights_train(case):
    from clipgen.generators.vqgan import group_norm as module

    norm, x = _channels_last_group_norm(torch.float32 if case == "fp32" else torch.bfloat16,
                                        requires_grad=case == "trainable")
    if case == "contiguous":
        x = x.detach().contiguous().requires_grad_()
    y = module.group_norm(norm, x)
    assert y.grad_fn.name() != "_FrozenGroupNormBackward"
    assert torch.equal(y, norm.__class__.forward(norm, x))


def test_a_loaded_vqgan_routes_its_group_norms_through_the_frozen_kernel(tiny_vqgan):
    gen = make(tiny_vqgan)
    norms = [m for m in gen.vqgan.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and all(getattr(m.forward, "func", None).__name__ == "group_norm" for m in norms)


@pytest.mark.parametrize("packed", [True, False])
def test_the_steps_code_search_finds_the_nearest_codes_and_follows_a_changed_codebook(packed, monkeypatch):
    import clipgen.packed_linear as packed_linear
    from clipgen.generators.vqgan.quantise import NearestCodes, nearest_codes

    monkeypatch.setattr(packed_linear, "MIN_PACKED_ELEMENTS", 0 if packed else 2**62)
    torch.manual_seed(0)
    codebook, z = torch.randn(512, 16), torch.randn(2, 16, 5, 6, requires_grad=True)
    search = NearestCodes()
    found = search(z, codebook)
    assert found.shape == (2, 5, 6) and torch.equal(found, nearest_codes(z, codebook))
    exact = ((z.detach().movedim(1, -1)[..., None, :] - codebook) ** 2).sum(-1).argmin(-1)
    assert torch.equal(found, exact)
    codebook = codebook.flip(0)  # another codebook: the kept norms and packed copy follow it
    assert torch.equal(search(z, codebook), 511 - exact)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_decoder_runs_tamings_decoder_maths(tiny_vqgan, dtype):
    from clipgen.generators.vqgan.taming import _decode

    decoder = make(tiny_vqgan).vqgan.decoder
    torch.manual_seed(0)
    h = torch.randn(1, decoder.conv_in.in_channels, 4, 4)
    want = type(decoder).forward(decoder, h)  # taming's own forward, fp32
    if dtype == torch.bfloat16:  # the run's layout there: the fused norm + swish kicks in
        decoder = copy.deepcopy(decoder).to(dtype).to(memory_format=torch.channels_last)
        h = h.to(dtype).contiguous(memory_format=torch.channels_last)
    have = _decode(decoder, h, checkpointed=False).float()
    assert have.shape == want.shape
    assert (have - want).abs().max() <= (1e-5 if dtype == torch.float32 else 0.05) * want.abs().max()
