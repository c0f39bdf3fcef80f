"""GPT-2 BPE from scratch (numpy_gpt) vs tiktoken (torch_gpt): same ids, same text, same errors, offline."""

import hashlib
import socket
from collections import Counter
from pathlib import Path

import pytest
import regex
import tiktoken
import tiktoken.load
from hypothesis import example, given, settings
from hypothesis import strategies as st

import numpy_gpt.tokenizer as np_tok
import torch_gpt.tokenizer as torch_tok
from gpt_common.bpe import (
    GPT2_PATTERN,
    bytes_to_unicode,
    encoder_json_from_ranks,
    load_ranks,
    ranks_from_encoder_json,
    save_ranks,
    train_bpe,
)
from numpy_gpt.tokenizer import (
    ENDOFTEXT,
    GPT2_RANKS_FILE,
    GPT2_RANKS_SHA256,
    SAMPLE_TEXT_FILE,
    byte_pair_merge,
    byte_pair_merge_heap,
)
from tests.text_strategies import gpt2_texts

SAMPLE = SAMPLE_TEXT_FILE.read_text(encoding="utf-8")
SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


@pytest.fixture(scope="module")
def ours():
    return np_tok.get_tokenizer("gpt2")


@pytest.fixture(scope="module")
def theirs():
    return torch_tok.get_tokenizer("gpt2")


@pytest.fixture(scope="module")
def raw_tiktoken(ours):
    """tiktoken's own GPT-2 definition (pattern, ranks, special token), not our wrapper."""
    from tiktoken_ext.openai_public import r50k_pat_str
    return tiktoken.Encoding("gpt2", pat_str=r50k_pat_str, mergeable_ranks=dict(ours._ranks),
                             special_tokens={ENDOFTEXT: 50256}, explicit_n_vocab=50257)


def test_get_tokenizer_needs_no_network_and_writes_no_cache(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise AssertionError("the tokenizer tried to open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    for package in (np_tok, torch_tok):
        tokenizer = package.get_tokenizer("gpt2")
        assert tokenizer.encode("Hello, world") == [15496, 11, 995]
        assert (tokenizer.n_vocab, tokenizer.eot_token) == (50257, 50256)
    assert list(tmp_path.iterdir()) == []


def test_the_shipped_ranks_file_is_gpt2s(ours):
    assert hashlib.sha256(GPT2_RANKS_FILE.read_bytes()).hexdigest() == GPT2_RANKS_SHA256
    assert len(ours._ranks) == 50256
    assert ours.decode_tokens_bytes([262, 198, 50256]) == [b" the", b"\n", b"<|endoftext|>"]


@pytest.mark.parametrize("path, n_tokens", [(SAMPLE_TEXT_FILE, 5145), (SHAKESPEARE, 338025)])
def test_whole_sample_texts_encode_identically(ours, theirs, raw_tiktoken, path, n_tokens):
    if not path.exists():
        pytest.skip(f"{path} is not in this checkout")
    text = path.read_text(encoding="utf-8")
    ids = ours.encode(text)
    assert len(ids) == n_tokens
    assert ids == theirs.encode(text) == raw_tiktoken.encode(text)
    assert ours.decode(ids) == text


@settings(max_examples=2000)
@given(gpt2_texts())
@example("Hello<|endoftext|> it's  \r\n\r\n  Київ's 👨‍👩‍👧\u0301 123456789 <|endoftext|><|endoftext|>")
def test_from_scratch_equals_tiktoken_token_for_token(ours, theirs, raw_tiktoken, text):
    allowed = ours.encode(text, allowed_special="all")
    assert allowed == theirs.encode(text, allowed_special="all") == raw_tiktoken.encode(text, allowed_special="all")
    ordinary = ours.encode(text, disallowed_special=())
    assert ordinary == ours.encode_ordinary(text) == raw_tiktoken.encode_ordinary(text)
    assert ordinary == theirs.encode(text, disallowed_special=()) == theirs.encode_ordinary(text)
    assert allowed.count(50256) == text.count(ENDOFTEXT)
    assert ours.decode(allowed) == theirs.decode(allowed) == text
    if ENDOFTEXT in text:  # disallowed by default, in both, with the same words
        with pytest.raises(ValueError) as from_scratch:
            ours.encode(text)
        with pytest.raises(ValueError) as from_tiktoken:
            theirs.encode(text)
        assert str(from_scratch.value) == str(from_tiktoken.value)
    else:
        assert ours.encode(text) == ordinary == theirs.encode(text)


@given(st.text())  # every code point but surrogates, unassigned ones included
def test_round_trip_of_any_text(ours, theirs, text):
    for tokenizer in (ours, theirs):
        assert tokenizer.decode(tokenizer.encode(text, disallowed_special=())) == text


def test_surrogates_are_fixed_as_tiktoken_does(ours, theirs, raw_tiktoken):
    # a surrogate pair becomes the character it spells; a lone surrogate becomes U+FFFD
    text = "a\ud83d\ude00b\ud800c"
    assert ours.encode(text) == theirs.encode(text) == raw_tiktoken.encode(text) == ours.encode("a😀b\ufffdc")


PARTIAL_UTF8_IDS = [447, 247, 31479, 171, 94, 223, 30325]  # tokens whose bytes are pieces of characters
any_ids = st.lists(st.one_of(st.integers(0, 50256), st.sampled_from(PARTIAL_UTF8_IDS)), max_size=30)


@given(any_ids)
@example([447, 247])  # b"\xe2\x80" + b"\x99" = "’": two invalid halves, one valid character
@example([447])
def test_decoding_any_ids_gives_the_same_text_and_bytes(ours, theirs, raw_tiktoken, ids):
    assert ours.decode_bytes(ids) == theirs.decode_bytes(ids) == raw_tiktoken.decode_bytes(ids)
    assert ours.decode(ids) == theirs.decode(ids) == raw_tiktoken.decode(ids)
    assert ours.decode_tokens_bytes(ids) == theirs.decode_tokens_bytes(ids)
    assert ours.decode(ids, errors="ignore") == raw_tiktoken.decode(ids, errors="ignore")


def test_known_decodes(ours, theirs):
    for tokenizer in (ours, theirs):
        assert tokenizer.decode([447, 247]) == "’"
        assert tokenizer.decode([447]) == "\ufffd"
        with pytest.raises(UnicodeDecodeError):
            tokenizer.decode([447], errors="strict")
        assert tokenizer.decode([15496, 50256, 995]) == "Hello<|endoftext|> world"
    for token_id in PARTIAL_UTF8_IDS:  # the ids the strategy mixes in are really not UTF-8 alone
        with pytest.raises(UnicodeDecodeError):
            ours.decode_bytes([token_id]).decode("utf-8")


@pytest.mark.parametrize("call, message", [
    (lambda t: t.encode(42), "text must be a str, got int"),
    (lambda t: t.encode(None), "text must be a str, got NoneType"),
    (lambda t: t.encode_ordinary(b"bytes"), "text must be a str, got bytes"),
    (lambda t: t.encode("a <|endoftext|>"), "text contains the special token '<|endoftext|>', which is disallowed"),
    (lambda t: t.encode("<|endoftext|>", allowed_special=set(), disallowed_special={ENDOFTEXT}), "disallowed"),
    (lambda t: t.decode([50257]), r"token id 50257 is outside the vocabulary \[0, 50257\)"),
    (lambda t: t.decode([0, -1]), r"token id -1 is outside the vocabulary"),
    (lambda t: t.decode_bytes([1.5]), "token ids must be a sequence of ints"),
    (lambda t: t.decode("abc"), "token ids must be a sequence of ints"),
])
def test_bad_input_raises_the_same_clear_error_in_both(ours, theirs, call, message):
    errors = []
    for tokenizer in (ours, theirs):
        with pytest.raises(ValueError, match=message) as info:
            call(tokenizer)
        errors.append(str(info.value))
    assert errors[0] == errors[1]


def test_special_tokens_follow_tiktokens_allowed_and_disallowed_rules(ours, theirs):
    text = "a<|endoftext|>b"
    for tokenizer in (ours, theirs):
        assert tokenizer.encode(text, allowed_special={ENDOFTEXT}) == [64, 50256, 65]
        assert tokenizer.encode(text, allowed_special="all") == [64, 50256, 65]
        assert tokenizer.encode(text, disallowed_special=()) == [64, 27, 91, 437, 1659, 5239, 91, 29, 65]
        assert tokenizer.encode("<|endoftext|>", allowed_special={"<|other|>"}, disallowed_special=()) == [
            27, 91, 437, 1659, 5239, 91, 29]  # allowing a string that is not a special token does nothing


def test_corrupted_or_wrong_ranks_files_are_rejected(tmp_path):
    good = GPT2_RANKS_FILE.read_bytes().splitlines(keepends=True)
    cases = {
        "bad_base64": (b"!!notbase64 5\n", 5, "line 6: expected 'base64-token rank'"),
        "no_rank": (good[5].split()[0] + b"\n", 5, "line 6: expected 'base64-token rank'"),
        "duplicate": (good[4], 5, "line 6: token b'%' appears twice"),
        "gap": (good[5].replace(b" 5", b" 99999"), 5, "rank 5 is missing or repeated"),
    }
    for name, (line, index, message) in cases.items():
        path = tmp_path / f"{name}.tiktoken"
        path.write_bytes(b"".join(good[:index] + [line] + good[index + 1:]))
        for package in (np_tok, torch_tok):
            with pytest.raises(ValueError, match=message.replace("(", r"\(")):
                package.BPETokenizer.from_ranks_file(path)
    truncated = tmp_path / "truncated.tiktoken"
    truncated.write_bytes(b"".join(good[:100]))  # a valid prefix, but missing most single bytes
    with pytest.raises(ValueError, match="needs all 256 single bytes as tokens, missing 156"):
        load_ranks(truncated)


def test_wrong_hash_is_rejected_naming_both_hashes(tmp_path):
    path = tmp_path / "gpt2.tiktoken"
    path.write_bytes(GPT2_RANKS_FILE.read_bytes() + b"\n")  # one extra blank line: same ranks, other file
    assert load_ranks(path) == load_ranks(GPT2_RANKS_FILE)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for package in (np_tok, torch_tok):
        with pytest.raises(ValueError, match=f"has sha256 {digest}, expected {GPT2_RANKS_SHA256}"):
            package.BPETokenizer.from_ranks_file(path, GPT2_RANKS_SHA256)
    with pytest.raises(ValueError, match="unknown tokenizer 'gpt4'"):
        np_tok.get_tokenizer("gpt4")


def test_byte_pair_merge_by_rank_with_ties_to_the_left():
    ranks = {bytes([b]): b for b in range(256)} | {b"aa": 256, b"ab": 257, b"aab": 258}
    assert byte_pair_merge(ranks, b"aaab") == [b"aa", b"ab"]  # "aa" (256) first, leftmost of two
    assert byte_pair_merge(ranks, b"aab") == [b"aab"]  # aa, then aa+b
    assert byte_pair_merge(ranks, b"xyz") == [b"x", b"y", b"z"]
    assert byte_pair_merge(ranks, b"") == []


PIECES = [b"a", b"b", b" ", b"t", b"he", b"\xe2\x80\x99", b"1", b"\n"]


@given(st.lists(st.sampled_from(PIECES), max_size=60).map(b"".join))
@example(b"aaaa")  # equal-rank pairs: the leftmost merges first
def test_heap_merge_equals_the_plain_loop(ours, piece):
    tiny = {bytes([b]): b for b in range(256)} | {b"aa": 256, b"ab": 257, b"aab": 258, b"ba": 259}
    for ranks in (ours._ranks, tiny):
        parts = byte_pair_merge(ranks, piece)
        assert byte_pair_merge_heap(ranks, piece) == parts
        assert b"".join(parts) == piece


@pytest.mark.parametrize("piece", ["a" * 20_000, "1" * 20_000, "ab" * 10_000, "!" * 5_000, " " * 20_000])
def test_long_pieces_encode_identically_and_fast(ours, theirs, piece):
    text = "x " + piece + " y"
    assert ours.encode(text) == theirs.encode(text)  # takes seconds, not milliseconds, if the merge is quadratic


def test_bytes_to_unicode_is_gpt2s_printable_alphabet(ours):
    mapping = bytes_to_unicode()
    assert len(set(mapping.values())) == 256 and all(c.isprintable() and not c.isspace() for c in mapping.values())
    assert (mapping[ord(" ")], mapping[ord("\n")], mapping[ord("a")], mapping[0]) == ("Ġ", "Ċ", "a", "Ā")
    encoder = encoder_json_from_ranks(ours._ranks)
    assert (encoder["Ġthe"], encoder["Ċ"], encoder["Hello"]) == (262, 198, 15496)
    assert ranks_from_encoder_json(encoder | {ENDOFTEXT: 50256}) == ours._ranks


def test_the_from_scratch_pattern_is_gpt2s_original():
    assert GPT2_PATTERN == r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


# ------------------------------------------------------------------ training

def naive_train_bpe(text: str, vocab_size: int) -> dict[bytes, int]:
    """Training the slow, obvious way: recount every pair after every merge (the reference for train_bpe)."""
    pieces = Counter(piece for segment in text.split(ENDOFTEXT) for piece in regex.findall(GPT2_PATTERN, segment))
    words = [([bytes([b]) for b in piece.encode("utf-8")], count) for piece, count in pieces.items()]
    ranks = {bytes([b]): b for b in range(256)}
    while len(ranks) < vocab_size:
        pairs = Counter()
        for word, count in words:
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        ranks.setdefault(best[0] + best[1], len(ranks))
        words = [(_merge_all(word, best), count) for word, count in words]
    return ranks


def _merge_all(word, pair):
    """Left to right, each occurrence of ``pair`` becomes one token (a merged token cannot start another)."""
    out = []
    for token in word:
        if out and (out[-1], token) == pair:
            out[-1] = pair[0] + pair[1]
        else:
            out.append(token)
    return out


@pytest.fixture(scope="module")
def trained_ranks():
    return train_bpe(SAMPLE, 400)


@settings(max_examples=60)
@given(gpt2_texts(max_fragments=24), st.integers(256, 320))
def test_train_bpe_equals_the_naive_trainer(text, vocab_size):
    assert train_bpe(text, vocab_size) == naive_train_bpe(text, vocab_size)


def test_train_bpe_by_hand():
    # "aaa": (a,a) occurs twice -> "aa"; then (aa,a) once -> "aaa"; then nothing is left to merge
    assert {t: r for t, r in train_bpe("aaa", 1000).items() if r >= 256} == {b"aa": 256, b"aaa": 257}
    # pieces "ab" and " cd": three pairs seen once each, so ties go to the smallest pair of bytes
    assert {t: r for t, r in train_bpe("ab cd", 1000).items() if r >= 256} == {b" c": 256, b" cd": 257, b"ab": 258}
    assert len(train_bpe("<|endoftext|>" * 20, 300)) == 256  # special tokens are cut out, not learned


def test_trained_vocabulary_on_the_sample(trained_ranks):
    assert len(trained_ranks) == 400
    learned = sorted((r, t) for t, r in trained_ranks.items() if r >= 256)
    assert [t for _, t in learned[:6]] == [b" t", b"he", b" a", b"in", b" h", b" s"]
    for rank, token in learned:  # each new token joins two older ones
        assert any(trained_ranks.get(token[:i], rank) < rank and trained_ranks.get(token[i:], rank) < rank
                   for i in range(1, len(token)))
    ids = np_tok.BPETokenizer(trained_ranks).encode(SAMPLE)
    assert len(ids) == 10709  # 144 merges already take the 20,479 bytes to about half as many tokens


def test_saved_ranks_load_into_both_encoders_and_into_tiktokens_own_loader(trained_ranks, tmp_path, monkeypatch):
    path = tmp_path / "verdict400.tiktoken"
    digest = save_ranks(trained_ranks, path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_ranks(path, expected_sha256=digest) == trained_ranks
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # "" turns tiktoken's download cache off
    assert tiktoken.load.load_tiktoken_bpe(str(path)) == trained_ranks
    ours = np_tok.BPETokenizer.from_ranks_file(path, digest, name="verdict400")
    theirs = torch_tok.BPETokenizer.from_ranks_file(path, digest, name="verdict400")
    assert (ours.n_vocab, theirs.n_vocab, ours.eot_token, theirs.eot_token) == (401, 401, 400, 400)
    assert ours.encode(SAMPLE) == theirs.encode(SAMPLE)


@settings(max_examples=200)
@given(gpt2_texts())
def test_trained_tokenizers_agree_on_any_text(trained_ranks, text):
    ours, theirs = np_tok.BPETokenizer(trained_ranks), torch_tok.BPETokenizer(trained_ranks)
    ids = ours.encode(text, allowed_special="all")
    assert ids == theirs.encode(text, allowed_special="all")
    assert ours.decode(ids) == theirs.decode(ids) == text


def test_train_bpe_rejects_bad_arguments():
    with pytest.raises(ValueError, match="vocab_size must be an int >= 256 .one token per byte., got 255"):
        train_bpe("abc", 255)
    with pytest.raises(ValueError, match="text must be a str, got list"):
        train_bpe(["abc"], 300)
