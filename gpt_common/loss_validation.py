"""Checks on a loss's inputs and on a backward's saved activations, shared by both packages.

Framework-neutral, like ``validation.py`` (and meant to move with it into the
framework-neutral package): each package gathers the facts about its own
arrays and hands them here, so the two raise the same ``ValueError`` text.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["check_loss_inputs", "check_no_nan_logits", "check_saved", "DEFAULT_IGNORE_INDEX"]

DEFAULT_IGNORE_INDEX = -100  # torch's default: a target with this value adds nothing to the loss


def check_loss_inputs(
    logits_shape: Sequence[int],
    targets_shape: Sequence[int],
    targets_dtype: str,
    targets_are_integer: bool,
    min_target: int | None,
    max_target: int | None,
    ignore_index: object,
) -> None:
    """logits (..., V) with at least 2 axes; integer targets of shape (...); each target in [0, V) or ignore_index.

    ``min_target`` / ``max_target`` are taken over the targets that are not ``ignore_index`` (None: there are none).
    """
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise ValueError(f"ignore_index must be an int, got {ignore_index!r}")
    if len(logits_shape) < 2:
        raise ValueError(f"logits must have shape (N, V) or (B, T, V), got shape {tuple(logits_shape)}")
    if not targets_are_integer:
        raise ValueError(f"targets must be integers, got dtype {targets_dtype}")
    expected = tuple(logits_shape[:-1])
    if tuple(targets_shape) != expected:
        raise ValueError(f"targets must have shape {expected} (the logits' without the vocabulary axis), "
                         f"got shape {tuple(targets_shape)}")
    vocab_size = logits_shape[-1]
    if min_target is not None and (min_target < 0 or max_target >= vocab_size):
        raise ValueError(f"targets must be in [0, {vocab_size}) or equal ignore_index={ignore_index}, "
                         f"got min {min_target} and max {max_target}")


def check_no_nan_logits(nan_positions: int, positions: int) -> None:
    """No logit is NaN (found from the row maxima, which NaN propagates into: no extra pass over the logits)."""
    if nan_positions:
        raise ValueError(f"logits contain NaN at {nan_positions} of {positions} positions")


def check_saved(module_name: str, has_saved: bool) -> None:
    """A backward needs the activations its forward kept (a forward run inside ``keeping_activations()``)."""
    if not has_saved:
        raise ValueError(f"{module_name}.backward called without a forward that kept its activations: "
                         f"run the forward inside `with model.keeping_activations():`, then one backward")
