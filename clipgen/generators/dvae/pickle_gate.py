"""Unpickle OpenAI's DALL-E dVAE modules safely: a digest gate, an allow-list, a restricted unpickler.

The published ``encoder.pkl`` / ``decoder.pkl`` are whole pickled ``dall_e`` modules, so
reading them means unpickling, and unpickling an arbitrary file runs arbitrary code.
Three layers keep that in check, in this order, all on one in-memory copy of the bytes
(so the file cannot change between being checked and being read):

1. **Digest gate.** The SHA-256 of the bytes must equal a pinned digest (the registry's,
   the one clipgen's own download recorded, or one the user gives); with no pin at all
   the caller must say ``trust_checkpoint``. A mismatch is refused whatever the flag.
2. **Static allow-list.** The pickle stream is disassembled with :mod:`pickletools`
   (parsed, never executed) and every global it names must be one of
   :data:`ALLOWED_GLOBALS`: the dall_e module classes, the few torch layers they use,
   tensor/parameter rebuilders and storages. Anything else is refused by name.
3. **Restricted unpickler.** Zip-format files are read with ``torch.load(weights_only=True)``
   with exactly those classes added for this one load; legacy-format files (which
   ``weights_only`` cannot read, as they carry module source code) with an unpickler whose
   ``find_class`` resolves only the same allow-list.

:mod:`clipgen.generators.dvae.loader` builds on this: converted safetensors files, registry entries.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clipgen.errors import MissingDependencyError, ModelError
from clipgen.weights.checkpoints import globals_in_pickle, load_error_line, python3_name

#: Every global a pickled dall_e Encoder/Decoder needs, and nothing else.
ALLOWED_GLOBALS = frozenset({
    "dall_e.encoder.Encoder", "dall_e.encoder.EncoderBlock",
    "dall_e.decoder.Decoder", "dall_e.decoder.DecoderBlock",
    "dall_e.utils.Conv2d",
    "torch.nn.modules.container.Sequential", "torch.nn.modules.activation.ReLU",
    "torch.nn.modules.pooling.MaxPool2d", "torch.nn.modules.upsampling.Upsample",
    "torch.nn.modules.linear.Identity",
    "collections.OrderedDict", "builtins.set", "torch.device",
    "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
    "torch.FloatStorage", "torch.HalfStorage",
})


def import_dall_e():
    """The ``dall_e`` package, or the one-line error naming the ``dvae`` extra."""
    try:
        dall_e = importlib.import_module("dall_e")
    except ModuleNotFoundError as exc:
        # dall_e 0.1 imports attrs and requests without declaring attrs.
        package = exc.name if exc.name in ("attr", "requests") else "DALL-E"
        raise MissingDependencyError("attrs" if package == "attr" else package, "dvae",
                                     "The dvae generator") from None
    return dall_e


def module_class(name: str) -> type:
    """``Encoder``/``Decoder`` from dall_e (imported only when needed)."""
    dall_e = import_dall_e()
    return getattr(dall_e, name)


# --------------------------------------------------------------------------- digest gate


@dataclass(frozen=True)
class PickleSource:
    """A pickled module file and what makes it trustworthy."""

    path: Path
    pinned_sha256: str | None  # the registry's, the download's record, or the user's pin
    trust_checkpoint: bool  # the user vouches for an unpinned file
    fix: str  # completes error messages (how to get a good file)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_digest(data: bytes, source: PickleSource) -> str:
    """Return the digest of ``data`` if it may be unpickled; raise ModelError otherwise."""
    digest = sha256_bytes(data)
    pinned = source.pinned_sha256
    if pinned is not None:
        if digest != pinned.lower():
            raise ModelError(
                f"{source.path} fails SHA-256 verification (got {digest[:12]}…, pinned {pinned[:12]}…); "
                f"refusing to unpickle it; {source.fix}"
            )
        return digest
    if not source.trust_checkpoint:
        raise ModelError(
            f"{source.path} has no pinned SHA-256 (OpenAI publishes none) and unpickling runs code; "
            f"pin it (dvae.decoder_sha256 / dvae.encoder_sha256) or pass --trust-checkpoint "
            f"(dvae.trust_checkpoint=true) if you trust where it came from"
        )
    return digest


# --------------------------------------------------------------------------- restricted unpickling


def globals_in_bytes(data: bytes) -> set[str]:
    """Every global a ``torch.save`` file references, read without executing it."""
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise ValueError("a zip file without data.pkl")
            with archive.open(pickles[0]) as stream:
                return globals_in_pickle(stream)
    # Legacy format: magic number, protocol, sys info, then the object, each its own pickle.
    stream = io.BytesIO(data)
    found: set[str] = set()
    for _ in range(4):
        found |= globals_in_pickle(stream)
    return found


def _resolve_global(name: str) -> Any:
    """The object an allowed ``module.name`` refers to (importing only allowed modules)."""
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


class _RestrictedUnpickler(pickle.Unpickler):
    """For legacy-format files: resolves only :data:`ALLOWED_GLOBALS`, refuses anything else."""

    def find_class(self, module: str, name: str) -> Any:
        # Protocol-2 pickles spell builtins "__builtin__"; map as the stock unpickler would.
        full = python3_name(module, name)
        if full not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {full} is not allowed in a dVAE file")
        return _resolve_global(full)


class _RestrictedPickleModule:
    """What ``torch.load(pickle_module=...)`` needs: ``Unpickler`` and ``load``."""

    Unpickler = _RestrictedUnpickler

    @staticmethod
    def load(file, **kwargs):
        return _RestrictedUnpickler(file, **kwargs).load()


def unpickle_module(data: bytes, source: PickleSource, expected: str) -> nn.Module:
    """Digest gate, static allow-list, restricted load; returns a dall_e ``expected`` module."""
    check_digest(data, source)
    import_dall_e()  # the allowed classes must be importable before anything is read
    try:
        names = globals_in_bytes(data)
    except (ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise ModelError(f"{source.path} is not a PyTorch file ({load_error_line(exc)}); {source.fix}") from None
    foreign = sorted(names - ALLOWED_GLOBALS)
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise ModelError(
            f"{source.path} references {foreign[0]}{more}, which a DALL-E dVAE file does not need; "
            f"refusing to unpickle it; {source.fix}"
        )
    allowed = [_resolve_global(name) for name in sorted(ALLOWED_GLOBALS)]
    try:
        with warnings.catch_warnings():
            # Legacy files embed the module source; a newer dall_e's differs harmlessly.
            warnings.simplefilter("ignore", torch.serialization.SourceChangeWarning)
            if zipfile.is_zipfile(io.BytesIO(data)):
                with torch.serialization.safe_globals(allowed):
                    module = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            else:
                module = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False,
                                    pickle_module=_RestrictedPickleModule)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, TypeError, AttributeError,
            ImportError, zipfile.BadZipFile) as exc:
        raise ModelError(f"cannot load {source.path}: {load_error_line(exc)}; {source.fix}") from None
    if type(module) is not module_class(expected):
        found = f"{type(module).__module__}.{type(module).__name__}"
        raise ModelError(f"{source.path} holds {found}, not dall_e's {expected}; {source.fix}")
    return patch_old_modules(module)


def patch_old_modules(module: nn.Module) -> nn.Module:
    """Make modules pickled by an older torch run on this one.

    OpenAI's decoder.pkl predates torch 1.11, whose ``Upsample.forward`` reads
    ``recompute_scale_factor``; the pickled objects lack it (openai/DALL-E#54). ``None``
    is what those versions used.
    """
    for child in module.modules():
        if isinstance(child, nn.Upsample) and "recompute_scale_factor" not in child.__dict__:
            child.recompute_scale_factor = None
    return module
