"""Execute the notebooks from a clean kernel and save them in place with their outputs (``make notebooks``).

Each notebook runs top to bottom in a fresh kernel started in this folder (so ``import side_by_side`` works as
it does in Jupyter), with the same settings the test (tests/test_notebooks.py) uses; it prints each one's run
time and size. Cells tagged ``timing`` print measured times: the test does not compare their outputs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
NOTEBOOKS = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
TIMING_TAG = "timing"  # a cell whose output holds measured times, left out of the stored-output comparison
CELL_TIMEOUT_S = 300
MAX_BYTES = 1_000_000  # each committed notebook stays under 1 MB


def execute(path: Path) -> tuple[nbformat.NotebookNode, float]:
    """The notebook at ``path`` run from a clean kernel (raises CellExecutionError on any error), and seconds taken."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(HERE)}})
    started = time.perf_counter()
    client.execute()
    return nb, time.perf_counter() - started


def main(paths: list[str]) -> int:
    for path in [Path(p) for p in paths] or NOTEBOOKS:
        nb, seconds = execute(path)
        nbformat.write(nb, path)
        size = path.stat().st_size
        print(f"{path.name}: {seconds:.1f} s, {size / 1000:.0f} kB" + ("  (over 1 MB!)" if size > MAX_BYTES else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
