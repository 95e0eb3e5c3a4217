"""The toy prior and the one sampling loop: determinism, greedy = argmax, guidance, the
KV cache against teacher forcing, and the file format."""

from __future__ import annotations

import pytest
import torch

from clipgen.errors import ModelError
from clipgen.priors.base import PriorContext
from clipgen.priors.sampling import Sampling, filtered_probabilities, guide, sample_grids
from clipgen.priors.toy.model import ToyPriorConfig, ToyPriorNet, from_blocks, to_blocks, tokenize
from clipgen.priors.toy.prior import ToyPrior
from clipgen.toy.train_prior import caption_words, save

CPU = PriorContext(torch.device("cpu"))


def tiny_net(seed: int = 0) -> ToyPriorNet:
    torch.manual_seed(seed)
    config = ToyPriorConfig(words=caption_words(), grid=(4, 6), codes=17, width=32, layers=2, heads=4)
    net = ToyPriorNet(config)
    # Random init gives near-uniform logits; larger weights make the distribution peaked,
    # so the greedy and guided paths differ visibly from plain sampling.
    with torch.no_grad():
        net.head.weight.mul_(40)
    return net.eval()


@pytest.fixture(scope="module")
def prior_file(tmp_path_factory):
    folder = save(tiny_net(), tmp_path_factory.mktemp("toy-prior"))
    return folder / "prior.safetensors"


@pytest.fixture(scope="module")
def prior(prior_file):
    return ToyPrior.from_file(prior_file, CPU)


def test_tokenize_pads_and_marks_unknown_words():
    config = ToyPriorConfig(words=("a", "red", "star"), text_len=4)
    assert tokenize(["A red STAR!", "red zebra", ""], config).tolist() == [[2, 3, 4, 0], [3, 1, 0, 0], [0, 0, 0, 0]]


def test_blocks_round_trip():
    grid = torch.arange(2 * 4 * 6).view(2, 4, 6)
    blocks = to_blocks(grid)
    assert blocks.shape == (2, 6, 4) and blocks[0, 0].tolist() == [0, 1, 6, 7] and blocks[0, 1].tolist() == [2, 3, 8, 9]
    assert torch.equal(from_blocks(blocks, (4, 6)), grid)


def test_cached_decoding_equals_teacher_forcing(prior):
    """The prior's token-by-token path (KV cache, block heads) gives the training logits."""
    words = tokenize(["a red star on a blue background", ""], prior.net.config)
    grid = torch.randint(17, (2, 4, 6))
    full = prior.net(words, grid).flatten(1, 2)  # (B, 24, codes) in writing order
    state = prior.begin("a red star on a blue background", 1, guided=True)
    written = to_blocks(grid[:1]).flatten(1)
    previous, stepped = None, []
    for position in range(24):
        cond, uncond = prior.next_logits(state, previous, position)
        stepped.append(cond)
        previous = written[:, position]
    # The guided state's first row is the text, fed the same tokens as row 0 of ``grid``.
    assert torch.allclose(torch.cat(stepped), full[0], atol=1e-4)


def test_the_file_round_trips_in_fp16(prior_file, prior):
    net = tiny_net()
    assert prior.grid == (4, 6) and prior.vocab_size == 17
    assert torch.allclose(prior.net.head.weight, net.head.weight.half().float())


def test_sampling_is_deterministic_for_a_seed(prior):
    a = sample_grids(prior, "a red star", 6, seed=3)
    b = sample_grids(prior, "a red star", 6, seed=3)
    c = sample_grids(prior, "a red star", 6, seed=4)
    assert a.shape == (6, 4, 6) and a.dtype == torch.int64
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_top_k_1_is_the_greedy_argmax_path(prior):
    sampled = sample_grids(prior, "a blue circle", 2, seed=0, sampling=Sampling(top_k=1))
    # Greedy decoding computed independently, by teacher forcing the growing prefix.
    words = tokenize(["a blue circle"] * 2, prior.net.config)
    written = torch.zeros(2, 24, dtype=torch.long)
    for position in range(24):
        grid = from_blocks(written.view(2, 6, 4), (4, 6))
        written[:, position] = prior.net(words, grid).flatten(1, 2)[:, position].argmax(-1)
    assert torch.equal(sampled, from_blocks(written.view(2, 6, 4), (4, 6)))


def test_low_temperature_approaches_greedy(prior):
    greedy = sample_grids(prior, "a blue circle", 4, seed=0, sampling=Sampling(top_k=1))
    cold = sample_grids(prior, "a blue circle", 4, seed=0, sampling=Sampling(temperature=1e-6))
    warm = sample_grids(prior, "a blue circle", 4, seed=0, sampling=Sampling(temperature=5.0))
    assert torch.equal(cold, greedy) and not torch.equal(warm, greedy)


def test_guided_rows_are_the_conditional_and_the_empty_text(prior):
    guided = prior.begin("a red star", 2, guided=True)
    cond, uncond = prior.next_logits(guided, None, 0)
    alone, none = prior.next_logits(prior.begin("a red star", 2, guided=False), None, 0)
    empty, _ = prior.next_logits(prior.begin("", 2, guided=False), None, 0)
    assert none is None
    assert torch.allclose(cond, alone, atol=1e-5) and torch.allclose(uncond, empty, atol=1e-5)
    assert not torch.allclose(cond, uncond, atol=1e-3)


def test_guidance_formula_and_filtering():
    cond, uncond = torch.tensor([[2.0, 0.0, 1.0]]), torch.tensor([[1.0, 0.0, 1.0]])
    assert torch.equal(guide(cond, uncond, 1.0), cond)
    assert torch.equal(guide(cond, uncond, 0.0), uncond)
    assert torch.equal(guide(cond, uncond, 3.0), torch.tensor([[4.0, 0.0, 1.0]]))
    probabilities = filtered_probabilities(torch.tensor([[3.0, 1.0, 2.0, 0.0]]), 1.0, 2)
    assert probabilities[0, 1] == 0 and probabilities[0, 3] == 0
    assert torch.allclose(probabilities[0, [0, 2]], torch.softmax(torch.tensor([3.0, 2.0]), 0))


def test_guidance_moves_samples_towards_the_text(prior):
    # With guidance 0 only the unconditioned rows count: the text no longer matters.
    red = sample_grids(prior, "a red star", 8, seed=1, sampling=Sampling(guidance=0.0))
    blue = sample_grids(prior, "a blue square", 8, seed=1, sampling=Sampling(guidance=0.0))
    assert torch.equal(red, blue)
    guided_red = sample_grids(prior, "a red star", 8, seed=1, sampling=Sampling(guidance=4.0))
    guided_blue = sample_grids(prior, "a blue square", 8, seed=1, sampling=Sampling(guidance=4.0))
    assert not torch.equal(guided_red, guided_blue)


def test_bad_sampling_values_are_settings_errors():
    from clipgen.errors import SettingsError

    for bad in ({"temperature": 0.0}, {"top_k": -1}, {"guidance": -1.0}):
        with pytest.raises(SettingsError):
            Sampling(**bad)


def test_a_damaged_prior_file_is_one_model_error(tmp_path, prior_file):
    truncated = tmp_path / "prior.safetensors"
    truncated.write_bytes(prior_file.read_bytes()[:200])
    with pytest.raises(ModelError, match="cannot be read"):
        ToyPrior.from_file(truncated, CPU)
