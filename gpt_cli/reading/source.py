"""What the tree holds: twin pairs, framework-neutral modules, each file's outline, and the tests naming a component.

Nothing here lists files by hand: a twin pair is every ``numpy_gpt/X.py`` that has a
``torch_gpt/X.py`` where neither side only re-exports another module; ``gpt_common/*.py``
and the re-exported modules are the framework-neutral ones.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

TWINS = ("numpy_gpt", "torch_gpt")
NEUTRAL = "gpt_common"


@dataclass(frozen=True)
class Definition:
    """A class or function: ``qualname`` like ``CausalAttention.forward``, 1-based ``line`` of its ``def``/``class``."""

    qualname: str
    line: int
    is_class: bool
    start: int  # 1-based first line, decorators included
    end: int  # 1-based last line


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative to the root, with forward slashes
    text: str
    definitions: tuple[Definition, ...]
    reexports: str | None  # the module a pure re-export module forwards, else None
    summary: str  # the module docstring's first line

    @property
    def lines(self) -> list[str]:
        """The lines as Python and Pygments see them: split at newlines only (not at form feeds)."""
        return split_lines(self.text)


def split_lines(text: str) -> list[str]:
    return (text[:-1] if text.endswith("\n") else text).split("\n")


@dataclass(frozen=True)
class Pair:
    name: str  # X of numpy_gpt/X.py
    numpy: SourceFile
    torch: SourceFile


@dataclass
class Tree:
    root: Path
    pairs: list[Pair] = field(default_factory=list)
    neutral: list[SourceFile] = field(default_factory=list)  # gpt_common modules, then one-sided re-exported ones
    reexports: dict[str, str] = field(default_factory=dict)  # re-export module path -> the path it forwards


def definitions(tree: ast.Module) -> tuple[Definition, ...]:
    """Top-level classes and functions, and the methods of top-level classes, in file order."""
    found = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            is_class = isinstance(node, ast.ClassDef)
            found.append(Definition(node.name, node.lineno, is_class, _start(node), node.end_lineno))
        if isinstance(node, ast.ClassDef):
            methods = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
            found += [Definition(f"{node.name}.{m.name}", m.lineno, False, _start(m), m.end_lineno) for m in methods]
    return tuple(found)


def _start(node: ast.AST) -> int:
    return min([node.lineno] + [d.lineno for d in node.decorator_list])


def reexported_module(tree: ast.Module, package: str) -> str | None:
    """The module that a body of only imports, a docstring and ``__all__`` forwards (the first one imported)."""
    sources = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            sources.append(f"{package}.{node.module}" if node.level else node.module)
        elif isinstance(node, ast.Import):
            sources.append(node.names[0].name)
        elif not (_is_docstring(node) or _assigns_all(node)):
            return None
    # A module forwarding a library's own (torch_gpt/optim.py: torch.optim.AdamW) is still a twin: its page shows
    # the library call beside the NumPy code that writes it out.
    project = ("gpt_common", "numpy_gpt", "torch_gpt")
    return sources[0] if sources and sources[0].split(".")[0] in project else None


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _assigns_all(node: ast.stmt) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return all(isinstance(t, ast.Name) and t.id == "__all__" for t in targets)


def read_source(root: Path, path: str) -> SourceFile:
    text = (root / path).read_text(encoding="utf-8")
    tree = ast.parse(text)
    doc = ast.get_docstring(tree) or ""
    package = path.split("/")[0]
    return SourceFile(path, text, definitions(tree), reexported_module(tree, package), doc.strip().split("\n")[0])


def module_path(module: str) -> str:
    """``numpy_gpt.config`` -> ``numpy_gpt/config.py``."""
    return module.replace(".", "/") + ".py"


def _modules(package: Path) -> list[Path]:
    """The package's component modules: ``__init__`` (the export list) and private modules are not components."""
    return sorted(p for p in package.glob("*.py") if not p.name.startswith("_"))


def _final(reexports: dict[str, str], path: str) -> str:
    """Where a chain of re-exports ends (torch_gpt/x.py -> numpy_gpt/x.py -> gpt_common/x.py)."""
    seen = {path}
    while path in reexports and reexports[path] not in seen:
        path = reexports[path]
        seen.add(path)
    return path


def scan(root: Path) -> Tree:
    """Every twin pair (by file name, numpy side first) and every framework-neutral module under ``root``."""
    tree = Tree(root=root)
    for numpy_path in _modules(root / TWINS[0]):
        torch_path = root / TWINS[1] / numpy_path.name
        if not torch_path.exists():
            continue
        pair = Pair(numpy_path.stem, *(read_source(root, f"{pkg}/{numpy_path.name}") for pkg in TWINS))
        forwarded = {f.path: f.reexports for f in (pair.numpy, pair.torch) if f.reexports}
        tree.reexports.update({path: module_path(module) for path, module in forwarded.items()})
        if not forwarded:
            tree.pairs.append(pair)
    tree.reexports = {path: _final(tree.reexports, target) for path, target in tree.reexports.items()}
    neutral_paths = [p.relative_to(root).as_posix() for p in _modules(root / NEUTRAL)]
    neutral_paths += sorted({p for p in tree.reexports.values() if p.split("/")[0] in TWINS})
    tree.neutral = [read_source(root, p) for p in neutral_paths if (root / p).exists()]
    return tree
