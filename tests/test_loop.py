"""The loop optimises through one objective protocol: ``loss_and_backward(image)``."""

import torch

from clipgen.generators.base import GeneratorContext
from clipgen.generators.pixels import PixelGenerator, PixelOptions
from clipgen.run.loop import PlainLoss, make_optimizer, optimize


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
