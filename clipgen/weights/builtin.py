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

MODELS_DIR = Path(__file__).resolve().parent.parent / "toy" / "models"


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    kind: str  # "clip", "vqgan", "prior" or "judge"
    folder: Path
    digests: tuple[tuple[str, str], ...]  # (filename, sha256) of every file that is opened
    description: str


BUILTIN: dict[tuple[str, str], BuiltinModel] = {
    ("clip", "toy"): BuiltinModel(
        "toy", "clip", MODELS_DIR / "clip",
        (("open_clip_model.safetensors", "eccc1185706eabbdeb78814c31adced4d3b75528df582fd016a778fe5bfd621a"),),
        "toy-world CLIP trained by `clipgen toy train-clip` (ModifiedResNet image tower, 64 px, offline)"),
    # The previous toy CLIP: it reads shape and position worse, but its colour reading is
    # harder for guidance to fool, so the toy presets guide with it (`toy` with both).
    ("clip", "toy-vit"): BuiltinModel(
        "toy-vit", "clip", MODELS_DIR / "clip-vit",
        (("open_clip_model.safetensors", "034ece825168f89908967b8f4230db8fa8242075de27c01448e3af99913c9daf"),),
        "toy-world CLIP with a ViT image tower (`clipgen toy train-clip --tower vit`); guides the toy presets"),
    ("vqgan", "toy"): BuiltinModel(
        "toy", "vqgan", MODELS_DIR / "vqgan",
        (("model.yaml", "0997225476b9b2306c321e4d2122a8db2a348586a283d1155f8f7d8ba15e8812"), ("last.ckpt", "5c168a631bf247c735c08b9ad2423a86387ffea10339e7dee7291cff5c56076c")),
        "toy-world VQGAN trained by `clipgen toy train-vqgan` (taming format, 4x downsampling, 512 codes)"),
    ("prior", "toy"): BuiltinModel(
        "toy", "prior", MODELS_DIR / "prior", (("prior.safetensors", "865b1e8d49f753cc310230cc076c3f7bf1e8f65dd8db244cfa769ba8fa277bce"),),
        "toy-world prior trained by `clipgen toy train-prior`: writes the toy VQGAN's 16×16 tokens for a caption"),
    ("judge", "toy"): BuiltinModel(
        "toy", "judge", MODELS_DIR / "judge", (("judge.safetensors", "9f60905da54204258db59ed5b270aa5fb520316361b3aa8a1668fe6e9563ad87"),),
        "toy-world judge: a supervised CNN reading colour, shape, background, position, count, size"),
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
