"""``build_site(root, out)``: scan the tree, align each pair, compute the proof figures, write the pages."""

from __future__ import annotations

from pathlib import Path

from .align import align, mirror_score, numpy_only_backward
from .index import index_page, neutral_page
from .render import page, pair_page, single_page, test_page
from .source import SourceFile, Tree, read_source, scan
from .tests_index import index_tests


def _figures(tree: Tree, pair_name: str, names: list[str]) -> dict:
    """Proof figures, only when the packages Python imports are the ones in ``tree`` (not, say, a copy)."""
    import numpy_gpt

    if Path(numpy_gpt.__file__).resolve().parent.parent != tree.root.resolve():
        return {}
    from .proof import figures

    return figures(pair_name, names)


def _page_targets(tree: Tree) -> dict[str, tuple[str, set[str]]]:
    """Source path -> (its page, the anchors there): pairs on both paths, re-exports on their source's page."""
    targets = {}
    for pair in tree.pairs:
        names = {d.qualname for s in (pair.numpy, pair.torch) for d in s.definitions}
        targets[pair.numpy.path] = targets[pair.torch.path] = (f"{pair.name}.html", names)
    for source in tree.neutral:
        targets[source.path] = (neutral_page(source.path), {d.qualname for d in source.definitions})
    targets.update({path: targets[target] for path, target in tree.reexports.items() if target in targets})
    return targets


def _definition_anchors(source: SourceFile) -> dict[int, str]:
    return {d.line - 1: d.qualname for d in source.definitions}


def notebook_pages(root: Path) -> dict[str, str]:
    """notebooks/NN_x.ipynb -> the page notebooks/NN_x.html: the notebook with its committed outputs (not re-run),
    as nbconvert's basic HTML (no scripts, pictures inline); none without nbconvert (the ``read`` extra)."""
    paths = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    try:
        from nbconvert import HTMLExporter
        from pygments.formatters import HtmlFormatter
    except ImportError:
        return {}
    exporter, styles = HTMLExporter(template_name="basic"), HtmlFormatter().get_style_defs(".highlight")
    top = f'<style>{styles}\n.input_area pre {{ background: #f7f7f7; padding: .4rem; }}</style>'
    top += '<nav><a href="../index.html"><b>index</b></a></nav>'
    return {f"notebooks/{p.stem}.html": page(p.stem, top + exporter.from_filename(str(p))[0]) for p in paths}


def build_site(root: Path | str = ".", out: Path | str = "site", *, proofs: bool = True) -> list[Path]:
    """Write the site for the tree at ``root`` into ``out``; returns the pages written, index first."""
    root, out = Path(root), Path(out)
    tree, tests = scan(root), index_tests(root)
    nav_pages = [(f"{p.name}.html", p.name) for p in tree.pairs]
    pages: dict[str, str] = {}
    scores = {}
    for pair in tree.pairs:
        rows = align(pair)
        backward = numpy_only_backward(pair)
        scores[pair.name] = mirror_score(rows, backward)
        top = [d.qualname for d in pair.numpy.definitions if "." not in d.qualname]
        figs = _figures(tree, pair.name, top) if proofs else {}
        pages[f"{pair.name}.html"] = pair_page(pair, rows, (scores[pair.name], len(backward)), tests, figs, nav_pages)
    for source in tree.neutral:
        note = "Framework-neutral: defined once, imported by both twins."
        pages[neutral_page(source.path)] = single_page(source, _definition_anchors(source), note, nav_pages)
    for path in sorted({ref.path for refs in tests.values() for ref in refs}):
        source = read_source(root, path)
        anchors = {d.line - 1: d.qualname for d in source.definitions if d.qualname.startswith("test")}
        pages[test_page(path)] = single_page(source, anchors, "Tests linked from the pair pages.", nav_pages)
    notebooks = notebook_pages(root)
    index = index_page(tree, scores, _page_targets(tree), nav_pages, sorted(notebooks))
    pages = {"index.html": index} | pages | notebooks
    for name, html in pages.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(html, encoding="utf-8")
    return [out / name for name in pages]
