"""tokenize: print the token ids of a text or file, optionally with each token's text.

Tokenizers: tiktoken (GPT-2 through tiktoken, the default), bpe (GPT-2 from
scratch, the same ids), simple (SimpleTokenizerV2 whose vocabulary is the words
of the bundled sample, "The Verdict"; other words become <|unk|>).
<|endoftext|> in the input is encoded as the special token.

example: python -m gpt_cli tokenize "Hello, world" --show-tokens
"""

import argparse
from pathlib import Path

from gpt_cli.errors import handle_errors

TOKENIZERS = ("tiktoken", "bpe", "simple")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``tokenize`` subcommand; its handler is ``args.func``."""
    parser = subparsers.add_parser(
        "tokenize", help="print the token ids of a text or file",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", nargs="?", help="text to tokenize (or use --file)")
    parser.add_argument("--file", type=Path, help="read the text from this UTF-8 file")
    parser.add_argument("--tokenizer", choices=TOKENIZERS, default="tiktoken",
                        help="which tokenizer (default: tiktoken)")
    parser.add_argument("--show-tokens", action="store_true",
                        help="print one token per line: id, then the token's text")
    parser.set_defaults(func=run)
    return parser


def make_tokenizer(name: str):
    """The tokenizer called ``name``, with its imports kept here so each costs only when chosen."""
    if name == "tiktoken":
        from torch_gpt.tokenizer import get_tokenizer
        return get_tokenizer("gpt2")
    if name == "bpe":
        from numpy_gpt.tokenizer import get_tokenizer
        return get_tokenizer("gpt2")
    from numpy_gpt.tokenizer import SAMPLE_TEXT_FILE, SimpleTokenizerV2
    return SimpleTokenizerV2.from_text(SAMPLE_TEXT_FILE.read_text(encoding="utf-8"))


def token_texts(tokenizer, ids: list[int]) -> list[str]:
    """Each token shown as a Python literal: a str, or bytes when it is a piece of a UTF-8 character."""
    if not hasattr(tokenizer, "decode_tokens_bytes"):  # the simple tokenizers' tokens are words
        return [repr(tokenizer.int_to_str[i]) for i in ids]
    texts = []
    for token in tokenizer.decode_tokens_bytes(ids):
        try:
            texts.append(repr(token.decode("utf-8")))
        except UnicodeDecodeError:
            texts.append(repr(token))
    return texts


def read_text(args) -> str:
    """The text argument or the file's contents; exactly one must be given."""
    if (args.text is None) == (args.file is None):
        raise ValueError("give either a text or --file, not both and not neither")
    if args.file is None:
        return args.text
    try:
        return args.file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"--file {args.file} is not UTF-8 text: {error}") from None


def encode(tokenizer, text: str) -> list[int]:
    """Token ids, with ``<|endoftext|>`` read as the special token by every tokenizer."""
    if hasattr(tokenizer, "special_tokens"):  # the BPE tokenizers follow tiktoken's special-token rules
        return tokenizer.encode(text, allowed_special="all")
    return tokenizer.encode(text)  # SimpleTokenizerV2 has <|endoftext|> as an ordinary word


@handle_errors
def run(args) -> int:
    """Handler of ``tokenize``: 0 on success, 2 on bad input (``error: ...`` on stderr)."""
    text = read_text(args)
    tokenizer = make_tokenizer(args.tokenizer)
    ids = encode(tokenizer, text)
    if args.show_tokens:
        for token_id, token_text in zip(ids, token_texts(tokenizer, ids)):
            print(f"{token_id}\t{token_text}")
    else:
        print(" ".join(map(str, ids)))
    return 0
