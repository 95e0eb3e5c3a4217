"""Models shipped inside the package (the offline toy world), pinned by SHA-256.

They need no download, so they are not in the weights registry's download cache; they
are checked against their digests every time they are opened, so a damaged or edited
installation fails loudly instead of guiding with the wrong weights.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from clipgen.errors import ModelError

MODELS_DIR = Path(__file__).resolve().parent / "toy" / "models"


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    kind: str  # "clip", "vqgan" or "judge"
    folder: Path
    digests: tuple[tuple[str, str], ...]  # (filename, sha256) of every file that is opened
    description: str


BUILTIN: dict[tuple[str, str], BuiltinModel] = {
    ("clip", "toy"): BuiltinModel(
        "toy", "clip", MODELS_DIR / "clip",
        (("open_clip_model.safetensors", "58710f6d7338926e02d3037d2953b88f9da958e558cf5714b77c725fdce63d3b"),),
        "toy-world CLIP trained by `clipgen toy train-clip` (64 px, offline)"),
}


def names(kind: str) -> tuple[str, ...]:
    return tuple(name for k, name in BUILTIN if k == kind)


def get(kind: str, name: str) -> BuiltinModel | None:
    return BUILTIN.get((kind, name))


def verified_folder(model: BuiltinModel) -> Path:
    """The model's folder, after checking every pinned file against its digest."""
    for filename, digest in model.digests:
        path = model.folder / filename
        if not path.is_file():
            raise ModelError(f"the built-in {model.kind} {model.name!r} is missing from this installation "
                             f"({path}); reinstall clipgen")
        seen = hashlib.sha256(path.read_bytes()).hexdigest()
        if seen != digest:
            raise ModelError(f"the built-in {model.kind} {model.name!r} fails its SHA-256 check ({filename}: "
                             f"{seen[:12]}… is not the pinned {digest[:12]}…); reinstall clipgen")
    return model.folder
