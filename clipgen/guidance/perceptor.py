"""The perceptor: one or more frozen open_clip models scoring images against targets.

:func:`load_perceptor` is the one way every command loads CLIP (a run, candidates and
their ranker, a batch, ``clipgen score``): in the run's precision, compiled if asked,
and offline when told. Offline never goes through ``os.environ``: open_clip downloads
through huggingface_hub, whose offline switch is set for the duration of one load and
put back. Online, weights that are cached load without touching the network, and when
the download host cannot be reached the load fails at once with one line, instead of
huggingface_hub's minute of retries.
"""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.parse
from pathlib import Path
from typing import Iterator

import huggingface_hub
import huggingface_hub.constants as hub_constants
import open_clip
import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from torch import nn

from clipgen.errors import MissingWeightsError, ModelError, SettingsError, one_line
from clipgen.guidance.clip_specs import ClipSpec, parse_clip_spec
from clipgen.guidance.tower_kernels import rewrite_tower
from clipgen.hardware import convert_frozen
from clipgen.packed_linear import prepare_packed
from clipgen.inputs import pil_to_tensor

#: Seconds to wait for the download host before calling the network unreachable.
PROBE_TIMEOUT_S = 3.0
_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class ClipModel(nn.Module):
    """A frozen CLIP with its own input size and normalisation."""

    def __init__(self, label: str, model: nn.Module, tokenizer, weight: float,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.label = label
        rewrite_tower(model.visual)  # the same maths in fewer, bigger kernels
        # ResNet towers run channels-last, oneDNN's fast layout, in every precision: the toy
        # CLIP's forward + backward of 16 cutouts went from 71 to 51 ms at 2 threads.
        self.channels_last = isinstance(model.visual, ModifiedResNet)
        self.model = convert_frozen(model.eval().requires_grad_(False), dtype, channels_last=self.channels_last)
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
        if self.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
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


@contextlib.contextmanager
def _hub_offline(offline: bool) -> Iterator[None]:
    """huggingface_hub asks a module constant whether it is offline; this load's answer only."""
    previous = hub_constants.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = previous or offline
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = previous


def _cached(repo: str, filenames: tuple[str, ...]) -> bool:
    return any(isinstance(huggingface_hub.try_to_load_from_cache(repo, name), str) for name in filenames)


def download_host(spec: ClipSpec) -> str | None:
    """The host a load of ``spec`` would download from, or None when nothing needs downloading."""
    endpoint = urllib.parse.urlsplit(hub_constants.HUGGINGFACE_CO_URL_TEMPLATE).netloc
    if spec.hf_hub:
        repo = spec.hf_hub[len("hf-hub:"):]
        cached = _cached(repo, ("open_clip_config.json",)) and _cached(repo, _WEIGHT_FILES)
        return None if cached else endpoint
    if spec.local_dir or spec.pretrained is None or Path(spec.pretrained).is_file():
        return None
    config = open_clip.get_pretrained_cfg(spec.arch, spec.pretrained)
    if config.get("hf_hub"):
        repo, filename = os.path.split(config["hf_hub"])
        return None if _cached(repo, (*_WEIGHT_FILES, filename) if filename else _WEIGHT_FILES) else endpoint
    url = config.get("url", "")
    cached = Path("~/.cache/clip").expanduser().joinpath(os.path.basename(url)).is_file()
    return None if cached or not url else urllib.parse.urlsplit(url).netloc


def _reachable(host: str) -> str | None:
    """None when ``host`` (``name[:port]``) accepts a connection, else why not."""
    name, _, port = host.partition(":")
    try:
        with socket.create_connection((name, int(port or 443)), timeout=PROBE_TIMEOUT_S):
            return None
    except OSError as exc:
        return one_line(exc)


def _load_open_clip(spec: ClipSpec, device: torch.device, offline: bool) -> tuple[nn.Module, object]:
    host = download_host(spec)
    if host is not None and not offline:
        problem = _reachable(host)
        if problem is not None:
            raise MissingWeightsError(
                f"CLIP weights {spec.label} are not cached and {host} cannot be reached ({problem}); "
                "connect to the internet once to cache them, or run with --offline and a local --clip DIR")
    name, kwargs = spec.arch, {}
    if spec.local_dir:
        name = f"local-dir:{spec.local_dir}"
    elif spec.hf_hub:
        name = spec.hf_hub
    else:
        kwargs["pretrained"] = spec.pretrained
    try:
        # Cached weights load without asking the network whether they changed.
        with _hub_offline(offline or host is None):
            model = open_clip.create_model(name, device=device, **kwargs)
            tokenizer = open_clip.get_tokenizer(name)
    except Exception as exc:  # noqa: BLE001 - open_clip, safetensors and hub raise many types
        raise _explain_load_failure(spec, exc, offline) from None
    return model, tokenizer


def _explain_load_failure(spec: ClipSpec, exc: Exception, offline: bool) -> Exception:
    message = one_line(exc)
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


def load_perceptor(specs: tuple[str | ClipSpec, ...], device: torch.device, offline: bool = False,
                   dtype: torch.dtype = torch.float32, compile: bool = False) -> Perceptor:
    """The CLIP ensemble for ``specs`` (``--clip`` strings or parsed specs) on ``device``."""
    if not specs:
        raise SettingsError("no CLIP model given; pass --clip, e.g. --clip ViT-B-32:openai")
    parsed = [spec if isinstance(spec, ClipSpec) else parse_clip_spec(spec) for spec in specs]
    models = []
    for spec in parsed:
        model, tokenizer = _load_open_clip(spec, device, offline)
        models.append(ClipModel(spec.label, model, tokenizer, spec.weight, dtype))
    perceptor = Perceptor(models).to(device)
    for model in perceptor.models:
        if compile:  # inductor packs weights its own way: no copies of ours
            model.compile_image_tower()
        else:  # now, not among the first step's activations
            prepare_packed(model.model.visual)
    return perceptor
