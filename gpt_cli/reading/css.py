"""The site's one stylesheet, inlined into every page (no external files, so pages open from ``file://``)."""

from pygments.formatters import HtmlFormatter

# Row kinds differ by background and by a marker in the line-number cell, so they read apart without colour too.
LAYOUT = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 0 1.5rem 3rem;
       color: #1d1d1f; background: #fff; }
nav { padding: .6rem 0; border-bottom: 1px solid #ddd; font-size: 13px; }
nav a { margin-right: .6rem; }
h1 { font-size: 1.5rem; margin: 1rem 0 .3rem; }
h2 { font-size: 1.05rem; margin: 0; display: inline; }
code, td.code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
td.code, pre { font-size: 12.5px; line-height: 1.4; }
pre { overflow-x: auto; }  /* the layout block scrolls on a narrow window rather than widen the page */
table.pair, table.single { border-collapse: collapse; table-layout: fixed; width: 100%; }
table.pair col.ln, table.single col.ln { width: 3.2em; }
table.pair th.file { text-align: left; font-weight: 600; padding: .3rem .5rem; background: #f4f4f6;
                     position: sticky; top: 0; }
td.code { background: transparent; white-space: break-spaces; overflow-wrap: anywhere; padding: 0 .5rem;
          vertical-align: top; }
td.ln { color: #888; text-align: right; padding: 0 .35rem 0 0; vertical-align: top; font-size: 11px;
        font-family: ui-monospace, "DejaVu Sans Mono", monospace; user-select: none; white-space: nowrap; }
tr.identical td.ln::after { content: " "; white-space: pre; }
tr.spelling td.code { background: #eaf2fd; }
tr.spelling td.ln::after { content: "~"; color: #1f5fbf; }
tr.substance td.code { background: #fdf0e2; }
tr.substance td.ln::after { content: "\\2260"; color: #b3541e; }
td.code.gap { background: repeating-linear-gradient(135deg, #f3f3f3 0 6px, #e6e6e6 6px 8px) !important; }
td.code.np { border-right: 2px solid #ccc; }
tr.component td { padding: .9rem .5rem .35rem; border-top: 1px solid #ccc; background: #fafafa;
                  overflow-wrap: anywhere; }
tr.component .facts { font-size: 13px; margin-left: 1rem; }
tr.component details { margin: .25rem 0 0; font-size: 13px; }
tr.component details ul { margin: .2rem 0; padding-left: 1.2rem; }
.proof { font-size: 13px; background: #eef7ee; padding: .05rem .4rem; border-radius: 3px; margin-left: 1rem; }
.legend span { padding: 0 .5rem; margin-right: .4rem; font-size: 13px; }
.legend .identical { border: 1px solid #ccc; }
.legend .spelling { background: #eaf2fd; }
.legend .substance { background: #fdf0e2; }
.legend .gap { background: repeating-linear-gradient(135deg, #f3f3f3 0 6px, #e6e6e6 6px 8px); }
table.list { border-collapse: collapse; margin: .5rem 0 1rem; }
table.list td, table.list th { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top;
                               overflow-wrap: anywhere; }
table.list th { background: #f4f4f6; }
p.prose { max-width: 60rem; }
p, li { overflow-wrap: anywhere; }
"""


def stylesheet() -> str:
    """The layout rules and Pygments' default style, scoped to code cells."""
    return HtmlFormatter(style="default").get_style_defs("td.code") + LAYOUT
