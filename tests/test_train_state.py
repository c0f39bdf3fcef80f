"""Training checkpoints: bitwise round trips, atomic writes (an exception mid-save, and real SIGKILLs), refusal
of any checkpoint whose files disagree with its manifest, the keep window, and random-state round trips."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gpt_common import train_state
from gpt_common.train_state import (
    check_compatible,
    load_train_checkpoint,
    rng_from_json,
    rng_state_to_json,
    save_train_checkpoint,
)

REPO = Path(__file__).resolve().parent.parent


def tensors(seed, dtype=np.float32, size=(4, 3)):
    rng = np.random.default_rng(seed)
    return {"a.weight": rng.standard_normal(size).astype(dtype), "b": rng.standard_normal(5).astype(dtype)}


def save(out, step, seed=0, dtype=np.float32, **kwargs):
    model = tensors(seed, dtype)
    optimizer = {f"exp_avg.{k}": v * 2 for k, v in model.items()} | {"rng.torch": np.arange(7, dtype=np.uint8)}
    manifest = {"config": {"emb_dim": 4}, "note": f"step {step}"}
    return save_train_checkpoint(out, step, model, optimizer, manifest, **kwargs), model, optimizer


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_bitwise(tmp_path, dtype):
    path, model, optimizer = save(tmp_path, 3, dtype=dtype)
    for where in (tmp_path, path):  # the run directory (its latest) or the checkpoint itself
        loaded = load_train_checkpoint(where)
        assert loaded.path == path and loaded.manifest["step"] == 3 and loaded.manifest["note"] == "step 3"
        for key, value in model.items():
            assert loaded.model[key].dtype == dtype and np.array_equal(loaded.model[key], value)
        assert all(np.array_equal(loaded.optimizer[k], v) for k, v in optimizer.items())


def test_latest_names_the_newest_and_keep_prunes(tmp_path):
    for step in (1, 2, 3, 4):
        save(tmp_path, step, seed=step, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step_000003", "step_000004"]
    assert load_train_checkpoint(tmp_path).manifest["step"] == 4


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    save(tmp_path, 1, seed=1)
    calls = []

    def failing_write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the optimizer file, after the model file was written
            raise OSError("disk full")
        return real_write(*args, **kwargs)

    real_write = train_state._write_tensors
    monkeypatch.setattr(train_state, "_write_tensors", failing_write)
    with pytest.raises(OSError, match="disk full"):
        save(tmp_path, 2, seed=2)
    loaded = load_train_checkpoint(tmp_path)
    assert loaded.manifest["step"] == 1 and np.array_equal(loaded.model["b"], tensors(1)["b"])
    monkeypatch.setattr(train_state, "_write_tensors", real_write)
    save(tmp_path, 3, seed=3)  # the next save clears the half-written leftovers
    assert not list((tmp_path / "checkpoints").glob("*.tmp-*"))


SAVER = """
import sys, numpy as np
from gpt_common.train_state import save_train_checkpoint
out = sys.argv[1]
big = {"w": np.zeros((512, 1024), np.float32)}
step = 0
while True:
    step += 1
    big["w"][:] = step
    save_train_checkpoint(out, step, big, {"exp_avg.w": big["w"]}, {"config": {}}, keep=2)
    print(step, flush=True)
"""


def test_a_killed_save_never_leaves_an_unreadable_run(tmp_path):
    """SIGKILL a process that saves 2 MiB checkpoints in a loop, at several moments: every time, the run
    directory reads back whole, and its weights are those of the step its manifest names."""
    out = tmp_path / "run"
    for attempt in range(4):
        process = subprocess.Popen([sys.executable, "-c", SAVER, str(out)], cwd=REPO, stdout=subprocess.PIPE,
                                   text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        process.stdout.readline()  # at least one complete save
        time.sleep(0.05 + 0.07 * attempt)
        process.send_signal(signal.SIGKILL)
        process.wait()
        loaded = load_train_checkpoint(out)
        assert np.all(loaded.model["w"] == loaded.manifest["step"])


def test_refuses_a_truncated_file(tmp_path):
    path, _, _ = save(tmp_path, 1)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[:-10])
    with pytest.raises(ValueError, match="truncated or changed"):
        load_train_checkpoint(tmp_path)


def test_refuses_a_missing_tensor_even_with_a_matching_checksum(tmp_path):
    path, model, _ = save(tmp_path, 1)
    from safetensors.numpy import save_file

    save_file({"a.weight": model["a.weight"]}, path / "model.safetensors")  # "b" dropped
    manifest = json.loads((path / "manifest.json").read_text())
    data = (path / "model.safetensors").read_bytes()
    import hashlib

    manifest["files"]["model.safetensors"].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"missing \['b'\]"):
        load_train_checkpoint(tmp_path)


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "optimizer.safetensors").unlink(), "is missing"),
    (lambda p: (p / "manifest.json").write_text("{not json"), "not valid JSON"),
    (lambda p: (p / "manifest.json").write_text(json.dumps({"format": "other"})), "not a gpt-twins-train"),
])
def test_refuses_damaged_checkpoints(tmp_path, damage, message):
    path, _, _ = save(tmp_path, 1)
    damage(path)
    with pytest.raises(ValueError, match=message):
        load_train_checkpoint(path)


def test_refuses_a_directory_that_is_not_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="is not a training checkpoint"):
        load_train_checkpoint(tmp_path)


def test_check_compatible_names_the_differing_config_and_tensors(tmp_path):
    save(tmp_path, 1)
    manifest = load_train_checkpoint(tmp_path).manifest
    shapes = {"a.weight": (4, 3), "b": (5,)}
    check_compatible(manifest, {"emb_dim": 4}, shapes)
    with pytest.raises(ValueError, match=r"emb_dim 4 \(this run: 8\)"):
        check_compatible(manifest, {"emb_dim": 8}, shapes)
    with pytest.raises(ValueError, match=r"missing \['c'\]"):
        check_compatible(manifest, {"emb_dim": 4}, {**shapes, "c": (1,)})


def test_rng_state_round_trip_continues_the_stream():
    rng = np.random.default_rng(42)
    rng.random(10)
    state = json.loads(json.dumps(rng_state_to_json(rng)))  # through JSON, as in a manifest
    expected = rng.random(100)
    assert np.array_equal(rng_from_json(state).random(100), expected)
    with pytest.raises(ValueError, match="bit_generator"):
        rng_from_json({"bit_generator": "Nope"})
