"""``prepare`` and the token shards: round trip, the in-memory path's ids and windows, reruns, bad input, memory."""

from __future__ import annotations

import errno
import io
import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt_cli.__main__ import main
from gpt_cli.prepare_cmd import make_encoder, text_pieces
from gpt_common import shards
from gpt_common.tolerances import TRAINED_LOSS_RTOL
from gpt_common.training.token_data import TokenData, split_tokens
from gpt_common.training.train_state import load_train_checkpoint
from tests.test_train import TINY, losses, train_cli
from tests.text_strategies import gpt2_texts

ENCODER = make_encoder("gpt2", 1)
WORDS = ["the", "king", "said", "thou", "art", "Straße", "naïve", "日本語", "don't", "42", "—", ",", ".", "!"]
SPACES = [" ", " ", " ", "\n", "\n\n", "  ", "\t", "\r\n", " \n "]


def corpus(num_words: int, seed: int) -> str:
    """Generated text with the whitespace and punctuation that test the cuts."""
    rng = np.random.default_rng(seed)
    words, spaces = rng.choice(WORDS, num_words), rng.choice(SPACES, num_words)
    return "".join(w + s for w, s in zip(words, spaces))


def encode(text: str) -> np.ndarray:
    return np.asarray(ENCODER.encode_one(text), dtype=np.int64)


def prepare(tmp_path: Path, *inputs: str, out: str = "out", extra: tuple = ()) -> int:
    return main(["prepare", *inputs, "--out", str(tmp_path / out), "--no-progress", *extra])


def decode(ids) -> str:
    from torch_gpt.tokenizer import get_tokenizer

    return get_tokenizer("gpt2").decode(list(ids))


# ------------------------------------------------------------------------------------------------ the cuts

@settings(max_examples=200)
@given(text=gpt2_texts(40), chunk_chars=st.integers(1, 12))
def test_cutting_at_safe_places_changes_no_token(text, chunk_chars):
    pieces = list(text_pieces(io.StringIO(text, newline=""), chunk_chars, max_chars=10**9))
    assert "".join(pieces) == text
    ids = [i for piece in pieces for i in ENCODER.encode_one(piece)]
    assert ids == ENCODER.encode_one(text)


def test_pieces_are_about_chunk_chars_and_a_forced_cut_still_keeps_the_text():
    text = corpus(3000, 0)
    pieces = list(text_pieces(io.StringIO(text, newline=""), 100))
    assert "".join(pieces) == text and len(pieces) > 50 and max(map(len, pieces)) < 300
    unbroken = "x" * 1000  # no safe cut anywhere: cut by force at max_chars
    assert [len(p) for p in text_pieces(io.StringIO(unbroken), 10, max_chars=300)] == [300, 300, 300, 100]


# ------------------------------------------------------------------------------------------------ round trip

def test_round_trip_ids_and_windows_equal_the_in_memory_path(tmp_path):
    text = corpus(20000, 1)
    (tmp_path / "c.txt").write_text(text, encoding="utf-8", newline="")
    assert prepare(tmp_path, str(tmp_path / "c.txt"), extra=("--shard-tokens", "3000", "--chunk-chars", "500")) == 0
    corpus_ = shards.open_shards(tmp_path / "out")
    assert len(corpus_.manifest["shards"]) > 5  # many shards, windows straddle their boundaries
    train, val = corpus_.split("train"), corpus_.split("val")
    ids = encode(text)
    assert decode(np.concatenate([train[:], val[:]])) == text
    np.testing.assert_array_equal(np.concatenate([train[:], val[:]]), ids)
    memory_train, memory_val = split_tokens(ids, 32, "text")  # the in-memory path: 90% / 10%
    for memory, mapped in ((memory_train, TokenData(train, 32)), (memory_val, TokenData(val, 32))):
        assert mapped.num_windows == memory.num_windows
        order = np.random.default_rng(0).permutation(memory.num_windows)[:40]
        for got, expected in zip(mapped.batch(order), memory.batch(order)):
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, expected)


def test_a_directory_is_documents_joined_by_endoftext_and_val_files_come_last(tmp_path):
    texts = [corpus(300, seed) for seed in range(3)]
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    for name, text in zip(("docs/b.txt", "docs/sub/a.txt", "held.txt"), texts):
        (tmp_path / name).write_text(text, encoding="utf-8", newline="")
    (tmp_path / "docs" / "skip.md").write_text("not read", encoding="utf-8")
    assert prepare(tmp_path, str(tmp_path / "docs"), extra=("--val-files", str(tmp_path / "held.txt"))) == 0
    corpus_ = shards.open_shards(tmp_path / "out")
    train, val = corpus_.split("train")[:], corpus_.split("val")[:]
    eot = ENCODER.eot
    np.testing.assert_array_equal(train, np.concatenate([encode(texts[0]), [eot], encode(texts[1]), [eot]]))
    np.testing.assert_array_equal(val, encode(texts[2]))


def test_stdin_and_the_simple_tokenizer(tmp_path, monkeypatch):
    text = "I HAD always thought Jack Gisburn rather a cheap genius--though a good fellow enough. " * 20
    read, write = os.pipe()
    os.write(write, text.encode("utf-8"))
    os.close(write)
    monkeypatch.setattr(sys, "stdin", os.fdopen(read, encoding="utf-8"))
    assert prepare(tmp_path, "-", extra=("--tokenizer", "simple")) == 0
    corpus_ = shards.open_shards(tmp_path / "out")
    assert corpus_.tokenizer["name"] == "simple" and corpus_.manifest["dtype"] == "uint16"
    from gpt_common.tokenizer import SAMPLE_TEXT_FILE, SimpleTokenizerV2

    simple = SimpleTokenizerV2.from_text(SAMPLE_TEXT_FILE.read_text(encoding="utf-8"))
    got = np.concatenate([corpus_.split("train")[:], corpus_.split("val")[:]])
    np.testing.assert_array_equal(got, simple.encode(text))


# ------------------------------------------------------------------------------------------------ reruns

def test_an_interrupted_prepare_lists_only_whole_shards_and_a_rerun_finishes_it_the_same(tmp_path, monkeypatch):
    text = corpus(20000, 2)
    (tmp_path / "c.txt").write_text(text, encoding="utf-8", newline="")
    flags = ("--shard-tokens", "3000", "--chunk-chars", "500", "--threads", "1")
    assert prepare(tmp_path, str(tmp_path / "c.txt"), out="whole", extra=flags) == 0
    calls, close = [], shards.ShardWriter.close

    def killed_at_the_fourth(writer):
        calls.append(writer.final.name)
        if len(calls) == 4:
            raise KeyboardInterrupt  # as a kill would stop it: after three shards, the fourth half written
        return close(writer)

    monkeypatch.setattr(shards.ShardWriter, "close", killed_at_the_fourth)
    assert prepare(tmp_path, str(tmp_path / "c.txt"), extra=flags) == 130  # the CLI's status for Ctrl-C
    monkeypatch.undo()
    out = tmp_path / "out"
    manifest = shards.read_manifest(out)
    assert not manifest["complete"] and [e["name"] for e in manifest["shards"]] == calls[:3]
    assert sorted(p.name for p in out.iterdir()) == sorted([shards.MANIFEST_FILE, *calls[:3]])  # no .tmp left
    with pytest.raises(ValueError, match="prepare did not finish"):
        shards.open_shards(out)
    first_written = (out / calls[0]).stat().st_mtime_ns
    assert prepare(tmp_path, str(tmp_path / "c.txt"), extra=flags) == 0
    assert (out / calls[0]).stat().st_mtime_ns == first_written  # skipped, not rewritten
    whole, resumed = shards.read_manifest(tmp_path / "whole"), shards.read_manifest(out)
    assert resumed["shards"] == whole["shards"] and resumed["split"] == whole["split"]


def test_a_rerun_skips_whole_shards_and_rewrites_a_damaged_one(tmp_path, capsys):
    (tmp_path / "c.txt").write_text(corpus(20000, 3), encoding="utf-8", newline="")
    flags = ("--shard-tokens", "3000", "--chunk-chars", "500")
    assert prepare(tmp_path, str(tmp_path / "c.txt"), extra=flags) == 0
    before = shards.read_manifest(tmp_path / "out")
    damaged = tmp_path / "out" / before["shards"][4]["name"]
    damaged.write_bytes(damaged.read_bytes()[:-2] + b"\xff\xff")
    capsys.readouterr()
    assert prepare(tmp_path, str(tmp_path / "c.txt"), extra=flags) == 0
    assert "(4 already whole and skipped)" in capsys.readouterr().err
    assert shards.read_manifest(tmp_path / "out") == before
    shards.open_shards(tmp_path / "out")  # every sha256 matches again


# ------------------------------------------------------------------------------------------------ bad input

def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


@pytest.fixture
def prepared(tmp_path):
    (tmp_path / "c.txt").write_text(corpus(4000, 4), encoding="utf-8", newline="")
    assert prepare(tmp_path, str(tmp_path / "c.txt"), extra=("--shard-tokens", "1000", "--chunk-chars", "300")) == 0
    return tmp_path / "out"


def first_shard(directory: Path) -> Path:
    return directory / shards.read_manifest(directory)["shards"][0]["name"]


@pytest.mark.parametrize("damage, reason", [
    (lambda b: b"NOTTOKS\x00" + b[8:], "not a token shard"),
    (lambda b: b[:8] + (2).to_bytes(4, "little") + b[12:], "shard version 2"),
    (lambda b: b[:-10], "truncated"),
    (lambda b: b[:30], "truncated"),
    (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], "sha256 does not match"),
])
def test_a_damaged_shard_is_refused_naming_the_file(prepared, damage, reason):
    shard = first_shard(prepared)
    shard.write_bytes(damage(shard.read_bytes()))
    with pytest.raises(ValueError, match=reason) as error:
        shards.open_shards(prepared)
    assert str(shard) in str(error.value)


def test_prepare_refuses_a_directory_holding_another_corpus_or_other_files(prepared, tmp_path, capsys):
    (tmp_path / "other.txt").write_text(corpus(500, 9), encoding="utf-8")
    before = {p.name: p.read_bytes() for p in prepared.iterdir()}
    assert prepare(tmp_path, str(tmp_path / "other.txt")) == 2
    assert f"--out {prepared} holds another corpus" in error_line(capsys)
    assert prepare(tmp_path, str(tmp_path / "c.txt"), extra=("--shard-tokens", "1000", "--chunk-chars", "301")) == 2
    assert "holds another corpus" in error_line(capsys)
    assert {p.name: p.read_bytes() for p in prepared.iterdir()} == before  # nothing lost
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine", encoding="utf-8")
    assert prepare(tmp_path, str(tmp_path / "other.txt"), out="busy") == 2
    assert "holds no prepared corpus" in error_line(capsys)
    assert (tmp_path / "busy" / "notes.txt").read_text(encoding="utf-8") == "mine"


@pytest.mark.parametrize("content, flags, reason", [
    ("", (), "the corpus is empty"),
    ("a b", ("--val-files", "{empty}"), "validation split .* is empty"),
    ("a", ("--val-fraction", "0.5"), "training split .* is empty"),
    ("hello world", ("--val-fraction", "1.5"), "--val-fraction must be in"),
    ("hello world", ("--tokenizer", "bpe:/nonexistent"), "--tokenizer must be"),
])
def test_prepare_refuses_bad_input_in_one_line(tmp_path, capsys, content, flags, reason):
    (tmp_path / "c.txt").write_text(content, encoding="utf-8")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    flags = [flag.format(empty=tmp_path / "empty.txt") for flag in flags]
    assert prepare(tmp_path, str(tmp_path / "c.txt"), extra=flags) == 2
    assert re.search(reason, error_line(capsys))


def test_not_utf8_and_missing_input_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "c.bin").write_bytes(b"abc \xff\xfe def")
    assert prepare(tmp_path, str(tmp_path / "c.bin")) == 2
    assert "not UTF-8" in error_line(capsys)
    assert prepare(tmp_path, str(tmp_path / "missing.txt"), out="o2") == 2
    assert "missing.txt: no such file or directory" in error_line(capsys)


def test_a_full_disk_keeps_the_whole_shards_and_the_rerun_continues(tmp_path, capsys, monkeypatch):
    (tmp_path / "c.txt").write_text(corpus(8000, 5), encoding="utf-8", newline="")
    flags = ("--shard-tokens", "1000", "--chunk-chars", "300", "--threads", "1")
    fsyncs, fsync = [], os.fsync

    def disk_full_at_the_third_shard(fd):  # fsyncs: 2 for the first manifest, then 4 a shard
        fsyncs.append(fd)
        if len(fsyncs) == 11:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(shards.os, "fsync", disk_full_at_the_third_shard)
    assert prepare(tmp_path, str(tmp_path / "c.txt"), extra=flags) == 2
    line = error_line(capsys)
    assert "No space left on device" in line and "run the same command again" in line and str(tmp_path) in line
    monkeypatch.undo()
    out = tmp_path / "out"
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())
    kept = shards.read_manifest(out)["shards"]
    assert len(kept) == 2 and all((out / e["name"]).is_file() for e in kept)
    assert prepare(tmp_path, str(tmp_path / "c.txt"), extra=flags) == 0
    corpus_ = shards.open_shards(out)
    got = np.concatenate([corpus_.split("train")[:], corpus_.split("val")[:]])
    with open(tmp_path / "c.txt", encoding="utf-8", newline="") as file:  # \r\n kept, as prepare reads it
        np.testing.assert_array_equal(got, encode(file.read()))


# ------------------------------------------------------------------------------------------------ memory

PEAK = textwrap.dedent("""
    import sys
    sys.argv = sys.argv[1:]
    if sys.argv[0] == "memory":  # the in-memory path, as `train --data FILE` reads a text
        from gpt_cli.prepare_cmd import make_encoder
        import numpy as np
        ids = np.asarray(make_encoder("gpt2", 1).encode_one(open(sys.argv[1], encoding="utf-8").read()))
    else:  # the prepare command alone (the full CLI also imports torch for its other commands)
        import argparse
        from gpt_cli import prepare_cmd
        parser = argparse.ArgumentParser()
        prepare_cmd.add_parser(parser.add_subparsers())
        args = parser.parse_args(sys.argv)
        assert args.func(args) == 0
    # VmHWM, this process' peak RSS (ru_maxrss would carry over the forking parent's, pytest's, through exec)
    print(next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM")))
""")


def peak_bytes(*argv: str) -> int:
    done = subprocess.run([sys.executable, "-c", PEAK, *argv], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from Linux's /proc")
def test_prepares_peak_memory_does_not_grow_with_the_corpus(tmp_path):
    """Peak RSS at 1x and 4x the text: prepare's grows by far less than the in-memory path's does."""
    small, large = tmp_path / "small.txt", tmp_path / "large.txt"
    text = corpus(100_000, 6)  # ~0.5 MB; the large corpus is four of it
    small.write_text(text, encoding="utf-8")
    large.write_text(text * 4, encoding="utf-8")
    flags = ["--no-progress", "--shard-tokens", "100000", "--chunk-chars", "4096"]  # 16 pieces: 64 K a batch
    grows = {}
    for how in ("prepare", "memory"):
        peaks = [peak_bytes(how, str(path), "--out", str(tmp_path / f"{how}-{path.stem}"), *flags)
                 if how == "prepare" else peak_bytes(how, str(path)) for path in (small, large)]
        grows[how] = peaks[1] - peaks[0]
    assert grows["memory"] > 3 * len(text), grows  # the measurement sees a corpus held in memory (the control)
    assert grows["prepare"] < grows["memory"] / 10, grows
    assert json.loads((tmp_path / "prepare-large" / "manifest.json").read_text())["complete"]


# ------------------------------------------------------------------------------------------------ training on shards

@pytest.fixture
def text_and_shards(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(corpus(3000, 7), encoding="utf-8", newline="")
    assert prepare(tmp_path, str(text), out="shards", extra=("--shard-tokens", "700", "--chunk-chars", "200")) == 0
    return text, tmp_path / "shards"


@pytest.mark.parametrize("impl", ["numpy", pytest.param("torch", marks=pytest.mark.slow)])
def test_training_on_shards_reads_the_windows_the_text_gives(tmp_path, text_and_shards, impl):
    """The same tokens, the same data order: the same losses, bit for bit, as training on the text itself."""
    text, shard_dir = text_and_shards
    common = ["--max-steps", "3", "--lr", "1e-3"]
    train_cli(tmp_path, *common, "--data", str(text), impl=impl, out="from-text")
    train_cli(tmp_path, *common, "--data", str(shard_dir), impl=impl, out="from-shards")
    assert losses(tmp_path / "from-text") == losses(tmp_path / "from-shards")
    records = [json.loads(line) for line in (tmp_path / "from-shards" / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r for r in records if "val_loss" in r]
    assert evaluated and all(r["val_perplexity"] == pytest.approx(math.exp(r["val_loss"]), rel=1e-12)
                             for r in evaluated)


def test_training_reports_perplexity_and_bits_per_byte_of_its_val_batches(tmp_path, text_and_shards):
    text, shard_dir = text_and_shards
    train_cli(tmp_path, "--max-steps", "2", "--data", str(shard_dir), out="run")
    record = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    val = TokenData(shards.open_shards(shard_dir).split("val"), 16)
    targets = val.batch(np.arange(8))[1]  # --eval-batches 2 of --batch-size 4 windows
    num_bytes = sum(len(token) for token in token_bytes(targets.ravel().tolist()))
    expected = record["val_loss"] * targets.size / math.log(2) / num_bytes
    assert record["val_bits_per_byte"] == pytest.approx(expected, rel=1e-12)
    assert record["val_perplexity"] == pytest.approx(math.exp(record["val_loss"]), rel=1e-12)


def token_bytes(ids) -> list[bytes]:
    """Each token's bytes, by tiktoken: a second source for the byte counts."""
    from torch_gpt.tokenizer import get_tokenizer

    return get_tokenizer("gpt2").decode_tokens_bytes(ids)


@pytest.mark.slow  # three fresh processes: about a minute on two shared cores
def test_resume_on_shards_is_bit_exact_in_a_fresh_process(tmp_path, text_and_shards):
    _, shard_dir = text_and_shards
    common = ["--max-steps", "4", "--lr", "1e-3", "--data", str(shard_dir)]
    train_cli(tmp_path, *common, out="straight", fresh_process=True)
    train_cli(tmp_path, *common, "--stop-after", "2", out="resumed", fresh_process=True)
    train_cli(tmp_path, *common, "--resume", str(tmp_path / "resumed"), out="resumed", fresh_process=True)
    assert losses(tmp_path / "straight") == losses(tmp_path / "resumed")
    straight, resumed = load_train_checkpoint(tmp_path / "straight"), load_train_checkpoint(tmp_path / "resumed")
    assert resumed.manifest["data"]["kind"] == "shards"
    for key, value in straight.model.items():
        assert np.array_equal(value, resumed.model[key]), key


@pytest.mark.slow
def test_a_checkpoint_on_shards_resumes_in_torch(tmp_path, text_and_shards):
    _, shard_dir = text_and_shards
    common = ["--max-steps", "4", "--dtype", "float64", "--drop-rate", "0", "--lr", "1e-3", "--data", str(shard_dir)]
    train_cli(tmp_path, *common, out="alone")
    train_cli(tmp_path, *common, "--stop-after", "2", out="crossed")
    train_cli(tmp_path, *common, "--resume", str(tmp_path / "crossed"), impl="torch", out="crossed")
    np.testing.assert_allclose(losses(tmp_path / "crossed"), losses(tmp_path / "alone"),
                               rtol=TRAINED_LOSS_RTOL["float64"])


def test_resume_against_a_changed_shard_set_is_refused(tmp_path, text_and_shards, capsys):
    text, shard_dir = text_and_shards
    train_cli(tmp_path, "--max-steps", "4", "--stop-after", "2", "--data", str(shard_dir), out="run")
    other = tmp_path / "other.txt"
    other.write_text(corpus(3000, 8), encoding="utf-8")
    assert prepare(tmp_path, str(other), out="other") == 0
    capsys.readouterr()
    resume = ["train", "--resume", str(tmp_path / "run"), "--no-progress"]
    assert main([*resume, "--data", str(tmp_path / "other")]) == 2
    assert "is not the data" in error_line(capsys)
    shard = first_shard(shard_dir)
    shard.write_bytes(shard.read_bytes()[:-2] + b"\x00\x00")  # the same set, one shard changed in place
    assert main(resume) == 2
    line = error_line(capsys)
    assert str(shard) in line and "sha256 does not match" in line


def test_a_val_split_shorter_than_one_window_is_refused(tmp_path, capsys):
    (tmp_path / "short.txt").write_text(corpus(60, 9), encoding="utf-8")
    assert prepare(tmp_path, str(tmp_path / "short.txt"), out="short") == 0
    capsys.readouterr()
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    assert main(["train", "--data", str(tmp_path / "short"), "--config", str(config), "--out",
                 str(tmp_path / "run"), "--no-progress"]) == 2
    line = error_line(capsys)
    assert str(tmp_path / "short") in line and "the val split holds" in line and "fewer than one window" in line


def test_a_large_text_is_still_trained_in_memory_with_a_note_pointing_to_prepare(tmp_path, capsys, monkeypatch):
    import gpt_cli.train_cmd

    monkeypatch.setattr(gpt_cli.train_cmd, "LARGE_TEXT", 1000)  # bytes: the test's text counts as large
    text = tmp_path / "text.txt"
    text.write_text(corpus(3000, 10), encoding="utf-8")
    train_cli(tmp_path, "--max-steps", "1", "--data", str(text), out="run")
    err = capsys.readouterr().err
    assert f"--data {text}:" in err and f"python -m gpt_cli prepare {text} --out DIR" in err
    assert len(losses(tmp_path / "run")) == 1


def test_a_ranks_file_tokenizer_gives_its_ids_and_is_named_by_its_sha256(tmp_path):
    from gpt_common.tokenizer import GPT2_RANKS_FILE, GPT2_RANKS_SHA256

    text = corpus(500, 11)
    (tmp_path / "c.txt").write_text(text, encoding="utf-8", newline="")
    assert prepare(tmp_path, str(tmp_path / "c.txt"), extra=("--tokenizer", f"bpe:{GPT2_RANKS_FILE}")) == 0
    corpus_ = shards.open_shards(tmp_path / "out")
    assert corpus_.tokenizer == {"name": "bpe", "n_vocab": 50257, "sha256": GPT2_RANKS_SHA256}
    shards.check_gpt2(corpus_, "--data")  # the same ranks as GPT-2's: accepted by eval and train
    np.testing.assert_array_equal(np.concatenate([corpus_.split("train")[:], corpus_.split("val")[:]]), encode(text))


def test_a_vocabulary_past_uint16_is_stored_as_uint32_and_read_back(tmp_path):
    assert shards.token_dtype(50257) == np.uint16 and shards.token_dtype(1 << 16) == np.uint16
    assert shards.token_dtype((1 << 16) + 1) == np.uint32
    ids = np.array([0, 65535, 65536, 100_000, 7], dtype=np.int64)
    with shards.ShardWriter(tmp_path / "s.bin", shards.token_dtype(200_000)) as writer:
        writer.append(ids)
        entry = writer.close()
    assert entry["max_id"] == 100_000 and entry["bytes"] == shards.HEADER_BYTES + 4 * len(ids)
    assert shards.read_header(tmp_path / "s.bin") == (np.dtype("<u4"), len(ids))
    data = np.memmap(tmp_path / "s.bin", dtype="<u4", mode="r", offset=shards.HEADER_BYTES)
    np.testing.assert_array_equal(shards.TokenStream([data], 1, 5)[np.array([[0, 3], [2, 1]])], [[65535, 7],
                                                                                                  [100_000, 65536]])
