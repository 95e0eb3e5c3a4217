"""Generators: differentiable image makers that CLIP guidance optimises.

Adding a generator = one folder ``generators/NAME/`` with a
:class:`~clipgen.generators.base.Generator` subclass (the contract is in
:mod:`clipgen.generators.base`) + one line in :mod:`clipgen.generators.registry` + one
``clipgen/weights/entries`` module if it has weights + one preset. Nothing in the CLI or
the run changes: its options come from its ``Options`` dataclass (``--set NAME.KEY=V``),
its description from the first line of its class docstring. Helpers that several
generators share are in :mod:`clipgen.generators.common`.
"""

from clipgen.generators.registry import GENERATORS, generator_names, get_generator_class

__all__ = ["GENERATORS", "generator_names", "get_generator_class"]
