"""Every public class and function says what it is for."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCUMENTED = ["clients", "es", "naming"]


def undocumented(package: str) -> list[str]:
    found: list[str] = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if "node_modules" not in path.parts:
            tree = ast.parse(path.read_text())
            found += _missing(tree, str(path.relative_to(ROOT)), "", _contract(tree))
    return found


def _contract(tree: ast.Module) -> set[str]:
    """Methods a Protocol of the module documents: its implementations there need not repeat."""
    return {
        item.name
        for node in tree.body
        if isinstance(node, ast.ClassDef) and any(_named(b, "Protocol") for b in node.bases)
        for item in node.body
        if isinstance(item, ast.FunctionDef) and ast.get_docstring(item)
    }


def _named(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _missing(node: ast.AST, where: str, prefix: str, contract: set[str]) -> list[str]:
    found = []
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if child.name.startswith("_") or (prefix and child.name in contract):
            continue
        if ast.get_docstring(child) is None:
            found.append(f"{where}:{child.lineno} {prefix}{child.name}")
        if isinstance(child, ast.ClassDef):
            found += _missing(child, where, f"{prefix}{child.name}.", contract)
    return found


@pytest.mark.parametrize("package", DOCUMENTED)
def test_public_classes_and_functions_have_docstrings(package: str) -> None:
    assert undocumented(package) == []
