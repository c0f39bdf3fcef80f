"""Which tests name a component: test functions that mention the name, directly or through a module constant
or helper."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from .source import TWINS


@dataclass(frozen=True)
class TestRef:
    path: str  # tests/test_x.py
    name: str  # test function name
    line: int


def _names(node: ast.AST, strings: bool) -> set[str]:
    """Every identifier and attribute name used under ``node``; with ``strings``, identifier-like strings too
    (tests often pick a class by name: ``getattr(numpy_gpt, name)`` over ``["SelfAttention", ...]``)."""
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            found.add(sub.attr)
        elif strings and isinstance(sub, ast.Constant) and isinstance(sub.value, str) and sub.value.isidentifier():
            found.add(sub.value)
    return found


def _test_names(module: ast.Module) -> dict[str, set[str]]:
    """Names each test function uses: its own (strings included), those of the module constants it uses
    (strings included), and those of the module helpers it calls (names only: a helper's table of strings
    would tie every test that calls it to every entry)."""
    functions = {n.name: n for n in module.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    constants = {t.id: _names(n.value, True) for n in module.body if isinstance(n, ast.Assign)
                 for t in n.targets if isinstance(t, ast.Name)}
    helpers = {name: _names(node, False) for name, node in functions.items()}
    found = {}
    for name, node in functions.items():
        if name.startswith("test"):
            used = _names(node, True)
            found[name] = used.union(*(constants[c] for c in used & constants.keys()),
                                     *(helpers[h] for h in used & helpers.keys() if h != name))
    return found


def imports_both_twins(module: ast.Module) -> bool:
    """Whether the module imports from numpy_gpt and from torch_gpt: where the tests comparing the two live."""
    imported = {a.name for n in ast.walk(module) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(module) if isinstance(n, ast.ImportFrom) and n.module}
    return all(any(m.split(".")[0] == twin for m in imported) for twin in TWINS)


def index_tests(root: Path) -> dict[str, list[TestRef]]:
    """name -> the tests (in file and line order) whose body, decorators, constants or helpers use that name,
    in the test modules that import both twins."""
    index: dict[str, list[TestRef]] = {}
    for path in sorted((root / "tests").glob("test_*.py")):
        module = ast.parse(path.read_text(encoding="utf-8"))
        if not imports_both_twins(module):
            continue
        lines = {n.name: n.lineno for n in module.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        for name, used in _test_names(module).items():
            ref = TestRef(path.relative_to(root).as_posix(), name, lines[name])
            for used_name in used:
                index.setdefault(used_name, []).append(ref)
    return index
