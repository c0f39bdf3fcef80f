"""``eval``: the sliding window, the three figures, NumPy against torch and Hugging Face, every kind of model dir."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import GPT2Config, GPT2LMHeadModel

import numpy_gpt
import torch_gpt
from gpt_cli.__main__ import main
from gpt_cli.eval_cmd import load_model
from gpt_common.config import as_config
from gpt_common.evaluation import IGNORE, evaluate_tokens, sliding_windows, token_byte_lengths
from gpt_common.tolerances import assert_grad_norm_within_budget
from gpt_common.training.train_state import save_train_checkpoint
from tests.twins import model_twins

TINY = {"vocab_size": 50257, "context_length": 16, "emb_dim": 8, "n_heads": 2, "n_layers": 1, "drop_rate": 0.0,
        "qkv_bias": True}
TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 6


def assert_losses_agree(a: float, b: float, logits_scale: float, vocab: int, dtype) -> None:
    """The loss rule of tests/test_loss.py: a model's loss, a mean of log-sum-exps over V terms of the logits'
    size, within the rounding budget of 20 steps (the model's and the loss's)."""
    assert_grad_norm_within_budget(a, b, 1.0 + logits_scale, vocab, 20, dtype, name="loss")


# ------------------------------------------------------------------------------------------------ windows

@given(num_tokens=st.integers(2, 300), context=st.integers(1, 40), data=st.data())
def test_sliding_windows_predict_every_token_once_with_at_least_context_minus_stride_before_it(num_tokens, context,
                                                                                               data):
    stride = data.draw(st.integers(1, context))
    counts = np.zeros(num_tokens, dtype=int)
    for window in sliding_windows(num_tokens, context, stride):
        assert 0 <= window.begin < window.end <= num_tokens - 1 and window.end - window.begin <= context
        for target in range(max(window.counted_from, window.begin + 1), window.end + 1):
            counts[target] += 1
            assert target - window.begin >= min(target, context - stride + 1)  # tokens of context it sees
    np.testing.assert_array_equal(counts, [0] + [1] * (num_tokens - 1))


def test_bad_window_arguments_are_refused():
    with pytest.raises(ValueError, match="stride 5 is larger than the context length 4"):
        sliding_windows(10, 4, 5)
    with pytest.raises(ValueError, match="1 token"):
        sliding_windows(1, 4, 4)


# ------------------------------------------------------------------------------------------------ the figures

def direct_losses(model, ids: np.ndarray, context: int, stride: int) -> np.ndarray:
    """Each token's loss, one window at a time, without batching or masks: the reference."""
    losses = np.full(len(ids), np.nan)
    for window in sliding_windows(len(ids), context, stride):
        logits = model(ids[None, window.begin : window.end]).astype(np.float64)[0]  # (T, V)
        log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
            - logits.max(-1, keepdims=True)
        for t in range(window.end - window.begin):
            target = window.begin + 1 + t
            if target >= window.counted_from:
                losses[target] = -log_probs[t, ids[target]]
    return losses[1:]


@pytest.mark.parametrize("stride", [16, 5, 1])
def test_loss_perplexity_and_bits_per_byte_are_the_means_of_each_tokens_loss(stride):
    cfg = {**TINY, "vocab_size": 50}
    model = numpy_gpt.GPTModel(cfg, seed=3, dtype=np.float64).eval()
    ids = np.random.default_rng(0).integers(0, 50, 90)
    lengths = np.random.default_rng(1).integers(0, 5, 50)  # some tokens of 0 bytes, like special ones
    result = evaluate_tokens(ids, 16, stride, lambda x, y: float(numpy_gpt.cross_entropy(model(x), y)), lengths,
                             batch_size=3)
    losses = direct_losses(model, ids, 16, stride)
    assert result.tokens == 89 and result.bytes == lengths[ids[1:]].sum()
    assert result.loss == pytest.approx(losses.mean(), rel=1e-12)
    assert result.perplexity == pytest.approx(math.exp(losses.mean()), rel=1e-12)
    assert result.bits_per_byte == pytest.approx(losses.sum() / math.log(2) / lengths[ids[1:]].sum(), rel=1e-12)


def test_token_byte_lengths_are_the_ranks_bytes_and_special_tokens_have_none():
    lengths = token_byte_lengths({b"a": 0, b"bc": 1, b"\xe6\x97": 2}, 4)
    np.testing.assert_array_equal(lengths, [1, 2, 2, 0])


@pytest.mark.parametrize("stride", [8, 3])
def test_numpy_and_torch_agree_within_the_rounding_rule(stride):
    cfg = {**TINY, "vocab_size": 60, "context_length": 8, "n_layers": 2}
    np_model, torch_model = model_twins(cfg, np.float64, 5)
    ids = np.random.default_rng(2).integers(0, 60, 70)
    lengths = np.ones(60, dtype=np.int64)
    np_loss = evaluate_tokens(ids, 8, stride, lambda x, y: float(numpy_gpt.cross_entropy(np_model(x), y)), lengths)
    with torch.no_grad():
        torch_loss = evaluate_tokens(ids, 8, stride, lambda x, y: torch_gpt.cross_entropy(
            torch_model(torch.from_numpy(x)), torch.from_numpy(y)).item(), lengths)
    scale = float(np.abs(np_model(ids[None, :8])).max())
    assert_losses_agree(np_loss.loss, torch_loss.loss, scale, 60, np.float64)
    assert np_loss.tokens == torch_loss.tokens == 69
    assert np_loss.loss > 1.0  # a real loss, not a degenerate one


# ------------------------------------------------------------------------------------------------ the command

@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """A save_pretrained dir, a training run dir, a Hugging Face GPT-2 dir, a text and a prepared corpus."""
    root = tmp_path_factory.mktemp("eval")
    model = numpy_gpt.GPTModel(TINY, seed=7)
    numpy_gpt.save_pretrained(model, root / "pretrained")
    from numpy_gpt.trainer import Trainer

    trainer = Trainer(as_config(TINY), seed=8, weight_decay=0.1)
    tensors, optimizer, meta = trainer.state()
    save_train_checkpoint(root / "run", 3, tensors, optimizer, {"impl": "numpy", "config": TINY, **meta}, keep=1)
    torch.manual_seed(9)
    hf_config = GPT2Config(vocab_size=50257, n_positions=16, n_embd=8, n_layer=1, n_head=2)
    hf = GPT2LMHeadModel(hf_config).eval()
    with torch.no_grad():
        for param in hf.parameters():
            param.normal_(0.0, 0.3)
    hf.save_pretrained(root / "hf")
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    assert main(["prepare", str(root / "text.txt"), "--out", str(root / "corpus"), "--no-progress",
                 "--val-fraction", "0.5"]) == 0
    return root


def eval_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(["eval", *argv]) == 0
    out, err = capsys.readouterr()
    assert "bits/byte" in err
    return json.loads(out)


def logits_scale(model_dir: Path) -> float:
    """max |logit| of the model on the first window of the text: the size of the loss's terms."""
    model, cfg = load_model(str(model_dir), "numpy")
    ids = np.asarray(torch_gpt.tokenizer.get_tokenizer("gpt2").encode(TEXT))[None, : cfg.context_length]
    return float(np.abs(model(ids)).max())


@pytest.mark.parametrize("kind", ["pretrained", "run", "hf"])
def test_every_kind_of_model_dir_evaluates_alike_in_numpy_and_torch(dirs, capsys, kind):
    argv = ["--model", str(dirs / kind), "--data", str(dirs / "corpus"), "--stride", "5"]
    got = {impl: eval_json(capsys, *argv, "--impl", impl) for impl in ("numpy", "torch")}
    assert got["numpy"]["tokens"] == got["torch"]["tokens"] > 50
    assert_losses_agree(got["numpy"]["loss"], got["torch"]["loss"], logits_scale(dirs / kind), 50257, np.float32)
    for record in got.values():
        assert record["perplexity"] == pytest.approx(math.exp(record["loss"]), rel=1e-12)
        assert record["bits_per_byte"] == pytest.approx(record["loss"] * record["tokens"] / math.log(2)
                                                        / record["bytes"], rel=1e-12)


def test_a_gpt2_dir_gives_hugging_faces_own_loss(dirs, capsys):
    """The third opinion: GPT2LMHeadModel's logits on the same windows, in float64 (its own ``labels=`` loss
    would round the logits to float32 first)."""
    ids = np.asarray(torch_gpt.tokenizer.get_tokenizer("gpt2").encode(TEXT))[:60]
    hf = GPT2LMHeadModel.from_pretrained(dirs / "hf").double().eval()
    nll, count = 0.0, 0
    for window in sliding_windows(len(ids), 15, 4):  # 15 + 1 tokens fit GPT-2's 16 positions
        tokens = torch.from_numpy(ids[window.begin : window.end + 1])
        targets = tokens[1:].clone()
        targets[: window.counted_from - window.begin - 1] = IGNORE
        with torch.no_grad():
            logits = hf(tokens[None, :-1]).logits[0]  # (T, V) float64
        counted = int((targets != IGNORE).sum())
        nll += torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
        count += counted
    for impl in ("numpy", "torch"):
        got = eval_json(capsys, "--model", str(dirs / "hf"), "--data", str(dirs / "text.txt"), "--impl", impl,
                        "--context-length", "15", "--stride", "4", "--dtype", "float64", "--batch-size", "3",
                        "--max-tokens", "60")
        assert got["tokens"] == count == len(ids) - 1
        assert_losses_agree(got["loss"], nll / count, logits_scale(dirs / "hf"), 50257, np.float64)


def test_the_json_record_is_written_to_out_and_max_tokens_limits_it(dirs, capsys, tmp_path):
    got = eval_json(capsys, "--model", str(dirs / "pretrained"), "--data", str(dirs / "text.txt"), "--max-tokens",
                    "40", "--out", str(tmp_path / "e.json"))
    assert json.loads((tmp_path / "e.json").read_text(encoding="utf-8")) == got
    assert got["tokens"] == 39 and got["context_length"] == 16 and got["stride"] == 16


# ------------------------------------------------------------------------------------------------ bad input

def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_ids_at_or_above_the_models_vocabulary_are_refused(dirs, capsys, tmp_path):
    model = numpy_gpt.GPTModel({**TINY, "vocab_size": 300}, seed=1)
    numpy_gpt.save_pretrained(model, tmp_path / "small-vocab")
    for data in ("corpus", "text.txt"):
        assert main(["eval", "--model", str(tmp_path / "small-vocab"), "--data", str(dirs / data)]) == 2
        line = error_line(capsys)
        assert str(dirs / data) in line and "at or above the model's vocab_size 300" in line


def test_a_corpus_of_another_tokenizer_is_refused(dirs, capsys, tmp_path):
    assert main(["prepare", str(dirs / "text.txt"), "--out", str(tmp_path / "simple"), "--tokenizer", "simple",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", "--model", str(dirs / "pretrained"), "--data", str(tmp_path / "simple")]) == 2
    line = error_line(capsys)
    assert str(tmp_path / "simple" / "manifest.json") in line and "tokenized with simple" in line


@pytest.mark.parametrize("argv, reason", [
    (["--data", "{dirs}/missing.txt"], "missing.txt: no such file"),
    (["--model", "{dirs}/nowhere"], "nowhere: no such directory"),
    (["--stride", "20"], "larger than the context length 16"),
    (["--context-length", "17"], r"--context-length must be in \[1, 16\]"),
    (["--max-tokens", "1"], "--max-tokens must be >= 2"),
])
def test_bad_flags_are_one_line_errors(dirs, capsys, argv, reason):
    base = {"--model": str(dirs / "pretrained"), "--data": str(dirs / "text.txt")}
    flags = dict(zip(argv[::2], [a.format(dirs=dirs) for a in argv[1::2]]))
    command = [item for key, value in {**base, **flags}.items() for item in (key, value)]
    assert main(["eval", *command]) == 2
    assert re.search(reason, error_line(capsys))


def test_a_damaged_checkpoint_is_refused_naming_its_file(dirs, capsys, tmp_path):
    path = Path(tmp_path / "run")
    shutil.copytree(dirs / "run", path)
    weights = next(path.rglob("model.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-8])
    assert main(["eval", "--model", str(path), "--data", str(dirs / "text.txt")]) == 2
    assert "model.safetensors" in error_line(capsys)


def test_generate_reads_a_training_run(dirs, capsys):
    """generate --weights RUN continues greedily with the run's weights (read here straight from the checkpoint)."""
    from gpt_common.training.train_state import load_train_checkpoint

    checkpoint = load_train_checkpoint(dirs / "run")
    model = numpy_gpt.GPTModel(TINY, seed=0)
    model.load_state_dict(checkpoint.model)
    tokenizer = torch_gpt.tokenizer.get_tokenizer("gpt2")
    ids = tokenizer.encode("First Citizen:")
    for _ in range(4):
        ids.append(int(np.argmax(model.eval()(np.array([ids]))[0, -1])))
    capsys.readouterr()
    assert main(["generate", "--weights", str(dirs / "run"), "--prompt", "First Citizen:", "--max-new-tokens", "4",
                 "--no-stop"]) == 0
    assert capsys.readouterr().out == tokenizer.decode(ids) + "\n"
