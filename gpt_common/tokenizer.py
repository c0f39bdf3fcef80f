"""The framework-neutral half of tokenisation: the book's word tokenizers, the bundled files, and the checks.

- :class:`SimpleTokenizerV1` / :class:`SimpleTokenizerV2`: word-level, vocabulary
  built from a text (Raschka, "Build a Large Language Model (From Scratch)", ch. 2).
  Pure Python, so one copy serves both twins.
- The checks every tokenizer makes (text type, ids to decode, special tokens), so the
  from-scratch BPE (``numpy_gpt.tokenizer``) and its tiktoken twin (``torch_gpt.tokenizer``)
  fail with the same words.
"""

import operator
import re
from pathlib import Path

import regex

from .validation import is_int

__all__ = [
    "ENDOFTEXT", "UNK", "ASSETS_DIR", "GPT2_RANKS_FILE", "GPT2_RANKS_SHA256", "SAMPLE_TEXT_FILE", "SAMPLE_TEXT_SHA256",
    "check_text", "check_decode_ids", "special_tokens_regex", "resolve_special", "check_disallowed_special",
    "check_special_tokens", "check_special_names", "check_pattern", "as_token_set", "without_surrogates",
    "SimpleTokenizerV1", "SimpleTokenizerV2", "build_vocab", "split_words",
]

ENDOFTEXT = "<|endoftext|>"
UNK = "<|unk|>"

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
GPT2_RANKS_FILE = ASSETS_DIR / "gpt2.tiktoken"
GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
SAMPLE_TEXT_FILE = ASSETS_DIR / "the-verdict.txt"
SAMPLE_TEXT_SHA256 = "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f"

# The book's split: whitespace, the punctuation ,.:;?_!"()' and the dash "--".
_WORD_SPLIT = re.compile(r'([,.:;?_!"()\']|--|\s)')
# decode() writes these marks without the space that join() put before them.
_SPACE_BEFORE_PUNCT = re.compile(r'\s+([,.:;?!"()\'])')


# ---------------------------------------------------------------------- checks
# Shared with torch_gpt.tokenizer so that both packages fail with the same words.

def check_text(text) -> None:
    """Raise ValueError unless ``text`` is a str."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}: {text!r:.60}")


def check_decode_ids(ids, n_vocab: int) -> list[int]:
    """Return ``ids`` as a list of Python ints, each in ``[0, n_vocab)``, else raise ValueError."""
    try:
        ids = [operator.index(i) for i in ids]
    except TypeError:
        raise ValueError(f"token ids must be a sequence of ints, got {ids!r:.80}") from None
    bad = [i for i in ids if not 0 <= i < n_vocab]
    if bad:
        raise ValueError(f"token id {bad[0]} is outside the vocabulary [0, {n_vocab}) "
                         f"({len(bad)} such ids)")
    return ids


def as_token_set(tokens) -> frozenset:
    """A set of special tokens; one str is one token ("<|endoftext|>"), never its characters."""
    return frozenset([tokens] if isinstance(tokens, str) else tokens)


def resolve_special(allowed_special, disallowed_special, special_tokens) -> tuple[frozenset, frozenset]:
    """tiktoken's rules: "all" means every special token; by default all are disallowed; another str is one token."""
    special_tokens = frozenset(special_tokens)
    allowed = special_tokens if allowed_special == "all" else as_token_set(allowed_special)
    disallowed = special_tokens - allowed if disallowed_special == "all" else as_token_set(disallowed_special)
    return allowed, disallowed


def without_surrogates(text: str) -> str:
    """tiktoken's fix for str that is not valid Unicode: join surrogate pairs, lone ones become U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def check_pattern(pattern) -> None:
    """A pre-tokenisation pattern is a valid regex that never matches the empty string.

    An empty match cuts no text: one encoder would drop the text and the other panic or loop.
    """
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"pattern must be a non-empty regular expression, got {pattern!r}")
    try:
        compiled = regex.compile(pattern)
    except regex.error as err:
        raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {err}") from None
    if compiled.search("") is not None:
        raise ValueError(f"pattern {pattern!r} matches the empty string, so it cannot cut text into pieces")


def check_special_names(tokens) -> list[str]:
    """Special tokens are non-empty strs, none a prefix of another, so every encoder cuts a text the same way.

    (A prefix, like "<a>" of "<a>b", is matched first by one encoder and last by the other.)
    """
    tokens = as_token_set(tokens)
    for token in tokens:
        if not isinstance(token, str) or not token:
            raise ValueError(f"special tokens must be non-empty strs, got {token!r}")
    tokens = sorted(tokens)
    for shorter, longer in zip(tokens, tokens[1:]):  # in sorted order a prefix comes right before its extensions
        if longer.startswith(shorter):
            raise ValueError(f"special token {shorter!r} is a prefix of {longer!r}; "
                             "special tokens must not be prefixes of one another")
    return tokens


def special_tokens_regex(tokens) -> regex.Pattern:
    """The special tokens as one group, longest first so that none hides a longer one."""
    return regex.compile("(" + "|".join(regex.escape(t) for t in sorted(tokens, key=len, reverse=True)) + ")")


def check_disallowed_special(text: str, disallowed: frozenset) -> None:
    """Raise ValueError if ``text`` contains a special token it may not encode (tiktoken's check)."""
    if disallowed:
        match = special_tokens_regex(disallowed).search(text)
        if match:
            token = match.group()
            raise ValueError(
                f"text contains the special token {token!r}, which is disallowed: pass "
                f"allowed_special={{{token!r}}} to encode it as one special token, or "
                f"disallowed_special=() to encode it as ordinary text")


def check_special_tokens(special_tokens: dict[str, int] | None, n_ranks: int) -> dict[str, int]:
    """Default ``{ENDOFTEXT: n_ranks}``; else special ids must be exactly n_ranks, n_ranks + 1, ..."""
    if special_tokens is None:
        return {ENDOFTEXT: n_ranks}
    if not isinstance(special_tokens, dict):
        raise ValueError(f"special_tokens must be a dict {{token: id}}, got {special_tokens!r:.60}")
    check_special_names(special_tokens)
    ids = sorted(special_tokens.values())
    if not all(is_int(i) for i in ids):
        raise ValueError(f"special token ids must be ints, got {ids}")
    if ids != list(range(n_ranks, n_ranks + len(ids))):
        raise ValueError(f"special token ids must be {n_ranks}..{n_ranks + len(ids) - 1} "
                         f"(right after the {n_ranks} ranks), got {ids}")
    return dict(special_tokens)


# ------------------------------------------------------------ simple tokenizers

def split_words(text: str) -> list[str]:
    """The book's pre-tokenisation: cut at whitespace, ``,.:;?_!"()'`` and ``--``; keep the marks."""
    check_text(text)
    return [part for part in (item.strip() for item in _WORD_SPLIT.split(text)) if part]


def build_vocab(text: str, special_tokens=()) -> dict[str, int]:
    """Vocabulary of a text: its distinct words in sorted order, then ``special_tokens`` appended."""
    words = sorted(set(split_words(text)))
    words += [token for token in special_tokens if token not in words]
    return {word: index for index, word in enumerate(words)}


class SimpleTokenizerV1:
    """Word-level tokenizer over a fixed vocabulary (Raschka, ch. 2); unknown words are errors.

    Whitespace rule: ``decode`` joins words with one space, then removes the space
    before ``, . : ; ? ! " ( ) '``. So ``decode(encode(text))`` gives ``text`` back
    exactly when ``text`` is already written that way, and otherwise its normal form.
    """

    def __init__(self, vocab: dict[str, int]):
        if len(set(vocab.values())) != len(vocab):
            raise ValueError(f"vocab ids must be distinct, got {len(vocab)} words for "
                             f"{len(set(vocab.values()))} ids")
        self.str_to_int = dict(vocab)
        self.int_to_str = {index: word for word, index in vocab.items()}

    @classmethod
    def from_text(cls, text: str):
        """Tokenizer whose vocabulary is every word of ``text``."""
        return cls(build_vocab(text))

    def encode(self, text: str) -> list[int]:
        unknown = [word for word in split_words(text) if word not in self.str_to_int]
        if unknown:
            raise ValueError(f"words not in the vocabulary: {unknown[:5]!r} ({len(unknown)} in all); "
                             f"SimpleTokenizerV2 maps unknown words to {UNK}")
        return [self.str_to_int[word] for word in split_words(text)]

    def decode(self, ids) -> str:
        ids = list(ids)
        unknown = [i for i in ids if i not in self.int_to_str]
        if unknown:
            raise ValueError(f"token id {unknown[0]!r} is not in the vocabulary of "
                             f"{len(self.int_to_str)} words")
        text = " ".join(self.int_to_str[i] for i in ids)
        return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


class SimpleTokenizerV2(SimpleTokenizerV1):
    """:class:`SimpleTokenizerV1` that maps unknown words to ``<|unk|>`` and joins documents with ``<|endoftext|>``."""

    def __init__(self, vocab: dict[str, int]):
        missing = [token for token in (ENDOFTEXT, UNK) if token not in vocab]
        if missing:
            raise ValueError(f"SimpleTokenizerV2 needs {missing} in its vocabulary")
        super().__init__(vocab)

    @classmethod
    def from_text(cls, text: str):
        """Tokenizer whose vocabulary is every word of ``text``, then ``<|endoftext|>`` and ``<|unk|>``."""
        return cls(build_vocab(text, special_tokens=(ENDOFTEXT, UNK)))

    def encode(self, text: str) -> list[int]:
        unk = self.str_to_int[UNK]
        return [self.str_to_int.get(word, unk) for word in split_words(text)]

    def encode_documents(self, documents) -> list[int]:
        """Encode each document, with ``<|endoftext|>`` between consecutive ones (as the book joins them)."""
        ids = []
        for index, document in enumerate(documents):
            if index:
                ids.append(self.str_to_int[ENDOFTEXT])
            ids.extend(self.encode(document))
        return ids
