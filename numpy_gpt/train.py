"""Training: the book's chapter 5 loop and appendix D's (warmup, cosine decay, clipping), by hand.

The twin of ``torch_gpt/train.py``, with the book's functions and signatures:
``train_model_simple``, ``evaluate_model``, ``generate_and_print_sample``,
``text_to_token_ids``, ``token_ids_to_text``, ``plot_losses``, and appendix D's
``train_model``. Where the torch loop calls ``loss.backward()`` and
``optimizer.step()``, this one calls ``loss_and_grads`` (the hand-written
backward) and ``optimizer.step(grads)``; everything else is the same statement.

The book's functions print their progress, as in the book: that is what they are
for. ``log`` (default ``print``) receives each line instead, for a caller that
wants them elsewhere. ``device`` is accepted and ignored, so the book's code runs unchanged.
"""

from __future__ import annotations

import numpy as np

from gpt_common.training.plot import plot_losses
from gpt_common.training.schedule import Schedule

from .generate import generate_text_simple
from .loss import calc_loss_loader, loss_and_grads
from .optim import clip_grad_norm_, get_total_norm

__all__ = [
    "text_to_token_ids", "token_ids_to_text", "evaluate_model", "generate_and_print_sample",
    "train_model_simple", "train_step", "train_model", "plot_losses",
]


def text_to_token_ids(text: str, tokenizer) -> np.ndarray:
    """The book's helper: (1, T) token ids of ``text``, "<|endoftext|>" allowed."""
    encoded = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    encoded_tensor = np.asarray(encoded, dtype=np.int64)[None, :]  # (T,) -> (1, T): add the batch dimension
    return encoded_tensor


def token_ids_to_text(token_ids, tokenizer) -> str:
    """The book's helper: the text of the first row of (1, T) ids."""
    flat = np.asarray(token_ids)[0]  # (1, T) -> (T,): drop the batch dimension
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
    encoded = text_to_token_ids(start_context, tokenizer)
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
            loss, grads = loss_and_grads(model, np.asarray(input_batch), np.asarray(target_batch))
            optimizer.step(grads)
            tokens_seen += np.asarray(input_batch).size
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

    Each micro-batch's gradient is scaled by 1 / n and summed, as torch's
    ``(loss / n).backward()`` sums into ``.grad``; the global L2 norm is
    clipped to ``grad_clip`` when given, and measured in any case.
    Returns (mean loss, gradient norm before clipping).
    """
    for param_group in optimizer.param_groups:
        param_group["lr"] = lr
    optimizer.zero_grad()
    total_loss, grads, n = 0.0, None, len(micro_batches)
    for input_batch, target_batch in micro_batches:
        loss, micro_grads = loss_and_grads(model, np.asarray(input_batch), np.asarray(target_batch))
        grads = _accumulate(grads, micro_grads, 1.0 / n)
        total_loss += loss / n
    grad_norm = get_total_norm(grads) if grad_clip is None else clip_grad_norm_(grads, grad_clip)
    optimizer.step(grads)
    return total_loss, float(grad_norm)


def _accumulate(total: dict | None, grads: dict, scale: float) -> dict:
    """total += grads * scale, in place on arrays this step owns (loss_and_grads returns fresh ones)."""
    for grad in grads.values():
        grad *= scale
    if total is None:
        return grads
    for name, grad in grads.items():
        total[name] += grad
    return total


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
            tokens_seen += np.asarray(input_batch).size
            if global_step % eval_freq == 0:
                train_loss, val_loss = _evaluate_into(
                    (train_losses, val_losses, track_tokens_seen), tokens_seen, model, train_loader, val_loader,
                    device, eval_iter)
                log(f"Ep {epoch+1} (Iter {global_step:06d}): Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
        generate_and_print_sample(model, tokenizer, device, start_context, log=log)
    return train_losses, val_losses, track_tokens_seen, track_lrs
