"""Tokenizers, the reference: GPT-2's byte-level BPE written from scratch, plus the book's word tokenizers.

- :class:`BPETokenizer`: GPT-2's byte-level BPE in pure Python (Radford et al.
  2019), token for token equal to tiktoken, which is its twin in ``torch_gpt.tokenizer``.
- :class:`SimpleTokenizerV1` / :class:`SimpleTokenizerV2` (the book's, ch. 2) and the
  checks both BPE encoders share are framework-neutral: defined in ``gpt_common.tokenizer``
  and importable from here, as from the twin.
"""

import heapq
import sys

import regex

from gpt_common.bpe import GPT2_PATTERN, check_ranks, load_ranks
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
    check_special_tokens,
    check_text,
    resolve_special,
    special_tokens_regex,
    split_words,
)

__all__ = [
    "ENDOFTEXT", "UNK", "GPT2_RANKS_FILE", "GPT2_RANKS_SHA256", "SAMPLE_TEXT_FILE", "SAMPLE_TEXT_SHA256",
    "SimpleTokenizerV1", "SimpleTokenizerV2", "build_vocab", "split_words",
    "byte_pair_merge", "byte_pair_merge_heap", "BPETokenizer", "get_tokenizer",
]


# --------------------------------------------------------------- GPT-2 BPE

_NO_RANK = sys.maxsize  # rank of a pair that is not a token: never the minimum while a real pair exists
_LONG_PIECE = 500  # bytes; from here on byte_pair_merge's quadratic scan loses to the heap


def byte_pair_merge(ranks: dict[bytes, int], piece: bytes) -> list[bytes]:
    """Split ``piece`` into tokens: merge the adjacent pair of lowest rank until none is a token.

    tiktoken's loop: keep every adjacent pair's rank, merge the lowest (the
    leftmost on ties), and re-rank only the merged part's two neighbours.
    """
    parts = [piece[i:i + 1] for i in range(len(piece))]
    pair_ranks = [ranks.get(a + b, _NO_RANK) for a, b in zip(parts, parts[1:])]
    while pair_ranks:
        best = min(pair_ranks)
        if best == _NO_RANK:
            break
        i = pair_ranks.index(best)
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
        del pair_ranks[i]
        if i < len(pair_ranks):
            pair_ranks[i] = ranks.get(parts[i] + parts[i + 1], _NO_RANK)
        if i > 0:
            pair_ranks[i - 1] = ranks.get(parts[i - 1] + parts[i], _NO_RANK)
    return parts


def byte_pair_merge_heap(ranks: dict[bytes, int], piece: bytes) -> list[bytes]:
    """The same merges as :func:`byte_pair_merge` in O(n log n), for long pieces.

    The parts form a linked list (``ends[i]``: end of the part starting at i, -1
    once merged away); a heap holds (rank, start) of adjacent pairs, so the
    lowest rank pops first and ties go to the left. Entries made stale by a
    merge are skipped when popped.
    """
    n = len(piece)
    ends, prev_start = list(range(1, n + 1)), list(range(-1, n - 1))
    heap = [(rank, i) for i in range(n - 1) if (rank := ranks.get(piece[i:i + 2])) is not None]
    heapq.heapify(heap)
    while heap:
        rank, i = heapq.heappop(heap)
        j = ends[i]  # start of the right-hand part
        if j == -1 or j >= n or ranks.get(piece[i:ends[j]]) != rank:
            continue
        ends[i], ends[j] = ends[j], -1
        if ends[i] < n:
            prev_start[ends[i]] = i
            _push_pair(heap, ranks, piece, i, ends[ends[i]])
        if i > 0:
            _push_pair(heap, ranks, piece, prev_start[i], ends[i])
    starts = [i for i in range(n) if ends[i] != -1]
    return [piece[i:ends[i]] for i in starts]


def _push_pair(heap, ranks, piece: bytes, start: int, end: int) -> None:
    rank = ranks.get(piece[start:end])
    if rank is not None:
        heapq.heappush(heap, (rank, start))


def _without_surrogates(text: str) -> str:
    """tiktoken's fix for str that is not valid Unicode: join surrogate pairs, lone ones become U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


class BPETokenizer:
    """GPT-2's byte-level BPE from scratch (Radford et al. 2019), with tiktoken's interface and results.

    ``encode``: cut the text with ``pattern`` into pieces, then turn each piece's
    UTF-8 bytes into tokens with :func:`byte_pair_merge`. Repeated pieces (most
    words) come from a cache of already-merged pieces, which this object owns.
    ``decode``: concatenate the tokens' bytes and decode them as UTF-8.
    Merging works on raw bytes, as tiktoken's ranks file does; GPT-2's ``encoder.py``
    merged the same tokens spelt with :func:`gpt_common.bpe.bytes_to_unicode`.
    Pieces of 500 bytes or more merge with :func:`byte_pair_merge_heap`, because
    the plain loop is quadratic in the length of a piece.
    """

    def __init__(self, ranks: dict[bytes, int], special_tokens: dict[str, int] | None = None,
                 pattern: str = GPT2_PATTERN, name: str = "gpt2", cache_size: int = 100_000):
        check_ranks(ranks)
        self.name = name
        self.pattern = pattern
        self.special_tokens = check_special_tokens(special_tokens, len(ranks))
        self._ranks = dict(ranks)
        self._regex = regex.compile(pattern)
        # index = token id; special tokens decode to their text, as in tiktoken
        self._token_bytes = [token for token, _ in sorted(ranks.items(), key=lambda item: item[1])]
        self._token_bytes += [text.encode("utf-8") for text, _ in
                              sorted(self.special_tokens.items(), key=lambda item: item[1])]
        self._cache: dict[str, tuple[int, ...]] = {}
        self._cache_size = cache_size

    @classmethod
    def from_ranks_file(cls, path, expected_sha256: str | None = None, **kwargs):
        """Tokenizer from a ranks file (see :func:`gpt_common.bpe.load_ranks`); kwargs go to ``__init__``."""
        return cls(load_ranks(path, expected_sha256), **kwargs)

    @property
    def n_vocab(self) -> int:
        return len(self._token_bytes)

    @property
    def eot_token(self) -> int:
        return self.special_tokens[ENDOFTEXT]

    @property
    def special_tokens_set(self) -> set[str]:
        return set(self.special_tokens)

    def encode(self, text: str, *, allowed_special=frozenset(), disallowed_special="all") -> list[int]:
        """Token ids of ``text``; a special token in the text is raised on unless allowed (tiktoken's rules)."""
        check_text(text)
        allowed, disallowed = resolve_special(allowed_special, disallowed_special, self.special_tokens)
        check_disallowed_special(text, disallowed)
        text = _without_surrogates(text)
        allowed = [token for token in allowed if token in self.special_tokens]
        if not allowed:
            return self._encode_ordinary(text)
        ids = []
        # splitting on a group keeps the specials: [text, special, text, special, ..., text]
        for index, part in enumerate(special_tokens_regex(allowed).split(text)):
            ids.extend([self.special_tokens[part]] if index % 2 else self._encode_ordinary(part))
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of ``text``, with special tokens' text encoded as ordinary text."""
        check_text(text)
        return self._encode_ordinary(_without_surrogates(text))

    def _encode_ordinary(self, text: str) -> list[int]:
        ids, cache = [], self._cache
        for piece in self._regex.findall(text):
            tokens = cache.get(piece)
            if tokens is None:
                tokens = self._encode_piece(piece)
            ids.extend(tokens)
        return ids

    def _encode_piece(self, piece: str) -> tuple[int, ...]:
        data = piece.encode("utf-8")
        rank = self._ranks.get(data)
        if rank is not None:  # a piece that is itself a token is taken whole, without merging, as tiktoken does
            tokens = (rank,)
        else:
            merge = byte_pair_merge if len(data) < _LONG_PIECE else byte_pair_merge_heap
            tokens = tuple(self._ranks[part] for part in merge(self._ranks, data))
        if len(self._cache) >= self._cache_size:
            self._cache.clear()  # bounded memory; refilled by the next pieces
        self._cache[piece] = tokens
        return tokens

    def decode_bytes(self, ids) -> bytes:
        """The bytes of the tokens, concatenated."""
        return b"".join([self._token_bytes[i] for i in check_decode_ids(ids, self.n_vocab)])

    def decode(self, ids, errors: str = "replace") -> str:
        """Text of the tokens; bytes that are not valid UTF-8 become U+FFFD, as in tiktoken."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def decode_tokens_bytes(self, ids) -> list[bytes]:
        """Each token's bytes, separately (for showing tokens)."""
        return [self._token_bytes[i] for i in check_decode_ids(ids, self.n_vocab)]


def get_tokenizer(name: str = "gpt2") -> BPETokenizer:
    """A pretrained tokenizer from the bundled files, checked by sha256; needs no network.

    "r50k_base" is accepted too: tiktoken's name for the same ranks and special token.
    """
    if name not in ("gpt2", "r50k_base"):
        raise ValueError(f"unknown tokenizer {name!r}; available: ['gpt2', 'r50k_base']")
    return BPETokenizer.from_ranks_file(GPT2_RANKS_FILE, GPT2_RANKS_SHA256, name="gpt2")
