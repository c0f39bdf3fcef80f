"""Training checkpoints: bitwise round trips, atomic saves (interrupted at every file operation, and SIGKILLed
for real), refusal of files that disagree with their manifest, compatibility checks, pruning, RNG state."""

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from safetensors.numpy import load_file, save_file

import gpt_common.training.train_state as ts
from gpt_common.training.train_state import (
    FORMAT,
    FORMAT_VERSION,
    check_compatible,
    load_train_checkpoint,
    rng_from_json,
    rng_state_to_json,
    save_train_checkpoint,
)
from tests.strategies import seeds

REPO = Path(__file__).resolve().parents[1]
CONFIG = {"vocab_size": 50, "context_length": 8, "emb_dim": 64, "n_heads": 4, "n_layers": 1, "drop_rate": 0.1,
          "qkv_bias": False}


def state(counter: int, size: int = 6):
    """A model, its optimizer moments and a manifest, every value derived from ``counter``."""
    model = {"tok_emb.weight": np.full((size, 4), counter, np.float32), "final_norm.scale": np.arange(4.0) + counter}
    optimizer = {f"{moment}.{name}": array * 2 for moment in ("exp_avg", "exp_avg_sq") for name, array in model.items()}
    optimizer["rng.torch"] = np.full(16, counter % 256, np.uint8)
    return model, optimizer, {"counter": counter, "config": CONFIG, "data_position": {"epoch": 0, "batch": counter}}


def assert_holds(checkpoint, counter: int) -> None:
    """The checkpoint is, bitwise, what ``state(counter)`` saved."""
    model, optimizer, manifest = state(counter, checkpoint.model["tok_emb.weight"].shape[0])
    assert checkpoint.manifest["counter"] == counter
    assert checkpoint.manifest["data_position"] == manifest["data_position"]
    for saved, loaded in ((model, checkpoint.model), (optimizer, checkpoint.optimizer)):
        assert sorted(saved) == sorted(loaded)
        for key, array in saved.items():
            assert loaded[key].dtype == array.dtype and loaded[key].tobytes() == array.tobytes()


def save(out, step, counter, **kwargs):
    model, optimizer, manifest = state(counter)
    return save_train_checkpoint(out, step, model, optimizer, manifest, **kwargs)


# ---- round trips ------------------------------------------------------------------------------------------------


@given(st.sampled_from([np.float32, np.float64]), st.integers(1, 5), st.integers(1, 5), seeds)
def test_arrays_round_trip_bitwise(tmp_path_factory, dtype, rows, cols, seed):
    out = tmp_path_factory.mktemp("run")
    values = np.random.default_rng(seed).standard_normal((rows, cols)).astype(dtype)
    values.flat[-1] = -0.0  # NaN and infinities are refused (test_train_safety.py): a checkpoint holds finite numbers
    specials = np.array([np.finfo(dtype).tiny / 4, np.finfo(dtype).max, -np.finfo(dtype).max], dtype)  # subnormal
    model = {"w": values, "specials": specials, "w_t": values.T}  # a transposed view is saved as its values
    optimizer = {"exp_avg.w": values * 3, "rng.torch": np.arange(256, dtype=np.uint8), "step": np.array(7, np.int64)}
    path = save_train_checkpoint(out, 3, model, optimizer, {"config": CONFIG})
    loaded = load_train_checkpoint(out)
    assert loaded.path == path == out / "checkpoints" / "step_000003"
    for saved, got in ((model, loaded.model), (optimizer, loaded.optimizer)):
        assert sorted(got) == sorted(saved)
        for key, array in saved.items():
            assert got[key].dtype == array.dtype and got[key].shape == array.shape
            assert got[key].tobytes() == np.ascontiguousarray(array).tobytes()


def test_the_manifest_holds_the_callers_fields_and_what_the_save_adds(tmp_path):
    path = save(tmp_path, 12, counter=5)
    loaded = load_train_checkpoint(path)  # a checkpoint directory works as well as the out dir
    manifest = loaded.manifest
    assert (manifest["format"], manifest["format_version"], manifest["step"]) == (FORMAT, FORMAT_VERSION, 12)
    assert manifest["config"] == CONFIG and manifest["counter"] == 5
    assert manifest["tensors"]["model.safetensors"] == {"tok_emb.weight": [[6, 4], "float32"],
                                                        "final_norm.scale": [[4], "float64"]}
    assert manifest["tensors"]["optimizer.safetensors"]["rng.torch"] == [[16], "uint8"]
    model_bytes = (path / "model.safetensors").read_bytes()
    assert manifest["files"]["model.safetensors"]["bytes"] == len(model_bytes)
    assert json.loads((tmp_path / "latest.json").read_text()) == {"checkpoint": "checkpoints/step_000012"}
    assert_holds(loaded, 5)


def test_loaded_arrays_are_writable_for_in_place_optimizer_steps(tmp_path):
    save(tmp_path, 1, counter=2)
    loaded = load_train_checkpoint(tmp_path)
    loaded.optimizer["exp_avg.tok_emb.weight"] += 1.0
    assert loaded.optimizer["exp_avg.tok_emb.weight"][0, 0] == 5.0


def test_saving_the_same_step_again_replaces_it_whole(tmp_path):
    save(tmp_path, 4, counter=1)
    save(tmp_path, 4, counter=2)
    assert_holds(load_train_checkpoint(tmp_path), 2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000004"]


# ---- RNG state --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"])
def test_rng_state_round_trips_through_json_to_the_identical_stream(name):
    generator = np.random.Generator(getattr(np.random, name)(20240611))
    generator.standard_normal(7)
    generator.integers(0, 2**32, 3, dtype=np.uint32)  # an odd count of 32-bit draws leaves a buffered half word
    restored = rng_from_json(json.loads(json.dumps(rng_state_to_json(generator))))
    assert restored.bit_generator.state["bit_generator"] == name
    assert restored.integers(0, 2**32, 5, dtype=np.uint32).tolist() == generator.integers(
        0, 2**32, 5, dtype=np.uint32).tolist()
    assert restored.random(1000).tobytes() == generator.random(1000).tobytes()
    assert restored.permutation(100).tolist() == generator.permutation(100).tolist()


def test_bad_rng_states_are_refused():
    state_json = rng_state_to_json(np.random.default_rng(1))
    with pytest.raises(ValueError, match=r"RNG state names bit generator 'Mystery', expected one of"):
        rng_from_json({**state_json, "bit_generator": "Mystery"})
    with pytest.raises(ValueError, match=r"RNG state for PCG64 is malformed"):
        rng_from_json({**state_json, "state": {"state": 1}})
    with pytest.raises(ValueError, match=r"expected a numpy.random.Generator, got RandomState"):
        rng_state_to_json(np.random.RandomState(1))
    assert rng_from_json(state_json).random() == np.random.default_rng(1).random()


# ---- atomicity --------------------------------------------------------------------------------------------------


class Interrupted(Exception):
    """What a kill at one file operation looks like to the rest of the save: nothing after it runs."""


def interrupt_at(monkeypatch, k: int, log: list) -> None:
    """Make the k-th durable file operation of the save fail; a safetensors write leaves half its file first."""
    real = {name: getattr(os, name) for name in ("fsync", "rename", "replace")}
    real_save_file = ts.save_file

    def wrap(name, call):
        def op(*args, **kwargs):
            log.append(name)
            if len(log) == k:
                if name == "save_file":
                    call(*args, **kwargs)
                    os.truncate(args[1], os.path.getsize(args[1]) // 2)
                raise Interrupted(name)
            return call(*args, **kwargs)
        return op

    for name, call in real.items():
        monkeypatch.setattr(os, name, wrap(name, call))
    monkeypatch.setattr(ts, "save_file", wrap("save_file", real_save_file))


@pytest.mark.parametrize("new_step", [2, 1], ids=["new step", "same step replaced"])
def test_a_save_interrupted_at_any_file_operation_leaves_a_complete_checkpoint(tmp_path, monkeypatch, new_step):
    reference = []  # the operations of one uninterrupted save, in order
    save(tmp_path / "ref", 1, counter=1)
    interrupt_at(monkeypatch, 0, reference)
    save(tmp_path / "ref", new_step, counter=2)
    monkeypatch.undo()
    # Readers see the new checkpoint once the operation that installs it has run (number `installs`, from 1): the
    # replace of latest.json for a new step; the rename of the finished directory into place for a replaced one.
    last_rename = len(reference) - 1 - reference[::-1].index("rename")
    installs = 1 + (reference.index("replace") if new_step == 2 else last_rename)
    for k in range(1, len(reference) + 1):
        out = tmp_path / f"k{k}"
        save(out, 1, counter=1)
        interrupt_at(monkeypatch, k, [])
        with pytest.raises(Interrupted):
            save(out, new_step, counter=2)
        monkeypatch.undo()
        assert_holds(load_train_checkpoint(out), 2 if k > installs else 1)
        save(out, 3, counter=3)  # the next save cleans up and works
        assert_holds(load_train_checkpoint(out), 3)
        leftovers = [p.name for p in out.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]
        assert leftovers == []
        assert (out / "checkpoints" / "step_000001" / "manifest.json").is_file()  # a replaced step is back whole


KILL_SCRIPT = """
import sys
import numpy as np
from gpt_common.training.train_state import save_train_checkpoint
out, counter = sys.argv[1], int(sys.argv[2])
while True:
    model = {"tok_emb.weight": np.full((1 << 20,), counter, np.float32)}
    optimizer = {"exp_avg.tok_emb.weight": np.full((1 << 20,), counter, np.float64)}
    # step counter // 2: every other save replaces the step directory the previous one wrote
    save_train_checkpoint(out, counter // 2, model, optimizer, {"counter": counter}, keep=2)
    print(counter, flush=True)
    counter += 1
"""


def test_a_process_killed_mid_save_leaves_the_last_complete_checkpoint(tmp_path):
    script = tmp_path / "saver.py"
    script.write_text(KILL_SCRIPT)
    out, counter, chance = tmp_path / "run", 0, random.Random(1234)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(5):
        saver = subprocess.Popen([sys.executable, str(script), str(out), str(counter)], stdout=subprocess.PIPE,
                                 text=True, env=env)
        reported = [int(saver.stdout.readline())]  # one save done, so there is a previous checkpoint
        time.sleep(chance.uniform(0.0, 0.25))
        saver.send_signal(signal.SIGKILL)
        reported += [int(line) for line in saver.stdout.read().split()]
        saver.wait()
        assert saver.returncode == -signal.SIGKILL
        loaded = load_train_checkpoint(out)
        got = loaded.manifest["counter"]
        assert got in (reported[-1], reported[-1] + 1)  # the save in flight may have finished before the kill
        assert loaded.model["tok_emb.weight"].min() == loaded.model["tok_emb.weight"].max() == got
        assert loaded.optimizer["exp_avg.tok_emb.weight"].max() == got
        counter = got + 1


def test_a_reader_finds_a_replaced_checkpoint_killed_between_the_two_renames(tmp_path):
    path = save(tmp_path, 5, counter=1)
    os.rename(path, path.with_name("step_000005.old-abc123"))  # the state between _install's renames
    assert_holds(load_train_checkpoint(tmp_path), 1)
    save(tmp_path, 6, counter=2)  # the next save puts it back under its name
    assert_holds(load_train_checkpoint(path), 1)
    assert not path.with_name("step_000005.old-abc123").exists()


# ---- refusals ---------------------------------------------------------------------------------------------------


def rewrite_manifest(path: Path, change) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    change(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def relist(path: Path, name: str) -> None:
    """Record a rewritten file's new size and hash in the manifest (but leave its tensor list alone)."""
    data = (path / name).read_bytes()
    rewrite_manifest(path, lambda m: m["files"].update({name: {"bytes": len(data),
                                                              "sha256": hashlib.sha256(data).hexdigest()}}))


def test_not_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"is not a training checkpoint: no manifest.json or latest.json$"):
        load_train_checkpoint(tmp_path)
    with pytest.raises(ValueError, match=r"missing is not a training checkpoint: it does not exist$"):
        load_train_checkpoint(tmp_path / "missing")
    (tmp_path / "latest.json").write_text('{"checkpoint": "../../etc"}')
    with pytest.raises(ValueError, match=r"latest.json: 'checkpoint' must be 'checkpoints/step_<number>', got '"):
        load_train_checkpoint(tmp_path)
    (tmp_path / "latest.json").write_text('{"checkpoint": "checkpoints/step_000009"}')
    with pytest.raises(ValueError, match=r"latest.json names checkpoints/step_000009, which has no manifest.json"):
        load_train_checkpoint(tmp_path)


def test_a_truncated_file_is_refused(tmp_path):
    path = save(tmp_path, 1, counter=1)
    size = (path / "optimizer.safetensors").stat().st_size
    os.truncate(path / "optimizer.safetensors", size - 10)
    with pytest.raises(ValueError, match=rf"optimizer.safetensors has {size - 10} bytes, the manifest says {size}: "
                                         "truncated or replaced"):
        load_train_checkpoint(tmp_path)


def test_a_corrupted_byte_is_refused(tmp_path):
    path = save(tmp_path, 1, counter=1)
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-1] ^= 0x01  # the last byte of the last tensor: the header still parses
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"model.safetensors: sha256 [0-9a-f]{64} differs from the manifest's "
                                         r"'[0-9a-f]{64}': the file is corrupted"):
        load_train_checkpoint(tmp_path)


def test_a_deleted_tensor_is_refused(tmp_path):
    path = save(tmp_path, 1, counter=1)
    arrays = load_file(path / "optimizer.safetensors")
    del arrays["exp_avg_sq.final_norm.scale"]
    save_file(arrays, path / "optimizer.safetensors")
    with pytest.raises(ValueError, match=r"optimizer.safetensors has \d+ bytes, the manifest says \d+"):
        load_train_checkpoint(tmp_path)  # the old manifest: caught by size
    relist(path, "optimizer.safetensors")
    with pytest.raises(ValueError, match=r"optimizer.safetensors does not hold the manifest's tensors: missing "
                                         r"\['exp_avg_sq.final_norm.scale'\], unexpected \[\]"):
        load_train_checkpoint(tmp_path)  # size and hash updated, tensor list not: caught by the list


def test_a_tensor_of_another_shape_than_listed_is_refused(tmp_path):
    path = save(tmp_path, 1, counter=1)
    rewrite_manifest(path, lambda m: m["tensors"]["model.safetensors"].update({"tok_emb.weight": [[4, 6], "float32"]}))
    with pytest.raises(ValueError, match=r"model.safetensors: tensor 'tok_emb.weight' is \[6, 4\] float32, "
                                         r"the manifest says \[\[4, 6\], 'float32'\]"):
        load_train_checkpoint(tmp_path)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(format_version=2), r"format 'gpt-twins-train' version 2 is not 'gpt-twins-train' version 1"),
    (lambda m: m.update(format_version=True), r"format 'gpt-twins-train' version True is not"),
    (lambda m: m.update(format="gpt-twins"), r"format 'gpt-twins' version 1 is not 'gpt-twins-train' version 1"),
    (lambda m: m.pop("step"), r"step must be an integer >= 0, got None"),
    (lambda m: m["files"].pop("optimizer.safetensors"), r"'files' must have an object for each of"),
])
def test_a_manifest_of_another_format_is_refused(tmp_path, change, message):
    path = save(tmp_path, 1, counter=1)
    rewrite_manifest(path, change)
    with pytest.raises(ValueError, match=message):
        load_train_checkpoint(tmp_path)


def test_unreadable_json_and_a_missing_file_are_refused(tmp_path):
    path = save(tmp_path, 1, counter=1)
    (path / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"step_000001/model.safetensors is missing: the manifest lists it"):
        load_train_checkpoint(tmp_path)
    (path / "manifest.json").write_text('{"format": ')
    with pytest.raises(ValueError, match=r"manifest.json is not readable JSON"):
        load_train_checkpoint(tmp_path)
    (tmp_path / "latest.json").write_text("[]")
    with pytest.raises(ValueError, match=r"latest.json must hold a JSON object, got list"):
        load_train_checkpoint(tmp_path)


def test_bad_saves_are_refused_before_anything_is_written(tmp_path):
    model, optimizer, manifest = state(1)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"manifest keys \['files'\] are written by the save itself"):
        save_train_checkpoint(out, 1, model, optimizer, {**manifest, "files": {}})
    with pytest.raises(ValueError, match=r"manifest must hold only JSON values \(no NaN or Infinity\)"):
        save_train_checkpoint(out, 1, model, optimizer, {**manifest, "loss": float("nan")})
    with pytest.raises(ValueError, match=r"model_tensors\['w'\] has dtype object, which safetensors cannot store"):
        save_train_checkpoint(out, 1, {"w": np.array([None])}, optimizer, manifest)
    with pytest.raises(ValueError, match=r"model_tensors is empty"):
        save_train_checkpoint(out, 1, {}, optimizer, manifest)
    with pytest.raises(ValueError, match=r"step must be an int >= 0, got -1"):
        save_train_checkpoint(out, -1, model, optimizer, manifest)
    with pytest.raises(ValueError, match=r"keep must be an int >= 1, got 0"):
        save_train_checkpoint(out, 1, model, optimizer, manifest, keep=0)
    assert not out.exists()


# ---- compatibility ----------------------------------------------------------------------------------------------


def test_a_checkpoint_of_another_config_is_refused_naming_the_difference(tmp_path):
    loaded = load_train_checkpoint(save(tmp_path, 1, counter=1))
    shapes = {key: array.shape for key, array in loaded.model.items()}
    assert check_compatible(loaded.manifest, CONFIG, shapes) is None
    with pytest.raises(ValueError, match=r"^checkpoint \(step 1\) was trained with emb_dim 64, "
                                         r"this run has emb_dim 32$"):
        check_compatible(loaded.manifest, {**CONFIG, "emb_dim": 32}, shapes)
    with pytest.raises(ValueError, match=r"^checkpoint out/x was trained with emb_dim 64 and n_heads 4, "
                                         r"this run has emb_dim 32 and n_heads 2$"):
        check_compatible(loaded.manifest, {**CONFIG, "emb_dim": 32, "n_heads": 2}, shapes, source="out/x")
    with pytest.raises(ValueError, match=r"was trained with no seed, this run has seed 3$"):
        check_compatible(loaded.manifest, {**CONFIG, "seed": 3}, shapes)


def test_a_checkpoint_with_other_parameters_is_refused(tmp_path):
    loaded = load_train_checkpoint(save(tmp_path, 1, counter=1))
    shapes = {key: array.shape for key, array in loaded.model.items()}
    with pytest.raises(ValueError, match=r"does not hold this run's parameters: missing \['out_head.weight'\], "
                                         r"unexpected \[\]"):
        check_compatible(loaded.manifest, CONFIG, {**shapes, "out_head.weight": (50, 64)})
    with pytest.raises(ValueError, match=r"parameter 'tok_emb.weight' has shape \(6, 4\), this run has \(7, 4\)"):
        check_compatible(loaded.manifest, CONFIG, {**shapes, "tok_emb.weight": (7, 4)})
    with pytest.raises(ValueError, match=r"has no config in its manifest"):
        check_compatible({"step": 1}, CONFIG, shapes)


# ---- pruning ----------------------------------------------------------------------------------------------------


def test_keep_two_leaves_the_two_newest(tmp_path):
    for step in range(1, 6):
        save(tmp_path, step, counter=step, keep=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000004", "step_000005"]
    assert_holds(load_train_checkpoint(tmp_path), 5)
    assert_holds(load_train_checkpoint(tmp_path / "checkpoints" / "step_000004"), 4)


def test_keep_never_deletes_the_checkpoint_latest_names(tmp_path):
    save(tmp_path, 10, counter=10)
    save(tmp_path, 3, counter=3, keep=1)  # a resumed, earlier run: latest names step 3, the newest number is 10
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000003", "step_000010"]
    assert_holds(load_train_checkpoint(tmp_path), 3)
