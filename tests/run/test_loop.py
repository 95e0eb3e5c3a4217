"""The optimisation loop: one objective protocol (``loss_and_backward``), NaN/inf recovery
by rewinding to the last verified step, deferred finiteness checks."""

import logging

import pytest
import torch

from clipgen.generators.base import GeneratorContext
from clipgen.generators.pixels import PixelGenerator, PixelOptions
from clipgen.run.loop import NumericalError, PlainLoss, make_optimizer, optimize


def _pixels() -> PixelGenerator:
    torch.manual_seed(0)
    return PixelGenerator((8, 8), PixelOptions(), GeneratorContext(torch.device("cpu")))


def test_the_loop_calls_loss_and_backward_even_on_a_callable_objective():
    class Both:
        called = []

        def __call__(self, image):
            raise AssertionError("the loop must not pick a path by what the objective happens to have")

        def loss_and_backward(self, image):
            self.called.append(1)
            loss = (image - 0.5).pow(2).mean()
            loss.backward()
            return loss.detach()

    generator = _pixels()
    assert optimize(generator, Both(), make_optimizer("adam", generator.param_groups(0.1)), steps=3) == 3
    assert len(Both.called) == 3


def test_plain_loss_adapts_a_loss_function():
    generator = _pixels()
    start = float((generator().detach() - 0.5).pow(2).mean())
    objective = PlainLoss(lambda image: (image - 0.5).pow(2).mean())
    losses = []
    optimize(generator, objective, make_optimizer("adam", generator.param_groups(0.1)), steps=20,
             callbacks=[lambda state: state.loss is not None and losses.append(float(state.loss))])
    assert len(losses) == 20 and losses[-1] < start


def test_nan_step_is_recovered_with_a_warning(caplog):
    torch.manual_seed(0)
    generator = PixelGenerator((8, 8), PixelOptions(), GeneratorContext(torch.device("cpu")))
    optimizer = make_optimizer("adam", generator.param_groups(0.1))
    calls = []

    def objective(image):
        calls.append(1)
        loss = (image - 0.5).pow(2).mean()
        return loss * float("nan") if len(calls) == 3 else loss  # the third forward is poisoned

    with caplog.at_level(logging.WARNING, logger="clipgen"):
        last = optimize(generator, PlainLoss(objective), optimizer, steps=5)
    assert last == 5 and len(calls) == 6  # one retry
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    assert sum("non-finite" in r.message for r in caplog.records) == 1
    assert torch.isfinite(generator.logits).all()


def test_deferred_checks_rewind_to_the_last_verified_step():
    """As on a GPU: finiteness is read every 4 steps; a NaN at step 6 rewinds to step 4."""
    torch.manual_seed(0)
    generator = PixelGenerator((8, 8), PixelOptions(), GeneratorContext(torch.device("cpu")))
    optimizer = make_optimizer("adam", generator.param_groups(0.1))
    calls, seen = [], []

    def objective(image):
        calls.append(1)
        loss = (image - 0.5).pow(2).mean()
        return loss * float("nan") if len(calls) == 6 else loss

    last = optimize(generator, PlainLoss(objective), optimizer, steps=10, check_every=4,
                    callbacks=[lambda state: seen.append(state.step)])
    assert last == 10
    # 5..7 were reported before the check at 8 failed; then 5..10 were redone from step 4
    assert seen == [0, 1, 2, 3, 4, 5, 6, 7, 5, 6, 7, 8, 9, 10]
    assert len(calls) == 14
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    assert torch.isfinite(generator.logits).all()


def test_persistent_nan_stops_with_a_clear_error():
    generator = PixelGenerator((8, 8), PixelOptions(), GeneratorContext(torch.device("cpu")))
    before = generator.logits.detach().clone()
    optimizer = make_optimizer("adam", generator.param_groups(0.1))
    with pytest.raises(NumericalError, match="smaller --lr"):
        optimize(generator, PlainLoss(lambda image: image.mean() * float("nan")), optimizer, steps=5)
    assert torch.equal(generator.logits, before)  # the last good state is what remains
