"""The perceptor: one or more frozen open_clip models scoring images against targets.

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

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from clipgen.weights import builtin
from clipgen.errors import MissingWeightsError, ModelError, SettingsError, did_you_mean

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
    import open_clip

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


class ClipModel(nn.Module):
    """A frozen CLIP with its own input size and normalisation."""

    def __init__(self, label: str, model: nn.Module, tokenizer, weight: float,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        from clipgen.hardware import convert_frozen

        self.label = label
        self.model = convert_frozen(model.eval().requires_grad_(False), dtype)
        self.dtype = dtype
        self.tokenizer = tokenizer
        self.weight = weight
        size = model.visual.image_size
        self.input_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        mean = getattr(model.visual, "image_mean", None) or (0.48145466, 0.4578275, 0.40821073)
        std = getattr(model.visual, "image_std", None) or (0.26862954, 0.26130258, 0.27577711)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, s, s)`` in [0, 1] at this model's input size -> ``(N, D)`` unit vectors."""
        pixels = ((images - self.mean) / self.std).to(self.dtype)
        return F.normalize(self.model.encode_image(pixels).float(), dim=-1)

    def compile_image_tower(self) -> None:
        """``torch.compile`` the image tower (the part that runs every step)."""
        self.model.visual = torch.compile(self.model.visual)

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts).to(self.mean.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1)

    @torch.no_grad()
    def encode_pil(self, images) -> torch.Tensor:
        """Whole images (PIL or (N,3,H,W) tensors in [0,1]) resized to the input size."""
        batch = images if isinstance(images, torch.Tensor) else torch.stack([pil_to_tensor(i) for i in images])
        batch = batch.to(self.mean.device, torch.float32)
        batch = F.interpolate(batch, size=(self.input_size, self.input_size), mode="bilinear",
                              antialias=True, align_corners=False)
        return self.encode_image(batch)


def pil_to_tensor(image) -> torch.Tensor:
    import numpy as np

    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


class Perceptor(nn.Module):
    """A weighted ensemble of CLIP models."""

    def __init__(self, models: list[ClipModel]):
        super().__init__()
        self.models = nn.ModuleList(models)

    @property
    def input_sizes(self) -> tuple[int, ...]:
        return tuple(m.input_size for m in self.models)

    @property
    def weights(self) -> list[float]:
        return [m.weight for m in self.models]

    @property
    def dtype(self) -> torch.dtype:
        return self.models[0].dtype


def _load_open_clip(spec: ClipSpec, device: torch.device, offline: bool) -> tuple[nn.Module, object]:
    import open_clip

    if offline:
        _force_hf_offline()
    name = spec.arch
    kwargs = {}
    if spec.local_dir:
        name = f"local-dir:{spec.local_dir}"
    elif spec.hf_hub:
        name = spec.hf_hub
    else:
        kwargs["pretrained"] = spec.pretrained
    try:
        model = open_clip.create_model(name, device=device, **kwargs)
    except Exception as exc:  # noqa: BLE001 - open_clip, safetensors and hub raise many types
        raise _explain_load_failure(spec, exc, offline) from None
    return model, open_clip.get_tokenizer(name)


def _force_hf_offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:  # huggingface_hub reads the variable at import; set its constant too.
        import huggingface_hub.constants as hf_constants

        hf_constants.HF_HUB_OFFLINE = True
    except (ImportError, AttributeError):
        pass


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    if not text:
        return type(exc).__name__
    first = text[0]
    return first if len(first) <= 160 else first[:157] + "..."


def _explain_load_failure(spec: ClipSpec, exc: Exception, offline: bool) -> Exception:
    message = _first_line(exc)
    if spec.local_dir or (spec.pretrained and Path(spec.pretrained).is_file()):
        where = spec.local_dir or spec.pretrained
        return ModelError(f"CLIP checkpoint {where} could not be loaded ({message}); "
                          "it is corrupt or does not match its architecture")
    download_words = ("download", "offline", "connect", "resolve", "hub", "http", "network", "cache")
    if offline or any(w in message.lower() for w in download_words):
        return MissingWeightsError(
            f"CLIP weights {spec.label} are not cached and could not be downloaded ({message}); "
            "run once with internet to cache them, or pass a local folder with --clip DIR"
        )
    return ModelError(f"CLIP {spec.label} could not be loaded: {message}")


def load_perceptor(specs: tuple[str, ...], device: torch.device, offline: bool = False,
                   dtype: torch.dtype = torch.float32) -> Perceptor:
    if not specs:
        raise SettingsError("no CLIP model given; pass --clip, e.g. --clip ViT-B-32:openai")
    parsed = [parse_clip_spec(s) for s in specs]
    models = []
    for spec in parsed:
        model, tokenizer = _load_open_clip(spec, device, offline)
        models.append(ClipModel(spec.label, model, tokenizer, spec.weight, dtype))
    return Perceptor(models).to(device)
