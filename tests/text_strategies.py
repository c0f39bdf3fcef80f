"""Hypothesis strategies for the tokenizer tests: text that stresses GPT-2's pre-tokenisation.

Texts are glued from fragments, so that the interesting cases (a contraction
right after a Cyrillic letter, a space run before an emoji joiner sequence,
``\\r\\n``, ``<|endoftext|>`` inside a word) meet far more often than in
uniformly random strings.
"""

from __future__ import annotations

from hypothesis import strategies as st

# Code points this Python's Unicode database has assigned (no Cn) and no surrogates (Cs).
# Why not Cn: the `regex` package (Unicode 17) and tiktoken's Rust regex (Unicode 16) class
# the letters and digits first assigned in Unicode 17 differently, so the two encoders split
# such code points differently; on every code point assigned by Unicode 16 they agree.
ASSIGNED = st.characters(exclude_categories=("Cs", "Cn"))

WORDS = st.sampled_from([
    "hello", "The", "Straße", "naïve", "Ελληνικά", "русский", "Київ", "עברית", "العربية", "हिन्दी",
    "中文字符", "日本語のテキスト", "한국어", "ภาษาไทย", "ქართული", "Ꭰꭱ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "ǅemal", "İstanbul",
])
DIGITS = st.text(alphabet="0123456789٠١٢٣४५൧²½Ⅷ", min_size=1, max_size=8)
EMOJI = st.sampled_from([
    "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "❤️", "🧑🏿‍💻", "#️⃣", "\u200d", "\ufe0f",
])
COMBINING = st.sampled_from([
    "e\u0301", "a\u0308\u0323", "\u0301", "n\u0303", "\u0915\u094d\u0937", "\u05e9\u05c1", "Z\u0336\u0335",
])
WHITESPACE = st.one_of(
    st.text(alphabet=" \t\n\r\u00a0\u2009\u3000\x0b\x0c\x85\u2028", min_size=1, max_size=6),
    st.sampled_from(["\r\n", "\r\n\r\n", "   ", "\n\n\n", " " * 17]),
)
CONTRACTIONS = st.sampled_from(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "’s", "'", "''s"])
PUNCTUATION = st.text(alphabet="!?.,;:-—–()[]{}<>|/\\\"'`~@#$%^&*_+=", min_size=1, max_size=5)
SPECIAL = st.sampled_from(["<|endoftext|>", "<|endoftext", "endoftext|>", "<|", "|>", "<|endoftext|><|endoftext|>"])
ANY = st.text(ASSIGNED, max_size=12)

FRAGMENTS = st.one_of(WORDS, DIGITS, EMOJI, COMBINING, WHITESPACE, CONTRACTIONS, PUNCTUATION, SPECIAL, ANY)


def gpt2_texts(max_fragments: int = 16) -> st.SearchStrategy[str]:
    """Text glued from fragments of many kinds; may contain ``<|endoftext|>``."""
    return st.lists(FRAGMENTS, max_size=max_fragments).map("".join)


def ordinary_texts(max_fragments: int = 16) -> st.SearchStrategy[str]:
    """:func:`gpt2_texts` without the special token, for code paths that must not meet it."""
    return gpt2_texts(max_fragments).map(lambda text: text.replace("<|endoftext|>", "<|endof text|>"))
