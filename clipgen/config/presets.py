"""Presets: TOML files of settings, found by name or path; a preset may extend another.

A preset is flat: top-level keys are settings (``steps = 200``), tables are a
generator's options (``[fourier] decay = 1.5``), and two keys are about the preset
itself: ``description`` (one line, for ``clipgen presets list``) and ``extends``
(the name or path of a preset whose values this one overrides).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipgen.errors import SettingsError, did_you_mean

META_KEYS = ("description", "extends")
_MAX_EXTENDS_DEPTH = 16


def preset_dirs() -> list[Path]:
    """Where named presets live: inside the installed package, or the checkout's presets/."""
    package = Path(__file__).resolve().parent.parent
    candidates = [package / "presets", package.parent / "presets"]
    return [d for d in candidates if d.is_dir()]


def available_presets() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for directory in reversed(preset_dirs()):
        for path in sorted(directory.glob("*.toml")):
            found[path.stem] = path
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path
    description: str
    values: dict[str, Any]  # merged with everything it extends; meta keys removed
    sources: dict[str, str]  # dotted key -> the file that set it, for error messages


def find_preset(name_or_path: str, relative_to: Path | None = None) -> Path:
    candidate = Path(name_or_path).expanduser()
    if relative_to is not None and not candidate.is_absolute():
        sibling = relative_to / candidate
        if sibling.suffix == ".toml" and sibling.is_file():
            return sibling
    if candidate.suffix == ".toml" or "/" in name_or_path or "\\" in name_or_path:
        if candidate.is_file():
            return candidate
        raise SettingsError(f"preset file {name_or_path!r} does not exist; give a .toml path or one of: "
                            f"{', '.join(available_presets())}")
    presets = available_presets()
    if name_or_path in presets:
        return presets[name_or_path]
    raise SettingsError(f"unknown preset {name_or_path!r}; {did_you_mean(name_or_path, presets)}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise SettingsError(f"preset {path} is not UTF-8 text; presets are TOML files") from None
    except OSError as exc:
        raise SettingsError(f"cannot read preset {path}: {exc.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"preset {path} is not valid TOML: {exc}; fix the file") from None


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: tables merge key by key, other values replace."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_preset(name_or_path: str) -> Preset:
    path = find_preset(name_or_path)
    chain: list[Path] = []
    values: dict[str, Any] = {}
    description = ""
    current: Path | None = path
    layers: list[dict[str, Any]] = []
    while current is not None:
        if current.resolve() in chain:
            cycle = " -> ".join(p.name for p in chain + [current.resolve()])
            raise SettingsError(f"preset {path} extends itself ({cycle}); remove the cycle")
        if len(chain) >= _MAX_EXTENDS_DEPTH:
            raise SettingsError(f"preset {path} extends more than {_MAX_EXTENDS_DEPTH} levels deep")
        chain.append(current.resolve())
        data = _read_toml(current)
        if current == path:
            description = data.get("description", "")
            if not isinstance(description, str):
                raise SettingsError(f"preset {current}: 'description' must be text")
        parent = data.get("extends")
        if parent is not None and not isinstance(parent, str):
            raise SettingsError(f"preset {current}: 'extends' must be a preset name or path")
        layers.append((current, {k: v for k, v in data.items() if k not in META_KEYS}))
        current = find_preset(parent, relative_to=current.parent) if parent else None
    sources: dict[str, str] = {}
    for layer_path, layer in reversed(layers):
        values = merge(values, layer)
        sources.update({key: f"preset {layer_path}" for key in flat_keys(layer)})
    return Preset(name=path.stem, path=path, description=description, values=values, sources=sources)


def flat_keys(values: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        keys.extend(flat_keys(value, dotted + ".") if isinstance(value, dict) else [dotted])
    return keys
