"""The ``--clip`` grammar: which CLIP models a run uses, parsed without loading them.

``--clip`` specs (each may end in ``@weight`` for ensembles):

- ``ViT-B-32:openai``: an open_clip architecture and pretrained tag, downloaded and
  cached by open_clip (Hugging Face cache) on first use;
- ``ViT-B-32:/path/weights.pt``: an architecture with a local weights file;
- ``/path/to/dir`` or ``local-dir:/path``: a folder with ``open_clip_config.json`` and
  weights, as open_clip saves them;
- ``hf-hub:org/repo``: an open_clip model on the Hugging Face Hub;
- ``ViT-B-32:none``: random weights (benchmarks only).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import open_clip

from clipgen.errors import ModelError, SettingsError, did_you_mean
from clipgen.weights import builtin

RANDOM_WEIGHTS = ("none", "random")

@dataclass(frozen=True)
class ClipSpec:
    """A parsed ``--clip`` value. Exactly one of ``arch``/``local_dir``/``hf_hub`` is the source."""

    raw: str
    weight: float = 1.0
    arch: str | None = None
    pretrained: str | None = None  # a tag, a file path, or None for random weights
    local_dir: str | None = None
    hf_hub: str | None = None

    @property
    def label(self) -> str:
        return self.raw.rsplit("@", 1)[0] if self.weight != 1.0 else self.raw


def _split_weight(spec: str) -> tuple[str, float]:
    body, sep, tail = spec.rpartition("@")
    if sep and body:
        try:
            weight = float(tail)
        except ValueError:
            return spec, 1.0
        if not math.isfinite(weight) or weight <= 0:
            raise SettingsError(f"--clip {spec!r}: ensemble weight must be a positive number")
        return body, weight
    return spec, 1.0


def parse_clip_spec(spec: str) -> ClipSpec:
    """Parse one ``--clip`` value; checks names against open_clip's registry, not the network."""
    body, weight = _split_weight(spec.strip())
    if not body:
        raise SettingsError("empty --clip value; give e.g. ViT-B-32:openai or a local folder")
    shipped = builtin.get("clip", body)
    if shipped is not None:
        return ClipSpec(raw=spec, weight=weight, local_dir=str(builtin.verified_folder(shipped)))
    if body.startswith("hf-hub:"):
        return ClipSpec(raw=spec, weight=weight, hf_hub=body)
    local = body[len("local-dir:"):] if body.startswith("local-dir:") else body
    path = Path(local).expanduser()
    if body.startswith("local-dir:") or path.is_dir():
        if not (path / "open_clip_config.json").is_file():
            raise ModelError(f"--clip {spec!r}: folder has no open_clip_config.json; "
                             "a local CLIP folder needs open_clip_config.json and a weights file")
        return ClipSpec(raw=spec, weight=weight, local_dir=str(path))
    if path.is_file():
        raise SettingsError(f"--clip {spec!r} is a weights file; name its architecture too, e.g. "
                            f"--clip ViT-B-32:{local}, or give the folder holding open_clip_config.json")
    arch, sep, pretrained = body.partition(":")
    models = open_clip.list_models()
    if arch not in models:
        if "/" in body or body.startswith("."):
            raise SettingsError(f"--clip {spec!r}: no such file or folder")
        raise SettingsError(f"unknown CLIP architecture {arch!r}; {did_you_mean(arch, models)}")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if not sep or not pretrained:
        raise SettingsError(f"--clip {spec!r}: name the weights as {arch}:TAG; tags for {arch}: "
                            f"{', '.join(tags) or 'none (use a local file)'}")
    if pretrained.lower() in RANDOM_WEIGHTS:
        return ClipSpec(raw=spec, weight=weight, arch=arch, pretrained=None)
    if Path(pretrained).expanduser().is_file():
        return ClipSpec(raw=spec, weight=weight, arch=arch, pretrained=str(Path(pretrained).expanduser()))
    if pretrained not in tags:
        if "/" in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors")):
            raise ModelError(f"--clip {spec!r}: weights file {pretrained} does not exist; check the path")
        raise SettingsError(f"unknown pretrained tag {pretrained!r} for {arch}; "
                            f"{did_you_mean(pretrained, tags)}")
    return ClipSpec(raw=spec, weight=weight, arch=arch, pretrained=pretrained)


#: What open_clip models default to when a config does not say (ViT-B/32's input size).
_DEFAULT_INPUT_SIZE = 224


def clip_input_size(spec: ClipSpec) -> int:
    """The model's image input size, read from its config without loading any weights.

    Used by the memory estimate before anything is loaded; an ``hf-hub:`` model whose
    config is not cached here counts as 224 px."""
    config = None
    if spec.local_dir:
        path = Path(spec.local_dir) / "open_clip_config.json"
        try:
            config = json.loads(path.read_text()).get("model_cfg")
        except (OSError, ValueError):
            config = None
    elif spec.arch:
        config = open_clip.get_model_config(spec.arch)
    size = ((config or {}).get("vision_cfg") or {}).get("image_size", _DEFAULT_INPUT_SIZE)
    return int(size[0] if isinstance(size, (list, tuple)) else size)

