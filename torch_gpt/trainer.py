"""The adapter ``gpt_cli train``'s run loop drives: one run's model, optimizer and random state.

The twin of ``numpy_gpt/trainer.py``; the loop (``gpt_common.training.run``) is written once and calls
``step``, ``evaluate``, ``sample``, ``state``, ``load_state``, ``load_weights_and_moments`` and ``reseed``.
``state()`` means the same in both twins: (model arrays, AdamW's moment arrays, JSON with the
optimizer's step counts and groups and, under ``"rng"``, dropout's generator state).

The learning rate has one source, the run's schedule: ``train_step`` sets it on every step, so the
optimizer is built with ``lr=0.0``, a rate no step ever uses.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.distributed
import torch.nn.parallel

from gpt_common.training.optim_state import optimizer_from_tensors, optimizer_to_tensors
from gpt_common.training.param_groups import decay_groups

from .generate import generate_text_simple
from .loss import calc_loss_batch
from .model import GPTModel
from .optim import AdamW, fastest_path
from .train import train_step

__all__ = ["Trainer", "TRAIN_DTYPES"]

# --dtype: (parameter dtype, autocast dtype or None)
TRAIN_DTYPES = {
    "float32": (torch.float32, None), "float64": (torch.float64, None), "bf16": (torch.float32, torch.bfloat16),
}


class Trainer:
    """One run's model, AdamW and dropout generator (torch's global one, as in the book), behind the calls
    the run loop makes."""

    impl = "torch"

    def __init__(self, cfg, *, seed: int, weight_decay: float, decay: str = "all", dtype: str = "float32",
                 device: str = "cpu", threads: int | None = None, compile: bool = False):
        self.device = torch.device(device)
        torch.manual_seed(seed)  # the book's way: the weights, then dropout, from torch's global generator
        self.model = GPTModel(cfg).to(self.device, TRAIN_DTYPES[dtype][0])
        self.autocast_dtype = TRAIN_DTYPES[dtype][1]
        self.net = distributed_model(self.model, self.device)  # DistributedDataParallel under torchrun
        self.distributed = self.net is not self.model
        if compile:  # --compile: the steps run the compiled graph; state dicts stay the model's own
            self.net = torch.compile(self.net)
        self.weight_decay, self.decay, self.threads = weight_decay, decay, threads
        self.optimizer = self.new_optimizer()

    def new_optimizer(self) -> AdamW:
        """AdamW over the model's parameters (the twin rebuilds it after a load)."""
        groups = decay_groups(self.model.named_parameters(), self.weight_decay, self.decay)
        # lr: the schedule's, set every step; fused (one kernel, the same update) where torch has it
        return AdamW(groups, lr=0.0, weight_decay=self.weight_decay, **fastest_path(self.device))

    def step(self, micro_batches, lr: float, grad_clip: float | None) -> tuple[float, float]:
        self.model.train()
        with self.autocast():
            loss, grad_norm = train_step(self.net, self.optimizer, micro_batches, self.device, lr, grad_clip)
        if self.distributed:  # DDP: report the mean over every rank's micro-batches
            total = torch.tensor([loss], dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(total)
            loss = total.item() / torch.distributed.get_world_size()
        return loss, grad_norm

    def autocast(self):
        """bf16 autocast (``--dtype bf16``, on CUDA or CPU), or nothing."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def evaluate(self, batches) -> float:
        """Mean loss over ``batches`` of (inputs, targets), in eval mode."""
        self.model.eval()
        with torch.no_grad(), self.autocast():
            losses = [float(calc_loss_batch(inputs, targets, self.model, self.device)) for inputs, targets in batches]
        self.model.train()
        return sum(losses) / len(losses)

    def sample(self, ids: list[int], max_new_tokens: int) -> list[int]:
        self.model.eval()
        idx = torch.tensor([ids], dtype=torch.int64, device=self.device)
        out = generate_text_simple(self.model, idx, max_new_tokens, self.model.cfg.context_length)
        self.model.train()
        return out[0].tolist()

    def state(self) -> tuple[dict, dict, dict]:
        """(model arrays, moment arrays, JSON: {"optimizer": steps and groups, "rng": {"torch": generator}})."""
        optimizer_tensors, optimizer_meta = optimizer_to_tensors(self.optimizer.state_dict(), to_numpy)
        rng = {"cpu": torch.get_rng_state().numpy().tobytes().hex()}  # dropout's draws: the global generator
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device).numpy().tobytes().hex()
        model_tensors = {key: to_numpy(value) for key, value in self.model.state_dict().items()}
        return model_tensors, optimizer_tensors, {"optimizer": optimizer_meta, "rng": {"torch": rng}}

    def load_state(self, model_tensors, optimizer_tensors, meta) -> None:
        """Weights, moments and the dropout generator's state from a checkpoint this implementation wrote."""
        states = {name: _bytes_tensor(name, value) for name, value in meta["rng"]["torch"].items()}
        self.load_weights_and_moments(model_tensors, optimizer_tensors, meta)
        try:
            torch.set_rng_state(states["cpu"])
            if self.device.type == "cuda" and "cuda" in states:
                torch.cuda.set_rng_state(states["cuda"], self.device)
        except (KeyError, RuntimeError) as err:
            raise ValueError(f"the checkpoint's torch RNG state cannot be restored: {err}") from None

    def load_weights_and_moments(self, model_tensors, optimizer_tensors, meta) -> None:
        """Weights and moments only: what crosses between the implementations (the random engines differ)."""
        self.model.load_state_dict({key: torch.from_numpy(np.array(value)) for key, value in model_tensors.items()})
        self.optimizer = self.new_optimizer()
        template = self.optimizer.state_dict()
        self.optimizer.load_state_dict(optimizer_from_tensors(
            template, optimizer_tensors, meta["optimizer"], lambda a: torch.from_numpy(np.array(a)),
            lambda step: torch.tensor(float(step))))

    def reseed(self, seed: int, step: int) -> None:
        """Dropout's generator from (seed, step): a run continued from the other implementation's checkpoint."""
        torch.manual_seed(int(np.random.default_rng([seed, step]).integers(2**63)))


def _bytes_tensor(name: str, value) -> torch.Tensor:
    """A generator state saved by ``state()`` (hex text) as the uint8 tensor torch restores it from."""
    try:
        return torch.frombuffer(bytearray.fromhex(value), dtype=torch.uint8)
    except (TypeError, ValueError):
        raise ValueError(f"the checkpoint's torch RNG state {name!r} is not hex text") from None


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def distributed_model(model, device):
    """``DistributedDataParallel(model)`` when a process group is up (torchrun), else the model itself."""
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
