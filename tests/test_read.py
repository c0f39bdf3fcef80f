"""The reading site (``python -m gpt_cli read``): every twin pair has a page holding both files in full,
aligned so that twin definitions share a row, with substance told apart from spelling; deterministic;
self-contained (no network, no script); and laid out side by side in a real browser.

Budget: about 10 s on 2 cores (two full builds, one small altered-tree build, three Chromium renders).
"""

from __future__ import annotations

import ast
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gpt_cli.__main__ import main
from gpt_cli.reading import build_site
from gpt_cli.reading.render import BUILD_TIME
from gpt_cli.reading.spelling import normalise

ROOT = Path(__file__).resolve().parent.parent
# Pairs that exist today; the site must have at least these (new twins such as loss/optim/train only add pages).
EXPECTED_PAIRS = {"activations", "attention", "block", "checkpoint", "data", "feed_forward", "generate",
                  "kv_cache", "layer_norm", "layers", "model", "sampling", "tokenizer"}
ROW = re.compile(r'<tr class="(identical|spelling|substance)"[^>]*>(.*?)</tr>')
CELL = re.compile(r'<td class="ln">(\d*)</td><td class="code (np|pt)( gap)?">(.*?)</td>')
BUILD_TIME_SPAN = re.compile(re.escape(BUILD_TIME[0]) + ".*?" + re.escape(BUILD_TIME[1]), re.S)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build_site(ROOT, out)
    return out


def rows(page: str) -> list[tuple[str, dict]]:
    """(kind, {side: (1-based line or None, text)}) for every code row of a pair page."""
    found = []
    for kind, cells in ROW.findall(page):
        sides = {}
        for line, side, gap, content in CELL.findall(cells):
            sides[side] = (None, None) if gap else (int(line), html.unescape(re.sub(r"<[^>]+>", "", content)))
        found.append((kind, sides))
    return found


def side_text(page: str, side: str) -> str:
    return "\n".join(text for _, sides in rows(page) for line, text in [sides[side]] if line is not None)


def twin_files() -> list[str]:
    """Every numpy_gpt/X.py (X not private) that has a torch_gpt/X.py."""
    return sorted(p.stem for p in (ROOT / "numpy_gpt").glob("[!_]*.py") if (ROOT / "torch_gpt" / p.name).exists())


def test_every_twin_pair_has_a_page_and_every_re_export_is_listed(site):
    index = (site / "index.html").read_text()
    pages = {p.stem for p in site.glob("*.html")}
    assert EXPECTED_PAIRS <= pages
    for name in twin_files():
        if name not in pages:  # only a module re-exported by a twin may go without a pair page
            assert f"<code>torch_gpt/{name}.py</code>" in index or f"<code>numpy_gpt/{name}.py</code>" in index
    for name in ("config", "validation", "bpe"):  # defined once in gpt_common; both twins re-export them
        entry = rf"<code>gpt_common/{name}\.py</code></a>: [^<]+\(re-exported by "
        assert re.search(entry + rf"<code>numpy_gpt/{name}\.py</code>, <code>torch_gpt/{name}\.py</code>\)", index)
    layout = re.search(r"^## Layout\n.*?^```\n(.*?)^```", (ROOT / "README.md").read_text(), flags=re.M | re.S)[1]
    assert f"<pre>{html.escape(layout.rstrip())}</pre>" in index  # the README's layout, as it stands


def test_each_page_holds_both_files_in_full(site):
    for name in EXPECTED_PAIRS:
        page = (site / f"{name}.html").read_text()
        for side, package in (("np", "numpy_gpt"), ("pt", "torch_gpt")):
            text = (ROOT / package / f"{name}.py").read_text()
            assert side_text(page, side) == text.removesuffix("\n"), (name, side)


def method_lines(path: Path, method: str) -> dict[str, int]:
    """Class name -> 1-based line of its ``def method``."""
    tree = ast.parse(path.read_text())
    return {c.name: f.lineno for c in tree.body if isinstance(c, ast.ClassDef)
            for f in c.body if isinstance(f, ast.FunctionDef) and f.name == method}


def test_forward_lines_of_the_same_class_share_a_row(site):
    checked = 0
    for name in EXPECTED_PAIRS:
        numpy_lines = method_lines(ROOT / "numpy_gpt" / f"{name}.py", "forward")
        torch_lines = method_lines(ROOT / "torch_gpt" / f"{name}.py", "forward")
        shared = {(sides["np"][0], sides["pt"][0]) for _, sides in rows((site / f"{name}.html").read_text())}
        for cls in numpy_lines.keys() & torch_lines.keys():
            assert (numpy_lines[cls], torch_lines[cls]) in shared, (name, cls)
            checked += 1
    assert checked >= 10  # GELU, LayerNorm, four attention classes, FeedForward, TransformerBlock, GPTModel, Dropout


def test_anchors_and_links_resolve(site):
    """Every href points at a page of the site (with an id that exists there): nothing is fetched from outside."""
    ids = {p.name: set(re.findall(r'<tr[^>]* id="([^"]+)"', p.read_text())) for p in site.glob("*.html")}
    ids |= {f"notebooks/{p.name}": set() for p in site.glob("notebooks/*.html")}  # tests/test_notebooks.py
    attention = (site / "attention.html").read_text()
    for cls in ("SelfAttention", "CausalAttention", "MultiHeadAttention", "MultiHeadAttention.forward"):
        assert cls in ids["attention.html"]
    test_link = r'<a href="tests\.test_attention\.html#test_\w+">tests/test_attention\.py::test_\w+</a>'
    assert re.search(test_link, attention)
    for page in site.glob("*.html"):
        text = page.read_text()
        assert not re.search(r"<(script|link|img|iframe|object)\b|<[a-z]+ [^>]*\bsrc=", text), page.name
        assert "url(" not in re.search(r"<style>(.*?)</style>", text, re.S)[1]  # no fonts or images fetched
        for href in re.findall(r'<a href="([^"]*)"', text):  # source text has its < escaped: these are links
            target, _, anchor = href.partition("#")
            target = target or page.name
            assert target in ids, (page.name, href)
            assert not anchor or anchor in ids[target], (page.name, href)


MEASURE_TEXT = re.compile(r"(float32|float64) ([0-9.e+-]+) &le; ([0-9.e+-]+)</span> \((within|OUTSIDE) bound")


def test_proof_figures_sit_in_the_build_time_element_and_meet_their_bounds(site):
    attention = (site / "attention.html").read_text()
    spans = BUILD_TIME_SPAN.findall(attention)
    assert len(spans) >= 6  # scaled_attention_weights and the five attention classes
    for name in EXPECTED_PAIRS:
        for span in BUILD_TIME_SPAN.findall((site / f"{name}.html").read_text()):
            measures = MEASURE_TEXT.findall(span)
            assert [m[0] for m in measures] == ["float32", "float64"], span  # every probe here has a budget
            for _, diff, bound, verdict in measures:
                assert verdict == "within" and float(diff) <= float(bound), span


def copy_twins(dest: Path) -> Path:
    """The two twin packages (and the framework-neutral one, where present) copied under ``dest``."""
    for folder in ("numpy_gpt", "torch_gpt", "gpt_common"):
        if (ROOT / folder).exists():
            shutil.copytree(ROOT / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__", "assets"))
    return dest


def row_of(page: str, side: str, needle: str) -> tuple[str, dict]:
    return next(r for r in rows(page) if r[1][side][1] is not None and needle in r[1][side][1])


def test_an_altered_line_is_marked_as_substance(tmp_path):
    """count_parameters' tied line differs by spelling only (.size/.numel()); counting the head twice is substance."""
    tree = copy_twins(tmp_path / "tree")
    line = "tied=untied - model.out_head.weight.numel())"
    before = build_site(tree, tmp_path / "before", proofs=False)[0].parent / "model.html"
    assert row_of(before.read_text(), "pt", line)[0] == "spelling"
    torch_file = tree / "torch_gpt" / "model.py"
    torch_file.write_text(torch_file.read_text().replace(line, "tied=untied - 2 * model.out_head.weight.numel())"))
    after = build_site(tree, tmp_path / "after", proofs=False)[0].parent / "model.html"
    kind, sides = row_of(after.read_text(), "pt", "tied=untied - 2 * model")
    assert kind == "substance"
    assert "tied=untied - model.out_head.weight.size)" in sides["np"][1]  # still beside its twin, not pushed apart
    assert row_of(after.read_text(), "pt", "def forward")[0] == row_of(before.read_text(), "pt", "def forward")[0]


def test_the_same_tree_gives_the_same_bytes_apart_from_build_time_figures(site, tmp_path):
    again = tmp_path / "again"
    build_site(ROOT, again)
    names = sorted(p.name for p in site.glob("*.html"))
    assert names == sorted(p.name for p in again.glob("*.html"))
    for name in names:
        first, second = ((d / name).read_text() for d in (site, again))
        assert BUILD_TIME_SPAN.sub("", first) == BUILD_TIME_SPAN.sub("", second), name


@pytest.mark.parametrize("numpy_line, torch_line, same", [
    ("import numpy as np", "import torch", True),
    ("y = x.swapaxes(-1, -2).sum(axis=-1, keepdims=True)", "y = x.transpose(-1, -2).sum(dim=-1, keepdim=True)", True),
    ("def f(x: np.ndarray) -> np.ndarray:", "def f(x: torch.Tensor) -> torch.Tensor:", True),
    ("x = np.concatenate([a, b], axis=1)", "x = torch.cat([a, b], dim=1)", True),
    ("n = x.ndim", "n = x.dim", False),  # dim= is a keyword, not the end of ndim
    ("x = np.exp(x)", "x = torch.log(x)", False),
    ("y = x.sum(axis=-1)", "y = x.sum(dim=-2)", False),
])
def test_spelling_table(numpy_line, torch_line, same):
    assert (normalise(numpy_line) == normalise(torch_line)) is same


TINY = {
    "gpt_common/config.py": '"""Config: one definition for both twins."""\n\nSIZE = 3\n',
    "numpy_gpt/config.py": '"""Re-exported."""\n\nfrom gpt_common.config import *  # noqa\n',
    "torch_gpt/config.py": '"""Re-exported."""\n\nfrom gpt_common.config import SIZE  # noqa\n\n__all__ = ["SIZE"]\n',
    "numpy_gpt/twin.py": "import numpy as np\n\n\ndef f(x):\n    return np.exp(x, axis=0)\n"
                         "\n\nclass G:\n    def forward(self, x):\n        return x\n\n"
                         "    def backward(self, dy):\n        return dy\n",
    "torch_gpt/twin.py": "import torch\n\n\ndef f(x):\n    return torch.exp(x, dim=0)\n"
                         "\n\nclass G:\n    def forward(self, x):\n        return x\n",
}


def test_the_cli_on_a_tree_with_a_framework_neutral_package(tmp_path, capsys):
    """A two-file pair gets a page; gpt_common's module, re-exported by both twins, is listed, not paired."""
    for path, text in TINY.items():
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text(text)
    out = tmp_path / "site"
    assert main(["read", "--root", str(tmp_path), "--out", str(out), "--no-proofs"]) == 0
    assert str(out / "index.html") in capsys.readouterr().out
    index = (out / "index.html").read_text()
    assert '<a href="twin.html">twin</a>' in index and not (out / "config.html").exists()
    assert ('<a href="gpt_common.config.html"><code>gpt_common/config.py</code></a>: Config: one definition for '
            "both twins. (re-exported by <code>numpy_gpt/config.py</code>, <code>torch_gpt/config.py</code>)") in index
    twin = (out / "twin.html").read_text()
    assert [kind for kind, _ in rows(twin)] == ["spelling", "identical", "identical", "identical", "spelling"] + [
        "identical"] * 5 + ["substance"] * 3  # G.backward, NumPy only: its two lines and the blank before it
    assert '<a href="#G.forward">forward</a> &middot; <a href="#G.backward">backward</a>' in twin
    assert re.search(r'<tr class="substance" id="G.backward"[^>]*><td class="ln">12</td>', twin)


# --- in a real browser -------------------------------------------------------------------------------------------

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)
MEASURE = """<script>
(function () {
  var out = {rows: 0, apart: [], overflow: [], pageOverflow: false};
  document.querySelectorAll("table.pair tr").forEach(function (tr) {
    var np = tr.querySelector("td.code.np"), pt = tr.querySelector("td.code.pt");
    if (!np || !pt) return;
    out.rows++;
    var a = np.getBoundingClientRect(), b = pt.getBoundingClientRect();
    var sideBySide = a.right <= b.left + 0.5 && Math.abs(a.top - b.top) < 0.5 && a.width > 150 && b.width > 150;
    if (!sideBySide && out.apart.length < 5) out.apart.push(tr.rowIndex);
  });
  document.querySelectorAll("td, th").forEach(function (cell) {
    var range = document.createRange();
    range.selectNodeContents(cell);
    var box = cell.getBoundingClientRect(), spills = cell.scrollWidth > cell.clientWidth + 1;
    Array.prototype.forEach.call(range.getClientRects(), function (r) {  // one rectangle per line box of text
      if (r.width > 0 && (r.right > box.right + 1 || r.left < box.left - 1)) spills = true;
    });
    if (spills && out.overflow.length < 5) out.overflow.push(cell.className + ": " + cell.textContent.slice(0, 80));
  });
  out.pageOverflow = document.documentElement.scrollWidth > window.innerWidth + 1;
  var pre = document.createElement("pre");
  pre.id = "layout";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


def render_layout(page: Path, width: int, tmp_path: Path) -> dict:
    """Open ``page`` in headless Chromium at ``width`` px and return what MEASURE found."""
    probe = tmp_path / f"probe-{width}-{page.name}"
    probe.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},900", "--dump-dom",
               probe.as_uri()]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    return json.loads(html.unescape(re.search(r'<pre id="layout">(.*?)</pre>', dom, re.S)[1]))


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed")
@pytest.mark.parametrize("name, width", [("attention.html", 1280), ("attention.html", 800), ("index.html", 800)])
def test_columns_sit_side_by_side_and_no_text_overflows(site, tmp_path, name, width):
    layout = render_layout(site / name, width, tmp_path)
    assert layout["overflow"] == [] and not layout["pageOverflow"], layout
    if name != "index.html":
        assert layout["rows"] == len(rows((site / name).read_text())) and layout["apart"] == [], layout
