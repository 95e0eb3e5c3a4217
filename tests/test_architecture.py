"""The shape of the package, checked: layers import downwards only, no import cycles,
imports at the top of every module below ``cli/``, no module over 300 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "clipgen"

#: Top to bottom. A module may import its own layer's modules and any layer below it.
LAYERS = (
    ("cli", ("clipgen.cli", "clipgen.__main__")),
    ("tools", ("clipgen.bench", "clipgen.toy")),
    ("api", ("clipgen.api",)),
    ("run", ("clipgen.run",)),
    ("guidance and outputs", ("clipgen.guidance", "clipgen.outputs")),
    ("generators", ("clipgen.generators",)),
    ("config", ("clipgen.config",)),
    # The registry is a table of names imported lazily, so settings can validate a
    # generator's section without the generators importing settings.
    ("registry", ("clipgen.generators.registry",)),
    # Priors only compute token logits; generators (VQGAN's init=prior) and the run use them.
    ("priors", ("clipgen.priors",)),
    ("weights and hardware", ("clipgen.weights", "clipgen.hardware", "clipgen.kernel_rates", "clipgen.packed_linear",
                              "clipgen.inputs")),
    ("leaves", ("clipgen.errors", "clipgen.atomic", "clipgen")),
)

#: Optional extras (and heavy imports kept out of start-up on purpose) may be imported late.
LATE_IMPORTS_ALLOWED = ("taming", "dall_e", "pytorch_pretrained_biggan", "min_dalle", "yaml", "fcntl", "imageio",
                        "resvg_py", "ray")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, rank = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    assert rank is not None, f"{module} belongs to no layer; add it to LAYERS"
    return rank


def imports(path: Path) -> list[tuple[str, bool, int]]:
    """``(imported module, at module level, line)`` for every import of a clipgen module."""
    tree = ast.parse(path.read_text())
    found = []

    def visit(node, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, top, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for alias in child.names:
                    full = f"{child.module}.{alias.name}"
                    found.append((full if full in MODULES else child.module, top, child.lineno))
            visit(child, nested)

    visit(tree, True)
    return found


def clipgen_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for target, _, _ in imports(path):
            if target.split(".")[0] == "clipgen" and target != name:
                if name == "clipgen":
                    continue  # the package's lazy facade (__getattr__) is the one edge that may point up
                edges[name].add(target if target in MODULES else target.rsplit(".", 1)[0])
    return edges


def test_no_import_cycles():
    edges = clipgen_edges()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def strongconnect(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for vertex in edges:
        if vertex not in index:
            strongconnect(vertex)
    assert cycles == []


def test_imports_go_down_the_layers():
    upward = []
    for name, targets in clipgen_edges().items():
        for target in targets:
            if layer_of(target) < layer_of(name):
                upward.append(f"{name} -> {target} ({LAYERS[layer_of(name)][0]} -> {LAYERS[layer_of(target)][0]})")
    assert upward == []


def test_imports_sit_at_the_top_below_the_cli():
    late = []
    for name, path in MODULES.items():
        if name.startswith("clipgen.cli") or name in ("clipgen", "clipgen.__main__"):
            continue
        for target, top, line in imports(path):
            if not top and target.split(".")[0] not in LATE_IMPORTS_ALLOWED:
                late.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert late == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_300_lines(name):
    assert len(MODULES[name].read_text().splitlines()) <= 300


def test_the_layer_table_knows_every_module():
    assert all(layer_of(name) >= 0 for name in MODULES)
