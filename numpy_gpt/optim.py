"""AdamW and gradient clipping, written out: the twin of ``torch.optim.AdamW`` and ``clip_grad_norm_``.

AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019) is
Adam (Kingma & Ba, 2015) with the weight decay taken out of the gradient and
applied to the weights directly. One step, for each parameter p with gradient g,
in the order ``torch.optim.AdamW`` (single-tensor path) computes it:

    p   <- p * (1 - lr * weight_decay)            decoupled weight decay
    m   <- m + (1 - beta1) * (g - m)              first moment (torch's lerp)
    v   <- beta2 * v + (1 - beta2) * g * g        second moment
    p   <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

The step works in place: each parameter is walked in chunks of ``CHUNK``
elements through two scratch buffers that stay in cache, so no temporary the
size of a parameter (let alone of the model) is ever allocated, and the step
streams p, g, m and v through memory once. NumPy runs each ufunc on one core, so
the chunks are shared out to ``threads`` workers (element-wise: bitwise the same).

Parameters are passed like torch's: ``model.named_parameters()`` (or plain
arrays), or a list of groups ``{"params": [...], "weight_decay": ...}``; a tied
weight (the output head) is one array and is updated once, as torch lists it once.
Gradients come from ``loss_and_grads``, keyed by parameter name; ``step(grads)``
takes that dict (or, for unnamed parameters, a list in the groups' order).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from gpt_common.training.param_groups import check_adamw_args, check_group_options, check_max_norm, split_param_groups
from gpt_common.validation import is_int

__all__ = ["AdamW", "clip_grad_norm_", "get_total_norm", "CHUNK"]

# Elements per chunk of the in-place step: 2 scratch float32 chunks of 256 KiB sit in L2 next to the
# four streams; much smaller and the per-call overhead of NumPy dominates.
CHUNK = 1 << 16


class AdamW:
    """``torch.optim.AdamW`` in NumPy: the same constructor, parameter groups, defaults and state_dict layout."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 *, threads: int | None = None):
        self.defaults = check_adamw_args(lr, betas, eps, weight_decay)
        # NumPy's ufuncs use one core; the chunks are independent, so ``threads`` workers (default: the CPUs
        # this process may use) take every threads-th one. Element-wise, so the result is the same bitwise.
        if threads is not None and (not is_int(threads) or threads < 1):
            raise ValueError(f"threads must be None or an int >= 1, got {threads!r}")
        self.threads = len(os.sched_getaffinity(0)) if threads is None else int(threads)
        self._pool: ThreadPoolExecutor | None = None
        self.param_groups = [
            {**check_group_options(self.defaults, options), "params": arrays, "param_names": names}
            for arrays, names, options in split_param_groups(params, _is_array)
        ]
        for group in self.param_groups:
            for p in group["params"]:
                _check_writeable(p)
        self.state: dict[int, dict] = {}  # id(parameter) -> {"step", "exp_avg", "exp_avg_sq"}
        self._scratch: dict[tuple[np.dtype, int], tuple[np.ndarray, np.ndarray]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Nothing to clear: gradients live in the dict ``loss_and_grads`` returns, not on the parameters."""

    def step(self, grads) -> None:
        """One AdamW update of every parameter that has a gradient (see the module docstring for the formula)."""
        for group, group_grads in zip(self.param_groups, self._grads_by_group(grads)):
            for p, g in zip(group["params"], group_grads):
                if g is not None:
                    self._update(p, np.asarray(g), group)

    def _grads_by_group(self, grads) -> list[list]:
        """The gradient of each parameter, group by group: by name from a dict, by position from a list."""
        if isinstance(grads, Mapping):
            if any(name is None for group in self.param_groups for name in group["param_names"]):
                raise ValueError("step(grads) got a dict, but the optimizer was given unnamed parameters: "
                                 "build it from model.named_parameters(), or pass the gradients as a list")
            unknown = sorted(set(grads) - {name for group in self.param_groups for name in group["param_names"]})
            if unknown:
                raise ValueError(f"step(grads) got gradients for {unknown[:5]}, which name no parameter "
                                 "of this optimizer")
            return [[grads.get(name) for name in group["param_names"]] for group in self.param_groups]
        flat = list(grads)
        sizes = [len(group["params"]) for group in self.param_groups]
        if len(flat) != sum(sizes):
            raise ValueError(f"step(grads) got {len(flat)} gradients for {sum(sizes)} parameters")
        starts = np.cumsum([0, *sizes])
        return [flat[start:stop] for start, stop in zip(starts[:-1], starts[1:])]

    def _update(self, p: np.ndarray, g: np.ndarray, group: dict) -> None:
        if g.shape != p.shape:
            raise ValueError(f"gradient of shape {g.shape} for a parameter of shape {p.shape}")
        if id(p) not in self.state:  # lazily, as torch: the moments exist from the first step on
            self.state[id(p)] = {"step": 0, "exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p)}
        state = self.state[id(p)]
        state["step"] += 1
        lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        step_size = lr / (1.0 - beta1 ** state["step"])  # Python floats: no upcast of float32 arrays
        bias_correction2_sqrt = math.sqrt(1.0 - beta2 ** state["step"])
        scale = 1.0 - lr * weight_decay
        flat = [x.reshape(-1) for x in (p, np.ascontiguousarray(g, p.dtype), state["exp_avg"], state["exp_avg_sq"])]
        constants = (scale, 1.0 - beta1, beta2, 1.0 - beta2, bias_correction2_sqrt, eps, step_size)
        workers = min(self.threads, -(-p.size // CHUNK))
        scratch = [self._scratch_for(p.dtype, worker) for worker in range(workers)]
        if workers == 1:
            _update_chunks(flat, constants, scratch[0], 0, 1)
        else:  # the workers honour the caller's np.errstate, which is per thread
            jobs = [self._executor().submit(_in_errstate, np.geterr(), flat, constants, scratch[w], w, workers)
                    for w in range(workers)]
            for job in jobs:
                job.result()  # re-raises a worker's exception here

    def _scratch_for(self, dtype, worker: int) -> tuple[np.ndarray, np.ndarray]:
        if (dtype, worker) not in self._scratch:
            self._scratch[dtype, worker] = (np.empty(CHUNK, dtype), np.empty(CHUNK, dtype))
        return self._scratch[dtype, worker]

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="adamw")
        return self._pool

    def state_dict(self) -> dict:
        """torch's layout: {"state": {index: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [...]}."""
        index = {id(p): i for i, p in enumerate(p for group in self.param_groups for p in group["params"])}
        groups, start = [], 0
        for group in self.param_groups:
            count = len(group["params"])
            settings = {k: v for k, v in group.items() if k != "params"}
            groups.append({**settings, "params": list(range(start, start + count))})
            start += count
        state = {index[key]: {**value, "exp_avg": value["exp_avg"].copy(), "exp_avg_sq": value["exp_avg_sq"].copy()}
                 for key, value in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Restore moments, step counts and group settings; checks every shape before changing anything."""
        params = [p for group in self.param_groups for p in group["params"]]
        groups = state_dict["param_groups"]
        if [len(g["params"]) for g in groups] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("optimizer state has a different parameter-group layout: "
                             f"{[len(g['params']) for g in groups]} parameters per group, "
                             f"expected {[len(g['params']) for g in self.param_groups]}")
        new_state = {}
        for i, value in state_dict["state"].items():
            p = params[int(i)]
            for key in ("exp_avg", "exp_avg_sq"):
                if np.shape(value[key]) != p.shape:
                    raise ValueError(f"optimizer state {key} of parameter {i} has shape {np.shape(value[key])}, "
                                     f"expected {p.shape}")
            new_state[id(p)] = {"step": int(value["step"]), "exp_avg": np.array(value["exp_avg"], p.dtype),
                                "exp_avg_sq": np.array(value["exp_avg_sq"], p.dtype)}
        settings = [check_group_options(self.defaults, {k: v for k, v in saved.items()
                                                        if k not in ("params", "param_names")}) for saved in groups]
        for group, saved in zip(self.param_groups, settings):
            group.update(saved)
        self.state = new_state


def get_total_norm(grads, norm_type: float = 2.0):
    """||g||, the global L2 norm: the norm of the per-tensor norms, in the gradients' dtype
    (the twin of ``torch.nn.utils.get_total_norm``). ``grads``: a dict of arrays or a list."""
    if norm_type != 2.0:
        raise ValueError(f"only the L2 norm (norm_type=2.0) is implemented, got {norm_type!r}")
    arrays = list(grads.values()) if isinstance(grads, Mapping) else list(grads)
    if not arrays:
        return np.float32(0.0)
    dtype = arrays[0].dtype
    norms = np.array([np.sqrt(np.vdot(g.reshape(-1), g.reshape(-1))) for g in arrays], dtype)
    return np.sqrt(np.dot(norms, norms)).astype(dtype)


def clip_grad_norm_(grads, max_norm: float, norm_type: float = 2.0, eps: float = 1e-6):
    """Scale all gradients by min(1, max_norm / (||g|| + eps)), ||g|| the global L2 norm; returns ||g||.

    The twin of ``torch.nn.utils.clip_grad_norm_``: the gradients are multiplied in place
    (even by exactly 1, as torch does). ``max_norm`` must be a finite number > 0.
    """
    check_max_norm(max_norm)
    total_norm = get_total_norm(grads, norm_type)
    clip_coef = np.minimum(float(max_norm) / (total_norm + eps), 1.0)  # in the gradients' dtype, as torch's
    for g in (grads.values() if isinstance(grads, Mapping) else grads):
        g *= clip_coef
    return total_norm


def _in_errstate(errstate: dict, *args) -> None:
    with np.errstate(**errstate):
        _update_chunks(*args)


def _update_chunks(flat, constants, buffers, worker: int, workers: int) -> None:
    """The AdamW update of chunks worker, worker + workers, ... of the flat (p, g, m, v), in place."""
    p, g, m, v = flat
    scale, one_minus_beta1, beta2, one_minus_beta2, bias_correction2_sqrt, eps, step_size = constants
    scratch, denom = buffers
    for start in range(worker * CHUNK, p.size, workers * CHUNK):
        pc, gc, mc, vc = (x[start:start + CHUNK] for x in (p, g, m, v))  # views: the updates land in p, m, v
        s, d = scratch[:pc.size], denom[:pc.size]
        pc *= scale
        np.subtract(gc, mc, out=s)
        s *= one_minus_beta1
        mc += s  # m + (1 - beta1) (g - m)
        vc *= beta2
        np.multiply(gc, gc, out=s)
        s *= one_minus_beta2
        vc += s  # beta2 v + (1 - beta2) g^2
        np.sqrt(vc, out=d)
        d /= bias_correction2_sqrt
        d += eps
        np.divide(mc, d, out=s)
        s *= step_size
        pc -= s


def _is_array(value) -> bool:
    return isinstance(value, np.ndarray)


def _check_writeable(p: np.ndarray) -> None:
    if not p.flags.writeable or not p.flags.c_contiguous:
        raise ValueError(f"AdamW updates parameters in place, but a parameter of shape {p.shape} is "
                         "read-only or not contiguous (copy it into the model first)")

