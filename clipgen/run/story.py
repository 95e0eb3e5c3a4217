"""Story mode: prompt schedules over steps, switching or cross-fading the targets.

``"a forest:0-150|a forest on fire:150-300"``: each ``|`` part (or line of a story
file) is ``PROMPT:START-END``; PROMPT may carry its own ``:weight``. Steps are counted
from 1; a segment covers ``START < step <= END``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from clipgen.errors import PromptError
from clipgen.guidance.objective import Targets
from clipgen.guidance.prompts import Prompt, parse_prompt
from clipgen.run.loop import StepState

_RANGE = re.compile(r"^(.*):\s*(\d+)\s*-\s*(\d+)\s*$", re.S)


@dataclass(frozen=True)
class Segment:
    prompt: Prompt
    start: int
    end: int


def parse_story(spec: str) -> list[Segment]:
    parts = [p.strip() for p in re.split(r"(?<!\\)\||\n", spec) if p.strip() and not p.strip().startswith("#")]
    if not parts:
        raise PromptError("empty story; write 'a forest:0-150|a forest on fire:150-300'")
    segments = []
    for part in parts:
        match = _RANGE.match(part)
        if not match:
            raise PromptError(f"story part {part!r} has no step range; write it as 'text:START-END'")
        text, start, end = match.group(1), int(match.group(2)), int(match.group(3))
        if end <= start:
            raise PromptError(f"story part {part!r}: END must be after START")
        segments.append(Segment(parse_prompt(text), start, end))
    segments.sort(key=lambda s: s.start)
    return segments


def segment_weights(segments: list[Segment], step: int, blend: int) -> list[float]:
    """How much each segment counts at ``step``; cross-fades over ``blend`` steps at boundaries."""
    weights = []
    for s in segments:
        if s.start < step <= s.end:
            w = 1.0
            if blend and step > s.end - blend and any(o.start == s.end for o in segments):
                w = (s.end - step + 0.5) / blend
        elif blend and s.start - blend < step <= s.start and any(o.end == s.start for o in segments):
            w = 1 - (s.start - step + 0.5) / blend
        else:
            w = 0.0
        weights.append(max(0.0, min(1.0, w)))
    if not any(weights):  # outside every range: hold the nearest segment
        nearest = min(range(len(segments)), key=lambda i: min(abs(step - segments[i].start),
                                                              abs(step - segments[i].end)))
        weights[nearest] = 1.0
    return weights


def combine(per_segment: list[list[Targets]], weights: list[float]) -> list[Targets]:
    """Targets of the active segments, prompt weights scaled by each segment's weight."""
    out = []
    for model_index in range(len(per_segment[0])):
        active = [(t[model_index], w) for t, w in zip(per_segment, weights) if w > 0]
        out.append(Targets(
            embeds=torch.cat([t.embeds for t, _ in active]),
            weights=torch.cat([t.weights * w for t, w in active]),
            stops=torch.cat([t.stops for t, _ in active]),
        ))
    return out


class StorySchedule:
    """A loop callback that sets the targets for the next step; ``timeline`` records them."""

    def __init__(self, objective, segments: list[Segment], per_segment: list[list[Targets]], blend: int):
        self.objective, self.segments, self.per_segment, self.blend = objective, segments, per_segment, blend
        self.timeline: list[tuple[int, tuple[str, ...]]] = []

    def apply(self, step: int) -> None:
        weights = segment_weights(self.segments, step, self.blend)
        self.objective.set_targets(combine(self.per_segment, weights))
        active = tuple(s.prompt.text for s, w in zip(self.segments, weights) if w > 0)
        if not self.timeline or self.timeline[-1][1] != active:
            self.timeline.append((step, active))

    def __call__(self, state: StepState) -> None:
        if state.step < state.total:
            self.apply(state.step + 1)
