"""The index page: how to read the pages, the pairs with their mirror scores, the README's component table
(linked), the framework-neutral modules, the README's layout, the spelling table and the shape legend."""

from __future__ import annotations

import ast
import re
from html import escape

from .render import legend, nav, page
from .source import Tree
from .spelling import SPELLINGS

HOW_TO_READ = (
    "Each page puts a file of <code>numpy_gpt/</code> (left) beside its twin in <code>torch_gpt/</code> (right), "
    "line by line. Classes and functions are matched by name first, so a <code>def forward</code> always shares "
    "a row with its twin; the lines between are aligned by difflib after the spelling table below is applied to "
    "both sides. A white row is the same text on both sides; a blue row (marked ~) differs only in framework "
    "spelling; an orange row (marked &ne;) differs in substance, and a hatched cell means the line exists on one "
    "side only. Each component's heading links to the tests that name it and shows the largest |NumPy &minus; "
    "torch| measured when the page was built, on a random input at small shapes, in float32 and float64, "
    "beside the bound it must meet: the project's rule in <code>gpt_common/tolerances.py</code>, "
    "|NumPy &minus; torch| &le; 2 &Lambda; u &times; budget element by element, where u is the unit roundoff, "
    "&Lambda; the probabilistic-rounding constant (Higham &amp; Mary, 2019) and the budget the rounding error "
    "the component's summed terms allow, carried through its steps."
)


def markdown_cell(text: str) -> str:
    """The little Markdown the README's table cells use: `code`, **bold**, escaped pipes."""
    html = escape(text.replace("\\|", "|").strip(), quote=False)
    html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", html)


def readme_table(readme: str) -> list[list[str]]:
    """The rows (header first) of the README table whose header starts with ``| component |``."""
    rows, inside = [], False
    for line in readme.split("\n"):
        inside = inside or line.startswith("| component |")
        if inside and not line.startswith("|"):
            break
        if inside and not re.fullmatch(r"\|[-| :]+\|", line.strip()):
            rows.append([c for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def link_cell(cell: str, pages: dict[str, tuple[str, set[str]]]) -> str:
    """A README cell with each file path linked to its page and each `Name` to its anchor there."""
    html = markdown_cell(cell)
    for path in sorted(set(re.findall(r"\b\w+/\w+\.py\b", html))):
        if path in pages:
            html = html.replace(f"<code>{path}</code>", f'<a href="{pages[path][0]}"><code>{path}</code></a>')
    return html


def component_cell(cell: str, target: tuple[str, set[str]] | None) -> str:
    html = markdown_cell(cell)
    if target is None:
        return html
    href, names = target
    return re.sub(r"<code>(\w+)</code>",
                  lambda m: f'<a href="{href}#{m[1]}"><code>{m[1]}</code></a>' if m[1] in names else m[0], html)


def components_section(readme: str, pages: dict[str, tuple[str, set[str]]]) -> str:
    rows = readme_table(readme)
    if not rows:
        return ""
    head = "".join(f"<th>{markdown_cell(c)}</th>" for c in rows[0])
    body = []
    for cells in rows[1:]:
        paths = re.findall(r"\b\w+/\w+\.py\b", "".join(cells[2:]))
        target = next((pages[p] for p in paths if p in pages), None)
        tds = [component_cell(cells[0], target)] + [link_cell(c, pages) for c in cells[1:]]
        body.append("<tr>" + "".join(f"<td>{t}</td>" for t in tds) + "</tr>")
    return (f'<h2>Components (the README\'s table)</h2>\n<table class="list"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def pairs_section(tree: Tree, scores: dict[str, float]) -> str:
    rows = "".join(
        f'<tr><td><a href="{p.name}.html">{p.name}</a></td><td>{escape(p.numpy.summary)}</td>'
        f"<td>{len(p.numpy.lines)}</td><td>{len(p.torch.lines)}</td><td>{scores[p.name]:.0%}</td></tr>"
        for p in tree.pairs)
    return ('<h2>Twin pairs</h2>\n<table class="list"><thead><tr><th>pair</th><th>what it holds</th>'
            "<th>NumPy lines</th><th>torch lines</th><th>mirror score</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def neutral_section(tree: Tree) -> str:
    """Each framework-neutral module with its docstring's first line and the twin modules re-exporting it."""
    items = []
    for source in tree.neutral:
        users = sorted(path for path, target in tree.reexports.items() if target == source.path)
        via = f" (re-exported by {', '.join(f'<code>{u}</code>' for u in users)})" if users else ""
        items.append(f'<li><a href="{neutral_page(source.path)}"><code>{source.path}</code></a>: '
                     f"{escape(source.summary)}{via}</li>")
    return ("<h2>Framework-neutral modules</h2>\n<p class=\"prose\">Defined once and imported by both twins, so "
            "the two can never disagree on them; they are not twinned.</p>\n"
            f"<ul>{''.join(items)}</ul>")


def layout_section(readme: str) -> str:
    """The README's layout (the code block under its ``## Layout`` heading): which package holds what."""
    found = re.search(r"^## Layout\n.*?^```\n(.*?)^```", readme, flags=re.M | re.S)
    if not found:
        return ""
    return ('<h2>Layout (the README\'s)</h2>\n<p class="prose">The packages and the arrows between them; '
            "<code>tests/test_layout.py</code> enforces the arrows.</p>\n"
            f"<pre>{escape(found[1].rstrip())}</pre>")


def neutral_page(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".") + ".html"


def spelling_section() -> str:
    rows = "".join(f"<tr><td><code>{escape(a)}</code></td><td><code>{escape(b)}</code></td></tr>"
                   for a, b in SPELLINGS)
    return ("<h2>Spelling table</h2>\n<p class=\"prose\">Two lines count as the same up to framework spelling "
            "when they are equal after each torch spelling below is rewritten the NumPy way "
            "(<code>gpt_cli/reading/spelling.py</code>).</p>\n"
            f'<table class="list"><thead><tr><th>NumPy</th><th>torch</th></tr></thead><tbody>{rows}</tbody></table>')


def shape_legend(package_doc: str) -> str:
    """The paragraph of the NumPy package docstring that states the shape legend."""
    paragraphs = [" ".join(p.split()) for p in package_doc.split("\n\n")]
    found = next((p for p in paragraphs if "legend" in p.lower()), "")
    return f"<h2>Shape legend</h2>\n<p>{escape(found)}</p>" if found else ""


def notebooks_section(notebooks: list[str]) -> str:
    """Links to the learner's notebooks, rendered with their outputs (``notebook_pages`` in ``site``)."""
    items = "".join(f'<li><a href="{href}">{escape(href.split("/")[-1].removesuffix(".html"))}</a></li>'
                    for href in notebooks)
    return ('<h2>Notebooks</h2>\n<p class="prose">The learner\'s path, executed, NumPy and torch side by side in '
            f"every step (from <code>notebooks/</code>; start at the first).</p>\n<ol>{items}</ol>") if items else ""


def index_page(tree: Tree, scores: dict[str, float], pages: dict[str, tuple[str, set[str]]], nav_pages,
               notebooks: list[str] = ()) -> str:
    readme_path, init_path = tree.root / "README.md", tree.root / "numpy_gpt" / "__init__.py"
    readme = readme_path.read_text(encoding="utf-8") if readme_path.exists() else ""
    package_doc = ast.get_docstring(ast.parse(init_path.read_text(encoding="utf-8"))) if init_path.exists() else ""
    package_doc = package_doc or ""
    body = "\n".join([
        nav(nav_pages), "<h1>GPT-2, twice: NumPy and torch side by side</h1>",
        f'<h2>How to read this</h2>\n<p class="prose">{HOW_TO_READ}</p>', legend(), shape_legend(package_doc),
        notebooks_section(notebooks),
        pairs_section(tree, scores), components_section(readme, pages), neutral_section(tree),
        layout_section(readme), spelling_section(),
    ])
    return page("GPT-2, twice: reading the twins", body)
