"""The run writer: a loop callback that saves frames, and the final files at the end.

It is called with the loop's ``StepState`` (``step``, ``total``, ``generator``, ``image()``);
it reads only those, so it needs nothing from the run layer above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from clipgen.atomic import write_text
from clipgen.generators.base import VectorGraphic
from clipgen.outputs.images import save_png, tensor_to_pil
from clipgen.outputs.video import write_gif, write_mp4


@dataclass
class RunWriter:
    folder: Path
    slug: str
    metadata: dict[str, str]
    save_every: int
    svg_frames: bool = False
    frames: list[Path] = field(default_factory=list)

    @property
    def frames_dir(self) -> Path:
        return self.folder / "frames"

    def wants_frame(self, step: int, total: int) -> bool:
        return self.save_every > 0 and (step % self.save_every == 0 or step == total)

    def adopt_existing_frames(self, up_to: int) -> None:
        """On resume: keep frames already written up to the checkpoint step."""
        if self.frames_dir.is_dir():
            self.frames = sorted(p for p in self.frames_dir.glob("*.png")
                                 if p.stem.isdigit() and int(p.stem) <= up_to)

    def __call__(self, state) -> None:
        if not self.wants_frame(state.step, state.total):
            return
        self.frames_dir.mkdir(exist_ok=True)
        path = self.frames_dir / f"{state.step:06d}.png"
        save_png(path, tensor_to_pil(state.image()), self.metadata)
        self.frames.append(path)
        if self.svg_frames and isinstance(state.generator, VectorGraphic):
            write_text(path.with_suffix(".svg"), state.svg())

    def write_final(self, state) -> dict[str, Path]:
        """The final PNG (and SVG for vector generators); returns their paths."""
        paths = {"image": save_png(self.folder / f"{self.slug}.png", tensor_to_pil(state.image()), self.metadata)}
        if isinstance(state.generator, VectorGraphic):
            svg = self.folder / f"{self.slug}.svg"
            write_text(svg, state.svg())
            paths["svg"] = svg
        return paths

    def write_animations(self, video: bool, gif: bool, fps: int) -> dict[str, Path]:
        paths: dict[str, Path] = {}
        if not self.frames:
            return paths
        if video:
            paths["video"] = write_mp4(self.frames, self.folder / f"{self.slug}.mp4", fps)
        if gif:
            paths["gif"] = write_gif(self.frames, self.folder / f"{self.slug}.gif", fps)
        return paths
