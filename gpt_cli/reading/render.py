"""HTML for the reading site: pair pages, single-file pages (framework-neutral modules, tests) and the index.

Every page is self-contained: the stylesheet is inline, there is no script and no
external resource. Figures computed at build time sit between BUILD_TIME markers,
so a test can strip them and compare the rest byte for byte.
"""

from __future__ import annotations

from html import escape

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from .align import IDENTICAL, SPELLING, SUBSTANCE, Row
from .css import stylesheet
from .proof import Figure, Measure
from .source import Definition, Pair, SourceFile, split_lines
from .tests_index import TestRef

BUILD_TIME = ("<!--build-time-->", "<!--/build-time-->")
KIND_TITLES = {IDENTICAL: "identical", SPELLING: "framework spelling only", SUBSTANCE: "different in substance"}


def highlight_lines(text: str) -> list[str]:
    """One highlighted HTML fragment per source line (Pygments closes its spans at each line end)."""
    html = highlight(text, PythonLexer(stripnl=False, ensurenl=True), HtmlFormatter(nowrap=True))
    return split_lines(html)


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{escape(title)}</title>\n'
            f"<style>{stylesheet()}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def nav(pages: list[tuple[str, str]]) -> str:
    """The bar on every page: the index, then each twin pair's page."""
    links = " ".join(f'<a href="{href}">{escape(name)}</a>' for href, name in pages)
    return f'<nav><a href="index.html"><b>index</b></a> {links}</nav>'


def build_time(html: str) -> str:
    return BUILD_TIME[0] + html + BUILD_TIME[1]


def measure_html(dtype: str, m: Measure) -> str:
    text = f"{dtype} {m.diff:.1e}"
    if m.bound is None:
        return text
    verdict = "within" if m.share <= 1.0 else "OUTSIDE"
    return (f'<span title="the bound at that element, 2 LAMBDA u budget (gpt_common/tolerances.py); the share used is '
            f'the worst element\'s">{text} &le; '
            f"{m.bound:.1e}</span> ({verdict} bound, {m.share:.0%} used)")


def proof_html(fig: Figure | None) -> str:
    """max |NumPy - torch| per dtype, with its bound where gpt_common/tolerances.py gives one."""
    if fig is None:
        return ""
    parts = " &middot; ".join(measure_html(dtype, m) for dtype, m in fig.measures.items())
    return build_time('<span class="proof" title="computed when this page was built, on a random input at small '
                      f'shapes">max |NumPy &minus; torch|: {parts}</span>')


def tests_html(refs: list[TestRef]) -> str:
    if not refs:
        return '<span class="facts">no test names it</span>'
    items = "".join(f'<li><a href="{test_page(r.path)}#{r.name}">{escape(r.path)}::{escape(r.name)}</a></li>'
                    for r in refs)
    return f"<details><summary>{len(refs)} test{'s' * (len(refs) != 1)}</summary><ul>{items}</ul></details>"


def test_page(path: str) -> str:
    """tests/test_x.py -> tests.test_x.html (one flat folder, so every link is relative to the same place)."""
    return path.removesuffix(".py").replace("/", ".") + ".html"


def heading_row(defn: Definition, defined: set[str], refs: list[TestRef], fig: Figure | None) -> str:
    """The component's heading: its anchor, its forward and backward, the tests naming it, the proof."""
    kind = "class" if defn.is_class else "def"
    links = [f'<a href="#{target}">{label}</a>' for label, target in (
        ("forward", f"{defn.qualname}.forward"), ("backward", f"{defn.qualname}.backward"),
        ("backward", f"{defn.qualname}_backward")) if target in defined]
    facts = f'<span class="facts">{" &middot; ".join(links)}</span>' if links else ""
    return (f'<tr class="component" id="{defn.qualname}"><td colspan="4"><h2><a href="#{defn.qualname}">{kind} '
            f"{escape(defn.qualname)}</a></h2>{facts}{proof_html(fig)}{tests_html(refs)}</td></tr>")


def code_cells(side: str, index: int | None, html_lines: list[str]) -> str:
    if index is None:
        return f'<td class="ln"></td><td class="code {side} gap"></td>'
    return f'<td class="ln">{index + 1}</td><td class="code {side}">{html_lines[index]}</td>'


def code_row(row: Row, left: list[str], right: list[str], anchor: str | None) -> str:
    ident = f' id="{anchor}"' if anchor else ""
    return (f'<tr class="{row.kind}"{ident} title="{KIND_TITLES[row.kind]}">'
            f'{code_cells("np", row.left, left)}{code_cells("pt", row.right, right)}</tr>')


def legend() -> str:
    spans = "".join(f'<span class="{k}">{escape(t)}</span>' for k, t in KIND_TITLES.items())
    return f'<p class="legend">Rows: {spans}<span class="gap">on one side only</span></p>'


def _by_row(rows: list[Row], pair: Pair, line_of) -> dict[int, list[Definition]]:
    """Row index -> the definitions whose ``line_of`` line (1-based) that row shows, NumPy side first."""
    where = {("np", r.left): k for k, r in enumerate(rows)} | {("pt", r.right): k for k, r in enumerate(rows)}
    found: dict[int, list[Definition]] = {}
    seen = set()
    for side, source in (("np", pair.numpy), ("pt", pair.torch)):
        for d in source.definitions:
            if d.qualname not in seen:
                seen.add(d.qualname)
                found.setdefault(where[(side, line_of(d) - 1)], []).append(d)
    return found


def pair_table(pair: Pair, rows: list[Row], tests: dict[str, list[TestRef]], figs: dict[str, Figure]) -> str:
    left, right = highlight_lines(pair.numpy.text), highlight_lines(pair.torch.text)
    defined = {d.qualname for s in (pair.numpy, pair.torch) for d in s.definitions}
    headings = _by_row(rows, pair, lambda d: d.start)
    anchors = {k: [d.qualname for d in ds if "." in d.qualname]
               for k, ds in _by_row(rows, pair, lambda d: d.line).items()}
    out = ['<table class="pair"><colgroup><col class="ln"><col><col class="ln"><col></colgroup>',
           f'<thead><tr><th class="file" colspan="2">{pair.numpy.path}</th>'
           f'<th class="file" colspan="2">{pair.torch.path}</th></tr></thead><tbody>']
    for k, row in enumerate(rows):
        out += [heading_row(d, defined, tests.get(d.qualname, []), figs.get(d.qualname))
                for d in headings.get(k, []) if "." not in d.qualname]
        out.append(code_row(row, left, right, (anchors.get(k) or [None])[0]))
    out.append("</tbody></table>")
    return "\n".join(out)


def pair_page(pair: Pair, rows: list[Row], score: tuple[float, int], tests, figs, pages) -> str:
    """``score``: the mirror score and how many NumPy-only backward lines it leaves out."""
    counts = {kind: sum(r.kind == kind for r in rows) for kind in KIND_TITLES}
    summary = ", ".join(f"{n} {KIND_TITLES[k]}" for k, n in counts.items())
    share, backward = score
    left_out = (f"; not counted: {backward} lines of NumPy-only backward code, since the torch twin "
                "differentiates with autograd") if backward else ""
    body = (f"{nav(pages)}\n<h1>{escape(pair.name)}</h1>\n<p>{escape(pair.numpy.summary)}</p>\n"
            f"<p>Mirror score <b>{share:.0%}</b>: the share of rows identical once the spelling table is applied "
            f"({summary}{left_out}).</p>\n{legend()}\n{pair_table(pair, rows, tests, figs)}")
    return page(f"{pair.name}: NumPy and torch side by side", body)


def single_page(source: SourceFile, anchors: dict[int, str], note: str, pages) -> str:
    """One file in one column, ``anchors`` mapping 0-based lines to ids (test functions, definitions)."""
    lines = highlight_lines(source.text)
    rows = "\n".join(f'<tr{f" id={chr(34)}{anchors[i]}{chr(34)}" if i in anchors else ""}><td class="ln">{i + 1}'
                     f'</td><td class="code">{html}</td></tr>' for i, html in enumerate(lines))
    body = (f"{nav(pages)}\n<h1>{escape(source.path)}</h1>\n<p>{note}</p>\n"
            f'<table class="single"><colgroup><col class="ln"><col></colgroup><tbody>\n{rows}\n</tbody></table>')
    return page(source.path, body)
