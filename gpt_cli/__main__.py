"""``python -m gpt_cli {demo,tokenize,generate,read}``: one parser, one sub-command module each."""

from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command modules, each with add_parser(subparsers) that sets a ``func`` default.
COMMANDS = ["gpt_cli.demo_cmd", "gpt_cli.tokenize_cmd", "gpt_cli.generate_cmd", "gpt_cli.read_cmd"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpt-twins", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
