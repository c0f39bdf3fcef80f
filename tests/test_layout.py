"""The package layout the README promises, and dependencies that only point one way.

``gpt_common`` is framework-neutral, and its model core never reaches into its ``training`` package;
``numpy_gpt`` imports NumPy and ``gpt_common`` (never torch); ``torch_gpt`` imports torch and ``gpt_common``
(never ``numpy_gpt``); ``gpt_cli`` is a tool over all three. No shipped package imports ``tests``, and only
``benchmarks`` itself imports ``benchmarks``; no package's modules import each other in a cycle. Each rule
covers a package with its subpackages. Checked twice:
statically over every import statement, and by importing each package's modules in a fresh interpreter and
looking at what got loaded. Also: the README's import paths and its first example still run.
"""

import ast
import graphlib
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("gpt_common", "numpy_gpt", "torch_gpt", "gpt_cli", "benchmarks")
NEVER = {"tests", "benchmarks"}  # what no shipped package imports (benchmarks excepted for itself)


@dataclass(frozen=True)
class Rule:
    """The modules of ``scope`` (a dotted package, subpackages included, less ``besides``) import none of
    ``forbidden`` (a name covers its submodules)."""

    scope: str
    forbidden: frozenset
    besides: str | None = None

    def __str__(self) -> str:
        return self.scope + (f" (less {self.besides})" if self.besides else "")


RULES = (
    Rule("gpt_common", frozenset({"torch", "numpy_gpt", "torch_gpt", "gpt_cli"} | NEVER)),
    Rule("gpt_common", frozenset({"gpt_common.training"}), besides="gpt_common.training"),
    Rule("numpy_gpt", frozenset({"torch", "torch_gpt", "gpt_cli"} | NEVER)),
    Rule("torch_gpt", frozenset({"numpy_gpt", "gpt_cli"} | NEVER)),
    Rule("gpt_cli", frozenset(NEVER)),
    Rule("benchmarks", frozenset(NEVER - {"benchmarks"})),
)


def module_name(path: Path) -> str:
    """``gpt_common/training/run.py`` -> ``gpt_common.training.run``; a package's ``__init__`` is the package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Dotted names of every module an import statement in ``path`` names, relative imports resolved."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names |= {module} if node.module else {f"{module}.{alias.name}" for alias in node.names}
    return names


def covered(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def modules_of(rule: Rule) -> list[Path]:
    paths = sorted((ROOT / rule.scope.replace(".", "/")).rglob("*.py"))
    return [p for p in paths if not (rule.besides and covered(module_name(p), [rule.besides]))]


def test_every_shipped_package_has_rules():
    assert {rule.scope.split(".")[0] for rule in RULES} == set(SHIPPED)
    assert all(modules_of(rule) for rule in RULES if not rule.besides)


@pytest.mark.parametrize("rule", RULES, ids=str)
def test_no_import_statement_crosses_the_layout(rule):
    offenders = {str(p.relative_to(ROOT)): sorted(n for n in imported_modules(p) if covered(n, rule.forbidden))
                 for p in modules_of(rule)}
    offenders = {path: names for path, names in offenders.items() if names}
    assert offenders == {}, f"{rule} must not import {sorted(rule.forbidden)}: {offenders}"


@pytest.mark.parametrize("rule", RULES, ids=str)
def test_importing_a_package_loads_nothing_it_must_not(rule):
    modules = [module_name(p) for p in modules_of(rule) if p.name != "__main__.py"]  # __main__ runs its command
    probe = f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\nprint(sorted(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    offenders = [m for m in ast.literal_eval(loaded.stdout.strip()) if covered(m, rule.forbidden)]
    assert offenders == [], f"importing {rule} loaded {offenders}"


@pytest.mark.parametrize("package", SHIPPED)
def test_no_import_cycle_inside_a_package(package):
    """Module to module, imports inside functions included, the arrows form no cycle (a package's own
    ``__init__``, which re-exports its modules, is left out)."""
    modules = {module_name(p): p for p in (ROOT / package).rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for target in imported_modules(path):
            while target and target not in modules:  # ``from .config import X`` names the module, not X
                target = target.rpartition(".")[0]
            targets.add(target)
        graph[name] = targets - {name, package, ""}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle in {package}: {' -> '.join(error.args[1])}")


def test_every_twin_module_has_its_twin():
    numpy_files = {p.name for p in (ROOT / "numpy_gpt").glob("*.py")}
    torch_files = {p.name for p in (ROOT / "torch_gpt").glob("*.py")}
    assert numpy_files == torch_files


def readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)


def test_every_import_in_the_readme_works():
    statements = [line.split("#")[0].strip() for block in readme_python_blocks() for line in block.splitlines()]
    statements = [s for s in statements if s.startswith(("import ", "from "))]
    assert len(statements) >= 5  # the README's examples do import things: this test reads them
    code = "\n".join(statements)
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)


@pytest.mark.slow
def test_the_readme_first_example_runs_and_prints_a_rounding_level_difference():
    done = subprocess.run([sys.executable, "-c", readme_python_blocks()[0]], cwd=ROOT, capture_output=True, text=True,
                          check=True)
    assert float(done.stdout.strip()) < 1e-4  # float32 logits of order 1 agree to rounding (gpt_common/tolerances.py)
