"""The small slice of ``torch.nn`` the reference needs, in NumPy.

``Module`` (children, parameters, state dict, train/eval, dtype), ``ModuleList``,
``Sequential``, ``Linear``, ``Embedding`` and ``Dropout``. The torch twin of this
file is ``torch.nn`` itself; ``torch_gpt/layers.py`` only adds the injectable
dropout mask that lets the two packages be compared in training mode.

A parameter is any ``np.ndarray`` attribute of a module, except those declared
with ``register_buffer`` (which, like torch's ``persistent=False`` buffers,
stay out of the state dict). Weights are ``[out, in]`` like ``nn.Linear``.

Gradients are written by hand: each module has a ``backward(dout)`` next to
its ``forward``, returning d loss / d input and adding d loss / d parameter to
``module.grads``. A forward keeps what its backward needs only inside
``with model.keeping_activations():`` (an explicit switch, separate from
``train()``, so evaluation never holds memory). What a forward keeps is a small
named record (a ``NamedTuple`` per path, e.g. ``LinearSaved(x)``), filed under its
class: the backward takes the record it needs by that name, never by a stack order
or a type check. A module run twice in one forward (the block's ``drop_shortcut``)
has its caller take each run's record (``take_saved``) and hand it back to the backward.

``init=False`` builds a ``Linear`` or ``Embedding`` whose parameters are read-only
placeholders (no memory, nothing drawn from ``rng``), for a loader to replace with
``load_state_dict(..., assign=True)``: the NumPy side of torch's "meta" device.

``map_rows`` (at the end) is the one piece that shares element-wise work out to
both cores, as torch does inside its own kernels; see its section.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import NamedTuple, TypeVar

import numpy as np

from gpt_common.loss_validation import check_saved
from gpt_common.rng import as_rng

__all__ = [
    "as_rng", "placeholder", "Module", "ModuleList", "Sequential", "Linear", "Embedding", "Dropout",
    "LinearSaved", "EmbeddingSaved", "DropoutSaved", "map_rows", "map_chunks", "using_threads", "CHUNK_BYTES",
]

MaskFn = Callable[[tuple, float], np.ndarray]  # (shape, p) -> boolean keep-mask
Saved = TypeVar("Saved", bound=tuple)  # a record class: a NamedTuple


def placeholder(shape: tuple, dtype) -> np.ndarray:
    """A read-only array of ``shape`` that takes no memory (one zero, broadcast): a parameter before loading."""
    return np.broadcast_to(np.zeros((), dtype), shape)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class Module:
    """Base class: call ``module(x)`` to run ``forward``; parameters are found by walking attributes."""

    _buffers: frozenset = frozenset()

    def __init__(self):
        self.training = True
        self.keeps_activations = False  # set only by keeping_activations(); see the module docstring
        self._saved: dict[type, tuple] = {}  # record class -> what the latest forward kept for its backward
        self.grads: dict[str, np.ndarray] = {}  # parameter name -> d loss / d parameter, summed over backwards

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """A constant array (e.g. the causal mask) that is not a parameter and not saved."""
        self._buffers = self._buffers | {name}
        setattr(self, name, value)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(_join(prefix, name))

    def modules(self) -> Iterator[Module]:
        return (module for _, module in self.named_modules())

    def named_parameters(self) -> Iterator[tuple[str, np.ndarray]]:
        for prefix, module in self.named_modules():
            for name, value in vars(module).items():
                if isinstance(value, np.ndarray) and name not in module._buffers:
                    yield _join(prefix, name), value

    def parameters(self) -> Iterator[np.ndarray]:
        return (value for _, value in self.named_parameters())

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameter name -> array, the same keys as the torch twin's ``state_dict()``."""
        return dict(self.named_parameters())

    def load_state_dict(self, state_dict: Mapping[str, np.ndarray], strict: bool = True, assign: bool = False) -> None:
        """Copy arrays in by key, cast to each parameter's dtype; checks everything before changing anything.

        ``assign=True`` (as torch's) makes the given arrays the parameters themselves, cast only where the
        dtype differs: how a loader fills a model built with ``init=False``.
        """
        own = dict(self.named_parameters())
        missing = sorted(set(own) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        if strict and (missing or unexpected):
            raise ValueError(f"state dict mismatch: missing keys {missing}, unexpected keys {unexpected}")
        loaded = {}
        for key in own.keys() & state_dict.keys():
            value = np.asarray(state_dict[key])
            if value.shape != own[key].shape:
                raise ValueError(f"shape mismatch for {key}: expected {own[key].shape}, got {value.shape}")
            loaded[key] = value.astype(own[key].dtype, copy=not assign)
        self._assign(loaded)

    def _assign(self, arrays: Mapping[str, np.ndarray]) -> None:
        modules = dict(self.named_modules())
        for key, value in arrays.items():
            prefix, _, name = key.rpartition(".")
            setattr(modules[prefix], name, value)

    def to(self, dtype) -> Module:
        """Cast every parameter, like ``module.to(torch.float64)``; returns self."""
        casts: dict[int, np.ndarray] = {}  # one cast per array: a weight two modules share (a tied head) stays shared
        for value in self.parameters():
            if id(value) not in casts:
                casts[id(value)] = value.astype(dtype)
        self._assign({key: casts[id(value)] for key, value in self.named_parameters()})
        return self

    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    # Backward bookkeeping: keep activations, pop them, gather gradients, forget everything.

    @contextlib.contextmanager
    def keeping_activations(self) -> Iterator[Module]:
        """Forwards run inside this block keep what their backward needs; outside it they keep nothing."""
        previous = [(module, module.keeps_activations) for module in self.modules()]
        for module, _ in previous:
            module.keeps_activations = True
        try:
            yield self
        finally:
            for module, was_keeping in previous:
                module.keeps_activations = was_keeping

    def save_for_backward(self, saved: tuple) -> None:
        """Keep ``saved``, a NamedTuple record, for the backward (only while keeping activations); a later
        forward's record of the same class replaces it."""
        if self.keeps_activations:
            self._saved[type(saved)] = saved

    def take_saved(self, kind: type[Saved]) -> Saved | None:
        """Take (and forget) the ``kind`` record the latest forward kept; None if it kept none."""
        return self._saved.pop(kind, None)

    def saved_for_backward(self, kind: type[Saved]) -> Saved:
        """Take the ``kind`` record the latest forward kept: one backward per kept forward; ValueError if none."""
        saved = self.take_saved(kind)
        check_saved(type(self).__name__, saved is not None)
        return saved

    def accumulate_grad(self, name: str, grad: np.ndarray) -> None:
        """grads[name] += grad (the first backward's array is stored as is: it is always a fresh one)."""
        self.grads[name] = grad if name not in self.grads else self.grads[name] + grad

    def named_grads(self) -> dict[str, np.ndarray]:
        """Gradients keyed like torch's ``dict(named_parameters())``: an array shared by several
        modules (the tied head) appears once, under its first name, with the sum of its uses."""
        first_name: dict[int, str] = {}
        for key, value in self.named_parameters():
            first_name.setdefault(id(value), key)
        grads: dict[str, np.ndarray] = {}
        for _, module in self.named_modules():
            for name, grad in module.grads.items():
                key = first_name[id(getattr(module, name))]
                grads[key] = grad if key not in grads else grads[key] + grad
        return grads

    def zero_grad(self) -> None:
        """Forget every gradient and every kept activation: the next backward starts from nothing."""
        for module in self.modules():
            module.grads = {}
            module._saved = {}


class ModuleList(Module):
    """Holds sub-modules under the keys "0", "1", ... like ``nn.ModuleList``."""

    def __init__(self, modules: Iterable[Module] = ()):
        super().__init__()
        self._items = list(modules)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for index, module in enumerate(self._items):
            yield str(index), module

    def __getitem__(self, index: int) -> Module:
        return self._items[index]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class Sequential(ModuleList):
    """Applies its modules in order, like ``nn.Sequential``."""

    def __init__(self, *modules: Module):
        super().__init__(modules)

    def forward(self, x):
        for module in self._items:
            x = module(x)
        return x

    def backward(self, dout):
        """The chain rule through the modules in reverse order."""
        for module in reversed(self._items):
            dout = module.backward(dout)
        return dout


class LinearSaved(NamedTuple):
    """What ``Linear``'s backward needs: its input."""

    x: np.ndarray


class Linear(Module):
    """y = x W^T + b, with W of shape [out, in]; initialised like ``nn.Linear``: U(-1/sqrt(in), 1/sqrt(in)).

    ``init=False``: placeholders instead (see the module docstring).
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, *, rng=None, dtype=np.float32, init=True,
    ):
        super().__init__()
        rng = as_rng(rng)
        bound = 1.0 / math.sqrt(in_features)
        if init:
            self.weight = rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype)
            self.bias = rng.uniform(-bound, bound, out_features).astype(dtype) if bias else None
        else:
            self.weight = placeholder((out_features, in_features), dtype)
            self.bias = placeholder((out_features,), dtype) if bias else None

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.weight.T  # (..., in) -> (..., out)
        if self.bias is not None:
            y += self.bias  # in place on our own fresh result, never on the caller's x
        self.save_for_backward(LinearSaved(x))
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dx = dy W; dW = dy^T x and db = sum of dy, both summed over every position (all leading axes)."""
        x = self.saved_for_backward(LinearSaved).x
        dout_rows = dout.reshape(-1, dout.shape[-1])  # (..., out) -> (N, out)
        self.accumulate_grad("weight", dout_rows.T @ x.reshape(-1, x.shape[-1]))  # (out, N) @ (N, in) -> (out, in)
        if self.bias is not None:
            self.accumulate_grad("bias", dout_rows.sum(axis=0))  # (N, out) -> (out,)
        return dout @ self.weight  # (..., out) @ (out, in) -> (..., in)


class EmbeddingSaved(NamedTuple):
    """What ``Embedding``'s backward needs: the ids, not the rows they picked."""

    idx: np.ndarray


class Embedding(Module):
    """A lookup table of shape [num_embeddings, embedding_dim]; initialised N(0, 1) like ``nn.Embedding``.

    ``init=False``: a placeholder instead (see the module docstring).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, *, rng=None, dtype=np.float32, init=True):
        super().__init__()
        shape = (num_embeddings, embedding_dim)
        self.weight = as_rng(rng).standard_normal(shape).astype(dtype) if init else placeholder(shape, dtype)

    def forward(self, idx: np.ndarray) -> np.ndarray:
        self.save_for_backward(EmbeddingSaved(idx))
        return self.weight[idx]  # (...) -> (..., embedding_dim)

    def backward(self, dout: np.ndarray) -> None:
        """dW[v] = sum of dout over the positions whose id is v: a scatter-add, so a repeated id gets each use.

        ``dout`` may have more leading axes than the ids had (the position rows, broadcast over the batch).

        Done as a segment sum (sort the ids, ``np.add.reduceat`` each run of one id),
        several times faster than ``np.add.at``; ids get no gradient.
        """
        idx = self.saved_for_backward(EmbeddingSaved).idx
        ids = np.broadcast_to(idx, dout.shape[:-1]).reshape(-1)  # (...) -> (N,); a broadcast row counts each time
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        starts = np.flatnonzero(np.concatenate([[True], sorted_ids[1:] != sorted_ids[:-1]]))  # first of each run
        rows = dout.reshape(-1, dout.shape[-1])[order]  # (..., C) -> (N, C), grouped by id
        grad = np.zeros_like(self.weight)  # (V, C); untouched rows stay 0 without being written
        grad[sorted_ids[starts]] = np.add.reduceat(rows, starts, axis=0)  # (distinct ids, C)
        self.accumulate_grad("weight", grad)


class DropoutSaved(NamedTuple):
    """What ``Dropout``'s backward needs: the forward's keep-mask, None where the forward was the identity."""

    keep: np.ndarray | None


class Dropout(Module):
    """Inverted dropout (Srivastava et al., 2014): zero with probability p, scale the rest by 1 / (1 - p).

    In eval mode, or with p = 0, it returns its input unchanged. ``mask_fn``,
    when set, supplies the boolean keep-mask for a given (shape, p) instead of
    ``rng``; the tests set the same source on both packages' dropouts.
    """

    def __init__(self, p: float = 0.5, *, rng=None):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
        super().__init__()
        self.p = p
        self.rng = as_rng(rng)
        self.mask_fn: MaskFn | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training or self.p == 0.0:
            self.save_for_backward(DropoutSaved(None))  # the identity: its backward needs no mask
            return x
        if self.mask_fn is not None:
            keep = self.mask_fn(x.shape, self.p)
        else:
            keep = self.rng.random(x.shape, np.float32) >= self.p
        self.save_for_backward(DropoutSaved(keep))
        return self.scaled_by_mask(x, keep)  # x * keep / (1 - p)

    def backward(self, dout: np.ndarray, saved: DropoutSaved | None = None) -> np.ndarray:
        """dx = dy * keep / (1 - p) with the forward's own keep-mask; dx = dy where the forward was the identity.

        ``saved``: a record the caller took from one of this module's runs (``take_saved``), for a dropout
        run twice in one forward; by default, the latest forward's.
        """
        keep = (self.saved_for_backward(DropoutSaved) if saved is None else saved).keep
        return dout if keep is None else self.scaled_by_mask(dout, keep)

    def scaled_by_mask(self, x: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """x * keep / (1 - p), block by block of rows on every core (``map_rows``)."""
        out = np.empty(x.shape, x.dtype)
        map_rows(partial(_scale_by_mask, scale=1.0 - self.p), x, keep, out)
        return out


def _scale_by_mask(x: np.ndarray, keep: np.ndarray, out: np.ndarray, *, scale: float) -> None:
    np.multiply(x, keep, out=out)
    out /= scale


# ------------------------------------------------------------------------------------------------
# Both cores for element-wise work. NumPy runs each ufunc on one core (its matrix products, in BLAS, use
# them all), so a pass over a large array leaves the other cores idle; torch shares such passes out inside
# its kernels. ``map_rows`` does the same here: it cuts arrays into blocks of whole rows and hands the blocks
# to a few threads (NumPy releases the GIL inside ufuncs). A block is sized to stay in cache, so the many
# small passes of a formula run there rather than streaming the whole array from memory each time. The
# blocks depend only on the arrays' shapes, never on the number of threads: every result is bitwise the same
# for any number of threads (tests/test_parallel.py).

CHUNK_BYTES = 1 << 18  # a block of rows: about 256 KiB of the widest array, a few of which sit in L2 at once

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_local = threading.local()  # per calling thread: its thread count, and whether it is one of the pool's


def _default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def using_threads(threads: int) -> Iterator[None]:
    """``map_rows`` and ``map_chunks`` called from this thread use ``threads`` workers inside the block
    (default: the CPUs this process may use). Like ``torch.set_num_threads``: it changes speed, never results."""
    previous = getattr(_local, "threads", None)
    _local.threads = max(1, int(threads))
    try:
        yield
    finally:
        _local.threads = previous


def map_chunks(fn: Callable[[int, int, int], None], total: int, chunk: int, threads: int | None = None) -> None:
    """fn(worker, start, stop) for each chunk [start, stop) of range(total), ``chunk`` long (the last may be
    shorter), on up to ``threads`` threads; ``worker`` names the thread (0 is the caller's), so ``fn`` may keep
    scratch per worker. Each thread takes the next chunk not yet taken: a thread the OS starts late finds
    less (or nothing) left, and the call never waits for it to start. From inside a worker it runs alone."""
    chunks = -(-total // chunk)
    wanted = threads or getattr(_local, "threads", None) or _default_threads()
    workers = 1 if getattr(_local, "in_pool", False) else max(1, min(wanted, chunks))
    if workers == 1:
        for start in range(0, total, chunk):
            fn(0, start, min(start + chunk, total))
        return
    run = _SharedRun(fn, total, chunk, chunks)
    for worker in range(1, workers):
        _executor().submit(_in_pool, np.geterr(), run, worker)
    run(0)
    run.wait()


class _SharedRun:
    """One ``map_chunks`` call: the next chunk to take, how many are done, and the first error raised."""

    def __init__(self, fn, total: int, chunk: int, chunks: int):
        self.fn, self.total, self.chunk, self.chunks = fn, total, chunk, chunks
        self.next_chunk = itertools.count()  # next() on it is atomic: each chunk is taken once
        self.lock, self.done, self.finished = threading.Lock(), 0, threading.Event()
        self.error: BaseException | None = None

    def __call__(self, worker: int) -> None:
        while (index := next(self.next_chunk)) < self.chunks:
            start = index * self.chunk
            try:
                self.fn(worker, start, min(start + self.chunk, self.total))
            except BaseException as error:  # re-raised in the caller's thread by wait()
                self.error = self.error or error
            with self.lock:
                self.done += 1
                if self.done == self.chunks:
                    self.finished.set()

    def wait(self) -> None:
        self.finished.wait()
        if self.error is not None:
            raise self.error


def map_rows(kernel: Callable[..., None], *arrays: np.ndarray) -> None:
    """kernel(*blocks) for matching blocks of rows of ``arrays``, shared out by ``map_chunks``.

    The arrays share their leading axes, (B, T, C) and (B, T, 1) say: a row is one position's last axis.
    The kernel writes its results into its blocks of the output arrays it was given, which must be
    C-contiguous (fresh ``np.empty``), so that their rows are views.
    """
    arrays = tuple(a.reshape(-1, a.shape[-1]) for a in arrays)  # (..., X) -> (rows, X)
    rows = arrays[0].shape[0]
    row_bytes = max(a[:1].nbytes for a in arrays) or 1
    block = max(1, CHUNK_BYTES // row_bytes)
    map_chunks(lambda _, start, stop: kernel(*(a[start:stop] for a in arrays)), rows, block)


def _in_pool(errstate: dict, run: _SharedRun, worker: int) -> None:
    """A pool thread runs under the caller's ``np.errstate`` (which is per thread), so warnings stay as asked."""
    _local.in_pool = True
    with np.errstate(**errstate):
        run(worker)


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:  # threads start on demand, up to the most workers one call has wanted at once
            _pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="numpy_gpt")
        return _pool
