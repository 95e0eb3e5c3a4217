"""min-dalle's detoker.pt as the decoder-only VQGAN ``dalle-vqgan``.

min-dalle's ``VQGanDetokenizer`` has its dimensions as constants, so the file here is the
real architecture (47M parameters) with random weights; decoding a 4x4 token grid (64 px)
keeps each comparison to about a second on one core.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("taming.modules.vqvae.quantize", reason="needs the vqgan extra")
# Not importorskip: importing min_dalle unguarded would turn autograd off for the whole session.
if importlib.util.find_spec("min_dalle") is None:
    pytest.skip("needs the dalle extra", allow_module_level=True)
from fixtures.checkpoints import random_detokenizer, write_random_detoker  # noqa: E402

from clipgen.errors import ModelError  # noqa: E402
from clipgen.generators.base import GeneratorContext  # noqa: E402
from clipgen.generators.vqgan import generator as vqgan_generator  # noqa: E402
from clipgen.generators.vqgan.detoker import (  # noqa: E402
    DETOKER_CONFIG,
    DETOKER_FILE,
    KEY_PREFIXES,
    DecoderOnlyVQGAN,
    load_detoker,
    taming_key,
)
from clipgen.generators.vqgan.generator import VQGANGenerator, VQGANOptions  # noqa: E402

CPU = GeneratorContext(device=torch.device("cpu"), offline=True)


@pytest.fixture(scope="module")
def detoker(tmp_path_factory):
    return write_random_detoker(tmp_path_factory.mktemp("detoker"))


@pytest.fixture(scope="module")
def converted(detoker):
    return load_detoker(detoker, torch.device("cpu"))


def min_dalle_decode(model, tokens: torch.Tensor) -> torch.Tensor:
    """``VQGanDetokenizer.forward`` for a square grid of any size: its own steps
    (embedding, post_quant_conv, decoder, clip to [0, 1]) without its 16x16 reshape."""
    with torch.no_grad():
        z = model.embedding(tokens).permute(0, 3, 1, 2).contiguous()
        return model.decoder(model.post_quant_conv(z)).clip(0.0, 1.0)


def test_every_key_maps_and_every_taming_parameter_is_covered(converted):
    source = random_detokenizer().state_dict()
    mapped = {taming_key(k) for k in source}
    assert None not in mapped and mapped == set(converted.state_dict())
    shapes = converted.state_dict()
    assert all(shapes[taming_key(k)].shape == v.shape for k, v in source.items())
    assert set(KEY_PREFIXES) == {"embedding.", "post_quant_conv.", "decoder."}


def test_converted_decoder_draws_what_min_dalle_draws(converted):
    """Same weights, same tokens: min-dalle's own decode and the converted taming decoder
    agree (taming's GroupNorm eps is 1e-6 where min-dalle's is 1e-5: a few 1e-4 at most)."""
    reference = random_detokenizer()
    tokens = torch.randint(16384, (2, 4, 4), generator=torch.Generator().manual_seed(0))
    expected = min_dalle_decode(reference, tokens)
    with torch.no_grad():
        image = converted.decode(F.embedding(tokens, converted.codebook).movedim(-1, 1))
    # decode() speaks taming's [-1, 1]; the generator maps it to [0, 1] and clamps, which
    # must give min-dalle's clipped [0, 1] drawing.
    image = image.add(1).div(2).clamp(0, 1)
    assert image.shape == expected.shape == (2, 3, 64, 64)
    assert 0.1 < (expected > 0).float().mean() and 0.1 < (expected < 1).float().mean()  # not saturated
    torch.testing.assert_close(image, expected, rtol=0, atol=1e-3)


def test_as_the_vqgan_generator(detoker, monkeypatch):
    monkeypatch.setattr(vqgan_generator, "registry_files",
                        lambda model, kind, offline: ({DETOKER_FILE: detoker}, "fix"))
    gen = VQGANGenerator((64, 64), VQGANOptions(model="dalle-vqgan"), CPU)
    assert isinstance(gen.vqgan, DecoderOnlyVQGAN) and gen.z.shape == (1, 256, 4, 4)
    image = gen()
    assert image.shape == (1, 3, 64, 64) and torch.isfinite(image).all()
    expected = min_dalle_decode(random_detokenizer(), gen.tokens()[None])
    torch.testing.assert_close(image.detach(), expected, rtol=0, atol=1e-3)
    image.mean().backward()
    assert gen.z.grad is not None and gen.z.grad.abs().sum() > 0
    tokens = torch.randint(16384, (4, 4))
    gen.init_from_tokens(tokens)
    assert torch.equal(gen.tokens(), tokens)
    with pytest.raises(ModelError, match="decoder only .* cannot start from an image"):
        gen.init_from_image(torch.rand(1, 3, 64, 64))


def test_bf16_compute_keeps_the_codebook_fp32(detoker):
    model = load_detoker(detoker, torch.device("cpu"))
    model.set_compute(torch.bfloat16, channels_last=True)
    assert model.decoder.conv_in.weight.dtype == torch.bfloat16 and model.codebook.dtype == torch.float32
    assert not hasattr(model, "encoder") and not hasattr(model, "quant_conv")


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("decoder.conv_out.bias"), r"lacks the weights of 'decoder.conv_out.bias'"),
    (lambda s: s.__setitem__("embedding.weight", torch.zeros(1024, 256)),
     r"'embedding.weight' has shape \(1024, 256\), the f16-16384 decoder needs \(16384, 256\)"),
    (lambda s: s.__setitem__("encoder.conv_in.weight", torch.zeros(1)), r"holds 'encoder.conv_in.weight'"),
])
def test_a_file_that_is_not_a_detoker_is_one_line(tmp_path, edit, message):
    path = write_random_detoker(tmp_path, edit=edit)
    with pytest.raises(ModelError, match=message) as caught:
        load_detoker(path, torch.device("cpu"), fix="fetch it again")
    assert "\n" not in str(caught.value) and str(caught.value).endswith("fetch it again")


def test_truncated_detoker_is_one_line(tmp_path, detoker):
    path = tmp_path / "detoker.pt"
    path.write_bytes(detoker.read_bytes()[:1_000_000])
    with pytest.raises(ModelError) as caught:
        load_detoker(path, torch.device("cpu"))
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_config_is_the_imagenet_f16_16384_one():
    from clipgen.bench.random_models import IMAGENET_16384

    params = IMAGENET_16384["model"]["params"]
    assert DETOKER_CONFIG.ddconfig == params["ddconfig"] and DETOKER_CONFIG.n_embed == params["n_embed"]
    assert DETOKER_CONFIG.downsampling == 16


def test_runs_never_download_the_detoker(tmp_path, monkeypatch):
    from clipgen.errors import MissingWeightsError

    monkeypatch.setenv("CLIPGEN_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="clipgen models download dalle-vqgan"):
        VQGANGenerator((64, 64), VQGANOptions(model="dalle-vqgan"), GeneratorContext(torch.device("cpu")))
