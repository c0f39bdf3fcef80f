"""The package layout the README promises: three packages, and dependencies that only point one way.

``gpt_common`` is framework-neutral; ``numpy_gpt`` imports NumPy and ``gpt_common`` (never torch);
``torch_gpt`` imports torch and ``gpt_common`` (never ``numpy_gpt``). Checked twice: statically over
every import statement, and by importing each package in a fresh interpreter and looking at what
got loaded. Also: the README's import paths and its first example still run.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "gpt_common": {"torch", "numpy_gpt", "torch_gpt", "gpt_cli"},
    "numpy_gpt": {"torch", "torch_gpt", "gpt_cli"},
    "torch_gpt": {"numpy_gpt", "gpt_cli"},
}


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module an import statement in ``path`` names (relative imports excluded)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_statement_crosses_the_layout(package):
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & FORBIDDEN[package])
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    offenders = {path: names for path, names in offenders.items() if names}
    assert offenders == {}, f"{package} must not import {sorted(FORBIDDEN[package])}: {offenders}"


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_importing_a_package_loads_nothing_it_must_not(package):
    probe = f"import sys, {package}; print(sorted({{m.split('.')[0] for m in sys.modules}}))"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert not FORBIDDEN[package] & set(ast.literal_eval(loaded.stdout.strip()))


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
    assert float(done.stdout.strip()) < 1e-4  # float32 logits of order 1 agree to rounding (tests/tolerances.py)
