"""The adapter ``gpt_cli train``'s run loop drives: one run's model, optimizer and random state.

The twin of ``torch_gpt/trainer.py``; the loop (``gpt_common.training.run``) is written once and calls
``step``, ``evaluate``, ``sample``, ``state``, ``load_state``, ``load_weights_and_moments`` and ``reseed``.
``state()`` means the same in both twins: (model arrays, AdamW's moment arrays, JSON with the
optimizer's step counts and groups and, under ``"rng"``, dropout's generator state).

The learning rate has one source, the run's schedule: ``train_step`` sets it on every step, so the
optimizer is built with ``lr=0.0``, a rate no step ever uses.
"""

from __future__ import annotations

import numpy as np

from gpt_common.training.optim_state import optimizer_from_tensors, optimizer_to_tensors
from gpt_common.training.param_groups import decay_groups
from gpt_common.training.train_state import rng_from_json, rng_state_to_json

from .generate import generate_text_simple
from .loss import calc_loss_batch
from .model import GPTModel
from .optim import AdamW
from .train import train_step

__all__ = ["Trainer"]


class Trainer:
    """One run's model, AdamW and dropout generator, behind the calls the run loop makes.

    NumPy's floating-point warnings stay quiet (``np.errstate``): a diverging run is reported
    once, by the loop, as a non-finite loss or logits at a named step.
    """

    impl = "numpy"

    def __init__(self, cfg, *, seed: int, weight_decay: float, decay: str = "all", dtype: str = "float32",
                 device: str = "cpu", threads: int | None = None):
        if device != "cpu":
            raise ValueError(f"--device {device!r}: the NumPy implementation runs on the CPU only")
        self.model = GPTModel(cfg, seed=seed, dtype=np.dtype(dtype))
        self.weight_decay, self.decay, self.device, self.threads = weight_decay, decay, device, threads
        self.optimizer = self.new_optimizer()

    def new_optimizer(self) -> AdamW:
        """AdamW over the model's current arrays (rebuilt after a load, which replaces them)."""
        groups = decay_groups(self.model.named_parameters(), self.weight_decay, self.decay)
        return AdamW(groups, lr=0.0, weight_decay=self.weight_decay, threads=self.threads)  # lr: the schedule's

    def step(self, micro_batches, lr: float, grad_clip: float | None) -> tuple[float, float]:
        self.model.train()
        with np.errstate(all="ignore"):
            return train_step(self.model, self.optimizer, micro_batches, self.device, lr, grad_clip)

    def evaluate(self, batches) -> float:
        """Mean loss over ``batches`` of (inputs, targets), in eval mode."""
        self.model.eval()
        with np.errstate(all="ignore"):
            losses = [float(calc_loss_batch(inputs, targets, self.model, self.device)) for inputs, targets in batches]
        self.model.train()
        return sum(losses) / len(losses)

    def sample(self, ids: list[int], max_new_tokens: int) -> list[int]:
        self.model.eval()
        idx = np.asarray([ids], dtype=np.int64)
        with np.errstate(all="ignore"):
            out = generate_text_simple(self.model, idx, max_new_tokens, self.model.cfg.context_length)
        self.model.train()
        return out[0].tolist()

    def state(self) -> tuple[dict, dict, dict]:
        """(model arrays, moment arrays, JSON: {"optimizer": steps and groups, "rng": {"numpy": generator}})."""
        optimizer_tensors, optimizer_meta = optimizer_to_tensors(self.optimizer.state_dict(), np.array)
        rng = {"numpy": rng_state_to_json(self.model.drop_emb.rng)}  # the one generator every Dropout shares
        return dict(self.model.state_dict()), optimizer_tensors, {"optimizer": optimizer_meta, "rng": rng}

    def load_state(self, model_tensors, optimizer_tensors, meta) -> None:
        """Weights, moments and the dropout generator's state from a checkpoint this implementation wrote."""
        generator = rng_from_json(meta["rng"]["numpy"])  # checked before anything changes
        self.load_weights_and_moments(model_tensors, optimizer_tensors, meta)
        self.model.drop_emb.rng.bit_generator.state = generator.bit_generator.state

    def load_weights_and_moments(self, model_tensors, optimizer_tensors, meta) -> None:
        """Weights and moments only: what crosses between the implementations (the random engines differ)."""
        self.model.load_state_dict(model_tensors)
        self.optimizer = self.new_optimizer()
        template = self.optimizer.state_dict()
        self.optimizer.load_state_dict(optimizer_from_tensors(template, optimizer_tensors, meta["optimizer"],
                                                              np.array, int))

    def reseed(self, seed: int, step: int) -> None:
        """Dropout's generator from (seed, step): a run continued from the other implementation's checkpoint."""
        self.model.drop_emb.rng.bit_generator.state = np.random.default_rng([seed, step]).bit_generator.state
