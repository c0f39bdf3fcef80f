"""Byte-level BPE vocabularies: the ranks-file format, GPT-2's byte alphabet, training.

A vocabulary is a dict ``{token bytes: rank}`` with ranks 0..n-1. A lower rank
means an earlier merge, and encoding merges the adjacent pair whose
concatenation has the lowest rank (Sennrich et al. 2016, "Neural Machine
Translation of Rare Words with Subword Units"; GPT-2: Radford et al. 2019).
The file format is tiktoken's: one line ``base64(token) rank`` per token.

Framework-neutral: ``numpy_gpt.bpe`` and ``torch_gpt.bpe`` re-export these names, and both
tokenizers read their vocabularies through :func:`load_ranks`. tiktoken has no trainer, so
training is written once, here.
"""

import base64
import binascii
import hashlib
import heapq
from collections import Counter
from pathlib import Path

import regex

from .tokenizer import check_pattern, check_special_names, check_text, without_surrogates
from .validation import is_int

__all__ = [
    "GPT2_PATTERN", "TIKTOKEN_GPT2_PATTERN", "bytes_to_unicode", "check_ranks", "encoder_json_from_ranks",
    "load_ranks", "parse_ranks", "ranks_from_encoder_json", "save_ranks", "train_bpe",
]

#: GPT-2's pre-tokenisation regex, as released in ``encoder.py``: contractions,
#: letters, digits and other symbols each with an optional leading space, then
#: whitespace that leaves one space for the next word. ``regex`` (not ``re``)
#: because ``re`` has no ``\p{..}`` classes; GPT-2 itself used ``regex`` too.
#: ``\p{L}`` and ``\p{N}`` follow the regex engine's Unicode tables: the ``regex``
#: package's (Unicode 17) and tiktoken 0.14's Rust ones (Unicode 16) differ only
#: on letters and digits first assigned in Unicode 17.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

#: tiktoken's spelling of GPT-2's pattern (``tiktoken_ext.openai_public``): the same
#: pieces as ``GPT2_PATTERN``, with possessive quantifiers that run faster. Here, beside
#: it, so that ``torch_gpt.tokenizer`` and ``gpt_cli prepare`` (which needs no torch) share it.
TIKTOKEN_GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from the 256 byte values to printable characters (``encoder.py``).

    GPT-2's ``encoder.json`` stores tokens as text, so every byte needs a visible
    character: printable Latin-1 bytes stand for themselves and the other 68 take
    U+0100 onwards in byte order, which is why a space shows as 'Ġ' and '\\n' as 'Ċ'.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    mapping = {byte: chr(byte) for byte in printable}
    for offset, byte in enumerate(b for b in range(256) if b not in mapping):
        mapping[byte] = chr(256 + offset)
    return dict(sorted(mapping.items()))


def encoder_json_from_ranks(ranks: dict[bytes, int]) -> dict[str, int]:
    """The ``encoder.json`` view of a vocabulary: each token's bytes spelt with :func:`bytes_to_unicode`."""
    byte_encoder = bytes_to_unicode()
    return {"".join(byte_encoder[b] for b in token): rank for token, rank in ranks.items()}


def ranks_from_encoder_json(encoder: dict[str, int], special_tokens=("<|endoftext|>",)) -> dict[bytes, int]:
    """Inverse of :func:`encoder_json_from_ranks`; drops the special tokens GPT-2 kept in the same file."""
    byte_decoder = {char: byte for byte, char in bytes_to_unicode().items()}
    ranks = {}
    for text, rank in encoder.items():
        if text in special_tokens:
            continue
        if any(char not in byte_decoder for char in text):
            raise ValueError(f"encoder.json entry {text!r} has characters outside GPT-2's byte alphabet")
        ranks[bytes(byte_decoder[char] for char in text)] = rank
    check_ranks(ranks)
    return ranks


def check_ranks(ranks: dict[bytes, int], source: str = "ranks") -> None:
    """Raise ValueError unless ranks are exactly 0..n-1 and every single byte is a token.

    Contiguous ranks make the vocabulary size n; the 256 single bytes are what
    lets byte-level BPE encode any text without an unknown token.
    """
    for token, rank in ranks.items():  # True == 1 would pass the count below, and then fail to load
        if not isinstance(token, bytes) or not token or not is_int(rank):
            raise ValueError(f"{source}: each token must be non-empty bytes with an int rank, "
                             f"got {token!r:.40} -> {rank!r}")
    values = sorted(ranks.values())
    if values != list(range(len(values))):
        gap = next((i for i, value in enumerate(values) if value != i), len(values))
        raise ValueError(f"{source}: ranks must be 0..{len(values) - 1} with no gaps or repeats, "
                         f"but rank {gap} is missing or repeated")
    missing = [byte for byte in range(256) if bytes([byte]) not in ranks]
    if missing:
        raise ValueError(f"{source}: a byte-level vocabulary needs all 256 single bytes as tokens, "
                         f"missing {len(missing)} (first: {missing[:8]})")


def parse_ranks(data: bytes, source: str = "ranks file") -> dict[bytes, int]:
    """Parse tiktoken's ranks format, ``base64(token) rank`` per line, and check it."""
    ranks = {}
    for line_no, line in enumerate(data.splitlines(), start=1):
        if not line:  # tiktoken skips blank lines; so do we
            continue
        fields = line.split()
        try:
            token, rank = base64.b64decode(fields[0], validate=True), int(fields[1])
            if len(fields) != 2 or not token:
                raise ValueError
        except (IndexError, ValueError, binascii.Error):
            raise ValueError(f"{source}, line {line_no}: expected 'base64-token rank', "
                             f"got {line[:80]!r}") from None
        if token in ranks:
            raise ValueError(f"{source}, line {line_no}: token {token!r} appears twice")
        ranks[token] = rank
    check_ranks(ranks, source)
    return ranks


def load_ranks(path, expected_sha256: str | None = None) -> dict[bytes, int]:
    """Read a ranks file, first checking its sha256 when one is expected.

    Parsing it here rather than with ``tiktoken.load.load_tiktoken_bpe`` avoids
    that function's side effect of copying even local files into a cache directory.
    """
    data = Path(path).read_bytes()
    if expected_sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected_sha256.lower():
            raise ValueError(f"ranks file {path} has sha256 {digest}, expected {expected_sha256}; "
                             "the file is corrupted or not the one asked for")
    return parse_ranks(data, source=f"ranks file {path}")


def save_ranks(ranks: dict[bytes, int], path) -> str:
    """Write ranks in tiktoken's format, in rank order; return the file's sha256 to pin it with."""
    check_ranks(ranks)
    lines = [base64.b64encode(token) + b" " + str(rank).encode() + b"\n"
             for token, rank in sorted(ranks.items(), key=lambda item: item[1])]
    data = b"".join(lines)
    Path(path).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def train_bpe(text: str, vocab_size: int, pattern: str = GPT2_PATTERN,
              special_tokens=("<|endoftext|>",)) -> dict[bytes, int]:
    """Learn byte-level BPE ranks from ``text``, up to ``vocab_size`` tokens (Sennrich et al. 2016).

    Start from the 256 single bytes; repeatedly merge the most frequent adjacent
    pair within the pre-tokenised pieces (ties go to the smaller pair of bytes, so
    training is deterministic). Special tokens are cut out of the text first so
    no merge learns them (one str is one special token). Lone surrogates become U+FFFD, as in ``encode``.
    Stops early when no pair is left to merge.
    """
    check_text(text)
    if not is_int(vocab_size) or vocab_size < 256:
        raise ValueError(f"vocab_size must be an int >= 256 (one token per byte), got {vocab_size!r}")
    check_pattern(pattern)
    special_tokens = check_special_names(special_tokens)
    ranks = {bytes([byte]): byte for byte in range(256)}
    words, counts = _count_pieces(without_surrogates(text), pattern, special_tokens)
    pair_counts, where = _count_pairs(words, counts)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    while len(ranks) < vocab_size:
        pair = _pop_most_frequent(heap, pair_counts)
        if pair is None:
            break
        merged = pair[0] + pair[1]
        ranks.setdefault(merged, len(ranks))  # another pair may already have built this token
        for changed in _apply_merge(pair, merged, words, counts, pair_counts, where):
            heapq.heappush(heap, (-pair_counts[changed], changed))
    return ranks


def _count_pieces(text: str, pattern: str, special_tokens) -> tuple[list[list[bytes]], list[int]]:
    """Distinct pre-tokenised pieces as lists of single bytes, with how often each occurs."""
    segments = [text]
    if special_tokens:
        specials = "|".join(regex.escape(token) for token in sorted(special_tokens, key=len, reverse=True))
        segments = regex.split(specials, text)
    compiled = regex.compile(pattern)
    pieces = Counter(piece for segment in segments for piece in compiled.findall(segment))
    words = [[bytes([byte]) for byte in piece.encode("utf-8")] for piece in pieces]
    return words, list(pieces.values())


def _count_pairs(words, counts) -> tuple[Counter, dict]:
    """Frequency of every adjacent pair, and which words contain it."""
    pair_counts, where = Counter(), {}
    for index, (word, count) in enumerate(zip(words, counts)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += count
            where.setdefault(pair, set()).add(index)
    return pair_counts, where


def _pop_most_frequent(heap, pair_counts):
    """Pop the most frequent pair, skipping heap entries made stale by earlier merges."""
    while heap:
        negative_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) == -negative_count > 0:
            return pair
    return None


def _apply_merge(pair, merged, words, counts, pair_counts, where) -> set:
    """Merge ``pair`` in every word holding it, updating pair counts; return the pairs whose count changed."""
    changed = set()
    for index in where.pop(pair, ()):
        word, count = words[index], counts[index]
        new_word = _merge_word(word, pair, merged)
        for old in zip(word, word[1:]):
            pair_counts[old] -= count
            changed.add(old)
        for new in zip(new_word, new_word[1:]):
            pair_counts[new] += count
            where.setdefault(new, set()).add(index)
            changed.add(new)
        words[index] = new_word
    for gone in [p for p in changed if pair_counts[p] <= 0]:
        del pair_counts[gone]
    return {p for p in changed if p in pair_counts}


def _merge_word(word: list[bytes], pair: tuple[bytes, bytes], merged: bytes) -> list[bytes]:
    """Replace each non-overlapping occurrence of ``pair``, left to right, by ``merged``."""
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == pair[0] and word[i + 1] == pair[1]:
            out.append(merged)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out
