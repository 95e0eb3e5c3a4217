"""Load OpenAI's DALL-E dVAE: converted safetensors files, or pickles through :mod:`clipgen.generators.dvae.pickle_gate`.

``clipgen models convert`` unpickles each module once (through the digest gate and the
restricted unpickler) and writes its state dict as ``<stem>.safetensors`` plus a small
``<stem>.json`` with the constructor arguments (:func:`save_converted`). Later runs build
the module from the JSON on the meta device and adopt the safetensors tensors
(:func:`load_converted`): nothing is unpickled at all. Registered models prefer their
converted files when both are present (:func:`entry_part`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from clipgen import weights
from clipgen.atomic import atomic_path, write_text
from clipgen.errors import MissingWeightsError, ModelError
from clipgen.generators.dvae.pickle_gate import PickleSource, module_class, sha256_bytes, unpickle_module
from clipgen.weights.checkpoints import load_error_line
from clipgen.weights.records import read_record

#: The architecture fields of each class (dall_e attrs fields), as stored in the JSON config.
CONFIG_FIELDS = {
    "Encoder": ("n_hid", "n_blk_per_group", "input_channels", "vocab_size"),
    "Decoder": ("n_init", "n_hid", "n_blk_per_group", "output_channels", "vocab_size"),
}
CONFIG_FORMAT = "clipgen-dalle-dvae"
CONFIG_VERSION = 1
_GROUP_COUNT = 4  # dall_e builds exactly four groups; the class attribute is not a field


# --------------------------------------------------------------------------- converted files


def module_config(module: nn.Module) -> dict[str, int]:
    """The constructor arguments that rebuild ``module``'s architecture."""
    name = type(module).__name__
    return {key: int(getattr(module, key)) for key in CONFIG_FIELDS[name]}


def converted_paths(stem: Path) -> tuple[Path, Path]:
    """``decoder`` -> (``decoder.safetensors``, ``decoder.json``)."""
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def save_converted(module: nn.Module, stem: Path, source_sha256: str | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.safetensors`` and ``<stem>.json``; the JSON last, as the commit marker."""
    tensors_path, config_path = converted_paths(stem)
    state = {k: v.detach().float().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_path(tensors_path) as tmp:
        save_file(state, str(tmp), metadata={"format": CONFIG_FORMAT})
    config = {
        "format": CONFIG_FORMAT, "version": CONFIG_VERSION, "class": type(module).__name__,
        "group_count": _GROUP_COUNT, "config": module_config(module),
        "source_sha256": source_sha256,
    }
    write_text(config_path, json.dumps(config, indent=1) + "\n")
    return tensors_path, config_path


def read_converted_config(config_path: Path, expected: str) -> dict[str, int]:
    """Validate a converted module's JSON and return its constructor arguments."""
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read dVAE config {config_path} ({load_error_line(exc)}); convert the model again") from None
    if not isinstance(data, dict) or data.get("format") != CONFIG_FORMAT or data.get("class") != expected:
        raise ModelError(f"{config_path} is not a converted dall_e {expected} config; convert the model again")
    config = data.get("config")
    fields = CONFIG_FIELDS[expected]
    if not isinstance(config, dict) or set(config) != set(fields) or not all(
            isinstance(config[k], int) and not isinstance(config[k], bool) and config[k] > 0 for k in fields):
        raise ModelError(f"{config_path}: 'config' must give {', '.join(fields)} as positive whole numbers; "
                         "convert the model again")
    return config


def build_module(expected: str, config: dict[str, int]) -> nn.Module:
    """An empty (meta-device) dall_e module of this architecture, ready for ``assign``."""
    cls = module_class(expected)
    try:
        # Meta tensors: no time spent initialising weights that are replaced anyway.
        return cls(**config, device=torch.device("meta"), requires_grad=False)
    except ValueError as exc:  # attrs validators (e.g. vocab_size >= 512)
        raise ModelError(f"dall_e cannot build a {expected} with {config}: {load_error_line(exc)}") from None


def load_converted(tensors_path: Path, expected: str) -> nn.Module:
    """A dall_e module rebuilt from ``<stem>.json`` with ``<stem>.safetensors``'s tensors."""
    tensors_path = Path(tensors_path)
    config_path = converted_paths(tensors_path)[1]
    if not config_path.is_file():
        raise ModelError(f"{tensors_path} has no {config_path.name} beside it; convert the model again")
    module = build_module(expected, read_converted_config(config_path, expected))
    try:
        state = load_file(str(tensors_path))
    except (OSError, SafetensorError) as exc:
        raise ModelError(f"cannot read {tensors_path} ({load_error_line(exc)}); convert the model again") from None
    expected_state = module.state_dict()
    for key, tensor in expected_state.items():
        value = state.get(key)
        if value is None or value.shape != tensor.shape:
            found = "missing" if value is None else f"shape {tuple(value.shape)}"
            raise ModelError(f"{tensors_path}: {key!r} is {found}, {config_path.name} needs "
                             f"{tuple(tensor.shape)}; convert the model again")
    module.load_state_dict({k: state[k] for k in expected_state}, strict=True, assign=True)
    return module


# --------------------------------------------------------------------------- one entry point


@dataclass(frozen=True)
class PartSource:
    """Where one half of the dVAE comes from: a converted file, or a pickle behind the gate."""

    converted: Path | None = None  # <stem>.safetensors (with <stem>.json beside it)
    pickled: PickleSource | None = None


def load_part(source: PartSource, expected: str, device: torch.device) -> nn.Module:
    """A frozen, eval-mode dall_e ``expected`` module on ``device``."""
    if source.converted is not None:
        module = load_converted(source.converted, expected)
    elif source.pickled is not None:
        try:
            data = source.pickled.path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read {source.pickled.path}: {exc.strerror}; {source.pickled.fix}") from None
        module = unpickle_module(data, source.pickled, expected)
    else:  # pragma: no cover - callers always give one
        raise ValueError("empty PartSource")
    module.requires_grad_(False)
    return module.eval().to(device)


def convert_pickle(source: PickleSource, expected: str, stem: Path) -> tuple[Path, Path]:
    """Unpickle (through the gate) and write ``<stem>.safetensors`` + ``<stem>.json``."""
    try:
        data = source.path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {source.path}: {exc.strerror}; {source.fix}") from None
    module = unpickle_module(data, source, expected)
    return save_converted(module, stem, source_sha256=sha256_bytes(data))


# --------------------------------------------------------------------------- registry entries


def recorded_digest(urls: tuple[str, ...], path: Path) -> str | None:
    """The SHA-256 clipgen's own download recorded for ``path``, if it came from ``urls``.

    A record written for a file someone copied into the cache (source ``local``) pins
    nothing: it only says what the file was when first seen, not where it came from.
    """
    record = read_record(path) or {}
    digest = record.get("sha256")
    return digest if isinstance(digest, str) and record.get("source") in urls else None


def entry_part(entry_name: str, filename: str, *, trust_checkpoint: bool = False,
               pin: str | None = None, prefer_converted: bool = True) -> PartSource:
    """Where to load ``filename`` of a registered dVAE from: converted files first.

    Never downloads: a missing file is a MissingWeightsError naming the command.
    """
    entry = weights.get_entry(entry_name, kind="dalle-dvae")
    spec = entry.file(filename)
    path = weights.entry_dir(entry) / filename
    tensors, config = converted_paths(path.with_suffix(""))
    if prefer_converted and tensors.is_file() and config.is_file():
        return PartSource(converted=tensors)
    if not path.is_file():
        raise MissingWeightsError(
            f"dalle-dvae weights {entry.name!r} are not downloaded ({path} is missing); "
            f"run: clipgen models download {entry.name}"
        )
    pinned = pin or spec.sha256 or recorded_digest(spec.urls, path)
    fix = f"fetch it again with: clipgen models download {entry.name} --force"
    return PartSource(pickled=PickleSource(path, pinned, trust_checkpoint, fix))


def convert_entry(entry_name: str, *, trust_checkpoint: bool = False) -> list[Path]:
    """``clipgen models convert``: every pickled file of a dVAE entry -> safetensors + JSON."""
    entry = weights.get_entry(entry_name)
    if entry.kind != "dalle-dvae":
        raise ModelError(f"{entry.name} is a {entry.kind} model, which is loaded without unpickling; "
                         f"only dalle-dvae models need converting")
    written: list[Path] = []
    for spec in entry.files:
        part = entry_part(entry.name, spec.filename, trust_checkpoint=trust_checkpoint, prefer_converted=False)
        expected = "Encoder" if spec.filename.startswith("encoder") else "Decoder"
        stem = part.pickled.path.with_suffix("")
        written += convert_pickle(part.pickled, expected, stem)
    return written
