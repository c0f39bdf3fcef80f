"""The run loop of ``gpt_cli train``, written once for both implementations.

Each package's ``train.Trainer`` owns the model, the optimizer and the random
state, and answers the same calls (``step``, ``evaluate``, ``sample``,
``state``, ``load_state``); this loop owns everything that is not framework
code: the data order, the schedule, evaluation, ``metrics.jsonl``, the loss
plot, checkpoints and resuming.

A run is a pure function of its settings: batch k of epoch e is read from
``data_order.batches(..., epoch=e, seed)``, the learning rate of step s is
``schedule.lr_at(s)``, and dropout draws from the trainer's generator, whose
state is saved. So K steps, a checkpoint and N - K more steps in a fresh
process give bitwise the losses and weights of N steps straight.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .data_order import DataPosition, batches, batches_per_epoch
from .schedule import Schedule
from .train_state import check_compatible, load_train_checkpoint, save_train_checkpoint

__all__ = ["RunSettings", "TokenData", "split_tokens", "run_training", "METRICS_FILE", "PLOT_FILE"]

METRICS_FILE, PLOT_FILE = "metrics.jsonl", "loss-plot.png"


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything that decides a run's numbers (saved in each checkpoint; a resume must match it)."""

    batch_size: int = 8
    accumulate: int = 1
    max_steps: int = 100
    lr: float = 4e-4
    min_lr: float = 4e-4
    initial_lr: float = 0.0
    warmup_steps: int = 0
    weight_decay: float = 0.1
    decay: str = "all"
    grad_clip: float | None = None
    eval_every: int = 10
    eval_batches: int = 5
    seed: int = 123
    start_context: str = "Every effort moves you"
    sample_tokens: int = 30

    def __post_init__(self):
        for name in ("batch_size", "accumulate", "max_steps", "eval_every", "eval_batches"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
        if self.grad_clip is not None and not (self.grad_clip > 0 and math.isfinite(self.grad_clip)):
            raise ValueError(f"grad-clip must be a finite number > 0, got {self.grad_clip!r}")
        self.schedule()  # validates lr, min-lr, initial-lr and warmup against the run's length

    def schedule(self) -> Schedule:
        return Schedule(peak_lr=self.lr, total_steps=self.max_steps, warmup_steps=self.warmup_steps,
                        initial_lr=self.initial_lr, min_lr=self.min_lr)


@dataclasses.dataclass(frozen=True)
class TokenData:
    """Windows of ``context_length`` + 1 tokens (inputs and their next-token targets), stride context_length."""

    ids: np.ndarray  # (N,) int64
    context_length: int

    @property
    def num_windows(self) -> int:
        return max(0, (len(self.ids) - 1) // self.context_length)

    def batch(self, window_indices) -> tuple[np.ndarray, np.ndarray]:
        starts = np.asarray(window_indices, dtype=np.int64)[:, None] * self.context_length  # (B, 1)
        rows = self.ids[starts + np.arange(self.context_length + 1)]  # (B, T + 1)
        return rows[:, :-1], rows[:, 1:]  # inputs (B, T), targets (B, T)


def split_tokens(ids, context_length: int, name: str, train_ratio: float = 0.9) -> tuple[TokenData, TokenData]:
    """The book's split: the first 90% of the tokens train, the rest validate; both must hold a window."""
    ids = np.asarray(ids, dtype=np.int64)
    split = int(train_ratio * len(ids))
    train, val = TokenData(ids[:split], context_length), TokenData(ids[split:], context_length)
    if train.num_windows < 1 or val.num_windows < 1:
        raise ValueError(f"{name} has {len(ids)} tokens: too short for one window of {context_length} + 1 tokens "
                         "in both the training (90%) and validation (10%) parts; use more text or a shorter "
                         "--context-length")
    return train, val


def run_training(trainer, cfg, settings: RunSettings, train: TokenData, val: TokenData, tokenizer, out_dir,
                 *, resume=None, keep: int | None = 3, stop_after: int | None = None, world=(0, 1),
                 log: Callable[[str], None] = print, progress=None) -> list[dict]:
    """Train ``trainer`` for ``settings.max_steps`` optimizer steps; returns the metrics of the steps run here.

    ``world`` is (rank, world size) under torchrun: each rank reads its share of
    every step's micro-batches and rank 0 alone writes files. ``stop_after``
    ends the process after that many steps (with a checkpoint), as a kill would.
    """
    rank, world_size = world
    out = Path(out_dir)
    per_step = settings.batch_size * settings.accumulate * world_size
    steps_per_epoch = batches_per_epoch(train.num_windows, per_step, drop_last=True,
                                        context_length=train.context_length)
    step, position, history = 0, DataPosition(), []
    if resume is not None:
        step, position, history = _resume(trainer, cfg, settings, resume)
    schedule, metrics = settings.schedule(), []
    while step < settings.max_steps:
        epoch_batches = batches(train.num_windows, per_step, position.epoch, settings.seed, shuffle=True,
                                drop_last=True, context_length=train.context_length)
        for batch_index in range(position.batch, steps_per_epoch):
            record = _one_step(trainer, settings, schedule, train, epoch_batches[batch_index], step, world)
            step += 1
            position = DataPosition(position.epoch, batch_index + 1)
            record.update(step=step, epoch=position.epoch)
            if not math.isfinite(record["loss"]):
                raise ValueError(f"the loss is {record['loss']} at step {step}; stopping. The last good checkpoint "
                                 f"is kept in {out} (resume with --resume {out} and a lower --lr)")
            if step % settings.eval_every == 0 or step == settings.max_steps:
                record.update(_evaluate(trainer, settings, train, val, tokenizer))
                history.append({k: record[k] for k in ("step", "epoch", "tokens", "train_loss", "val_loss")})
                log(f"Ep {position.epoch + 1} (Step {step:06d}): Train loss {record['train_loss']:.3f}, "
                    f"Val loss {record['val_loss']:.3f}")
                log(record["sample"])
            metrics.append(record)
            if progress is not None:
                progress(record)
            done = step == settings.max_steps or (stop_after is not None and len(metrics) >= stop_after)
            if rank == 0:
                _write_metrics(out, record)
                if step % settings.eval_every == 0 or done:
                    _checkpoint(trainer, cfg, settings, out, step, position, history, keep)
            if done:
                if rank == 0:
                    _plot(out, history, steps_per_epoch)
                return metrics
        position = DataPosition(position.epoch + 1, 0)
    return metrics


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


def _evaluate(trainer, settings, train: TokenData, val: TokenData, tokenizer) -> dict:
    """Mean loss over the first ``eval_batches`` batches of each split (in order), and a greedy sample."""
    losses = {}
    for name, data in (("train_loss", train), ("val_loss", val)):
        indices = np.arange(data.num_windows)
        chunks = [indices[i:i + settings.batch_size] for i in range(0, len(indices), settings.batch_size)]
        losses[name] = trainer.evaluate([data.batch(chunk) for chunk in chunks[:settings.eval_batches]])
    ids = tokenizer.encode(settings.start_context, allowed_special={"<|endoftext|>"})
    sample = tokenizer.decode(trainer.sample(ids, settings.sample_tokens)).replace("\n", " ")
    return {**losses, "sample": sample}


def _write_metrics(out: Path, record: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / METRICS_FILE, "a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\n")
        file.flush()
        os.fsync(file.fileno())


def _checkpoint(trainer, cfg, settings, out, step, position, history, keep) -> None:
    model_tensors, optimizer_tensors, meta = trainer.state()
    manifest = {"impl": trainer.impl, "config": cfg.to_dict(), "settings": dataclasses.asdict(settings),
                "position": dataclasses.asdict(position), "history": history, **meta}
    save_train_checkpoint(out, step, model_tensors, optimizer_tensors, manifest, keep=keep)


def _resume(trainer, cfg, settings, path) -> tuple[int, DataPosition, list]:
    """Load a checkpoint into ``trainer``; refused (ValueError) if it belongs to another config or run."""
    checkpoint = load_train_checkpoint(path)
    manifest = checkpoint.manifest
    names_shapes = {key: tuple(value.shape) for key, value in trainer.state()[0].items()}
    check_compatible(manifest, cfg.to_dict(), names_shapes)
    saved = {key: value for key, value in manifest["settings"].items() if key != "max_steps"}
    ours = {key: value for key, value in dataclasses.asdict(settings).items() if key != "max_steps"}
    changed = sorted(key for key in ours if saved.get(key) != ours[key])
    if changed:
        raise ValueError(f"--resume {path}: the run was started with other settings: " + ", ".join(
            f"{key} {saved.get(key)!r} (now {ours[key]!r})" for key in changed))
    if manifest["step"] >= settings.max_steps:
        raise ValueError(f"--resume {path}: the checkpoint is at step {manifest['step']}, "
                         f"not before --max-steps {settings.max_steps}")
    if manifest["impl"] == trainer.impl:
        trainer.load_state(checkpoint.model, checkpoint.optimizer, manifest)
    else:  # weights and moments cross; the other engine's random state cannot
        trainer.load_weights_and_moments(checkpoint.model, checkpoint.optimizer, manifest)
        trainer.reseed(settings.seed, manifest["step"])
    return manifest["step"], DataPosition.from_dict(manifest["position"]), list(manifest["history"])


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
