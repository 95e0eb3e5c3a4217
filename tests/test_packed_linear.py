"""Frozen linear layers through oneDNN-packed weights: the same products as ``F.linear``,
and ``F.linear`` itself wherever packing does not apply."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import clipgen.packed_linear as packed_linear
from clipgen.packed_linear import FrozenLinear, PackedLinear, packing_available, prepare_packed

needs_packing = pytest.mark.skipif(not packing_available(), reason="this torch has no oneDNN packed linear")


@pytest.fixture(autouse=True)
def pack_small_layers(monkeypatch):
    """These tests' layers are small; packing is what they are about."""
    monkeypatch.setattr(packed_linear, "MIN_PACKED_ELEMENTS", 0)


def _frozen(in_features=48, out_features=80, dtype=torch.float32, seed=0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(in_features, out_features).requires_grad_(False).to(dtype)


def _product_and_input_grad(layer, x: torch.Tensor):
    x = x.clone().requires_grad_(True)
    out = layer(x)
    (out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).sum().backward()
    return out.detach(), x.grad


@needs_packing
@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])
def test_packed_products_and_input_gradients_match_f_linear(dtype, tolerance):
    linear = _frozen(dtype=dtype)
    x = torch.randn(2, 7, 48).to(dtype)  # 3-D, as a transformer's tokens
    wrapped = FrozenLinear(linear)
    want = _product_and_input_grad(linear, x)
    have = _product_and_input_grad(wrapped, x)
    assert wrapped.product._packed is not None  # it did go through the packed kernel
    for a, b in zip(have, want):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert (a.float() - b.float()).abs().max() <= tolerance * b.float().abs().max()


@needs_packing
def test_a_changed_weight_is_packed_again():
    linear = _frozen()
    wrapped = FrozenLinear(linear)
    x = torch.randn(5, 48)
    wrapped(x)
    with torch.no_grad():
        linear.weight.mul_(2)
    assert torch.allclose(wrapped(x), F.linear(x, linear.weight, linear.bias), atol=1e-5)
    wrapped.to(torch.bfloat16)
    assert torch.allclose(wrapped(x.bfloat16()).float(), F.linear(x.bfloat16(), linear.weight, linear.bias).float(),
                          atol=1e-2)


@pytest.mark.parametrize("case", ["trains", "fp16", "other dtype input", "no oneDNN"])
def test_anything_packing_does_not_cover_goes_through_f_linear(case, monkeypatch):
    linear = _frozen(dtype=torch.float16 if case == "fp16" else torch.float32)
    if case == "trains":
        linear.requires_grad_(True)
    if case == "no oneDNN":
        monkeypatch.setattr(packed_linear, "packing_available", lambda: False)
    x = torch.randn(4, 48).to(torch.float64 if case == "other dtype input" else linear.weight.dtype)
    product = PackedLinear()
    if case == "other dtype input":
        with pytest.raises(RuntimeError):  # what F.linear says about mixed dtypes
            product(x, linear.weight, linear.bias)
    else:
        assert torch.equal(product(x, linear.weight, linear.bias), F.linear(x, linear.weight, linear.bias))
    if case != "other dtype input":
        assert product._packed is None


@needs_packing
def test_prepare_packs_every_wrapped_layer_before_the_first_product():
    model = nn.Sequential(FrozenLinear(_frozen()), nn.GELU(), FrozenLinear(_frozen(80, 48, seed=1)))
    prepare_packed(model)
    assert all(m.product._packed is not None for m in model if isinstance(m, FrozenLinear))
    assert list(model.state_dict()) == ["0.linear.weight", "0.linear.bias", "2.linear.weight", "2.linear.bias"]
    assert model[0].weight is model[0].linear.weight and model[0].bias is model[0].linear.bias


@needs_packing
def test_a_product_without_input_gradient_packs_one_copy_and_refuses_a_gradient():
    linear = _frozen()
    product = PackedLinear(input_grad=False)
    x = torch.randn(6, 48)
    assert torch.allclose(product(x, linear.weight, linear.bias), F.linear(x, linear.weight, linear.bias), atol=1e-5)
    assert product._packed[1] is None
    with pytest.raises(RuntimeError, match="input_grad=False"):
        product(x.requires_grad_(), linear.weight, linear.bias)


@needs_packing
def test_a_packed_layer_copies_and_pickles_and_packs_again_when_used():
    import copy
    import pickle

    layer = FrozenLinear(_frozen())
    prepare_packed(nn.Sequential(layer))
    x = torch.randn(3, 48)
    for twin in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert twin.product._packed is None
        assert torch.allclose(twin(x), layer(x), atol=1e-5) and twin.product._packed is not None
    assert layer.product._packed is not None  # the original keeps its own


def test_a_small_weight_stays_with_f_linear(monkeypatch):
    monkeypatch.setattr(packed_linear, "MIN_PACKED_ELEMENTS", 48 * 80 + 1)
    linear, x = _frozen(), torch.randn(4, 48)
    product = PackedLinear()
    assert torch.equal(product(x, linear.weight, linear.bias), F.linear(x, linear.weight, linear.bias))
    assert product._packed is None
