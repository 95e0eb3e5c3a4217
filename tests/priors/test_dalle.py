"""The DALL-E Mini/Mega prior on tiny min-dalle models saved as kuprel/min-dalle publishes them."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest
import torch

# Not importorskip: importing min_dalle unguarded would turn autograd off for the whole session.
if importlib.util.find_spec("min_dalle") is None:
    pytest.skip("needs the dalle extra", allow_module_level=True)
from fixtures.checkpoints import TINY_DALLE, dalle_unscaled_norms, tiny_dalle_modules, write_tiny_dalle  # noqa: E402

from clipgen import weights  # noqa: E402
from clipgen.errors import MissingDependencyError, MissingWeightsError, ModelError  # noqa: E402
from clipgen.priors.base import PriorContext  # noqa: E402
from clipgen.priors.dalle import library  # noqa: E402
from clipgen.priors.dalle.loader import MEGA, MINI, Architecture, DalleFiles, build_modules  # noqa: E402
from clipgen.priors.dalle.prior import START_TOKEN, DalleMega, DalleMini  # noqa: E402
from clipgen.priors.registry import load_prior  # noqa: E402
from clipgen.priors.sampling import Sampling, sample_grids  # noqa: E402

TINY = Architecture("tiny DALL-E", **TINY_DALLE)
CPU = PriorContext(device=torch.device("cpu"), offline=True)
TEXT = "a red cat"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> DalleFiles:
    return DalleFiles(*write_tiny_dalle(tmp_path_factory.mktemp("dalle")))


@pytest.fixture(scope="module")
def prior(files):
    return DalleMini.from_files(files, CPU, TINY)


def min_dalle_decode(text: str, n: int, guidance: float, seed: int = 0):
    """Greedy tokens and per-position guided logits, computed the way min-dalle 0.4.11's
    ``generate_raw_image_stream`` does (its code, line for line, with argmax for the draw),
    on min-dalle's own modules loaded with its ``strict=False`` from the same weights."""
    import numpy
    from fixtures.checkpoints import TINY_DALLE_MERGES, TINY_DALLE_VOCAB

    encoder, decoder = tiny_dalle_modules(seed)
    tokenizer = library.min_dalle().TextTokenizer(TINY_DALLE_VOCAB, TINY_DALLE_MERGES.split("\n")[1:-1])
    tokens = tokenizer.tokenize(text)[:64]
    text_tokens = numpy.ones((2, 64), dtype=numpy.int32)
    text_tokens[0, :2] = [tokens[0], tokens[-1]]
    text_tokens[1, :len(tokens)] = tokens
    text_tokens = torch.tensor(text_tokens, dtype=torch.long)
    with torch.no_grad():
        encoder_state = encoder.forward(text_tokens)
        expanded = [0] * n + [1] * n
        text_tokens, encoder_state = text_tokens[expanded], encoder_state[expanded]
        attention_mask = text_tokens.not_equal(1)[:, None, None, :]
        attention_state = torch.zeros(TINY.layers, n * 4, 256, TINY.width)
        image_tokens = torch.full((n, 257), 2**14 - 1, dtype=torch.long)
        token_indices = torch.arange(256)
        mixed_logits = []
        for i in range(256):
            logits, attention_state = decoder.forward(attention_mask, encoder_state, attention_state,
                                                      image_tokens[:, [i]], token_indices[[i]])
            logits = logits[:, -1, :2**14]
            mixed = logits[:n] * (1 - guidance) + logits[n:] * guidance
            mixed_logits.append(mixed)
            image_tokens[:, i + 1] = mixed.argmax(dim=-1)
    return image_tokens[:, 1:].reshape(n, 16, 16), torch.stack(mixed_logits, 1)


# --------------------------------------------------------------------------- loading


def test_published_layout_lacks_exactly_the_unscaled_norms(files, prior):
    """The files hold every key but the unscaled norms' weights; those load as ones, the rest
    verbatim (in the compute dtype), and the load is strict."""
    saved = torch.load(files.decoder, weights_only=True)
    loaded = prior.decoder.state_dict()
    assert set(loaded) - set(saved) == set(dalle_unscaled_norms(prior.decoder))
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert all(torch.equal(loaded[k], torch.ones_like(loaded[k])) for k in set(loaded) - set(saved))
    assert not any(p.requires_grad for p in prior.parameters())


def test_fp16_files_load_in_the_compute_dtype(tmp_path):
    paths = DalleFiles(*write_tiny_dalle(tmp_path, dtype=torch.float16))
    prior = DalleMini.from_files(paths, CPU, TINY)
    assert {p.dtype for p in prior.parameters()} == {torch.float32}


def test_loading_leaves_grad_mode_threads_and_cudnn_alone(files):
    threads = torch.get_num_threads()
    flags = torch.backends.cudnn.enabled, torch.backends.cudnn.allow_tf32
    assert torch.is_grad_enabled()
    DalleMini.from_files(files, CPU, TINY)
    library.min_dalle()
    assert torch.is_grad_enabled() and torch.get_num_threads() == threads
    assert (torch.backends.cudnn.enabled, torch.backends.cudnn.allow_tf32) == flags


def test_first_import_is_guarded(tmp_path):
    """A fresh process: importing min-dalle through clipgen keeps grad mode and threads."""
    import subprocess
    import sys

    code = ("import torch; torch.set_num_threads(1); torch.backends.cudnn.allow_tf32 = False\n"
            "from clipgen.priors.dalle.library import min_dalle; min_dalle()\n"
            "print(torch.is_grad_enabled(), torch.get_num_threads(), torch.backends.cudnn.allow_tf32)")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["True", "1", "False"]


def test_missing_package_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_min_dalle(name, *args, **kwargs):
        if name.startswith("min_dalle"):
            raise ModuleNotFoundError(f"No module named {name!r}", name="min_dalle")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_min_dalle)
    with pytest.raises(MissingDependencyError, match=r"'min-dalle' .* pip install 'clipgen\[dalle\]'"):
        library.min_dalle()


def _edited(tmp_path, edit) -> DalleFiles:
    return DalleFiles(*write_tiny_dalle(tmp_path, edit=edit))


@pytest.mark.parametrize("edit, message", [
    (lambda enc, dec: dec.__setitem__("lm_head.weight", torch.zeros(100, 32)),
     r"'lm_head.weight' has shape \(100, 32\), the tiny DALL-E decoder needs \(16385, 32\)"),
    (lambda enc, dec: dec.pop("layers.1.glu.fc2.weight"),
     r"lacks 'layers.1.glu.fc2.weight' of the tiny DALL-E decoder"),
    (lambda enc, dec: enc.__setitem__("shared.weight", torch.zeros(3)), r"holds 'shared.weight', which the tiny"),
])
def test_a_file_that_is_not_this_model_is_one_line(tmp_path, edit, message):
    with pytest.raises(ModelError, match=message) as caught:
        DalleMini.from_files(_edited(tmp_path, edit), CPU, TINY, fix="fetch it again")
    assert "\n" not in str(caught.value) and str(caught.value).endswith("fetch it again")


def test_the_mini_architecture_refuses_a_tiny_file(files):
    with pytest.raises(ModelError, match=r"'embed_tokens.weight' has shape \(64, 32\), the DALL-E Mini encoder"):
        DalleMini.from_files(files, CPU, MINI)


def test_truncated_file_is_one_line(tmp_path):
    paths = DalleFiles(*write_tiny_dalle(tmp_path))
    data = paths.decoder.read_bytes()
    paths.decoder.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError) as caught:
        DalleMini.from_files(paths, CPU, TINY)
    assert str(paths.decoder) in str(caught.value) and "\n" not in str(caught.value)


def test_vocabulary_of_another_model_is_refused(tmp_path):
    paths = DalleFiles(*write_tiny_dalle(tmp_path))
    paths.vocab.write_text(json.dumps({"<s>": 0, "</s>": 2, "<unk>": 3, "Ġzebra": 50000}))
    with pytest.raises(ModelError, match="token ids outside the tiny DALL-E encoder's 0..63"):
        DalleMini.from_files(paths, CPU, TINY)


def test_runs_never_download(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPGEN_HOME", str(tmp_path))
    for name in ("dalle-mini", "dalle-mega"):
        with pytest.raises(MissingWeightsError, match=f"clipgen models download {name}"):
            load_prior(name, PriorContext(torch.device("cpu"), offline=False))


def test_registered_files_are_what_the_classes_open():
    assert [f.filename for f in weights.get_entry("dalle-mini").files] == list(DalleMini.files)
    assert [f.filename for f in weights.get_entry("dalle-mega").files] == list(DalleMega.files)
    assert DalleMini.architecture == MINI and DalleMega.architecture == MEGA


def test_parameter_counts_of_the_real_architectures():
    counts = [sum(p.numel() for m in build_modules(arch, torch.device("cpu")) for p in m.parameters())
              for arch in (MINI, MEGA)]
    assert counts == [437_962_720, 2_587_967_488]


# --------------------------------------------------------------------------- decoding


def test_logits_and_greedy_path_match_min_dalle(prior):
    """Every position's guided logits, and the argmax path they give, equal min-dalle's own
    decoder loop (its attention_state cache, its unconditioned rows, its mix)."""
    expected_tokens, expected_logits = min_dalle_decode(TEXT, n=2, guidance=16.0)
    state = prior.begin(TEXT, 2, guided=True)
    previous = None
    for position in range(256):
        cond, uncond = prior.next_logits(state, previous, position)
        mixed = uncond * (1 - 16.0) + cond * 16.0
        torch.testing.assert_close(mixed, expected_logits[:, position], rtol=1e-4, atol=1e-3)
        previous = expected_tokens.flatten(1)[:, position]
    grids = sample_grids(prior, TEXT, 2, seed=0, sampling=Sampling(top_k=1, guidance=16.0))
    assert torch.equal(grids, expected_tokens)


def test_unguided_rows_are_the_guided_text_rows(prior):
    guided, plain = prior.begin(TEXT, 1, guided=True), prior.begin(TEXT, 1, guided=False)
    token = None
    for position in range(3):
        cond, _ = prior.next_logits(guided, token, position)
        alone, uncond = prior.next_logits(plain, token, position)
        assert uncond is None
        torch.testing.assert_close(alone, cond, rtol=1e-5, atol=1e-5)
        token = cond.argmax(-1)


def test_sampling_is_deterministic_per_seed(prior):
    sampling = Sampling(temperature=1.0, top_k=64, guidance=4.0)
    first = sample_grids(prior, TEXT, 2, seed=7, sampling=sampling)
    assert first.shape == (2, 16, 16) and first.dtype == torch.int64
    assert first.min() >= 0 and first.max() < 2**14
    assert torch.equal(first, sample_grids(prior, TEXT, 2, seed=7, sampling=sampling))
    assert not torch.equal(first, sample_grids(prior, TEXT, 2, seed=8, sampling=sampling))


def test_position_zero_reads_min_dalles_start_token(prior):
    assert START_TOKEN == 2**14 - 1  # min-dalle 0.4.11's fill value, not the trained BOS row
    implicit, _ = prior.next_logits(prior.begin(TEXT, 1, guided=False), None, 0)
    explicit, _ = prior.next_logits(prior.begin(TEXT, 1, guided=False), torch.tensor([START_TOKEN]), 0)
    other, _ = prior.next_logits(prior.begin(TEXT, 1, guided=False), torch.tensor([2**14]), 0)
    assert torch.equal(implicit, explicit) and not torch.allclose(implicit, other)


def test_long_texts_are_cut_as_min_dalle_cuts_them(prior):
    from clipgen.priors.dalle.loader import text_rows

    rows = text_rows(prior.tokenizer, " ".join(["cat"] * 80))
    assert rows.shape == (2, 64) and rows[1].ne(1).all()
    assert rows[0, :2].tolist() == [0, 33] and rows[0, 2:].eq(1).all()  # min-dalle's quirk: no </s>
    short = text_rows(prior.tokenizer, "A red CAT 🐱")
    assert short[1, :4].tolist() == [0, 34, 37, 33] and short[0, :2].tolist() == [0, 2]
