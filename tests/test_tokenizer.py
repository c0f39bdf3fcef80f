"""Simple word tokenizers (the book's V1/V2): known ids, the whitespace rule, round trips, errors.

The GPT-2 BPE tokenizers (from scratch vs tiktoken) are tested in ``test_bpe.py``.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpy_gpt.tokenizer as np_tok
import torch_gpt.tokenizer as torch_tok
from numpy_gpt.tokenizer import (
    ENDOFTEXT,
    SAMPLE_TEXT_FILE,
    UNK,
    SimpleTokenizerV1,
    SimpleTokenizerV2,
    build_vocab,
    split_words,
)
from tests.text_strategies import ASSIGNED, gpt2_texts

SAMPLE = SAMPLE_TEXT_FILE.read_text(encoding="utf-8")
BOOK_SENTENCE = '"It\'s the last he painted, you know," Mrs. Gisburn said with pardonable pride.'
# ids and decoded text printed in the book (ch. 2) for this sentence with the-verdict's vocabulary
BOOK_IDS = [1, 56, 2, 850, 988, 602, 533, 746, 5, 1126, 596, 5, 1, 67, 7, 38, 851, 1108, 754, 793, 7]
BOOK_DECODED = '" It\' s the last he painted, you know," Mrs. Gisburn said with pardonable pride.'

NO_SPACE_BEFORE = list(',.:;?!"()\'')  # decode() glues these to the previous word
SPACED_MARKS = ["_", "--"]  # split off, but decode() keeps the space before them
WORDS = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=6)


def test_split_words_keeps_punctuation_and_dashes_and_drops_whitespace():
    assert split_words("Hello, world. Is this-- a test?") == [
        "Hello", ",", "world", ".", "Is", "this", "--", "a", "test", "?"]
    assert split_words("a\tb\n\nc_d 'e' (f)") == ["a", "b", "c", "_", "d", "'", "e", "'", "(", "f", ")"]
    assert split_words("   ") == []


def test_build_vocab_is_sorted_words_then_specials():
    assert build_vocab("b a, b", special_tokens=(ENDOFTEXT, UNK)) == {
        ",": 0, "a": 1, "b": 2, ENDOFTEXT: 3, UNK: 4}


def test_v1_reproduces_the_books_ids_on_the_verdict():
    tokenizer = SimpleTokenizerV1.from_text(SAMPLE)
    assert len(tokenizer.str_to_int) == 1130
    assert tokenizer.encode(BOOK_SENTENCE) == BOOK_IDS
    assert tokenizer.decode(BOOK_IDS) == BOOK_DECODED


def test_v2_maps_unknown_words_to_unk_and_keeps_endoftext():
    tokenizer = SimpleTokenizerV2.from_text(SAMPLE)
    assert len(tokenizer.str_to_int) == 1132
    assert (tokenizer.str_to_int[ENDOFTEXT], tokenizer.str_to_int[UNK]) == (1130, 1131)
    text = " <|endoftext|> ".join(("Hello, do you like tea?", "In the sunlit terraces of the palace."))
    ids = tokenizer.encode(text)
    assert ids == [1131, 5, 355, 1126, 628, 975, 10, 1130, 55, 988, 956, 984, 722, 988, 1131, 7]
    assert tokenizer.decode(ids) == (
        "<|unk|>, do you like tea? <|endoftext|> In the sunlit terraces of the <|unk|>.")


@given(st.lists(st.text(ASSIGNED, max_size=20), max_size=4))
def test_v2_encode_documents_equals_the_books_join(documents):
    tokenizer = SimpleTokenizerV2.from_text(SAMPLE)
    joined = " <|endoftext|> ".join(documents)
    assert tokenizer.encode_documents(documents) == tokenizer.encode(joined)
    assert tokenizer.encode_documents(documents).count(1130) == max(len(documents) - 1, 0) + sum(
        split_words(doc).count(ENDOFTEXT) for doc in documents)


@given(st.lists(st.one_of(WORDS, st.sampled_from(NO_SPACE_BEFORE + SPACED_MARKS)), min_size=1, max_size=30))
def test_round_trip_is_exact_for_text_in_the_documented_normal_form(tokens):
    # the normal form: one space between tokens, none before , . : ; ? ! " ( ) '
    text = tokens[0] + "".join(tok if tok in NO_SPACE_BEFORE else " " + tok for tok in tokens[1:])
    for cls in (SimpleTokenizerV1, SimpleTokenizerV2):
        tokenizer = cls.from_text(text)
        assert tokenizer.decode(tokenizer.encode(text)) == text


@given(gpt2_texts())
def test_round_trip_of_any_text_keeps_its_words_and_is_idempotent(text):
    tokenizer = SimpleTokenizerV1.from_text(text)
    once = tokenizer.decode(tokenizer.encode(text))
    assert split_words(once) == split_words(text)  # only the whitespace may change
    assert tokenizer.decode(tokenizer.encode(once)) == once


@given(gpt2_texts())
def test_v2_never_fails_on_unknown_text_and_v1_names_the_unknown_word(text):
    tokenizer_v2 = SimpleTokenizerV2.from_text(SAMPLE)
    expected = [tokenizer_v2.str_to_int.get(word, 1131) for word in split_words(text)]
    assert tokenizer_v2.encode(text) == expected
    tokenizer_v1 = SimpleTokenizerV1.from_text(SAMPLE)
    unknown = [word for word in split_words(text) if word not in tokenizer_v1.str_to_int]
    if unknown:
        with pytest.raises(ValueError, match="words not in the vocabulary"):
            tokenizer_v1.encode(text)
    else:
        assert tokenizer_v1.encode(text) == expected


def test_bad_input_raises_clear_errors():
    tokenizer = SimpleTokenizerV1.from_text("a b c")
    with pytest.raises(ValueError, match=r"words not in the vocabulary: \['zebra'\]"):
        tokenizer.encode("a zebra")
    with pytest.raises(ValueError, match="token id 3 is not in the vocabulary of 3 words"):
        tokenizer.decode([0, 3])
    with pytest.raises(ValueError, match="text must be a str, got bytes"):
        tokenizer.encode(b"a b")
    with pytest.raises(ValueError, match=r"SimpleTokenizerV2 needs \['<\|unk\|>'\]"):
        SimpleTokenizerV2({"a": 0, ENDOFTEXT: 1})
    with pytest.raises(ValueError, match="vocab ids must be distinct"):
        SimpleTokenizerV1({"a": 0, "b": 0})


def test_inputs_are_not_mutated():
    vocab = {"a": 0, "b": 1}
    tokenizer = SimpleTokenizerV1(vocab)
    tokenizer.str_to_int["c"] = 2
    assert vocab == {"a": 0, "b": 1}


def test_torch_package_reexports_the_framework_neutral_tokenizers():
    assert torch_tok.SimpleTokenizerV1 is np_tok.SimpleTokenizerV1
    assert torch_tok.SimpleTokenizerV2 is np_tok.SimpleTokenizerV2
    assert torch_tok.GPT2_RANKS_FILE == np_tok.GPT2_RANKS_FILE
