"""A training run never loses or mixes up work: output directories, resume checks, divergence, Ctrl-C,
kills at every phase of a step, a closed stdout, and one ``error:`` line for every refusal."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import gpt_common.training.train_state as ts
from gpt_cli.__main__ import main
from gpt_common.training.schedule import Schedule
from gpt_common.training.train_state import load_train_checkpoint
from numpy_gpt.trainer import Trainer as NumpyTrainer

TINY = {"vocab_size": 50257, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
        "drop_rate": 0.1, "qkv_bias": True}
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A tiny config file; the working directory is tmp_path, so a default --out never lands in the checkout."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    return str(config)


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> Path:
    """A tiny numpy run of 4 steps stopped after 2 (checkpoint step_000002), made once and copied by each test."""
    root = tmp_path_factory.mktemp("stopped")
    (root / "tiny.json").write_text(json.dumps(TINY))
    assert train(str(root / "tiny.json"), "--max-steps", "4", "--stop-after", "2", out=str(root / "run")) == 0
    return root / "run"


@pytest.fixture
def run_at_2(tiny, tmp_path, stopped_run) -> Path:
    shutil.copytree(stopped_run, tmp_path / "run")
    return tmp_path / "run"


def train(config, *extra, out="run"):
    """``gpt_cli train`` in this process: its exit status."""
    args = ["train", "--batch-size", "4", "--eval-every", "2", "--eval-batches", "1", "--no-progress", *extra]
    if "--resume" not in extra:
        args += ["--config", config]
    if out is not None:
        args += ["--out", out]
    return main(args)


def steps_and_losses(run_dir) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, (Path(run_dir) / "metrics.jsonl").read_text().splitlines())]


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("note:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---- output directories ---------------------------------------------------------------------------------------


def test_resume_without_out_writes_into_the_resumed_run(tiny, tmp_path):
    assert train(tiny, "--max-steps", "4", "--stop-after", "2", out="a") == 0
    assert train(tiny, "--resume", "a", out=None) == 0
    assert load_train_checkpoint(tmp_path / "a").manifest["step"] == 4
    assert [step for step, _ in steps_and_losses(tmp_path / "a")] == [1, 2, 3, 4]
    assert not (tmp_path / "runs").exists()  # the default --out was never touched


def test_a_fresh_run_refuses_an_out_that_holds_a_run_unless_told_to_overwrite(tiny, tmp_path, capsys):
    assert train(tiny, "--max-steps", "4") == 0
    assert train(tiny, "--max-steps", "2") == 2
    assert error_line(capsys).startswith("error: --out run already holds a run (latest.json, checkpoints, "
                                         "metrics.jsonl, loss-plot.png): resume it with --resume run")
    assert load_train_checkpoint(tmp_path / "run").manifest["step"] == 4  # untouched
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert train(tiny, "--max-steps", "2", "--overwrite") == 0
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_000002"]
    assert [step for step, _ in steps_and_losses(tmp_path / "run")] == [1, 2]
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"  # only a run's own files are replaced


def test_resume_into_another_run_is_refused(tiny, tmp_path, capsys):
    assert train(tiny, "--max-steps", "4", "--stop-after", "2", out="a") == 0
    assert train(tiny, "--max-steps", "2", out="b") == 0
    assert train(tiny, "--resume", "a", out="b") == 2
    assert error_line(capsys).startswith("error: --out b already holds a run")


def test_out_is_checked_before_any_work(tiny, tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(NumpyTrainer, "__init__", lambda *a, **k: pytest.fail("the model was built"))
    assert train(tiny, out="file") == 2
    assert error_line(capsys) == "error: --out file is a file, not a directory"
    assert train(tiny, out="file/sub") == 2
    assert error_line(capsys).startswith("error: --out file/sub cannot be written: ")


def test_a_planted_symlink_is_refused_by_name(tiny, tmp_path, run_at_2, capsys):
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "run" / "checkpoints" / "step_000004.tmp-abc")
    assert train(tiny, "--resume", "run") == 2
    assert error_line(capsys) == (f"error: {Path('run') / 'checkpoints'} holds symbolic links "
                                  "['step_000004.tmp-abc'], which no save writes; remove them")
    assert (tmp_path / "elsewhere").is_dir()


def test_a_full_disk_is_one_line_and_leaves_no_tmp_directory(tiny, tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise ts.SafetensorError("No space left on device (os error 28)")

    monkeypatch.setattr(ts, "save_file", full)
    assert train(tiny, "--max-steps", "2") == 2
    assert re.fullmatch(r"error: could not write checkpoint run/checkpoints/step_000002 \(nothing was replaced\): "
                        r"No space left on device \(os error 28\)", error_line(capsys))
    assert list((tmp_path / "run" / "checkpoints").iterdir()) == []


# ---- resume checks ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_resume_keeps_the_runs_impl_dtype_and_config(tiny, tmp_path):
    assert train(tiny, "--impl", "torch", "--dtype", "float64", "--max-steps", "4", "--stop-after", "2") == 0
    assert main(["train", "--resume", "run", "--no-progress"]) == 0  # no --impl, --dtype, --config, --batch-size
    checkpoint = load_train_checkpoint(tmp_path / "run")
    assert checkpoint.manifest["impl"] == "torch" and checkpoint.manifest["step"] == 4
    assert checkpoint.manifest["settings"]["dtype"] == "float64"
    assert all(value.dtype == np.float64 for value in checkpoint.model.values())


@pytest.mark.slow
def test_crossing_implementations_says_dropout_is_reseeded(tiny, run_at_2, capsys):
    assert train(tiny, "--resume", "run", "--impl", "torch") == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert notes == ["note: resuming a numpy checkpoint in torch: weights and AdamW moments carry over, "
                     "dropout is reseeded from (--seed, step)"]


RESUME_MISMATCHES = [
    (["--lr", "1e-3"], "error: --resume run was trained with --lr 0.0004; this command says --lr 0.001 (a resume "
                       "keeps what decides the numbers: leave these out, or start a new --out)"),
    (["--batch-size", "2", "--seed", "7"], "error: --resume run was trained with --batch-size 4, --seed 123; "
                                           "this command says --batch-size 2, --seed 7"),
    (["--dtype", "float64"], "error: --resume run was trained with --dtype 'float32'"),
    (["--data", "{other}"], "error: --data {other} (5000 bytes, sha256 "),
    (["--drop-rate", "0"], "error: checkpoint run was trained with drop_rate 0.1, this run has drop_rate 0.0"),
    (["--impl", "numpy", "--dtype", "bf16"], "error: --dtype bf16 needs --impl torch: NumPy has no bfloat16"),
]


@pytest.mark.parametrize("extra, message", RESUME_MISMATCHES)
def test_a_resume_that_would_change_the_numbers_is_refused(tiny, tmp_path, run_at_2, capsys, extra, message):
    other = tmp_path / "other.txt"
    other.write_text("Some other text entirely. " * 192 + "12345678")
    extra = [value.format(other=other) for value in extra]
    assert train(tiny, "--resume", "run", *extra, out=None) == 2
    assert error_line(capsys).startswith(message.format(other=other))
    assert load_train_checkpoint(tmp_path / "run").manifest["step"] == 2


def edit_manifest(run_dir: Path, change) -> None:
    file = load_train_checkpoint(run_dir).path / "manifest.json"
    manifest = json.loads(file.read_text())
    change(manifest)
    file.write_text(json.dumps(manifest))


MANIFEST_EDITS = [
    ("step", lambda m: m.update(step=3), "the manifest's step 3 is not its directory's step_000002"),
    ("optimizer step", lambda m: m["optimizer"]["steps"].update({"tok_emb.weight": 7}),
     "the optimizer's step counts are not all the manifest's step 2"),
    ("position", lambda m: m.update(position={"epoch": 0, "batch": 5}),
     "data position {'epoch': 0, 'batch': 5} is not step 2 at 72 batches per epoch"),
    ("impl", lambda m: m.update(impl="jax"), "impl 'jax' must be 'numpy' or 'torch', with its rng state"),
    ("betas", lambda m: m["optimizer"]["param_groups"][0].update(betas=[0.9, 1.5]),
     "betas must be two numbers in [0, 1), got [0.9, 1.5]"),
    ("eps", lambda m: m["optimizer"]["param_groups"][0].update(eps=-1), "eps must be a finite number >= 0, got -1"),
    ("no position", lambda m: m.pop("position"), "the manifest has no ['position']"),
    ("no rng", lambda m: m.pop("rng"), "the manifest has no ['rng']"),
    ("no optimizer", lambda m: m.pop("optimizer"), "the manifest has no ['optimizer']"),
    ("rng garbage", lambda m: m["rng"].update(numpy={"bit_generator": "PCG64", "state": 5}),
     "RNG state for PCG64 is malformed"),
]


@pytest.mark.parametrize("name, change, message", MANIFEST_EDITS, ids=[edit[0] for edit in MANIFEST_EDITS])
def test_a_hand_edited_manifest_is_refused(tiny, tmp_path, run_at_2, capsys, name, change, message):
    edit_manifest(tmp_path / "run", change)
    assert train(tiny, "--resume", "run") == 2
    assert message in error_line(capsys)


def test_a_longer_max_steps_keeps_the_schedule_and_then_holds_min_lr(tiny, tmp_path, capsys):
    """The schedule is planned over the first run's 4 steps; resumed to 6, steps 5 and 6 train at min_lr."""
    common = ["--lr", "1e-3", "--min-lr", "1e-4", "--warmup-steps", "1"]
    assert train(tiny, *common, "--max-steps", "4", "--stop-after", "2") == 0
    capsys.readouterr()
    assert train(tiny, "--resume", "run", "--max-steps", "6") == 0
    assert "note: --max-steps 6 runs past the schedule's 4 steps: steps 5 to 6 train at --min-lr 0.0001" in (
        capsys.readouterr().err)
    schedule = Schedule(peak_lr=1e-3, total_steps=4, warmup_steps=1, min_lr=1e-4)
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lrs == [schedule.lr_at(step) for step in range(4)] + [1e-4, 1e-4]


def test_metrics_are_cut_back_to_the_checkpoint_on_resume(tiny, tmp_path):
    """A kill after steps 3 and 4 were logged but before their checkpoint: the resume logs them once."""
    assert train(tiny, "--max-steps", "4", out="straight") == 0
    assert train(tiny, "--max-steps", "4", "--stop-after", "2") == 0
    with open(tmp_path / "run" / "metrics.jsonl", "a") as file:
        file.write(json.dumps({"step": 3, "loss": 0.0}) + "\n" + '{"step": 4, "lo')  # torn by the kill
    assert train(tiny, "--resume", "run") == 0
    assert steps_and_losses(tmp_path / "run") == steps_and_losses(tmp_path / "straight")


# ---- nothing lost between checkpoints ---------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["numpy", "torch"])
def test_a_real_divergence_names_its_step_and_the_last_good_checkpoint(tiny, tmp_path, capsys, impl):
    """A learning rate of 1e30, reached by warmup: no patched loss. One line, no NumPy warnings, no NaN checkpoint."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning from NumPy would fail the run here
        code = train(tiny, "--impl", impl, "--lr", "1e30", "--warmup-steps", "3", "--max-steps", "8",
                     "--eval-every", "1")  # step 1 at lr 0 (checkpointed), step 2 at 3.3e29
    line = error_line(capsys)
    assert code == 2, line
    match = re.fullmatch(r"error: (.*) at step (\d+): the run diverged\. The last good checkpoint is "
                         r"(\S+); resume it with: python -m gpt_cli train --resume run", line)
    assert match, line
    checkpoint = load_train_checkpoint(tmp_path / "run")  # refuses non-finite tensors
    assert int(match.group(2)) == 2 and checkpoint.manifest["step"] == 1
    assert Path(match.group(3)).resolve() == checkpoint.path.resolve()


def test_a_checkpoint_with_non_finite_weights_is_never_written_nor_loaded(tmp_path, monkeypatch):
    weights = {"w": np.array([1.0, np.nan], np.float32)}
    with pytest.raises(ValueError, match=r"model.safetensors: tensor 'w' holds NaN or infinite values"):
        ts.save_train_checkpoint(tmp_path, 1, weights, {}, {})
    assert not (tmp_path / "latest.json").exists()
    monkeypatch.setattr(ts, "check_finite", lambda what, arrays: None)
    ts.save_train_checkpoint(tmp_path, 1, weights, {}, {})
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"step_000001/model.safetensors: tensor 'w' holds NaN or infinite values"):
        load_train_checkpoint(tmp_path)


def test_a_bad_start_context_is_refused_before_any_step(tiny, capsys, monkeypatch):
    monkeypatch.setattr(NumpyTrainer, "__init__", lambda *a, **k: pytest.fail("the model was built"))
    assert train(tiny, "--start-context", "") == 2
    assert error_line(capsys) == "error: --start-context must be some text to sample from, got ''"


def interrupt_step_3(monkeypatch, interrupt) -> None:
    """``NumpyTrainer.step`` calls ``interrupt()`` as its third call (step 3) begins."""
    step, calls = NumpyTrainer.step, []

    def interrupted(self, *args):
        calls.append(1)
        if len(calls) == 3:
            interrupt()
        return step(self, *args)

    monkeypatch.setattr(NumpyTrainer, "step", interrupted)


def second_ctrl_c() -> None:
    raise KeyboardInterrupt  # what Python raises when Ctrl-C comes with no handler (or a second time)


def test_ctrl_c_checkpoints_the_step_and_exits_130(tiny, tmp_path, capsys, monkeypatch):
    interrupt_step_3(monkeypatch, lambda: os.kill(os.getpid(), signal.SIGINT))  # a real Ctrl-C, during step 3
    assert train(tiny, "--max-steps", "8") == 130
    assert error_line(capsys) == (f"error: interrupted: stopped after step 3. The last good checkpoint is "
                                  f"{Path('run/checkpoints/step_000003')}; resume it with: python -m gpt_cli train "
                                  "--resume run")
    assert load_train_checkpoint(tmp_path / "run").manifest["step"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_a_second_ctrl_c_stops_at_once_naming_the_last_checkpoint(tiny, tmp_path, capsys, monkeypatch):
    interrupt_step_3(monkeypatch, second_ctrl_c)
    assert train(tiny, "--max-steps", "8") == 130
    assert error_line(capsys) == (f"error: interrupted during step 3. The last good checkpoint is "
                                  f"{Path('run/checkpoints/step_000002')}; resume it with: python -m gpt_cli train "
                                  "--resume run")


# ---- kills and pipes, in processes of their own -----------------------------------------------------------------

KILLER = """
import os, signal, sys
import gpt_common.training.run as run, gpt_common.training.run_dir as run_dir
import gpt_common.training.train_state as ts, numpy_gpt.optim, numpy_gpt.trainer
phase, at = sys.argv[1], int(sys.argv[2])
calls = {}

def kill_on(owner, name, before=True):
    original = getattr(owner, name)
    def wrapped(*args, **kwargs):
        calls[name] = calls.get(name, 0) + 1
        if before and calls[name] == at:
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if not before and calls[name] == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    setattr(owner, name, wrapped)

target = {"optimizer": (numpy_gpt.optim.AdamW, "_update"), "metrics": (run, "append_metrics"),
          "checkpoint": (ts, "_install"), "latest": (ts, "_write_latest"), "evaluate": (numpy_gpt.trainer.Trainer,
          "evaluate"), "sample": (numpy_gpt.trainer.Trainer, "sample")}[phase]
kill_on(*target, before=phase != "metrics")
from gpt_cli.__main__ import main
sys.exit(main(sys.argv[3:]))
"""


def in_process_of_its_own(*argv, killer=None):
    code = ["-c", KILLER, *killer] if killer else ["-m", "gpt_cli"]
    return subprocess.run([sys.executable, *code, *argv], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("phase, at", [("optimizer", 100), ("metrics", 3), ("evaluate", 3), ("checkpoint", 2),
                                       ("latest", 2), ("sample", 2)])
def test_a_kill_at_any_phase_of_a_step_loses_nothing(tmp_path, phase, at):
    """SIGKILL mid-update, after a step's metrics line, mid-evaluation, between a checkpoint's renames, before
    latest.json moves, mid-sample; then a resume: every step once, the losses and weights of a straight run."""
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    common = ["train", "--config", str(config), "--batch-size", "4", "--eval-every", "2", "--eval-batches", "1",
              "--max-steps", "6", "--no-progress", "--threads", "1"]
    assert in_process_of_its_own(*common, "--out", str(tmp_path / "straight")).returncode == 0
    killed = in_process_of_its_own(*common, "--out", str(tmp_path / "run"), killer=(phase, str(at)))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = in_process_of_its_own("train", "--resume", str(tmp_path / "run"), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert steps_and_losses(tmp_path / "run") == steps_and_losses(tmp_path / "straight")
    ours, theirs = load_train_checkpoint(tmp_path / "run"), load_train_checkpoint(tmp_path / "straight")
    assert all(np.array_equal(value, ours.model[key]) for key, value in theirs.model.items())


@pytest.mark.slow
def test_a_closed_stdout_stops_the_printing_not_the_training(tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    command = [sys.executable, "-m", "gpt_cli", "train", "--config", str(config), "--batch-size", "4",
               "--eval-every", "1", "--eval-batches", "1", "--max-steps", "4", "--no-progress",
               "--out", str(tmp_path / "run")]
    reader = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = reader.stdout.readline()
    reader.stdout.close()  # `| head -1`
    err = reader.stderr.read().decode()
    assert reader.wait(timeout=300) == 0, err
    assert first.startswith(b"Ep 1 (Step 000001)") and "Traceback" not in err
    assert "note: stdout was closed: training goes on without printing" in err
    assert load_train_checkpoint(tmp_path / "run").manifest["step"] == 4


@pytest.mark.slow
def test_a_torch_resume_on_other_threads_says_it_is_not_bit_exact(tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    first = in_process_of_its_own("train", "--impl", "torch", "--config", str(config), "--batch-size", "4",
                                  "--max-steps", "4", "--stop-after", "2", "--threads", "1", "--no-progress",
                                  "--eval-every", "2", "--eval-batches", "1", "--out", str(tmp_path / "run"))
    assert first.returncode == 0, first.stderr
    assert load_train_checkpoint(tmp_path / "run").manifest["threads"] == 1
    again = in_process_of_its_own("train", "--resume", str(tmp_path / "run"), "--threads", "2", "--no-progress")
    assert again.returncode == 0, again.stderr
    assert (f"note: --resume {tmp_path / 'run'} ran on 1 threads, this run on 2: sums may round differently, "
            "so the continuation is not bit-exact (pass --threads)") in again.stderr
