"""The loss terms: small pure functions."""

import math

import torch
import torch.nn.functional as F

from clipgen.guidance.losses import prompt_loss, spherical_distance, total_variation


def _unit_at(angle: float) -> torch.Tensor:
    return torch.tensor([math.cos(angle), math.sin(angle), 0.0])


def test_identical_embeddings_have_zero_distance():
    x = F.normalize(torch.randn(5, 16), dim=-1)
    assert torch.allclose(spherical_distance(x, x), torch.zeros(5), atol=1e-6)


def test_distance_is_monotone_in_angle():
    origin = _unit_at(0.0)
    angles = torch.linspace(0, math.pi, 20)
    dists = torch.stack([spherical_distance(origin, _unit_at(float(a))) for a in angles])
    assert torch.all(dists[1:] > dists[:-1])
    # 2 * (angle/2)^2: the great-circle distance squared, halved
    assert torch.allclose(dists, 2 * (angles / 2) ** 2, atol=1e-5)


def test_negative_weight_pushes_away():
    target = _unit_at(0.0)[None]
    image = _unit_at(0.5)[None].requires_grad_(True)
    prompt_loss(image, target, torch.tensor([-1.0]), torch.tensor([-math.inf])).backward()
    # moving toward larger angle (the +y direction) must lower the loss
    assert image.grad[0, 1] < 0


def test_stop_cuts_gradient_once_close_enough():
    target = _unit_at(0.0)[None]
    image = _unit_at(0.1)[None].requires_grad_(True)
    loss = prompt_loss(image, target, torch.tensor([1.0]), torch.tensor([0.5]))
    loss.backward()
    assert loss > 0 and torch.count_nonzero(image.grad) == 0


def test_prompt_weights_scale_the_loss():
    target = F.normalize(torch.randn(1, 8), dim=-1)
    image = F.normalize(torch.randn(4, 8), dim=-1)
    inf = torch.tensor([-math.inf])
    one = prompt_loss(image, target, torch.tensor([1.0]), inf)
    three = prompt_loss(image, target, torch.tensor([3.0]), inf)
    assert torch.allclose(three, 3 * one)


def test_total_variation_zero_for_flat_image():
    assert total_variation(torch.full((1, 3, 8, 8), 0.3)) == 0
    assert total_variation(torch.rand(1, 3, 8, 8)) > 0


def test_latent_distance_is_the_squared_norm_over_every_tensor():
    from clipgen.guidance.losses import latent_distance

    params = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    starts = [torch.tensor([0.0, 0.0]), torch.tensor([[1.0]])]
    assert float(latent_distance(params, starts)) == 1 + 4 + 4


def test_linear_decay_falls_to_zero_and_stays_there():
    from clipgen.guidance.losses import linear_decay

    assert [linear_decay(2.0, s, 4) for s in (0, 1, 2, 4, 9)] == [2.0, 1.5, 1.0, 0.0, 0.0]
    assert linear_decay(2.0, 100, 0) == 2.0
