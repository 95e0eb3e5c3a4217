"""Load foreign PyTorch checkpoints (e.g. Lightning ``.ckpt``) with ``weights_only=True``.

Why this is needed: ``torch.load(weights_only=True)`` refuses any pickled global outside
torch's allow-list, and real Lightning checkpoints carry some besides the tensors we
want: ``callbacks`` is keyed by the callback *class*
(``pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint``), newer ones hold
numpy scalars, OmegaConf containers in ``hyper_parameters``, and so on. Importing those
classes would need pytorch-lightning, and unpickling them for real would run their code;
``weights_only=False`` would run *anything* the file names.

How it stays safe: before loading, the checkpoint's pickle stream is disassembled with
:mod:`pickletools` (which parses, never executes) to list every global it names. Each of
those is registered, for this one load only, via :class:`torch.serialization.safe_globals`
as ``(stand-in, "module.name")`` — mapping the name to a freshly made subclass of
:class:`Opaque`, an inert class whose constructor and ``__setstate__`` just store their
arguments. torch's own allow-list is consulted first, so tensors, storages, ``OrderedDict``
and the other globals torch already trusts keep their real meaning; every other name,
whatever it is (``ModelCheckpoint``, ``numpy.dtype``, or ``os.system`` in a hostile file),
resolves to an inert stand-in: no module is imported, no foreign code runs. Globals in
modules torch blocks outright (``os``, ``sys``, ...) still make the load fail. There is no
fallback to unrestricted unpickling: a file this cannot read is a :class:`ModelError`.
"""

from __future__ import annotations

import pickle
import pickletools
import zipfile
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
from pathlib import Path
from typing import Any

import torch

from clipgen.errors import ModelError, one_line

#: Opcodes that push a string operand onto the stack (used to follow STACK_GLOBAL).
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE",
               "STRING", "BINSTRING", "SHORT_BINSTRING"}


class Opaque:
    """An inert stand-in for a pickled object the caller will never use.

    Calling it, creating it with ``__new__`` or setting its state only stores the
    arguments. ``target`` names what the checkpoint referred to, for debugging.
    """

    target: str = "?"

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def __repr__(self) -> str:
        return f"<opaque {self.target}>"


_STAND_INS: dict[str, type] = {}


def stand_in(name: str) -> type:
    """The (cached) inert class standing in for the global ``module.name``."""
    cls = _STAND_INS.get(name)
    if cls is None:
        cls = type(f"Opaque[{name}]", (Opaque,), {"target": name, "__module__": __name__})
        _STAND_INS[name] = cls
    return cls


def globals_in_pickle(stream) -> set[str]:
    """Names of the globals one pickle references, read without executing it."""
    found: set[str] = set()
    recent: list[str] = []
    for opcode, arg, _pos in pickletools.genops(stream):
        if opcode.name == "GLOBAL":
            found.add(python3_name(*arg.split(" ", 1)))
        elif opcode.name == "STACK_GLOBAL" and len(recent) >= 2:
            found.add(python3_name(recent[-2], recent[-1]))
        if opcode.name in _STRING_OPS:
            recent = (recent + [arg if isinstance(arg, str) else str(arg)])[-2:]
    return found


def python3_name(module: str, name: str) -> str:
    """The name torch's unpickler will look up: protocol-2 pickles use Python 2 names
    (``__builtin__.exec``), which it translates as the standard unpickler does."""
    if (module, name) in NAME_MAPPING:
        module, name = NAME_MAPPING[(module, name)]
    elif module in IMPORT_MAPPING:
        module = IMPORT_MAPPING[module]
    return f"{module}.{name}"


def globals_in_checkpoint(path: Path) -> set[str]:
    """All globals a ``torch.save`` file references (zip format or the legacy one)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise ModelError(f"{path} is a zip file but not a PyTorch checkpoint (no data.pkl)")
            with archive.open(pickles[0]) as stream:
                return globals_in_pickle(stream)
    # Legacy format: magic number, protocol, sys info, then the object, each its own pickle.
    with open(path, "rb") as stream:
        found: set[str] = set()
        for _ in range(4):
            found |= globals_in_pickle(stream)
        return found


def load_checkpoint(path: str | Path, *, fix: str = "check the file") -> Any:
    """``torch.load(path, weights_only=True)`` with inert stand-ins for foreign globals.

    Tensors are memory-mapped when the file is in the zip format, so only the tensors
    the caller actually copies are read from disk. ``fix`` completes error messages.
    """
    path = Path(path)
    try:
        names = globals_in_checkpoint(path)
    except ModelError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise ModelError(f"{path} is not a PyTorch checkpoint ({load_error_line(exc)}); {fix}") from None
    mappings = [(stand_in(name), name) for name in sorted(names)]
    try:
        with torch.serialization.safe_globals(mappings):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except (pickle.UnpicklingError, RuntimeError, OSError, ValueError, EOFError, TypeError,
            AttributeError, zipfile.BadZipFile) as exc:
        raise ModelError(f"cannot load checkpoint {path}: {load_error_line(exc)}; {fix}") from None


_BOILERPLATE = ("Weights only load failed", "(1)", "(2)", "Check the documentation")


def load_error_line(exc: BaseException) -> str:
    """:func:`~clipgen.errors.one_line` for errors from loading a checkpoint: torch's
    weights-only errors open with paragraphs of generic advice (including to disable the
    safety), so the first line that names the actual reason is kept instead."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    specific = [line for line in lines if not line.startswith(_BOILERPLATE)]
    if not specific:
        return one_line(exc, limit=200).rstrip(".")
    line = specific[0].removeprefix("WeightsUnpickler error:").strip()
    return line.split(". Please use")[0][:200].rstrip(".")


def state_dict_of(checkpoint: Any, path: Path, fix: str, what: str = "checkpoint") -> dict:
    """The ``state_dict`` inside a training checkpoint, or the checkpoint itself if it is one."""
    if not isinstance(checkpoint, dict):
        raise ModelError(f"{what} {path} holds a {type(checkpoint).__name__}, not a state dict; {fix}")
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, dict):
        raise ModelError(f"{what} {path}: 'state_dict' is not a dict; {fix}")
    return state
