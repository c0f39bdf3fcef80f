"""Helpers that build a NumPy module and its torch twin holding the same weights."""

from __future__ import annotations

import numpy as np
import torch

import numpy_gpt
import torch_gpt
from gpt_common.tolerances import SharedMasks

TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def torch_dtype(dtype) -> torch.dtype:
    return TORCH_DTYPES[np.dtype(dtype)]


def copy_weights(np_module, torch_module):
    """Load the NumPy module's parameters into the torch twin (strict: the key spaces must be identical)."""
    dtype = next(iter(np_module.state_dict().values()), np.zeros(0, np.float32)).dtype
    torch_module.to(torch_dtype(dtype))
    torch_module.load_state_dict({k: torch.from_numpy(v) for k, v in np_module.state_dict().items()}, strict=True)
    return torch_module


def randomise(np_module, seed: int, scale: float = 0.5) -> None:
    """Replace every parameter with N(0, scale^2) values, so LayerNorm scales/shifts and biases are not trivial."""
    rng = np.random.default_rng(seed)
    state = {k: (scale * rng.standard_normal(v.shape)).astype(v.dtype) for k, v in np_module.state_dict().items()}
    np_module.load_state_dict(state)


def twins(np_cls, torch_cls, args: tuple, dtype, seed: int, *, randomised: bool = True, train: bool = False):
    """(numpy module, torch module) with identical weights in ``dtype``, both in train or eval mode."""
    np_module = np_cls(*args, rng=seed, dtype=dtype)
    if randomised:
        randomise(np_module, seed + 1)
    torch_module = copy_weights(np_module, torch_cls(*args))
    np_module.train(train)
    torch_module.train(train)
    return np_module, torch_module


def model_twins(cfg, dtype, seed: int, *, train: bool = False, scale: float = 0.5):
    """(numpy GPTModel, torch GPTModel) with the same randomised weights in ``dtype``, in eval (or train) mode."""
    np_model = numpy_gpt.GPTModel(cfg, seed=seed, dtype=dtype)
    randomise(np_model, seed + 1, scale=scale)
    torch_model = copy_weights(np_model, torch_gpt.GPTModel(cfg))
    return np_model.train(train), torch_model.train(train)


def greedy_margin(model, idx: np.ndarray, steps: int, context_size: int | None = None) -> float:
    """The smallest best-minus-second logit along the greedy path (windowed like generate_text_simple).

    Greedy comparisons across packages assume a margin well above rounding, since a near-tie could flip.
    """
    context_size = context_size or model.cfg.context_length
    margins = [np.inf]
    for _ in range(steps):
        logits = model(idx[:, -context_size:])[:, -1]  # (B, V)
        top2 = np.sort(logits, axis=-1)[:, -2:]  # the strategies' vocabularies have at least 2 tokens
        margins.append((top2[:, 1] - top2[:, 0]).min())
        idx = np.concatenate([idx, logits.argmax(-1)[:, None]], axis=1)
    return min(margins)


def run_torch(torch_module, x: np.ndarray, **kwargs) -> np.ndarray:
    with torch.no_grad():
        return torch_module(torch.from_numpy(x), **kwargs).numpy()


def share_masks(np_module, torch_module, seed: int) -> None:
    """Give every Dropout in both modules the same mask sequence (the call order is the same by design)."""
    for module in np_module.modules():
        if hasattr(module, "mask_fn"):
            module.mask_fn = SharedMasks(seed)
    for module in torch_module.modules():
        if hasattr(module, "mask_fn"):
            module.mask_fn = SharedMasks(seed)
