"""The learner's notebooks (notebooks/): committed executed, small, listed in the README, and reproducible.

Fast checks: the five notebooks are valid nbformat, each under 1 MB, with every code cell executed in order from
a fresh kernel, no error stored, and a picture; the README links each one. The slow check (``make test-all``)
executes each from a clean kernel, which fails on any error, and compares the fresh outputs with the committed
ones cell by cell, except in cells tagged ``timing``. Two things are compared loosely, because they depend on the
machine's BLAS kernels rather than on the code: figures printed in e-notation (the NumPy-vs-torch differences
and their bounds, rounding noise by definition) and the pixels of a picture (at most 1% may differ).
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from notebooks.execute import MAX_BYTES, NOTEBOOKS, TIMING_TAG, execute

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["01_embedding", "02_attention", "03_implementation", "04_training", "05_benchmarks"]
ROUNDING_FIGURES = re.compile(r"\d\.\de[+-]\d+|\d+% of (its own|it)")
PIXELS_ALLOWED_TO_DIFFER = 0.01


def code_cells(nb) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def test_the_five_notebooks_are_there():
    assert [p.stem for p in NOTEBOOKS] == NAMES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_executed_with_outputs_and_small(path):
    assert path.stat().st_size < MAX_BYTES
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    cells = code_cells(nb)
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1)), "run top to bottom, once"
    outputs = [out for cell in cells for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert any("image/png" in out.get("data", {}) for out in outputs), "each notebook has a picture"
    plain = [out.get("data", {}).get("text/plain", "") for out in outputs]
    assert not [t for t in plain if re.search(r" at 0x[0-9a-f]+>", t)], "an object's address is not reproducible"
    assert sum(bool(cell.outputs) for cell in cells) >= len(cells) // 2


def test_the_readme_links_every_notebook_and_starts_learners_at_the_first():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"notebooks/{name}.ipynb" in readme
    first_screen = "\n".join(readme.split("\n")[:40])
    assert "notebooks/01_embedding.ipynb" in first_screen


def _pixels(png_base64: str) -> np.ndarray:
    from matplotlib.image import imread

    return imread(io.BytesIO(base64.b64decode(png_base64)), format="png")


def comparable(output) -> tuple[tuple, dict]:
    """(what is compared exactly, pictures by MIME type): texts with their rounding-noise figures masked."""
    if output.output_type == "stream":
        return ("stream", output.name, ROUNDING_FIGURES.sub("#", output.text)), {}
    data = output.get("data", {})
    texts = tuple(sorted((k, ROUNDING_FIGURES.sub("#", v)) for k, v in data.items() if k.startswith("text/")))
    return (output.output_type, texts), {k: _pixels(v) for k, v in data.items() if k == "image/png"}


def merged(outputs) -> list:
    """The outputs with consecutive stream chunks of one stream joined (where the kernel cuts them varies)."""
    result = []
    for out in outputs:
        if out.output_type == "stream" and result and result[-1].output_type == "stream" \
                and result[-1].name == out.name:
            result[-1] = nbformat.v4.new_output("stream", name=out.name, text=result[-1].text + out.text)
        else:
            result.append(out)
    return result


def assert_same_outputs(fresh_cell, committed_cell, where: str) -> None:
    fresh = [comparable(o) for o in merged(fresh_cell.outputs)]
    committed = [comparable(o) for o in merged(committed_cell.outputs)]
    assert len(fresh) == len(committed), f"{where}: {len(fresh)} outputs now, {len(committed)} committed"
    for (new, new_images), (old, old_images) in zip(fresh, committed):
        assert new == old, f"{where}: output differs"
        assert new_images.keys() == old_images.keys(), f"{where}: pictures differ"
        for key, image in new_images.items():
            assert image.shape == old_images[key].shape, f"{where}: picture size differs"
            differ = np.mean(np.any(np.abs(image - old_images[key]) > 1.5 / 255, axis=-1))
            assert differ <= PIXELS_ALLOWED_TO_DIFFER, f"{where}: {differ:.1%} of the picture's pixels differ"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_from_a_clean_kernel_and_gives_the_committed_outputs(path):
    """Executes the notebook (any error fails here); `make notebooks` rewrites the committed outputs."""
    committed = nbformat.read(path, as_version=4)
    fresh, _ = execute(path)
    pairs = list(zip(code_cells(fresh), code_cells(committed)))
    assert len(pairs) == len(code_cells(committed))
    for index, (new, old) in enumerate(pairs):
        if TIMING_TAG not in old.metadata.get("tags", []):
            assert_same_outputs(new, old, f"{path.name}, code cell {index + 1} (run `make notebooks` if intended)")


def test_the_reading_site_renders_each_notebook_with_its_outputs_and_links_it():
    from gpt_cli.reading.index import notebooks_section
    from gpt_cli.reading.site import notebook_pages

    pages = notebook_pages(ROOT)
    assert sorted(pages) == [f"notebooks/{name}.html" for name in NAMES]
    for name, html in pages.items():
        assert "data:image/png;base64," in html  # the committed outputs, pictures inline
        assert "|NumPy - torch|" in html or "benchmarks" in name
        assert not re.search(r"<(script|link|iframe|object)\b|\b(src|href)=\"(https?:)?//", html)  # offline
        assert '<a href="../index.html">' in html
    links = notebooks_section(sorted(pages))
    assert all(f'<a href="notebooks/{name}.html">{name}</a>' in links for name in NAMES)
