"""How tokens reach the run loop: a text or a prepared corpus, identified, split into training and validation windows.

The seam between data and training is ``data_tokens``: a path in, ``(train, val, identity)`` out. Two
token sources stand behind it: ``text_tokens`` reads and tokenizes a text in memory (small texts);
``shard_tokens`` memory-maps the shards ``gpt_cli prepare`` wrote (``gpt_common.shards``), so no corpus
is ever loaded, and each window read costs only its own pages (under torchrun, a rank reads only its
share). Both give ``TokenData`` whose windows are the same for the same tokens. ``identity`` (kind,
path, size, sha256; for shards, the manifest's sha256, which covers each shard's) is saved in each
checkpoint; a resume refuses other data.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from .. import shards

__all__ = ["TokenData", "split_tokens", "data_tokens", "text_tokens", "shard_tokens", "file_identity",
           "check_same_data"]


@dataclasses.dataclass(frozen=True)
class TokenData:
    """Windows of ``context_length`` + 1 tokens (inputs and their next-token targets), stride context_length."""

    ids: np.ndarray  # (N,) int64, or a shards.TokenStream: the same len() and integer-array indexing, memory-mapped
    context_length: int

    @property
    def num_windows(self) -> int:
        return max(0, (len(self.ids) - 1) // self.context_length)

    def batch(self, window_indices) -> tuple[np.ndarray, np.ndarray]:
        starts = np.asarray(window_indices, dtype=np.int64)[:, None] * self.context_length  # (B, 1)
        rows = self.ids[starts + np.arange(self.context_length + 1)]  # (B, T + 1)
        return rows[:, :-1], rows[:, 1:]  # inputs (B, T), targets (B, T)


def split_tokens(ids, context_length: int, name: str, train_ratio: float = 0.9) -> tuple[TokenData, TokenData]:
    """The book's split: the first 90% of the tokens train, the rest validate; both must hold a window."""
    ids = np.asarray(ids, dtype=np.int64)
    split = int(train_ratio * len(ids))
    train, val = TokenData(ids[:split], context_length), TokenData(ids[split:], context_length)
    if train.num_windows < 1 or val.num_windows < 1:
        raise ValueError(f"{name} has {len(ids)} tokens: too short for one window of {context_length} + 1 tokens "
                         "in both the training (90%) and validation (10%) parts; use more text or a shorter "
                         "--context-length")
    return train, val


def data_tokens(path: str, tokenizer, context_length: int, vocab_size: int) -> tuple[TokenData, TokenData, dict]:
    """``--data``: a prepared corpus directory (memory-mapped) or a text file (tokenized in memory)."""
    if Path(path).is_dir():
        if not (Path(path) / shards.MANIFEST_FILE).is_file():
            raise ValueError(f"--data {path} is a directory without {shards.MANIFEST_FILE}; give a UTF-8 text file "
                             "or a corpus `python -m gpt_cli prepare` wrote")
        return shard_tokens(path, context_length, vocab_size)
    return text_tokens(path, tokenizer, context_length)


def shard_tokens(path: str, context_length: int, vocab_size: int) -> tuple[TokenData, TokenData, dict]:
    """``--data DIR``: the train and val splits of a prepared corpus, every shard checked, nothing loaded."""
    corpus = shards.open_shards(path)
    shards.check_gpt2(corpus, "--data")
    shards.check_vocab(corpus, vocab_size, "--data")
    train, val = TokenData(corpus.split("train"), context_length), TokenData(corpus.split("val"), context_length)
    for name, data in (("train", train), ("val", val)):
        if data.num_windows < 1:
            raise ValueError(f"--data {path}: the {name} split holds {len(data.ids)} tokens, fewer than one window "
                             f"of {context_length} + 1; prepare more text (or a larger --val-fraction) or use a "
                             "shorter --context-length")
    return train, val, corpus.identity


def text_tokens(path: str, tokenizer, context_length: int) -> tuple[TokenData, TokenData, dict]:
    """``--data FILE``: UTF-8 text, tokenized ("<|endoftext|>" allowed) and split; with the file's identity."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"--data {path}: no such file")
    raw = file.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"--data {path} is not UTF-8 text: {err}") from None
    if not text.strip():
        raise ValueError(f"--data {path} is empty")
    train, val = split_tokens(tokenizer.encode(text, allowed_special={"<|endoftext|>"}), context_length,
                              f"--data {path}")
    return train, val, file_identity(path, raw)


def file_identity(path: str, raw: bytes) -> dict:
    return {"kind": "text", "path": str(path), "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}


def check_same_data(saved: dict, ours: dict, source: str) -> None:
    """A resume reads the data its run was trained on: the same kind, size and sha256 (the path may move)."""
    keys = ("kind", "bytes", "sha256")
    if not isinstance(saved, dict) or any(saved.get(key) != ours.get(key) for key in keys):
        described = saved.get("path") if isinstance(saved, dict) else saved
        raise ValueError(f"--data {ours.get('path')} ({ours.get('bytes')} bytes, sha256 {ours.get('sha256')}) is "
                         f"not the data {source} was trained on ({described!r}, "
                         f"{saved.get('bytes') if isinstance(saved, dict) else '?'} bytes, sha256 "
                         f"{saved.get('sha256') if isinstance(saved, dict) else '?'})")
