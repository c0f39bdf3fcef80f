"""The proof beside the code: max |NumPy - torch| per component on a random input, computed when the site is built.

Each class with a ``forward`` and each function that both twins define is run on
the same random weights and input, in float32 and float64, at the small shapes
below. Constructor arguments and inputs are looked up by parameter name, so a new
component is probed as soon as its arguments are named like the existing ones;
one that is not is reported as not probed (containers such as ``Sequential`` and
``Dropout``, whose eval-mode forward is the identity, are not probed on purpose).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

import numpy as np

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
class Figure:
    """max |NumPy - torch| per dtype name, and the bound each must meet (None: no bound available)."""

    diffs: dict[str, float]
    bounds: dict[str, float | None]


def tolerance_bound(qualname: str, dtype, expected: np.ndarray) -> float | None:
    """The bound ``tests/tolerances.py`` sets for this comparison; None until its error-budget rule is in place."""
    return None


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


def _max_diff(np_fn, torch_fn, arrays: list[np.ndarray]) -> float | None:
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
    finite = np.isfinite(expected)
    if expected.shape != actual.shape or not np.array_equal(finite, np.isfinite(actual)):
        return float("inf")
    return float(np.abs(actual[finite] - expected[finite]).max(initial=0.0))


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


def figure(np_obj, torch_obj) -> Figure | None:
    """max |NumPy - torch| in each dtype for one component, or None when it is not probed."""
    probe = _probe(np_obj, torch_obj)
    if probe is None or not set(probe[0]) <= INPUTS.keys():
        return None
    names, build = probe
    diffs, bounds = {}, {}
    for dtype in DTYPES:
        rng = np.random.default_rng(SEED)
        np_fn, torch_fn = build(dtype, rng)
        arrays = _inputs(names, dtype, rng)
        diff = _max_diff(np_fn, torch_fn, arrays)
        if diff is None:
            return None
        key = np.dtype(dtype).name
        diffs[key], bounds[key] = diff, tolerance_bound(getattr(np_obj, "__qualname__", ""), dtype, arrays[0])
    return Figure(diffs, bounds)


def figures(pair_name: str, names: list[str]) -> dict[str, Figure]:
    """Figures for the named top-level components of ``numpy_gpt.<pair_name>`` and its torch twin."""
    np_mod = importlib.import_module(f"numpy_gpt.{pair_name}")
    torch_mod = importlib.import_module(f"torch_gpt.{pair_name}")
    found = {}
    for name in names:
        if hasattr(np_mod, name) and hasattr(torch_mod, name):
            fig = figure(getattr(np_mod, name), getattr(torch_mod, name))
            if fig is not None:
                found[name] = fig
    return found
