"""The house's shape: each layer imports only the layers below it, and no import cycle.

Imports under ``if TYPE_CHECKING:`` count too: a type-only import of a higher layer is still
a dependency on it. ``__init__.py`` of the package is the lazy public facade and is exempt.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "src" / "mastodon_s3_sync"
PACKAGE = "mastodon_s3_sync"

LAYERS = {
    "errors": 0,
    "outcomes": 0,
    "contract": 1,
    "config": 2,
    "mastodon": 3,
    "storage": 4,
    "copying": 5,
    "transport": 6,
    "ops": 7,
    "demo": 7,
    "cli": 8,
    "__main__": 9,
}
"""Rank of each room (first segment below the package); a module imports only ranks <= its own."""

EDGE_ROOMS = frozenset({"cli", "ops", "demo"})
"""Rooms for people; the Lambda functions and the CDK app never import them."""


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    _module_name(path): path
    for path in sorted(PACKAGE_DIR.rglob("*.py"))
    if path.parent != PACKAGE_DIR or path.name != "__init__.py"
}


def _room(module: str) -> str:
    return module.split(".")[1]


def _internal_imports(path: Path) -> set[str]:
    """The package's modules that ``path`` imports (names of objects are dropped)."""
    return {name for name in _imports(path) if name in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_no_layer_above_its_own(module: str) -> None:
    rank = LAYERS[_room(module)]
    above = sorted(
        imported
        for imported in _internal_imports(MODULES[module])
        if LAYERS[_room(imported)] > rank
    )
    assert above == [], f"{module} (layer {_room(module)}) imports a higher layer"


def test_no_import_cycle_even_type_only() -> None:
    graph = {module: _internal_imports(path) - {module} for module, path in MODULES.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                cycles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


@pytest.mark.parametrize("edge", ["functions", "infra"])
def test_lambda_functions_and_the_stack_import_no_edge_for_people(edge: str) -> None:
    imported = {
        name
        for path in sorted((ROOT / edge).rglob("*.py"))
        for name in _imports(path)
        if name.startswith(f"{PACKAGE}.") and name in MODULES
    }
    assert sorted(name for name in imported if _room(name) in EDGE_ROOMS) == []
