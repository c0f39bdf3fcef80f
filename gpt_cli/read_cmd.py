"""read: write the reading site, every NumPy file beside its torch twin, aligned, with the proof beside the code.

The pages are static HTML with inline CSS and no scripts: open DIR/index.html
straight from disk (file://), no server and no network needed.

example: python -m gpt_cli read --out site
"""

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``read`` subcommand; its handler is ``args.func``."""
    parser = subparsers.add_parser(
        "read", help="write the side-by-side reading site (static HTML)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("site"), help="output folder (default: site)")
    parser.add_argument("--root", type=Path, default=None,
                        help="the source tree to read (default: the checkout holding the imported numpy_gpt)")
    parser.add_argument("--no-proofs", action="store_true",
                        help="skip the NumPy-vs-torch figures computed at build time")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import numpy_gpt
    from gpt_cli.reading import build_site  # imported here: Pygments is needed only by this command

    root = args.root or Path(numpy_gpt.__file__).resolve().parent.parent
    pages = build_site(root, args.out, proofs=not args.no_proofs)
    print(f"wrote {len(pages)} pages to {args.out}/; open {pages[0]}")
    return 0
