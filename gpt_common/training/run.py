"""The run loop of ``gpt_cli train``, written once for both implementations.

Each package's ``trainer.Trainer`` owns the model, the optimizer and the random state, and answers the
same calls (``step``, ``evaluate``, ``sample``, ``state``, ``load_state``); this loop owns everything
that is not framework code: the data order, the schedule, evaluation, ``metrics.jsonl``, the loss
plot, checkpoints and resuming.

A run is a pure function of its ``RunSettings``: batch k of epoch e is read from
``data_order.batches(..., epoch=e, seed)``, the learning rate of step s is ``schedule.lr_at(s)``, and
dropout draws from the trainer's generator, whose state is saved. So K steps, a checkpoint and N - K
more steps in a fresh process give bitwise the losses and weights of N steps straight.

Nothing is lost between checkpoints. Each step, in this order: train; stop if the loss or the gradient
norm is not finite; evaluate the losses (when due); append the step's record to ``metrics.jsonl``;
write the checkpoint (when due); then sample and log, the parts that may fail for reasons of their own
(a closed stdout). A divergence (NaN or infinite loss, gradients, logits or weights) stops the run with
one line naming its step, the last good checkpoint and the command that resumes it.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import evaluation as gpt_eval
from ..validation import NonFiniteError, is_int
from .data_order import DataPosition, batches, batches_per_epoch
from .param_groups import check_adamw_args
from .run_dir import PLOT_FILE, append_metrics, cut_metrics, run_dir_of
from .settings import Cadence, RunSettings
from .token_data import TokenData, check_same_data
from .train_state import check_compatible, load_train_checkpoint, save_train_checkpoint

__all__ = ["run_training", "Diverged", "Interrupted", "read_resume_manifest"]


class Diverged(ValueError):
    """The run's numbers stopped being finite; the message names the step and the last good checkpoint."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C: the message names the checkpoint to resume from (the CLI exits with status 130)."""


@dataclasses.dataclass
class Progress:
    """Where the run is: steps done, the next batch to read, the evaluations so far, the last checkpoint."""

    step: int = 0
    position: DataPosition = DataPosition()
    history: list = dataclasses.field(default_factory=list)
    saved: Path | None = None
    running: int = 1  # the step being trained (1-based), for the messages


def run_training(trainer, cfg, settings: RunSettings, cadence: Cadence, train: TokenData, val: TokenData,
                 tokenizer, out_dir, *, facts: dict, resume=None, world=(0, 1), log: Callable[[str], None] = print,
                 note: Callable[[str], None] = print, progress=None,
                 stop_requested: Callable[[], bool] = lambda: False) -> list[dict]:
    """Train ``trainer`` up to ``cadence.max_steps`` (default: the schedule's length); returns the steps' records.

    ``facts`` are the run's other facts a resume must check (the data's identity, the thread count).
    ``world`` is (rank, world size) under torchrun: each rank reads its share of every step's micro-batches
    and rank 0 alone writes files. ``stop_requested`` (Ctrl-C, once) ends the run after the current step,
    with a checkpoint.
    """
    out = Path(out_dir)
    steps_per_epoch = batches_per_epoch(train.num_windows, settings.batch_size * settings.accumulate * world[1],
                                        drop_last=True, context_length=train.context_length)
    done = Progress()
    if resume is not None:
        done = _resume(trainer, cfg, settings, facts, resume, steps_per_epoch, note)
        if world[0] == 0:
            cut_metrics(run_dir_of(done.saved), out, done.step)
    max_steps = cadence.max_steps or settings.total_steps
    if done.step >= max_steps:
        raise ValueError(f"--resume {resume}: the checkpoint is at step {done.step}, not before --max-steps "
                         f"{max_steps}")
    if max_steps > settings.total_steps and settings.min_lr != settings.lr:
        note(f"note: --max-steps {max_steps} runs past the schedule's {settings.total_steps} steps: "
             f"steps {settings.total_steps + 1} to {max_steps} train at --min-lr {settings.min_lr}")
    try:
        return _loop(trainer, cfg, settings, cadence, train, val, tokenizer, out, facts, done, max_steps,
                     steps_per_epoch, world, log, progress, stop_requested)
    except NonFiniteError as err:
        raise Diverged(f"{err} at step {done.running}: the run diverged. {_last_good(done)}") from None
    except KeyboardInterrupt as err:
        if isinstance(err, Interrupted):
            raise
        raise Interrupted(f"interrupted during step {done.running}. {_last_good(done)}") from None


def _loop(trainer, cfg, settings, cadence, train, val, tokenizer, out, facts, done, max_steps, steps_per_epoch,
          world, log, progress, stop_requested) -> list[dict]:
    """The steps themselves, epoch by epoch from ``done.position``; see the module docstring for each step's order."""
    schedule, records, per_step = settings.schedule(), [], settings.batch_size * settings.accumulate * world[1]
    while True:
        epoch_batches = batches(train.num_windows, per_step, done.position.epoch, settings.seed, shuffle=True,
                                drop_last=True, context_length=train.context_length)
        for batch_index in range(done.position.batch, steps_per_epoch):
            done.running = done.step + 1
            record = _one_step(trainer, settings, schedule, train, epoch_batches[batch_index], done.step, world)
            _check_finite(record)
            done.step, done.position = done.step + 1, DataPosition(done.position.epoch, batch_index + 1)
            record.update(step=done.step, epoch=done.position.epoch)
            evaluate = done.step % cadence.eval_every == 0 or done.step == max_steps
            if evaluate:
                record.update(_evaluate(trainer, cadence, settings.batch_size, train, val))
                done.history.append({k: record[k] for k in ("step", "epoch", "tokens", "train_loss", "val_loss")})
            records.append(record)
            stop = stop_requested()
            finished = done.step == max_steps or stop or (
                cadence.stop_after is not None and len(records) >= cadence.stop_after)
            if world[0] == 0:
                append_metrics(out, record)
                if evaluate or finished:
                    done.saved = _checkpoint(trainer, cfg, settings, facts, out, done, cadence.keep)
            if evaluate:
                _report(trainer, cadence, tokenizer, done, log)
            if progress is not None:
                progress(record)
            if finished:
                return _finish(out, done, steps_per_epoch, stop, world[0], records)
        done.position = DataPosition(done.position.epoch + 1, 0)


def _one_step(trainer, settings, schedule, train, window_indices, step, world) -> dict:
    """One optimizer step over this rank's micro-batches of the step's windows."""
    rank, world_size = world
    started = time.perf_counter()
    micro = np.array_split(np.asarray(window_indices), settings.accumulate * world_size)
    mine = [train.batch(indices) for indices in micro[rank::world_size]]
    lr = schedule.lr_at(step)
    clip = settings.grad_clip if settings.grad_clip is not None and schedule.clips_at(step) else None
    loss, grad_norm = trainer.step(mine, lr, clip)
    seconds = time.perf_counter() - started
    tokens = len(window_indices) * train.context_length
    return {"loss": loss, "lr": lr, "grad_norm": grad_norm, "seconds": seconds, "tokens_per_s": tokens / seconds,
            "tokens": (step + 1) * tokens}


def _check_finite(record: dict) -> None:
    """A NaN or infinite loss or gradient norm: the step's update is garbage, so the run stops here."""
    for name in ("loss", "grad_norm"):
        if not math.isfinite(record[name]):
            raise NonFiniteError(f"the {name.replace('_', ' ')} is {record[name]}")


def _evaluate(trainer, cadence: Cadence, batch_size: int, train: TokenData, val: TokenData) -> dict:
    """Mean loss over the first ``eval_batches`` batches of each split, in order; for val also its perplexity
    and bits per byte (``gpt_eval``'s figures, from the same mean loss and the bytes of those targets)."""
    losses = {}
    for name, data in (("train_loss", train), ("val_loss", val)):
        indices = np.arange(data.num_windows)
        chunks = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
        batches = [data.batch(chunk) for chunk in chunks[:cadence.eval_batches]]
        losses[name] = trainer.evaluate(batches)
        if not math.isfinite(losses[name]):
            raise NonFiniteError(f"the evaluated {name.replace('_', ' ')} is {losses[name]}")
    targets = np.concatenate([target.ravel() for _, target in batches])  # the val batches' next tokens
    figures = gpt_eval.loss_figures(losses["val_loss"], targets.size, int(gpt_eval.gpt2_byte_lengths()[targets].sum()))
    return {**losses, "val_perplexity": figures["perplexity"], "val_bits_per_byte": figures["bits_per_byte"]}


def _checkpoint(trainer, cfg, settings, facts, out, done: Progress, keep) -> Path:
    """Save the run's state at ``done.step``; NaN or infinite weights or moments are refused (NonFiniteError)."""
    model_tensors, optimizer_tensors, meta = trainer.state()
    manifest = {"impl": trainer.impl, "config": cfg.to_dict(), "settings": dataclasses.asdict(settings),
                "position": done.position.to_dict(), "history": done.history, **facts, **meta}
    return save_train_checkpoint(out, done.step, model_tensors, optimizer_tensors, manifest, keep=keep)


def _report(trainer, cadence, tokenizer, done: Progress, log) -> None:
    """The book's printout of an evaluation: both losses, then a greedy sample (no random draws)."""
    last = done.history[-1]
    log(f"Ep {last['epoch'] + 1} (Step {done.step:06d}): Train loss {last['train_loss']:.3f}, "
        f"Val loss {last['val_loss']:.3f}")
    ids = tokenizer.encode(cadence.start_context, allowed_special={"<|endoftext|>"})
    log(tokenizer.decode(trainer.sample(ids, cadence.sample_tokens)).replace("\n", " "))


def _finish(out, done: Progress, steps_per_epoch, stop, rank, records) -> list[dict]:
    if rank == 0:
        _plot(out, done.history, steps_per_epoch)
    if stop:
        raise Interrupted(f"interrupted: stopped after step {done.step}. {_last_good(done)}")
    return records


def _last_good(done: Progress) -> str:
    if done.saved is None:
        return "No checkpoint was written yet."
    return (f"The last good checkpoint is {done.saved}; resume it with: "
            f"python -m gpt_cli train --resume {run_dir_of(done.saved)}")


# ---- resuming -----------------------------------------------------------------------------------------------------


def read_resume_manifest(path) -> dict:
    """The manifest of ``--resume``'s checkpoint, read before the trainer is built (it fills unset flags)."""
    manifest = load_train_checkpoint(path).manifest
    missing = [key for key in MANIFEST_KEYS if key not in manifest]
    if missing:
        raise ValueError(f"--resume {path}: the manifest has no {missing}")
    for key in ("settings", "data", "config"):
        if not isinstance(manifest[key], dict):
            raise ValueError(f"--resume {path}: the manifest's {key!r} must be an object")
    if not isinstance(manifest["data"].get("path"), str):
        raise ValueError(f"--resume {path}: the manifest's data has no path")
    missing = [key for key in ("batch_size", "accumulate") if not is_int(manifest["settings"].get(key))]
    if missing:
        raise ValueError(f"--resume {path}: the manifest's settings have no integer {missing}")
    return manifest


def _resume(trainer, cfg, settings, facts, path, steps_per_epoch, note) -> Progress:
    """Load a checkpoint into ``trainer``: refused (ValueError) unless it is this run's, checked whole."""
    checkpoint = load_train_checkpoint(path)
    manifest, source = checkpoint.manifest, f"--resume {path}"
    _check_manifest(manifest, checkpoint.path, source, steps_per_epoch)
    names_shapes = {key: tuple(value.shape) for key, value in trainer.state()[0].items()}
    check_compatible(manifest, cfg.to_dict(), names_shapes, source=path)
    saved = {key: manifest["settings"].get(key) for key in dataclasses.asdict(settings)}
    if saved != dataclasses.asdict(settings):
        raise ValueError(f"{source}: the checkpoint's settings {saved} are not this run's")
    check_same_data(manifest["data"], facts["data"], source)
    if manifest["impl"] == trainer.impl:
        if manifest.get("threads") != facts.get("threads"):
            note(f"note: {source} ran on {manifest.get('threads')} threads, this run on {facts.get('threads')}: "
                 "sums may round differently, so the continuation is not bit-exact (pass --threads)")
        trainer.load_state(checkpoint.model, checkpoint.optimizer, manifest)
    else:  # weights and moments cross; the other engine's random state cannot
        note(f"note: resuming a {manifest['impl']} checkpoint in {trainer.impl}: weights and AdamW moments "
             f"carry over, dropout is reseeded from (--seed, step)")
        trainer.load_weights_and_moments(checkpoint.model, checkpoint.optimizer, manifest)
        trainer.reseed(settings.seed, manifest["step"])
    return Progress(manifest["step"], DataPosition.from_dict(manifest["position"]), list(manifest["history"]),
                    checkpoint.path)


MANIFEST_KEYS = ("impl", "config", "settings", "position", "history", "data", "optimizer", "rng")


def _check_manifest(manifest: dict, directory: Path, source: str, steps_per_epoch: int) -> None:
    """The fields a resume trusts, cross-checked: step against the directory's name and the optimizer's step
    counts, the data position against the batches per epoch, AdamW's settings against their ranges."""
    missing = [key for key in MANIFEST_KEYS if key not in manifest]
    if missing:
        raise ValueError(f"{source}: the manifest has no {missing}")
    step, impl = manifest["step"], manifest["impl"]
    if impl not in ("numpy", "torch") or not isinstance(manifest["rng"], dict) or impl not in manifest["rng"]:
        raise ValueError(f"{source}: impl {impl!r} must be 'numpy' or 'torch', with its rng state")
    named = re.match(r"step_(\d+)", directory.name)
    if named and int(named.group(1)) != step:
        raise ValueError(f"{source}: the manifest's step {step} is not its directory's {directory.name}")
    steps = manifest["optimizer"].get("steps") if isinstance(manifest["optimizer"], dict) else None
    if not isinstance(steps, dict) or not steps or any(count != step for count in steps.values()):
        raise ValueError(f"{source}: the optimizer's step counts are not all the manifest's step {step}")
    try:
        position = DataPosition.from_dict(manifest["position"])
        for group in manifest["optimizer"]["param_groups"]:
            check_adamw_args(0.0, group["betas"], group["eps"], group["weight_decay"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{source}: {err}") from None
    if position.batch > steps_per_epoch or position.epoch * steps_per_epoch + position.batch != step:
        raise ValueError(f"{source}: data position {position.to_dict()} is not step {step} at "
                         f"{steps_per_epoch} batches per epoch")


def _plot(out: Path, history: list[dict], steps_per_epoch: int) -> None:
    """The book's loss plot of every evaluation so far, when matplotlib is there."""
    if not history:
        return
    try:
        from .plot import plot_losses

        epochs = [record["step"] / steps_per_epoch for record in history]
        plot_losses(epochs, [r["tokens"] for r in history], [r["train_loss"] for r in history],
                    [r["val_loss"] for r in history], out / PLOT_FILE)
    except ValueError:  # no matplotlib: the metrics file has the same numbers
        pass
