"""The training loss and its gradient: cross-entropy over next-token logits, the book's loss helpers.

``cross_entropy`` and the book's ``calc_loss_batch`` / ``calc_loss_loader``
(chapter 5) mirror ``torch_gpt/loss.py``. ``cross_entropy_with_grad`` is the
NumPy side's own: the loss and d loss / d logits in one pass, the fused
``(softmax - onehot) / N`` with no one-hot matrix. ``loss_and_grads`` is the one
call the tests and the trainer use: a forward that keeps its activations, the
loss, and the hand-written backward, returning gradients keyed like torch's
``dict(model.named_parameters())``.

Shapes: B batch, T tokens, V = vocab_size, N = B * T positions.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from gpt_common.loss_validation import DEFAULT_IGNORE_INDEX, check_loss_inputs, check_no_nan_logits

from .layers import map_rows

__all__ = ["cross_entropy", "cross_entropy_with_grad", "calc_loss_batch", "calc_loss_loader", "loss_and_grads"]


def _as_rows(logits: np.ndarray, targets, ignore_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The checked (N, V) logits view, (N,) targets and (N,) mask of the positions that count."""
    targets = np.asarray(targets)
    is_integer = np.issubdtype(targets.dtype, np.integer)
    counted = targets != ignore_index if is_integer else np.zeros(targets.shape, bool)
    has_counted = bool(counted.any())
    check_loss_inputs(
        logits.shape, targets.shape, str(targets.dtype), is_integer,
        int(targets[counted].min()) if has_counted else None, int(targets[counted].max()) if has_counted else None,
        ignore_index,
    )
    vocab_size = logits.shape[-1]
    return logits.reshape(-1, vocab_size), targets.reshape(-1), counted.reshape(-1)  # (N, V), (N,), (N,)


def _exp_rows(logits: np.ndarray, exp: np.ndarray, log_sum_exp: np.ndarray, nan_rows: np.ndarray) -> np.ndarray:
    """exp(logits - max) into ``exp``, each row's log sum exp into ``log_sum_exp`` and whether it holds a NaN
    (NaN anywhere in a row makes its max NaN: no extra pass) into ``nan_rows``; returns the row sums."""
    row_max = logits.max(axis=-1, keepdims=True)  # (rows, 1)
    np.isnan(row_max, out=nan_rows)
    np.subtract(logits, row_max, out=exp)
    np.exp(exp, out=exp)  # in place on a scratch block, or on the gradient's own rows
    sum_exp = exp.sum(axis=-1, keepdims=True)  # (rows, 1)
    np.log(sum_exp, out=log_sum_exp)
    log_sum_exp += row_max
    return sum_exp


def _loss_rows(logits: np.ndarray, log_sum_exp: np.ndarray, nan_rows: np.ndarray) -> None:
    _exp_rows(logits, np.empty_like(logits), log_sum_exp, nan_rows)


def _grad_rows(logits, counted, grad, log_sum_exp, nan_rows, *, inv_count: float) -> None:
    """The rows' log sum exp, and their gradient softmax / N (0 on ignored rows) written into ``grad``."""
    sum_exp = _exp_rows(logits, grad, log_sum_exp, nan_rows)
    grad *= counted * (inv_count / sum_exp)


def _cross_entropy(logits, targets, ignore_index: int, want_grad: bool, overwrite_logits: bool):
    """loss = mean over counted n of log sum_v exp(z_nv) - z_n,t_n; optionally dz = (softmax(z) - onehot) / N.

    The rows go block by block (``map_rows``: every core, and the max, exp, sum and scale passes over a
    block run in cache instead of streaming the whole (N, V) array from memory four times).
    """
    logits2d, targets1d, counted = _as_rows(np.asarray(logits), targets, ignore_index)
    num_rows, vocab_size = logits2d.shape
    num_counted = int(counted.sum())
    safe_targets = np.where(counted, targets1d, 0)  # (N,), an ignored position reads column 0 and is masked out
    target_logits = logits2d[np.arange(num_rows), safe_targets]  # (N,), a copy taken before any overwrite
    grad = None if not want_grad else logits2d if overwrite_logits else np.empty_like(logits2d)
    log_sum_exp = np.empty((num_rows, 1), logits2d.dtype)  # (N, 1)
    nan_rows = np.empty((num_rows, 1), bool)  # (N, 1)
    inv_count = 1.0 / num_counted if num_counted else 0.0  # a Python float: no upcast of float32
    if grad is None:
        map_rows(_loss_rows, logits2d, log_sum_exp, nan_rows)
    else:
        map_rows(partial(_grad_rows, inv_count=inv_count), logits2d, counted[:, None], grad, log_sum_exp, nan_rows)
    check_no_nan_logits(int(nan_rows.sum()), num_rows)
    per_position = np.where(counted, log_sum_exp[:, 0] - target_logits, 0.0).astype(logits2d.dtype, copy=False)
    dtype = logits2d.dtype.type
    loss = dtype(per_position.sum() * inv_count) if num_counted else dtype(np.nan)  # all ignored: NaN, as torch
    if grad is not None:
        grad[np.flatnonzero(counted), targets1d[counted]] -= inv_count  # - onehot / N, one element per position
        grad = grad.reshape(np.shape(logits))
    return loss, grad


def cross_entropy(logits: np.ndarray, targets: np.ndarray, ignore_index: int = DEFAULT_IGNORE_INDEX) -> np.floating:
    """Mean over the positions whose target is not ``ignore_index`` of -log softmax(logits)[target].

    log softmax is z_t - log sum_v exp(z_v), with the row maximum taken out of
    the sum first so exp never overflows. ``logits`` (..., V), ``targets`` (...)
    integer ids; returns a scalar in the logits' dtype (NaN if every target is ignored, as in torch).
    """
    loss, _ = _cross_entropy(logits, targets, ignore_index, want_grad=False, overwrite_logits=False)
    return loss


def cross_entropy_with_grad(
    logits: np.ndarray, targets: np.ndarray, ignore_index: int = DEFAULT_IGNORE_INDEX, *,
    overwrite_logits: bool = False,
) -> tuple[np.floating, np.ndarray]:
    """``cross_entropy`` and its gradient w.r.t. the logits, (softmax(logits) - onehot(targets)) / N.

    N counts the positions that are not ``ignore_index``; their rows of the
    gradient are 0. The one-hot is never built: 1 / N is subtracted at the N
    target entries. ``overwrite_logits=True`` writes the gradient into
    ``logits`` (no second (N, V) array), for a caller that owns them.
    """
    return _cross_entropy(logits, targets, ignore_index, want_grad=True, overwrite_logits=overwrite_logits)


def calc_loss_batch(input_batch, target_batch, model, device) -> np.floating:
    """The book's helper: the model's mean cross-entropy on one batch. ``device`` is accepted and ignored."""
    input_batch, target_batch = np.asarray(input_batch), np.asarray(target_batch)
    logits = model(input_batch)  # (B, T) -> (B, T, V)
    loss = cross_entropy(logits, target_batch)
    return loss


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
    model, input_batch: np.ndarray, target_batch: np.ndarray, *, ignore_index: int = DEFAULT_IGNORE_INDEX,
) -> tuple[float, dict[str, np.ndarray]]:
    """(loss, grads) for one batch: grads keyed like torch's ``dict(model.named_parameters())``.

    A weight shared by two modules (the tied head) appears once, under its
    first name, with the sum of both uses. The model's own mode decides dropout.
    Nothing stays on the model afterwards: two calls give each batch's own
    gradient, and accumulating over micro-batches is the caller's explicit sum.
    """
    model.zero_grad()
    try:
        with model.keeping_activations():
            logits = model(input_batch)  # (B, T) -> (B, T, V)
        loss, dlogits = cross_entropy_with_grad(logits, target_batch, ignore_index, overwrite_logits=True)
        model.backward(dlogits)  # dlogits is the logits' own array, so no second (B, T, V) array exists
        return float(loss), model.named_grads()
    finally:
        model.zero_grad()  # the returned dict holds the gradients; the model keeps nothing
