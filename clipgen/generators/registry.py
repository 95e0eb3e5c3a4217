"""The generator registry: ``{name: "module:Class"}``, each module imported only when used.

A table of names rather than imports, so that settings can look up a generator's
``Options`` (and the CLI list every generator) without importing every generator, and
without the generators importing settings. Adding a generator adds one line here.
"""

from __future__ import annotations

import importlib

from clipgen.errors import SettingsError, did_you_mean

GENERATORS: dict[str, str] = {
    "pixels": "clipgen.generators.pixels:PixelGenerator",
    "fourier": "clipgen.generators.fourier:FourierGenerator",
    "clipdraw": "clipgen.generators.clipdraw.generator:ClipDrawGenerator",
    "vqgan": "clipgen.generators.vqgan.generator:VQGANGenerator",
    "dvae": "clipgen.generators.dvae.generator:DVAEGenerator",
    "biggan": "clipgen.generators.biggan.generator:BigGANGenerator",
}


def generator_names() -> list[str]:
    return sorted(GENERATORS)


def get_generator_class(name: str):
    try:
        target = GENERATORS[name]
    except KeyError:
        raise SettingsError(
            f"unknown generator {name!r}; {did_you_mean(name, GENERATORS)}"
        ) from None
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)
