"""The prior registry: ``{name: ("module:Class", decoder)}``, each module imported only when used.

``decoder`` is the VQGAN model (``vqgan.model``) whose codebook the prior's tokens index:
refinement and ``vqgan.init=prior`` decode through it, and a run whose VQGAN is another
model cannot start from the prior. Adding a prior adds one line here.
"""

from __future__ import annotations

import importlib

from clipgen.errors import SettingsError, did_you_mean

PRIORS: dict[str, tuple[str, str]] = {
    "toy": ("clipgen.priors.toy.prior:ToyPrior", "toy"),
    "dalle-mini": ("clipgen.priors.dalle.prior:DalleMini", "dalle-vqgan"),
    "dalle-mega": ("clipgen.priors.dalle.prior:DalleMega", "dalle-vqgan"),
}


def prior_names() -> list[str]:
    return sorted(PRIORS)


def check_prior(name: str) -> None:
    if name not in PRIORS:
        raise SettingsError(f"unknown prior {name!r}; {did_you_mean(name, PRIORS)}")


def decoder_of(name: str) -> str:
    check_prior(name)
    return PRIORS[name][1]


def priors_for(decoder: str) -> list[str]:
    """The priors whose tokens the VQGAN model ``decoder`` decodes."""
    return [name for name, (_, d) in PRIORS.items() if d == decoder]  # the table's order: the default first


def load_prior(name: str, context):
    """The prior ``name``, loaded (a class method ``load(context)`` on its class)."""
    check_prior(name)
    module_name, _, class_name = PRIORS[name][0].partition(":")
    return getattr(importlib.import_module(module_name), class_name).load(context)
