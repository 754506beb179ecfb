"""Imports flow one way: controller, firmware_bridge and server depend on protocol, never sideways."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "protocol": {"controller", "firmware_bridge", "server", "demo", "cli"},
    "controller": {"server", "firmware_bridge", "demo", "cli"},
    "firmware_bridge": {"server", "controller", "demo", "cli"},
    "server": {"controller", "firmware_bridge", "demo", "cli"},
}


def _imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_only_downstream(package: str) -> None:
    sources = sorted((ROOT / package).rglob("*.py"))
    assert sources, f"{package}/ has Python files"
    wrong = {
        str(path.relative_to(ROOT)): sorted(_imported(path) & FORBIDDEN[package])
        for path in sources
        if _imported(path) & FORBIDDEN[package]
    }
    assert wrong == {}, f"{package} must not import {sorted(FORBIDDEN[package])}"
