"""Optimizer parameter groups, framework-neutral: parsing torch-style ``params`` and nanoGPT's decay split.

``torch.optim`` accepts an iterable of parameters, of ``(name, parameter)``
pairs (``model.named_parameters()``), or of group dicts ``{"params": ...,
**options}``. ``split_param_groups`` reads all three the same way for the NumPy
AdamW; ``decay_groups`` builds the two groups nanoGPT uses (weight decay only
on tensors with two or more dimensions: matrices and embeddings, not biases or
LayerNorm scales), for either package.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from ..validation import is_real

__all__ = ["DECAY_GROUPS", "check_adamw_args", "check_group_options", "check_max_norm", "split_param_groups",
           "decay_groups"]

DECAY_GROUPS = ("all", "matrices")  # the book decays every parameter; nanoGPT only the >= 2-D ones


def check_adamw_args(lr, betas, eps, weight_decay) -> dict:
    """The checks torch.optim.AdamW makes, with the project's number rule (a NumPy scalar is a number, a bool
    is not); returns the four as Python floats (a NumPy float64 scalar would upcast float32 arrays)."""
    if not (is_real(lr) and math.isfinite(lr) and lr >= 0):
        raise ValueError(f"lr must be a finite number >= 0, got {lr!r}")
    if isinstance(betas, str) or not hasattr(betas, "__len__") or len(betas) != 2 or not all(
            is_real(b) and 0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    for name, value in (("eps", eps), ("weight_decay", weight_decay)):
        if not (is_real(value) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return {"lr": float(lr), "betas": (float(betas[0]), float(betas[1])), "eps": float(eps),
            "weight_decay": float(weight_decay)}


def check_group_options(defaults: dict, options: dict) -> dict:
    """A parameter group's overrides of AdamW's settings, under the same rules as the constructor's."""
    return {**options, **check_adamw_args(**{**defaults, **{k: v for k, v in options.items() if k in defaults}})}


def check_max_norm(max_norm) -> None:
    """``clip_grad_norm_``'s bound: a negative one reverses every gradient, 0 zeroes them, NaN poisons them."""
    if not (is_real(max_norm) and math.isfinite(max_norm) and max_norm > 0):
        raise ValueError(f"max_norm must be a finite number > 0, got {max_norm!r}")


def split_param_groups(params, is_param: Callable[[object], bool]) -> list[tuple[list, list, dict]]:
    """[(parameters, names or None each, options)] per group; a parameter seen before (a tied weight) is skipped."""
    params = list(params)
    if not params:
        raise ValueError("optimizer got an empty parameter list")
    groups = params if isinstance(params[0], dict) else [{"params": params}]
    seen: set[int] = set()
    result = []
    for group in groups:
        options = {key: value for key, value in group.items() if key != "params"}
        arrays, names = [], []
        for item in _as_list(group["params"]):
            name, value = item if isinstance(item, tuple) else (None, item)
            if not is_param(value):
                raise ValueError("optimizer parameters must be arrays or (name, array) pairs, "
                                 f"got {type(value).__name__}")
            if id(value) not in seen:
                seen.add(id(value))
                arrays.append(value)
                names.append(name)
        result.append((arrays, names, options))
    return result


def _as_list(items) -> list:
    return [items] if not isinstance(items, Iterable) or hasattr(items, "shape") else list(items)


def decay_groups(named_parameters: Iterable[tuple[str, object]], weight_decay: float, mode: str = "all") -> list[dict]:
    """Groups for AdamW: "all" decays every parameter (the book); "matrices" decays only tensors with
    ndim >= 2 and gives the rest weight_decay 0 (nanoGPT's ``configure_optimizers``). Names are kept."""
    if mode not in DECAY_GROUPS:
        raise ValueError(f"decay groups must be one of {list(DECAY_GROUPS)}, got {mode!r}")
    named = list(named_parameters)
    if mode == "all":
        return [{"params": named, "weight_decay": weight_decay}]
    decay = [(name, p) for name, p in named if len(p.shape) >= 2]
    no_decay = [(name, p) for name, p in named if len(p.shape) < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
