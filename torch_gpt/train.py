"""Training: the book's chapter 5 loop and appendix D's (warmup, cosine decay, clipping), on autograd.

The twin of ``numpy_gpt/train.py``, with the book's functions and signatures:
``train_model_simple``, ``evaluate_model``, ``generate_and_print_sample``,
``text_to_token_ids``, ``token_ids_to_text``, ``plot_losses``, and appendix D's
``train_model``. Statement for statement the book's code: ``torch.manual_seed(123)``
before the model and the loaders reproduces the book's printed losses and samples.
Under ``DistributedDataParallel`` (``gpt_cli train`` with torchrun), ``train_step``
skips the gradient all-reduce on all but the last micro-batch (``no_sync``).

The book's functions print their progress, as in the book: that is what they are
for. ``log`` (default ``print``) receives each line instead, for a caller that
wants them elsewhere.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
import torch.distributed
import torch.nn.parallel

from gpt_common.optim_state import optimizer_from_tensors, optimizer_to_tensors
from gpt_common.param_groups import decay_groups
from gpt_common.plot import plot_losses
from gpt_common.schedule import Schedule

from .generate import generate_text_simple
from .loss import calc_loss_batch, calc_loss_loader
from .model import GPTModel
from .optim import AdamW, clip_grad_norm_, fastest_path

__all__ = [
    "text_to_token_ids", "token_ids_to_text", "evaluate_model", "generate_and_print_sample",
    "train_model_simple", "train_step", "train_model", "plot_losses", "Trainer",
]


def text_to_token_ids(text: str, tokenizer) -> torch.Tensor:
    """The book's helper: (1, T) token ids of ``text``, "<|endoftext|>" allowed."""
    encoded = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    encoded_tensor = torch.tensor(encoded, dtype=torch.int64).unsqueeze(0)  # (T,) -> (1, T): add the batch dimension
    return encoded_tensor


def token_ids_to_text(token_ids, tokenizer) -> str:
    """The book's helper: the text of the first row of (1, T) ids."""
    flat = token_ids.squeeze(0)  # (1, T) -> (T,): drop the batch dimension
    return tokenizer.decode(flat.tolist())


def evaluate_model(model, train_loader, val_loader, device, eval_iter: int) -> tuple[float, float]:
    """Mean loss over the first ``eval_iter`` batches of each loader, in eval mode (no dropout)."""
    model.eval()
    train_loss = calc_loss_loader(train_loader, model, device, num_batches=eval_iter)
    val_loss = calc_loss_loader(val_loader, model, device, num_batches=eval_iter)
    model.train()
    return train_loss, val_loss


def _evaluate_into(history: tuple[list, list, list], tokens_seen: int, *evaluate_args) -> tuple[float, float]:
    """``evaluate_model(*evaluate_args)``, appended to the (train, val, tokens seen) lists; returns both losses."""
    train_loss, val_loss = evaluate_model(*evaluate_args)
    for values, value in zip(history, (train_loss, val_loss, tokens_seen)):
        values.append(value)
    return train_loss, val_loss


def generate_and_print_sample(model, tokenizer, device, start_context: str, *, log=print) -> None:
    """Greedy 50 tokens after ``start_context``, printed on one line (newlines become spaces)."""
    model.eval()
    context_size = model.pos_emb.weight.shape[0]
    encoded = text_to_token_ids(start_context, tokenizer).to(device)
    with torch.no_grad():
        token_ids = generate_text_simple(model=model, idx=encoded, max_new_tokens=50, context_size=context_size)
    decoded_text = token_ids_to_text(token_ids, tokenizer)
    log(decoded_text.replace("\n", " "))
    model.train()


def train_model_simple(model, train_loader, val_loader, optimizer, device, num_epochs: int, eval_freq: int,
                       eval_iter: int, start_context: str, tokenizer, *, log=print):
    """The book's loop: one AdamW step per batch, an evaluation every ``eval_freq`` steps, a sample per epoch.

    Returns ``(train_losses, val_losses, track_tokens_seen)``, one entry per evaluation.
    """
    train_losses, val_losses, track_tokens_seen = [], [], []
    tokens_seen, global_step = 0, -1
    for epoch in range(num_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            optimizer.step()
            tokens_seen += input_batch.numel()
            global_step += 1
            if global_step % eval_freq == 0:
                train_loss, val_loss = _evaluate_into(
                    (train_losses, val_losses, track_tokens_seen), tokens_seen, model, train_loader, val_loader,
                    device, eval_iter)
                log(f"Ep {epoch+1} (Step {global_step:06d}): Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
        generate_and_print_sample(model, tokenizer, device, start_context, log=log)
    return train_losses, val_losses, track_tokens_seen


def train_step(model, optimizer, micro_batches, device, lr: float, grad_clip: float | None = None):
    """One optimizer step over the gradient of the mean loss of ``micro_batches`` (accumulation).

    ``(loss / n).backward()`` sums each micro-batch's gradient, scaled by 1 / n,
    into ``.grad``; the global L2 norm is clipped to ``grad_clip`` when given,
    and measured in any case (clipping to infinity multiplies by exactly 1).
    Returns (mean loss, gradient norm before clipping).
    """
    for param_group in optimizer.param_groups:
        param_group["lr"] = lr
    optimizer.zero_grad()
    total_loss, n = 0.0, len(micro_batches)
    for i, (input_batch, target_batch) in enumerate(micro_batches):
        with _sync_unless_last(model, i, n):
            loss = calc_loss_batch(input_batch, target_batch, model, device) / n
            loss.backward()
        total_loss += loss.item()
    grad_norm = clip_grad_norm_(model.parameters(), math.inf if grad_clip is None else grad_clip)  # inf: x 1.0
    optimizer.step()
    return total_loss, float(grad_norm)


def _sync_unless_last(model, i: int, n: int):
    """DDP all-reduces gradients in backward; only the last micro-batch of an accumulation needs it."""
    is_ddp = isinstance(model, torch.nn.parallel.DistributedDataParallel)
    return model.no_sync() if is_ddp and i < n - 1 else contextlib.nullcontext()


def train_model(model, train_loader, val_loader, optimizer, device, n_epochs: int, eval_freq: int, eval_iter: int,
                start_context: str, tokenizer, warmup_steps: int, initial_lr: float = 3e-05, min_lr: float = 1e-6,
                *, grad_clip: float = 1.0, log=print):
    """Appendix D's loop: linear warmup from ``initial_lr`` to the optimizer's lr, cosine decay to ``min_lr``,
    and clipping to ``grad_clip`` from the end of warmup on (``>=``: the book's ``>`` skipped one step).

    Returns ``(train_losses, val_losses, track_tokens_seen, track_lrs)``.
    """
    train_losses, val_losses, track_tokens_seen, track_lrs = [], [], [], []
    tokens_seen, global_step = 0, -1
    schedule = Schedule(peak_lr=optimizer.param_groups[0]["lr"], total_steps=len(train_loader) * n_epochs,
                        warmup_steps=warmup_steps, initial_lr=initial_lr, min_lr=min_lr)
    for epoch in range(n_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            global_step += 1
            lr = schedule.lr_at(global_step)
            track_lrs.append(lr)
            clip = grad_clip if schedule.clips_at(global_step) else None
            train_step(model, optimizer, [(input_batch, target_batch)], device, lr, clip)
            tokens_seen += input_batch.numel()
            if global_step % eval_freq == 0:
                train_loss, val_loss = _evaluate_into(
                    (train_losses, val_losses, track_tokens_seen), tokens_seen, model, train_loader, val_loader,
                    device, eval_iter)
                log(f"Ep {epoch+1} (Iter {global_step:06d}): Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
        generate_and_print_sample(model, tokenizer, device, start_context, log=log)
    return train_losses, val_losses, track_tokens_seen, track_lrs


class Trainer:
    """One ``gpt_cli train`` run's model, optimizer and random state, behind the calls the run loop makes
    (``gpt_common.run``); the torch twin has the same methods, so the loop is written once."""

    impl = "torch"

    def __init__(self, cfg, *, seed: int, lr: float, weight_decay: float, decay: str = "all",
                 dtype: str = "float32", device: str = "cpu", compile: bool = False):
        self.device = torch.device(device)
        torch.manual_seed(seed)  # the book's way: the weights, then dropout, from torch's global generator
        self.model = GPTModel(cfg).to(self.device, TRAIN_DTYPES[dtype][0])
        self.autocast_dtype = TRAIN_DTYPES[dtype][1]
        self.net = distributed_model(self.model, self.device)  # DistributedDataParallel under torchrun
        self.distributed = self.net is not self.model
        if compile:  # --compile: the steps run the compiled graph; state dicts stay the model's own
            self.net = torch.compile(self.net)
        self.decay = decay
        self.optimizer = self.new_optimizer(lr, weight_decay)

    def new_optimizer(self, lr: float, weight_decay: float) -> AdamW:
        """AdamW over the model's parameters (the twin rebuilds it after a load)."""
        groups = decay_groups(self.model.named_parameters(), weight_decay, self.decay)
        return AdamW(groups, lr=lr, weight_decay=weight_decay, **fastest_path(self.device))  # fused where it can

    def step(self, micro_batches, lr: float, grad_clip: float | None) -> tuple[float, float | None]:
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
        """(model arrays, optimizer arrays, JSON state): what a training checkpoint holds."""
        optimizer_tensors, optimizer_meta = optimizer_to_tensors(self.optimizer.state_dict(), to_numpy)
        optimizer_tensors["rng.torch"] = torch.get_rng_state().numpy()  # dropout's draws: the global generator
        if self.device.type == "cuda":
            optimizer_tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device).numpy()
        model_tensors = {key: to_numpy(value) for key, value in self.model.state_dict().items()}
        return model_tensors, optimizer_tensors, {"optimizer": optimizer_meta, "rng": {}}

    def load_state(self, model_tensors, optimizer_tensors, meta) -> None:
        """Weights, moments and the dropout generator's state from a checkpoint this implementation wrote."""
        self.load_weights_and_moments(model_tensors, optimizer_tensors, meta)
        torch.set_rng_state(torch.from_numpy(optimizer_tensors["rng.torch"].copy()))
        if self.device.type == "cuda" and "rng.cuda" in optimizer_tensors:
            torch.cuda.set_rng_state(torch.from_numpy(optimizer_tensors["rng.cuda"].copy()), self.device)

    def load_weights_and_moments(self, model_tensors, optimizer_tensors, meta) -> None:
        """Weights and moments only: what crosses between the implementations (the random engines differ)."""
        self.model.load_state_dict({key: torch.from_numpy(np.array(value)) for key, value in model_tensors.items()})
        self.optimizer = self.new_optimizer(self.optimizer.defaults["lr"], self.optimizer.defaults["weight_decay"])
        template = self.optimizer.state_dict()
        self.optimizer.load_state_dict(optimizer_from_tensors(
            template, optimizer_tensors, meta["optimizer"], lambda a: torch.from_numpy(np.array(a)),
            lambda step: torch.tensor(float(step))))

    def reseed(self, seed: int, step: int) -> None:
        """Dropout's generator from (seed, step): a run continued from the other implementation's checkpoint."""
        torch.manual_seed(int(np.random.default_rng([seed, step]).integers(2**63)))


# --dtype: (parameter dtype, autocast dtype or None)
TRAIN_DTYPES = {
    "float32": (torch.float32, None), "float64": (torch.float64, None), "bf16": (torch.float32, torch.bfloat16),
}


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def distributed_model(model, device):
    """``DistributedDataParallel(model)`` when a process group is up (torchrun), else the model itself."""
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
