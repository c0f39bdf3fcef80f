"""Tokenizers, production twin of ``numpy_gpt.tokenizer``: GPT-2's BPE is tiktoken.

The simple word tokenizers are framework-neutral and re-exported. :class:`BPETokenizer`
wraps a ``tiktoken.Encoding`` built offline from the bundled ranks file (sha256
checked), with the same constructor, methods and error messages as the
from-scratch one; the raw encoding is its ``encoding`` attribute.
"""

import tiktoken

from gpt_common.bpe import TIKTOKEN_GPT2_PATTERN, check_ranks, load_ranks
from gpt_common.tokenizer import (
    ENDOFTEXT,
    GPT2_RANKS_FILE,
    GPT2_RANKS_SHA256,
    SAMPLE_TEXT_FILE,
    SAMPLE_TEXT_SHA256,
    UNK,
    SimpleTokenizerV1,
    SimpleTokenizerV2,
    build_vocab,
    check_decode_ids,
    check_disallowed_special,
    check_pattern,
    check_special_tokens,
    check_text,
    resolve_special,
    split_words,
)

__all__ = [
    "ENDOFTEXT", "UNK", "GPT2_RANKS_FILE", "GPT2_RANKS_SHA256", "SAMPLE_TEXT_FILE", "SAMPLE_TEXT_SHA256",
    "SimpleTokenizerV1", "SimpleTokenizerV2", "build_vocab", "split_words",
    "TIKTOKEN_GPT2_PATTERN", "BPETokenizer", "get_tokenizer",
]



class BPETokenizer:
    """GPT-2's byte-level BPE by tiktoken's Rust encoder, with ``numpy_gpt.tokenizer.BPETokenizer``'s interface."""

    def __init__(self, ranks: dict[bytes, int], special_tokens: dict[str, int] | None = None,
                 pattern: str = TIKTOKEN_GPT2_PATTERN, name: str = "gpt2"):
        check_ranks(ranks)
        check_pattern(pattern)
        self.name = name
        self.pattern = pattern
        self.special_tokens = check_special_tokens(special_tokens, len(ranks))
        self.encoding = tiktoken.Encoding(
            name, pat_str=pattern, mergeable_ranks=dict(ranks), special_tokens=self.special_tokens,
            explicit_n_vocab=len(ranks) + len(self.special_tokens))

    @classmethod
    def from_ranks_file(cls, path, expected_sha256: str | None = None, **kwargs):
        """Tokenizer from a ranks file (see :func:`gpt_common.bpe.load_ranks`); kwargs go to ``__init__``."""
        return cls(load_ranks(path, expected_sha256), **kwargs)

    @property
    def n_vocab(self) -> int:
        return self.encoding.n_vocab

    @property
    def eot_token(self) -> int:
        return self.encoding.eot_token

    @property
    def special_tokens_set(self) -> set[str]:
        return set(self.special_tokens)

    def encode(self, text: str, *, allowed_special=frozenset(), disallowed_special="all") -> list[int]:
        """Token ids of ``text``; a special token in the text is raised on unless allowed (tiktoken's rules)."""
        check_text(text)
        allowed, disallowed = resolve_special(allowed_special, disallowed_special, self.special_tokens)
        check_disallowed_special(text, disallowed)  # ours, so both packages word the error alike
        return self.encoding.encode(text, allowed_special=allowed, disallowed_special=())

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of ``text``, with special tokens' text encoded as ordinary text."""
        check_text(text)
        return self.encoding.encode_ordinary(text)

    def decode_bytes(self, ids) -> bytes:
        """The bytes of the tokens, concatenated."""
        return self.encoding.decode_bytes(check_decode_ids(ids, self.n_vocab))

    def decode(self, ids, errors: str = "replace") -> str:
        """Text of the tokens; bytes that are not valid UTF-8 become U+FFFD."""
        return self.encoding.decode(check_decode_ids(ids, self.n_vocab), errors=errors)

    def decode_tokens_bytes(self, ids) -> list[bytes]:
        """Each token's bytes, separately (for showing tokens)."""
        return self.encoding.decode_tokens_bytes(check_decode_ids(ids, self.n_vocab))


def get_tokenizer(name: str = "gpt2") -> BPETokenizer:
    """A pretrained tokenizer from the bundled files, checked by sha256; needs no network.

    "r50k_base" is accepted too: tiktoken's name for the same ranks and special token.
    """
    if name not in ("gpt2", "r50k_base"):
        raise ValueError(f"unknown tokenizer {name!r}; available: ['gpt2', 'r50k_base']")
    return BPETokenizer.from_ranks_file(GPT2_RANKS_FILE, GPT2_RANKS_SHA256, name="gpt2")
