"""The optimisation objective: image -> cutouts -> CLIP embeddings -> weighted loss.

Targets (text and image prompts) are encoded once per run, here, not per step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Protocol

import torch
from torch import nn

from clipgen.errors import ModelError
from clipgen.guidance.cutouts import CutPhase, Cutouts, overview_share
from clipgen.guidance.losses import init_image_loss, latent_distance, linear_decay, prompt_loss, total_variation
from clipgen.guidance.perceptor import Perceptor
from clipgen.guidance.prompts import Prompt


@dataclass(frozen=True)
class Targets:
    """One CLIP model's targets: ``(P, D)`` embeddings, ``(P,)`` weights and stops."""

    embeds: torch.Tensor
    weights: torch.Tensor
    stops: torch.Tensor


@torch.no_grad()
def encode_targets(perceptor: Perceptor, prompts: list[Prompt],
                   image_prompts: list[tuple[object, float]]) -> list[Targets]:
    """Encode text prompts and ``(PIL image, weight)`` image prompts for every model."""
    out = []
    for model in perceptor.models:
        parts, weights, stops = [], [], []
        if prompts:
            parts.append(model.encode_text([p.text for p in prompts]))
            weights += [p.weight for p in prompts]
            stops += [p.stop for p in prompts]
        if image_prompts:
            parts.append(model.encode_pil([image for image, _ in image_prompts]))
            weights += [w for _, w in image_prompts]
            stops += [float("-inf")] * len(image_prompts)
        device = model.mean.device
        out.append(Targets(
            embeds=torch.cat(parts),
            weights=torch.tensor(weights, device=device),
            stops=torch.tensor(stops, device=device),
        ))
    return out


@dataclass(frozen=True)
class LatentAnchor:
    """The pull towards the start: ``weight × ‖z − z₀‖²`` over the optimised parameters, the
    weight falling linearly to 0 at step ``decay_steps`` (0: it stays)."""

    params: tuple[torch.Tensor, ...]
    starts: tuple[torch.Tensor, ...]
    weight: float
    decay_steps: int = 0

    @classmethod
    def at_start(cls, params, weight: float, decay_steps: int = 0) -> "LatentAnchor":
        params = tuple(params)
        return cls(params, tuple(p.detach().clone() for p in params), weight, decay_steps)

    def starting_at(self, starts) -> "LatentAnchor":
        """The same pull towards other starts (a resumed run's saved ones)."""
        starts = tuple(starts)
        if len(starts) != len(self.params) or any(s.shape != p.shape for p, s in zip(self.params, starts)):
            raise ModelError("the saved latent anchor does not match this generator's parameters; "
                             "was the state saved by another version or generator?")
        return replace(self, starts=tuple(s.to(p.device, p.dtype) for p, s in zip(self.params, starts)))

    def weight_at(self, step: int) -> float:
        return linear_decay(self.weight, step, self.decay_steps)

    def loss(self, step: int) -> torch.Tensor | None:
        weight = self.weight_at(step)
        return weight * latent_distance(list(self.params), list(self.starts)) if weight else None


class Objective(nn.Module):
    """``objective(image) -> scalar loss`` for a ``(1, 3, H, W)`` image in [0, 1].

    Its schedules (the latent anchor's decay, the cut schedule) are functions of the
    finished step, which the loop places with :meth:`after_step`."""

    def __init__(self, perceptor: Perceptor, cutouts: Cutouts, targets: list[Targets],
                 tv_weight: float = 0.0, init_weight: float = 0.0,
                 init_image: torch.Tensor | None = None,
                 regularizer: Callable[[], torch.Tensor] | None = None, cut_batch: int = 0,
                 anchor: LatentAnchor | None = None, cut_phases: tuple[CutPhase, ...] = (), steps: int = 0):
        super().__init__()
        self.anchor, self.cut_phases, self.steps = anchor, cut_phases, steps
        self.step = 0
        self.cut_batch = cut_batch
        self.perceptor = perceptor
        self.cutouts = cutouts
        self.targets = targets
        self.tv_weight = tv_weight
        self.init_weight = init_weight
        self.init_image = init_image
        self.regularizer = regularizer
        total = sum(perceptor.weights)
        self.model_weights = [w / total for w in perceptor.weights]

    def set_targets(self, targets: list[Targets]) -> None:
        self.targets = targets

    def after_step(self, step: int) -> None:
        self.step = step

    def overview(self) -> float:
        """This step's share of whole-image cutouts."""
        if not self.cut_phases or not self.steps:
            return 0.0
        return overview_share(self.cut_phases, self.step / self.steps)

    def clip_loss(self, views: dict[int, torch.Tensor]) -> torch.Tensor:
        """Ensemble-weighted prompt loss of cutouts ``{input size: (N, 3, s, s)}``."""
        loss = next(iter(views.values())).new_zeros(())
        for model, targets, weight in zip(self.perceptor.models, self.targets, self.model_weights):
            embeds = model.encode_image(views[model.input_size])
            loss = loss + weight * prompt_loss(embeds, targets.embeds, targets.weights, targets.stops)
        return loss

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.clip_loss(self.cutouts(image, overview=self.overview())) + self.image_terms(image)

    def image_terms(self, image: torch.Tensor) -> torch.Tensor:
        """The loss terms that look at the whole image (not through CLIP)."""
        loss = image.new_zeros(())
        if self.tv_weight:
            loss = loss + self.tv_weight * total_variation(image)
        if self.init_weight and self.init_image is not None:
            loss = loss + self.init_weight * init_image_loss(image, self.init_image)
        if self.regularizer is not None:
            loss = loss + self.regularizer()
        if self.anchor is not None:
            pull = self.anchor.loss(self.step)
            if pull is not None:
                loss = loss + pull
        return loss

    def chunks(self) -> list[int]:
        cutn = self.cutouts.cutn
        size = self.cut_batch or cutn
        return [min(size, cutn - start) for start in range(0, cutn, size)]

    def loss_and_backward(self, image: torch.Tensor, timer: StageMarks | None = None) -> torch.Tensor:
        """Backpropagate the loss of ``image`` into the generator; returns it (detached).

        Cutouts go through CLIP ``cut_batch`` at a time, each chunk's gradient is
        accumulated on a detached copy of the image and the graph freed, and one final
        backward carries the summed image gradient through the generator. Peak memory is
        then one chunk's CLIP activations whatever ``cutn`` is; the loss is exactly the
        same, because it is a mean over cutouts. ``timer`` is told where each stage ends
        (the bench's :class:`clipgen.bench.timer.StageTimer`); runs pass none.
        """
        timer = timer or _NO_TIMER
        timer.mark("generator")
        leaf = image.detach().requires_grad_(True)
        cutn = self.cutouts.cutn
        total = image.new_zeros((), dtype=torch.float32)
        overview = self.overview()
        for n in self.chunks():
            views = self.cutouts(leaf, n, overview)
            timer.mark("cutouts")
            loss = self.clip_loss(views) * (n / cutn)
            timer.mark("clip")
            loss.backward()
            total = total + loss.detach()
            timer.mark("backward")
        terms = self.image_terms(image)
        surrogate = (image * leaf.grad).sum() + terms
        surrogate.backward()
        timer.mark("backward")
        return total + terms.detach()


class StageMarks(Protocol):
    """Told each time a stage of a step ends: generator, cutouts, clip, backward."""

    def mark(self, stage: str) -> None: ...


class _NoTimer:
    def mark(self, stage: str) -> None:
        pass


_NO_TIMER = _NoTimer()
