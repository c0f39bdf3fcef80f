"""Byte-level BPE vocabularies: ranks files, GPT-2's byte alphabet, training (twin of ``numpy_gpt.bpe``).

Framework-neutral, so re-exported rather than written twice: a vocabulary is a
dict of bytes to ranks on both sides, read and checked by the same code, and
tiktoken (the production encoder) has no trainer to mirror.
"""

from numpy_gpt.bpe import (  # noqa: F401  (re-exports)
    GPT2_PATTERN,
    bytes_to_unicode,
    check_ranks,
    encoder_json_from_ranks,
    load_ranks,
    parse_ranks,
    ranks_from_encoder_json,
    save_ranks,
    train_bpe,
)

__all__ = [
    "GPT2_PATTERN",
    "bytes_to_unicode",
    "check_ranks",
    "encoder_json_from_ranks",
    "load_ranks",
    "parse_ranks",
    "ranks_from_encoder_json",
    "save_ranks",
    "train_bpe",
]
