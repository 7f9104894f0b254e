"""The package's imports point one way (README "Layout"): each subsystem imports only subsystems below it.

Imports inside functions count too (lazy imports are still dependencies). The entry points (``__main__`` modules)
may import the command line, which is on top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bundler"

#: Bottom to top. A module may import its own subsystem and any subsystem of a lower rank, nothing else.
RANK = {
    "_version": 0, "findings": 0, "display": 0,
    "errors": 1,
    "container": 2, "safety": 2,
    "environment": 3, "integrity": 3,
    "settings": 4,
    "pipelines": 5,
    "__init__": 6,  # the facade: bundler.pack, verify, load, ...
    "crossversion": 7,
    "cli": 8,
}


def _subsystem(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "bundler" or name.startswith("bundler.")}


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")


def test_every_subsystem_has_a_rank() -> None:
    subsystems = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.rglob("*.py")}
    assert subsystems - {"__main__"} == set(RANK)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    upward = sorted(name for name in _imports(path)
                    if _subsystem(name) != own and RANK[_subsystem(name)] >= RANK[own])
    assert upward == [], f"{path.relative_to(PACKAGE)} (rank {RANK[own]}) imports {upward}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("__main__.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_entry_points_only_start_the_command_line(path: Path) -> None:
    assert {_subsystem(name) for name in _imports(path)} == {"cli"}
