"""Training end to end: the two implementations trained side by side, ``gpt_cli train`` resuming bit-exactly
in a fresh process (in both packages, and across them), bad input refused with nothing lost, and the book's
appendix D loop."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import numpy_gpt
import torch_gpt
import torch_gpt.data
from gpt_cli.__main__ import main
from gpt_common.config import GPTConfig
from gpt_common.tolerances import TRAINED_LOSS_RTOL, TRAINED_WEIGHTS_RTOL
from gpt_common.training.schedule import Schedule
from gpt_common.training.settings import RunSettings
from gpt_common.training.train_state import load_train_checkpoint
from numpy_gpt.trainer import Trainer as NumpyTrainer
from torch_gpt.trainer import Trainer as TorchTrainer

TINY = {"vocab_size": 50257, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
        "drop_rate": 0.1, "qkv_bias": True}
REPO = Path(__file__).resolve().parent.parent


def twin_trainers(cfg, dtype):
    """A torch Trainer and a NumPy one holding the torch one's initial weights."""
    torch_trainer = TorchTrainer(cfg, seed=5, weight_decay=0.1, decay="matrices", dtype=dtype)
    numpy_trainer = NumpyTrainer(cfg, seed=5, weight_decay=0.1, decay="matrices", dtype=dtype)
    weights, _, _ = torch_trainer.state()
    numpy_trainer.model.load_state_dict(weights)
    numpy_trainer.optimizer = numpy_trainer.new_optimizer()
    return numpy_trainer, torch_trainer


@pytest.mark.parametrize("dtype, steps", [("float64", 20), ("float32", 10)])
def test_numpy_and_torch_train_side_by_side(dtype, steps):
    """drop_rate 0, the same batches, warmup + cosine + clipping + accumulation: the losses agree step by step."""
    cfg = GPTConfig(**{**TINY, "vocab_size": 97, "drop_rate": 0.0})
    numpy_trainer, torch_trainer = twin_trainers(cfg, dtype)
    schedule = Schedule(peak_lr=1e-2, total_steps=steps, warmup_steps=3, initial_lr=1e-4, min_lr=1e-3)
    rng = np.random.default_rng(0)
    for step in range(steps):
        micro = [(ids[:, :-1], ids[:, 1:]) for ids in rng.integers(0, 97, (2, 3, 17))]
        clip = 0.5 if schedule.clips_at(step) else None
        ours, our_norm = numpy_trainer.step(micro, schedule.lr_at(step), clip)
        theirs, their_norm = torch_trainer.step(micro, schedule.lr_at(step), clip)
        assert abs(ours - theirs) <= TRAINED_LOSS_RTOL[dtype] * abs(theirs), f"step {step}: {ours} vs {theirs}"
        assert abs(our_norm - their_norm) <= TRAINED_LOSS_RTOL[dtype] * their_norm
    ours, _, _ = numpy_trainer.state()
    theirs, _, _ = torch_trainer.state()
    for key, value in theirs.items():
        assert ours[key].dtype == np.dtype(dtype)
        if key.endswith("att.W_key.bias"):
            # Softmax ignores a shift shared by a row of scores, so the key bias has gradient exactly 0 and no
            # effect on any output; what each side computes for it is rounding noise, and AdamW's m / sqrt(v)
            # turns noise of any size into steps of size lr. The two sides' key biases differ by design.
            continue
        error = np.linalg.norm(ours[key].astype(np.float64) - value)
        assert error <= TRAINED_WEIGHTS_RTOL[dtype] * np.linalg.norm(value), key


def train_cli(tmp_path, *extra, impl="numpy", out="run", fresh_process=False):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    args = ["train", "--impl", impl, "--config", str(config), "--batch-size", "4", "--eval-every", "2",
            "--eval-batches", "2", "--out", str(tmp_path / out), "--no-progress", *extra]
    if fresh_process:  # --threads sets torch's global thread count: only in a process of its own
        args += ["--threads", "1"]
        result = subprocess.run([sys.executable, "-m", "gpt_cli", *args], cwd=REPO, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout
    assert main(args) == 0


def losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("impl", ["numpy", "torch"])
def test_resume_in_a_fresh_process_is_bit_exact(tmp_path, impl):
    """6 steps straight, or 3 steps, stop, and 3 more in a new process: the same losses and weights, bit for bit
    (dropout on, data shuffled, warmup and cosine)."""
    common = ["--max-steps", "6", "--warmup-steps", "2", "--min-lr", "1e-5", "--lr", "1e-3", "--grad-clip", "1.0"]
    # Each run in a process of its own with one thread: a sum's order, so its last bit, depends on the threads.
    train_cli(tmp_path, *common, impl=impl, out="straight", fresh_process=True)
    train_cli(tmp_path, *common, "--stop-after", "3", impl=impl, out="resumed", fresh_process=True)
    train_cli(tmp_path, *common, "--resume", str(tmp_path / "resumed"), impl=impl, out="resumed", fresh_process=True)
    assert losses(tmp_path / "straight") == losses(tmp_path / "resumed")
    straight, resumed = load_train_checkpoint(tmp_path / "straight"), load_train_checkpoint(tmp_path / "resumed")
    assert straight.manifest["step"] == resumed.manifest["step"] == 6
    for key, value in straight.model.items():
        assert np.array_equal(value, resumed.model[key]), key
    for key, value in straight.optimizer.items():
        assert np.array_equal(value, resumed.optimizer[key]), key


@pytest.mark.parametrize("first, second", [("numpy", "torch"), ("torch", "numpy")])
def test_a_checkpoint_resumes_in_the_other_implementation(tmp_path, first, second):
    """float64, no dropout: 2 steps in one package and 2 in the other equal 4 steps in the first alone."""
    common = ["--max-steps", "4", "--dtype", "float64", "--drop-rate", "0", "--lr", "1e-3"]
    train_cli(tmp_path, *common, impl=first, out="alone")
    train_cli(tmp_path, *common, "--stop-after", "2", impl=first, out="crossed")
    train_cli(tmp_path, *common, "--resume", str(tmp_path / "crossed"), impl=second, out="crossed")
    np.testing.assert_allclose(losses(tmp_path / "crossed"), losses(tmp_path / "alone"),
                               rtol=TRAINED_LOSS_RTOL["float64"])
    crossed, alone = load_train_checkpoint(tmp_path / "crossed"), load_train_checkpoint(tmp_path / "alone")
    assert crossed.manifest["impl"] == second
    for key, value in alone.model.items():
        assert np.linalg.norm(crossed.model[key] - value) <= TRAINED_WEIGHTS_RTOL["float64"] * np.linalg.norm(value)


def test_default_run_writes_metrics_plot_and_checkpoints(tmp_path):
    printed = train_cli(tmp_path, "--max-steps", "4", out="run", fresh_process=True)
    run_dir = tmp_path / "run"
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all({"loss", "lr", "grad_norm", "tokens_per_s"} <= set(r) for r in records)
    assert records[-1]["loss"] < records[0]["loss"]  # the loss falls
    assert "Ep 1 (Step 000002): Train loss" in printed and "Every effort moves you" in printed
    assert (run_dir / "loss-plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_train_checkpoint(run_dir).manifest["step"] == 4


NO_CUDA = r"(no CUDA device is available|this machine has \d+ CUDA device\(s\))"
BAD_RUNS = [  # (flags, the one line: exactly, or a regular expression for all of it)
    (["--data", "missing.txt"], "error: --data missing.txt: no such file"),
    (["--data", "{empty}"], "error: --data {empty} is empty"),
    (["--data", "{short}"], re.compile(r"error: --data \S+short.txt has 5 tokens: too short for one window .*")),
    (["--data", "{plain}"], "error: --data {plain} is a directory without manifest.json; give a UTF-8 text file "
                            "or a corpus `python -m gpt_cli prepare` wrote"),
    (["--data", "{latin1}"], re.compile(r"error: --data \S+latin1.txt is not UTF-8 text: 'utf-8' codec .*")),
    (["--config", "{latin1}"], re.compile(r"error: --config \S+latin1.txt is not UTF-8 text: 'utf-8' codec .*")),
    (["--config", "{vocab1000}"], "error: --config {vocab1000}: vocab_size 1000 is smaller than the gpt2 "
                                  "tokenizer's 50257"),
    (["--batch-size", "500"], "error: --batch-size 500 x --accumulate 1 = 500 windows per step, more than the "
                              "data's 289 training windows of 16 tokens"),
    (["--batch-size", "2", "--accumulate", "1000"], "error: --batch-size 2 x --accumulate 1000 = 2000 windows per "
                                                    "step, more than the data's 289 training windows of 16 tokens"),
    (["--lr", "0"], "error: --lr must be a finite number > 0, got 0.0"),
    (["--lr=-1e-3"], "error: --lr must be a finite number > 0, got -0.001"),
    (["--lr", "inf"], "error: --lr must be a finite number > 0, got inf"),
    (["--min-lr", "1"], "error: --min-lr must be a number in [0, --lr 0.0004], got 1.0"),
    (["--initial-lr", "-1"], "error: --initial-lr must be a number in [0, --lr 0.0004], got -1.0"),
    (["--warmup-steps", "50", "--max-steps", "10"], "error: --warmup-steps 50 must be shorter than the run (10 steps)"),
    (["--accumulate", "0"], "error: --accumulate must be an integer >= 1, got 0"),
    (["--grad-clip", "nan"], "error: --grad-clip must be a finite number > 0, got nan"),
    (["--eval-every", "0"], "error: --eval-every must be an integer >= 1, got 0"),
    (["--keep", "0"], "error: --keep must be an integer >= 1, got 0"),
    (["--stop-after", "0"], "error: --stop-after must be >= 1, got 0"),
    (["--epochs", "0"], "error: --epochs must be >= 1, got 0"),
    (["--threads", "0"], "error: --threads must be >= 1, got 0"),
    (["--impl", "torch", "--threads", "0"], "error: --threads must be >= 1, got 0"),
    (["--seed", "-1"], "error: --seed must be None or an int in [0, 2**64), got -1"),
    (["--start-context", " "], "error: --start-context must be some text to sample from, got ' '"),
    (["--impl", "numpy", "--dtype", "bf16"], "error: --dtype bf16 needs --impl torch: NumPy has no bfloat16"),
    (["--impl", "numpy", "--device", "cuda"], "error: --device cuda: the NumPy implementation runs on the CPU only"),
    (["--impl", "torch", "--device", "banana"], "error: --device 'banana' is not a torch device: cpu, cuda or cuda:N"),
    (["--impl", "torch", "--device", "meta"], "error: --device 'meta': training runs on cpu or cuda"),
    (["--impl", "torch", "--device", "cuda:9"], re.compile("error: --device cuda:9: " + NO_CUDA)),
    (["--config", "1558M", "--dtype", "float64", "--batch-size", "64"], re.compile(
        r"error: training this config at --batch-size 64, T 1024 \(float64\) needs about [\d,.]+ GiB \(weights, "
        r"gradients and 2 AdamW moments 4[\d.]+, activations [\d,.]+\), more than the [\d,.]+ GiB of --device cpu")),
    (["--out", "{latin1}"], "error: --out {latin1} is a file, not a directory"),
    (["--resume", "{plain}"], "error: {plain} is not a training checkpoint: no manifest.json or latest.json"),
]


@pytest.mark.parametrize("extra, message", BAD_RUNS)
def test_bad_runs_are_refused_with_one_line(tmp_path, capsys, monkeypatch, extra, message):
    """Each refused before the model is built, with one line naming the user's flag or file."""
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "short.txt").write_text("A few words only.")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "vocab1000.json").write_text(json.dumps({**TINY, "vocab_size": 1000}))
    (tmp_path / "plain").mkdir()
    names = {f"{{{name}}}": str(tmp_path / file) for name, file in [
        ("empty", "empty.txt"), ("short", "short.txt"), ("latin1", "latin1.txt"), ("vocab1000", "vocab1000.json"),
        ("plain", "plain")]}
    extra = [names.get(value, value) for value in extra]
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    for trainer in (NumpyTrainer, TorchTrainer):
        monkeypatch.setattr(trainer, "__init__", lambda *a, **k: pytest.fail("the model was built"))
    args = ["train", "--config", str(config), "--out", str(tmp_path / "run"), "--no-progress"]
    code = main([*args, *extra])  # a later --config wins over the first
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    line = err.strip()
    if isinstance(message, re.Pattern):
        assert message.fullmatch(line), line
    else:
        expected = message
        for key, value in names.items():
            expected = expected.replace(key, value)
        assert line == expected


def test_resume_with_another_config_is_refused(tmp_path, capsys):
    train_cli(tmp_path, "--max-steps", "2", out="run")
    code = main(["train", "--config", "small", "--resume", str(tmp_path / "run"), "--out", str(tmp_path / "run"),
                 "--no-progress", "--max-steps", "4"])
    err = capsys.readouterr().err
    assert code == 2 and "emb_dim" in err


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    step, calls = NumpyTrainer.step, []

    def poisoned(self, micro_batches, lr, grad_clip):
        """The third step's loss comes back NaN, as a diverging run's would."""
        calls.append(lr)
        loss, norm = step(self, micro_batches, lr, grad_clip)
        return (float("nan") if len(calls) == 3 else loss), norm

    monkeypatch.setattr(NumpyTrainer, "step", poisoned)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    code = main(["train", "--config", str(config), "--batch-size", "4", "--eval-every", "2", "--max-steps", "6",
                 "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "the loss is nan at step 3: the run diverged" in err and "step_000002" in err
    assert load_train_checkpoint(tmp_path / "run").manifest["step"] == 2


def test_run_settings_reject_a_bad_clip():
    with pytest.raises(ValueError, match="--grad-clip must be a finite number > 0, got 0.0"):
        RunSettings(grad_clip=0.0)


def test_appendix_d_train_model_runs_in_both_packages():
    """The appendix D loop with the book's signature: warmup then cosine, the lrs it used, losses finite."""
    cfg = {**TINY, "vocab_size": 50257}
    text = "Every effort moves you forward. " * 40
    torch.manual_seed(0)
    loader = torch_gpt.data.create_dataloader_v1(text, batch_size=2, max_length=16, stride=16)
    results = []
    for package in (numpy_gpt, torch_gpt):
        if package is numpy_gpt:
            model = numpy_gpt.GPTModel(cfg, seed=0)
            optimizer = numpy_gpt.optim.AdamW(model.named_parameters(), lr=1e-3, weight_decay=0.1)
        else:
            model = torch_gpt.GPTModel(cfg)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
        printed = []
        out = package.train.train_model(
            model, loader, loader, optimizer, "cpu", n_epochs=1, eval_freq=2, eval_iter=1,
            start_context="Every effort", tokenizer=package.tokenizer.get_tokenizer("gpt2"), warmup_steps=2,
            initial_lr=1e-5, min_lr=1e-5, log=printed.append)
        results.append(out)
        assert printed[0].startswith("Ep 1 (Iter 000000): Train loss")
    for train_losses, _, tokens_seen, lrs in results:
        assert lrs[:2] == [1e-5, 1e-5 + (1e-3 - 1e-5) / 2] and lrs[2] == 1e-3 and abs(lrs[-1] - 1e-5) < 1e-3
        assert np.isfinite(train_losses).all() and tokens_seen[0] == 32
    assert results[0][3] == results[1][3]
