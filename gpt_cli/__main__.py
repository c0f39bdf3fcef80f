"""``python -m gpt_cli {demo,tokenize,generate,read,train,prepare,eval}``: one parser, one sub-command module each.

Every command validates its flags before doing any work; a user's mistake is one ``error: ...``
line on stderr and exit status 2 (``gpt_cli.errors``), applied here to whatever command runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gpt_cli.errors import handle_errors, tolerant_output

# Sub-command modules, each with add_parser(subparsers) that sets a ``func`` default.
COMMANDS = ["gpt_cli.demo_cmd", "gpt_cli.tokenize_cmd", "gpt_cli.generate_cmd", "gpt_cli.read_cmd", "gpt_cli.train_cmd",
            "gpt_cli.prepare_cmd", "gpt_cli.eval_cmd"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpt-twins", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    tolerant_output()
    args = build_parser().parse_args(argv)
    return handle_errors(args.func)(args)


if __name__ == "__main__":
    sys.exit(main())
