"""The proof beside the code: max |NumPy - torch| per component on a random input, computed when the site is built.

Each class with a ``forward`` and each function that both twins define is run on
the same random weights and input, in float32 and float64, at the small shapes
below. Constructor arguments and inputs are looked up by parameter name, so a new
component is probed as soon as its arguments are named like the existing ones;
one that is not shows no figure (containers such as ``Sequential``, and ``Dropout``,
whose eval-mode forward is the identity, on purpose). The bound each figure must meet
is the project's rule from gpt_common/tolerances.py: |NumPy - torch| <= 2 LAMBDA u budget,
element-wise, with the component's rounding budget (``_budgets``); a component with no
budget there shows its figure alone.
"""

from __future__ import annotations

import importlib
import inspect
import math
from dataclasses import dataclass

import numpy as np

from gpt_common import tolerances as tol

B, T, C, H, V, CONTEXT = 2, 5, 6, 2, 32, 8  # small shapes: B batch, T tokens, C = emb_dim, H heads, V vocab
DTYPES = (np.float32, np.float64)
SEED = 0

CONFIG = {"vocab_size": V, "context_length": CONTEXT, "emb_dim": C, "n_heads": H, "n_layers": 2,
          "drop_rate": 0.0, "qkv_bias": True}
# Constructor arguments by parameter name.
ARGUMENTS = {"cfg": CONFIG, "d_in": C, "d_out": C, "emb_dim": C, "in_features": C, "out_features": C,
             "context_length": CONTEXT, "dropout": 0.0, "num_heads": H, "qkv_bias": True,
             "num_embeddings": V, "embedding_dim": C}
# Call inputs by parameter name: (kind, shape); "float" is N(0, 1) in the dtype, "ids" integers in [0, V).
INPUTS = {"x": ("float", (B, T, C)), "queries": ("float", (B, H, T, C // H)), "keys": ("float", (B, H, T, C // H)),
          "logits": ("float", (B, V)), "in_idx": ("ids", (B, T)), "idx": ("ids", (B, T))}


@dataclass(frozen=True)
class Measure:
    """One dtype's figures: max |NumPy - torch|, the bound at that element, and the largest share of its
    bound any element uses (the comparison passes when that share is below 1); bounds are None without a budget."""

    diff: float
    bound: float | None = None
    share: float | None = None


@dataclass(frozen=True)
class Figure:
    measures: dict[str, Measure]  # dtype name -> its figures


def _budgets() -> dict:
    """Component name -> (NumPy module or function, *inputs) -> (float64 value, budget in units of u).

    Every budget is one of gpt_common/tolerances.py's, called the way the component's own tests call it.
    """
    return {
        "GELU": lambda m, x: tol.gelu_budget(x, 0.0),
        "softmax": lambda f, x: tol.softmax_budget(x, 0.0),
        "LayerNorm": lambda m, x: tol.layer_norm_module_budget(m, x, 0.0),
        "Linear": lambda m, x: tol.linear_module_budget(m, x, 0.0),
        "Embedding": lambda m, idx: tol.zero_budget(m.weight[idx]),
        "scaled_attention_weights": lambda f, q, k: tol.softmax_budget(
            *tol.scores_budget(q, 0.0, k, 0.0, 1.0 / math.sqrt(k.shape[-1]))),
        "SimplifiedSelfAttention": lambda m, x: tol.simplified_attention_budget(x),
        "SelfAttention": lambda m, x: tol.self_attention_budget(m, x),
        "CausalAttention": lambda m, x: tol.self_attention_budget(m, x),
        "MultiHeadAttentionWrapper": lambda m, x: tol.wrapper_budget(m, x),
        "MultiHeadAttention": lambda m, x: tol.mha_budget(m, x),
        "FeedForward": lambda m, x: tol.feed_forward_budget(m, x, 0.0),
        "TransformerBlock": lambda m, x: tol.block_budget(m, x),
        "GPTModel": lambda m, idx: tol.model_budget(m, idx),
    }


def tolerance_bound(name: str, np_fn, arrays: list[np.ndarray], actual, expected, dtype) -> Measure:
    """max |NumPy - torch| with the project's bound for it: |numpy - torch| <= 2 LAMBDA u budget element-wise
    (gpt_common/tolerances.py). Without a budget for ``name``, the difference alone."""
    diff = np.abs(np.asarray(actual, dtype=np.float64) - np.asarray(expected, dtype=np.float64))
    diff = np.where(np.isinf(expected) & (actual == expected), 0.0, diff)
    worst = np.unravel_index(np.argmax(diff), diff.shape) if diff.size else ()
    biggest = float(diff[worst]) if diff.size else 0.0
    budget_fn = _budgets().get(name)
    if budget_fn is None:
        return Measure(biggest)
    _, budget = budget_fn(np_fn, *arrays)
    limit = np.broadcast_to(tol.bound(budget, dtype), diff.shape)
    return Measure(biggest, float(limit[worst]), float(np.max(diff / limit)) if diff.size else 0.0)


def _required(fn) -> list[str] | None:
    """Names of the required positional parameters of ``fn``, or None when it cannot be inspected."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds and p.default is inspect.Parameter.empty and p.name != "self"]


def _inputs(names: list[str], dtype, rng: np.random.Generator) -> list[np.ndarray]:
    arrays = []
    for name in names:
        kind, shape = INPUTS[name]
        arrays.append(rng.integers(0, V, shape) if kind == "ids" else rng.standard_normal(shape).astype(dtype))
    return arrays


def _twin_modules(np_cls, torch_cls, dtype, rng: np.random.Generator):
    """The two modules with the same N(0, 0.25) weights in ``dtype``, in eval mode."""
    import torch

    names = _required(np_cls.__init__)
    args = [ARGUMENTS[n] for n in names]
    accepted = inspect.signature(np_cls.__init__).parameters
    options = {k: v for k, v in (("rng", SEED), ("dtype", dtype)) if k in accepted}
    np_module = np_cls(*args, **options)
    np_module.load_state_dict({k: (0.5 * rng.standard_normal(v.shape)).astype(v.dtype)
                               for k, v in np_module.state_dict().items()})
    torch_module = torch_cls(*args).to(getattr(torch, np.dtype(dtype).name))
    torch_module.load_state_dict({k: torch.from_numpy(v) for k, v in np_module.state_dict().items()}, strict=True)
    return np_module.eval(), torch_module.eval()


def _measure(name: str, np_fn, torch_fn, arrays: list[np.ndarray], dtype) -> Measure | None:
    """Run both sides on ``arrays``; None when the result is not a floating array (nothing to measure)."""
    import torch

    with torch.no_grad():
        expected = np_fn(*arrays)
        actual = torch_fn(*[torch.from_numpy(a) for a in arrays])
    if any(expected is a for a in arrays):  # the identity here (dropout in eval mode, an empty Sequential)
        return None
    expected = np.asarray(expected)
    if not (isinstance(actual, torch.Tensor) and np.issubdtype(expected.dtype, np.floating)):
        return None
    actual = actual.numpy()
    if expected.shape != actual.shape or not np.array_equal(np.isfinite(expected), np.isfinite(actual)):
        return Measure(float("inf"))
    return tolerance_bound(name, np_fn, arrays, actual, expected, dtype)


def _probe(np_obj, torch_obj) -> tuple[list[str], object] | None:
    """(input names, a builder of the two callables for a dtype and rng) or None when the table does not cover it."""
    if inspect.isclass(np_obj):
        if not (hasattr(np_obj, "state_dict") and hasattr(np_obj, "forward")):
            return None
        ctor, call = _required(np_obj.__init__), _required(np_obj.forward)
        if ctor is None or call is None or not set(ctor) <= ARGUMENTS.keys() or not call:
            return None
        return call, lambda dtype, rng: _twin_modules(np_obj, torch_obj, dtype, rng)
    call = _required(np_obj) if callable(np_obj) else None
    return (call, lambda dtype, rng: (np_obj, torch_obj)) if call else None


def figure(name: str, np_obj, torch_obj) -> Figure | None:
    """The figures in each dtype for the component ``name``, or None when it is not probed."""
    probe = _probe(np_obj, torch_obj)
    if probe is None or not set(probe[0]) <= INPUTS.keys():
        return None
    names, build = probe
    measures = {}
    for dtype in DTYPES:
        rng = np.random.default_rng(SEED)
        np_fn, torch_fn = build(dtype, rng)
        measure = _measure(name, np_fn, torch_fn, _inputs(names, dtype, rng), dtype)
        if measure is None:
            return None
        measures[np.dtype(dtype).name] = measure
    return Figure(measures)


def figures(pair_name: str, names: list[str]) -> dict[str, Figure]:
    """Figures for the named top-level components of ``numpy_gpt.<pair_name>`` and its torch twin."""
    np_mod = importlib.import_module(f"numpy_gpt.{pair_name}")
    torch_mod = importlib.import_module(f"torch_gpt.{pair_name}")
    found = {}
    for name in names:
        if hasattr(np_mod, name) and hasattr(torch_mod, name):
            fig = figure(name, getattr(np_mod, name), getattr(torch_mod, name))
            if fig is not None:
                found[name] = fig
    return found
