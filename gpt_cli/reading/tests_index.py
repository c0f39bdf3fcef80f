"""Which tests name a component: test functions (with the module helpers they call) that mention the name."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TestRef:
    path: str  # tests/test_x.py
    name: str  # test function name
    line: int


def _names(node: ast.AST) -> set[str]:
    """Every identifier and attribute name used under ``node``."""
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            found.add(sub.attr)
    return found


def _function_names(module: ast.Module) -> dict[str, set[str]]:
    """Names used by each top-level function, counting once the names of the module's own functions it calls."""
    direct = {n.name: _names(n) for n in module.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return {name: used.union(*(direct[h] for h in used & direct.keys() if h != name)) for name, used in direct.items()}


def index_tests(root: Path) -> dict[str, list[TestRef]]:
    """name -> the tests (in file and line order) whose body, decorators or helpers use that name."""
    index: dict[str, list[TestRef]] = {}
    for path in sorted((root / "tests").glob("test_*.py")):
        module = ast.parse(path.read_text(encoding="utf-8"))
        lines = {n.name: n.lineno for n in module.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        for name, used in _function_names(module).items():
            if name.startswith("test"):
                ref = TestRef(path.relative_to(root).as_posix(), name, lines[name])
                for used_name in used:
                    index.setdefault(used_name, []).append(ref)
    return index
