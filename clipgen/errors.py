"""Typed errors. The CLI turns every ClipgenError into one line on stderr and exit status 2."""

from __future__ import annotations

import difflib


class ClipgenError(Exception):
    """A problem the user can fix. ``str(err)`` names the problem and the fix in one line."""


class SettingsError(ClipgenError):
    """An unknown key, a value of the wrong type or out of range, in flags, presets or --set."""


class PromptError(ClipgenError):
    """A prompt string that cannot be parsed."""


class InputFileError(ClipgenError):
    """A missing, unreadable or non-image input file (init image, image prompt, prompt file)."""


class ModelError(ClipgenError):
    """An unknown model name, or a checkpoint that is corrupt or does not match its architecture."""


class MissingWeightsError(ModelError):
    """Weights that are neither cached nor downloadable right now."""


class OutputError(ClipgenError):
    """An output directory that cannot be created or written."""


class DeviceError(ClipgenError):
    """A device that does not exist on this machine."""


class MissingDependencyError(ClipgenError):
    """An optional dependency (a pip extra) that is not installed."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed; "
            f"install it with: pip install 'clipgen[{extra}]'"
        )
        self.package = package
        self.extra = extra


def did_you_mean(name: str, choices) -> str:
    """A hint listing the valid choices, closest first when there are many."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    if len(choices) <= 40:
        listed = ", ".join(choices)
        return f"did you mean {close[0]!r}? valid: {listed}" if close else f"valid: {listed}"
    shown = ", ".join(choices[:12])
    prefix = f"did you mean {', '.join(map(repr, close))}? " if close else ""
    return f"{prefix}valid include: {shown}, … ({len(choices)} in all)"


def one_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of ``str(exc)`` (the type name when it says nothing), cut to ``limit``.

    For quoting a library's exception inside one of ours: tracebacks and multi-line
    reports from torch, yaml or urllib would break the one-line rule of every message.
    """
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    first = lines[0].rstrip()
    return first if len(first) <= limit else first[: max(limit - 3, 0)] + "..."
