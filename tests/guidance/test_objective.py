"""The objective: chunked cutouts give exactly the loss and gradient of one batch, and it marks
its stages for a timer."""

from __future__ import annotations

import pytest
import torch

from clipgen.bench.timer import StageTimer
from clipgen.guidance.cutouts import Cutouts
from clipgen.guidance.objective import Objective, encode_targets
from clipgen.guidance.perceptor import load_perceptor
from clipgen.guidance.prompts import parse_prompts

CPU = torch.device("cpu")


def _objective(tiny_clip, cutn: int, cut_batch: int, dtype=torch.float32) -> Objective:
    perceptor = load_perceptor((tiny_clip,), CPU, offline=True, dtype=dtype)
    targets = encode_targets(perceptor, parse_prompts("a red circle"), [])
    # Cutouts as large as the image: every crop is the whole image, so chunking cannot
    # change which views CLIP sees and the results must agree exactly.
    cutouts = Cutouts(cutn, 1.0, perceptor.input_sizes)
    return Objective(perceptor, cutouts, targets, tv_weight=0.3, cut_batch=cut_batch)


def test_cutout_chunks_give_the_same_loss_and_gradient(tiny_clip):
    torch.manual_seed(0)
    pixels = torch.rand(1, 3, 32, 32)
    results = []
    for cut_batch in (0, 2):
        param = pixels.clone().requires_grad_(True)
        objective = _objective(tiny_clip, cutn=5, cut_batch=cut_batch)
        assert objective.chunks() == ([5] if cut_batch == 0 else [2, 2, 1])
        loss = objective.loss_and_backward(param * 1.0)
        results.append((loss, param.grad.clone()))
        # the plain forward agrees with the chunked one
        assert torch.allclose(loss, objective(pixels), atol=1e-6)
    (loss_all, grad_all), (loss_chunked, grad_chunked) = results
    assert torch.allclose(loss_all, loss_chunked, atol=1e-6)
    assert grad_all.abs().sum() > 0
    assert torch.allclose(grad_all, grad_chunked, atol=1e-7)


def test_stage_timer_charges_each_stage(tiny_clip):
    objective = _objective(tiny_clip, cutn=4, cut_batch=2)
    timer = StageTimer(CPU)
    param = torch.rand(1, 3, 32, 32, requires_grad=True)
    objective.loss_and_backward(param * 1.0, timer)
    assert set(timer.totals) == {"generator", "cutouts", "clip", "backward"}
    assert all(v >= 0 for v in timer.totals.values()) and timer.totals["clip"] > 0


def test_latent_anchor_adds_exactly_weight_times_squared_distance_and_decays(tiny_clip):
    from clipgen.guidance.objective import LatentAnchor

    z = torch.nn.Parameter(torch.zeros(3))
    anchor = LatentAnchor.at_start([z], weight=0.5, decay_steps=4)
    with torch.no_grad():
        z.copy_(torch.tensor([1.0, 2.0, 2.0]))  # ‖z − z₀‖² = 9
    plain, anchored = _objective(tiny_clip, 2, 0), _objective(tiny_clip, 2, 0)
    anchored.anchor = anchor
    image = torch.rand(1, 3, 32, 32)
    for step, weight in ((0, 0.5), (2, 0.25), (4, 0.0)):
        plain.after_step(step), anchored.after_step(step)
        difference = anchored.image_terms(image) - plain.image_terms(image)
        assert float(difference.detach()) == pytest.approx(weight * 9)
    anchored.after_step(1)
    anchored.image_terms(image).backward()
    assert torch.allclose(z.grad, 2 * 0.375 * torch.tensor([1.0, 2.0, 2.0]))


def test_a_latent_anchor_moved_to_saved_starts_pulls_towards_them():
    from clipgen.errors import ModelError
    from clipgen.guidance.objective import LatentAnchor

    z = torch.nn.Parameter(torch.zeros(3))
    anchor = LatentAnchor.at_start([z], weight=1.0).starting_at([torch.tensor([1.0, 0.0, 2.0])])
    assert float(anchor.loss(0)) == pytest.approx(5.0)  # ‖0 − (1, 0, 2)‖²
    with pytest.raises(ModelError, match="does not match"):
        anchor.starting_at([torch.zeros(4)])


def test_the_cut_schedule_sets_each_steps_overview_share(tiny_clip):
    from clipgen.guidance.cutouts import parse_cut_schedule

    objective = _objective(tiny_clip, 2, 0)
    objective.cut_phases, objective.steps = parse_cut_schedule("overview:0-40%,mixed:40-70%"), 10
    shares = []
    for step in range(10):
        objective.after_step(step)
        shares.append(objective.overview())
    assert shares == [1.0] * 4 + [0.5] * 3 + [0.0] * 3
