"""The training loss: cross-entropy over next-token logits, the book's loss helpers, and gradients by autograd.

The twin of ``numpy_gpt/loss.py``: ``cross_entropy`` and the book's
``calc_loss_batch`` / ``calc_loss_loader`` (chapter 5), and ``loss_and_grads``,
which returns what the NumPy one does (computed here by ``torch.autograd``),
so a trainer can call the same name on either side.

Shapes: B batch, T tokens, V = vocab_size, N = B * T positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gpt_common.loss_validation import DEFAULT_IGNORE_INDEX, check_loss_inputs, check_no_nan_logits

__all__ = ["cross_entropy", "calc_loss_batch", "calc_loss_loader", "loss_and_grads"]


def _check(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int) -> None:
    """The NumPy side's checks on the same facts, so both raise the same ValueError."""
    is_integer = not (targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool)
    counted = targets[targets != ignore_index] if is_integer else targets[:0]
    has_counted = counted.numel() > 0
    check_loss_inputs(
        tuple(logits.shape), tuple(targets.shape), str(targets.dtype).removeprefix("torch."), is_integer,
        int(counted.min()) if has_counted else None, int(counted.max()) if has_counted else None,
        ignore_index,
    )
    row_max = logits.detach().reshape(-1, logits.shape[-1]).amax(dim=-1)  # NaN propagates into a row's max
    check_no_nan_logits(int(torch.isnan(row_max).sum()), row_max.numel())


def cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = DEFAULT_IGNORE_INDEX
) -> torch.Tensor:
    """Mean over the positions whose target is not ``ignore_index`` of -log softmax(logits)[target].

    ``logits`` (..., V), ``targets`` (...) integer ids; a scalar tensor (NaN if every target is ignored).
    """
    targets = torch.as_tensor(targets, device=logits.device)
    _check(logits, targets, ignore_index)
    vocab_size = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, vocab_size), targets.reshape(-1), ignore_index=ignore_index)


def calc_loss_batch(input_batch, target_batch, model, device) -> torch.Tensor:
    """The book's helper: the model's mean cross-entropy on one batch, moved to ``device`` first."""
    input_batch, target_batch = torch.as_tensor(input_batch).to(device), torch.as_tensor(target_batch).to(device)
    logits = model(input_batch)  # (B, T) -> (B, T, V)
    loss = cross_entropy(logits, target_batch)
    return loss


@torch.no_grad()  # only the loss value is returned, so no graph is kept (the book calls it under no_grad)
def calc_loss_loader(data_loader, model, device, num_batches: int | None = None) -> float:
    """The book's helper: the mean of ``calc_loss_batch`` over the first ``num_batches`` batches (all by default)."""
    total_loss = 0.0
    if len(data_loader) == 0:
        return float("nan")
    elif num_batches is None:
        num_batches = len(data_loader)
    else:
        num_batches = min(num_batches, len(data_loader))
    for i, (input_batch, target_batch) in enumerate(data_loader):
        if i < num_batches:
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            total_loss += loss.item()
        else:
            break
    return total_loss / num_batches


def loss_and_grads(
    model, input_batch, target_batch, *, ignore_index: int = DEFAULT_IGNORE_INDEX,
) -> tuple[float, dict[str, torch.Tensor]]:
    """(loss, grads) for one batch: grads keyed like ``dict(model.named_parameters())``, by autograd.

    ``torch.autograd.grad`` leaves every ``.grad`` untouched, so nothing stays
    on the model; a tied head is one Parameter, listed once with both uses summed.
    """
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    device = next(iter(params.values())).device
    input_batch = torch.as_tensor(input_batch, device=device)
    target_batch = torch.as_tensor(target_batch, device=device)
    loss = cross_entropy(model(input_batch), target_batch, ignore_index)
    grads = torch.autograd.grad(loss, list(params.values()))
    return loss.item(), dict(zip(params, grads))
