"""Distributed training on PyTorch's engine: ``torchrun --nproc_per_node=2 -m gpt_cli train --impl torch``, two gloo
processes on loopback. Their all-reduced gradients are one process's gradients on both shares together, so a
2-process run's losses and weights equal a 1-process run with twice the accumulation."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch.distributed

from gpt_common.tokenizer import SAMPLE_TEXT_FILE
from gpt_common.tolerances import TRAINED_LOSS_RTOL, TRAINED_WEIGHTS_RTOL
from gpt_common.training.train_state import load_train_checkpoint

REPO = Path(__file__).resolve().parent.parent
TINY = {"vocab_size": 50257, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
        "drop_rate": 0.0, "qkv_bias": True}

pytestmark = [
    pytest.mark.slow,  # three training processes and a torchrun launcher: only make test-all
    pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                       reason="torch.distributed with gloo is not available"),
]


def train(tmp_path, out, accumulate, launcher, data=()):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    args = ["-m", "gpt_cli", "train", "--impl", "torch", *data, "--config", str(config), "--batch-size", "2",
            "--accumulate", str(accumulate), "--max-steps", "4", "--eval-every", "2", "--eval-batches", "1",
            "--dtype", "float64", "--grad-clip", "1.0", "--out", str(tmp_path / out), "--no-progress", "--threads", "1"]
    result = subprocess.run([sys.executable, *launcher, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in (tmp_path / out / "metrics.jsonl").read_text().splitlines()]


def prepared(tmp_path):
    """The bundled text as token shards (small ones, so a batch spans shards): ``--data DIR``."""
    out = tmp_path / "shards"
    result = subprocess.run([sys.executable, "-m", "gpt_cli", "prepare", str(SAMPLE_TEXT_FILE), "--out", str(out),
                             "--shard-tokens", "1000", "--no-progress"], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return ["--data", str(out)]


@pytest.mark.parametrize("source", ["text", "shards"])
def test_two_gloo_processes_equal_one_with_twice_the_accumulation(tmp_path, source):
    """On the bundled text tokenized in memory, and on the same text prepared as memory-mapped shards."""
    data = prepared(tmp_path) if source == "shards" else []
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    two = train(tmp_path, "two", accumulate=1, launcher=torchrun, data=data)
    one = train(tmp_path, "one", accumulate=2, launcher=[], data=data)
    assert [r["step"] for r in two] == [1, 2, 3, 4]  # rank 0 alone wrote the metrics, once per step
    np.testing.assert_allclose([r["loss"] for r in two], [r["loss"] for r in one], rtol=TRAINED_LOSS_RTOL["float64"])
    np.testing.assert_allclose([r["grad_norm"] for r in two], [r["grad_norm"] for r in one],
                               rtol=TRAINED_LOSS_RTOL["float64"])
    a, b = load_train_checkpoint(tmp_path / "two"), load_train_checkpoint(tmp_path / "one")
    for key, value in b.model.items():
        assert np.linalg.norm(a.model[key] - value) <= TRAINED_WEIGHTS_RTOL["float64"] * np.linalg.norm(value), key
