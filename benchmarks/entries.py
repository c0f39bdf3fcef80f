"""Turning one NumPy module into the timed entries of every implementation the run selected.

The torch twin gets the NumPy module's weights (so all entries compute the
same function of the same inputs); CUDA entries use a copy on the GPU, once in
fp32 with TF32 off and once under bf16 autocast (on the CPU too where a workload
asks: the forward, whose matmuls AMX runs in bf16); ``--compile`` adds
``torch.compile`` of the twin on each device.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .harness import Entry

__all__ = ["Selection", "twin_of", "numpy_entry", "torch_devices", "torch_entries", "written_out"]


@dataclass(frozen=True)
class Selection:
    """What this run measures: implementations, devices, and whether to add ``torch.compile``."""

    impls: frozenset = frozenset({"numpy", "torch"})
    devices: tuple = ("cpu",)
    compile: bool = False
    quick: bool = False
    compile_errors: dict = field(default_factory=dict, compare=False, hash=False)

    def wants(self, impl: str, device: str = "cpu") -> bool:
        return impl in self.impls and device in self.devices


def twin_of(np_module, torch_module: torch.nn.Module) -> torch.nn.Module:
    """The torch module holding the NumPy module's weights, in eval mode."""
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in np_module.state_dict().items()}
    torch_module.load_state_dict(state, strict=True)
    return torch_module.eval()


@contextlib.contextmanager
def written_out(model: torch.nn.Module):
    """Inside the block the torch twin runs every formula written out, as the NumPy twin does: tiled attention
    instead of SDPA, the written LayerNorm and GELU instead of F.layer_norm and F.gelu. Its defaults come back after."""
    paths = ("attention", "kernel")
    saved = [(m, name, getattr(m, name)) for m in model.modules() for name in paths if hasattr(m, name)]
    try:
        for module, name, _ in saved:
            setattr(module, name, "tiled" if name == "attention" else "written")
        yield model
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def numpy_entry(fn: Callable[[], Any], selection: Selection) -> Entry:
    """The reference entry; always built (every other entry is validated against it), timed if selected."""
    return Entry("numpy", "cpu", "fp32", fn, timed=selection.wants("numpy"))


def _entry(impl: str, device: str, precision: str, call: Callable, module, args: tuple, timed: bool) -> Entry:
    """One entry: ``call(module, *args)`` under inference mode, and bf16 autocast for bf16 entries."""
    def run():
        with torch.inference_mode(), _autocast(device, precision):
            return call(module, *args)

    return Entry(impl, device, precision, run, timed)


def _autocast(device: str, precision: str):
    """bf16 autocast for bf16 entries (matmuls in bf16, reductions kept in fp32), nothing otherwise."""
    if precision == "bf16":
        return torch.autocast(device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _call(module, *args):
    return module(*args)


def _compiled(module: torch.nn.Module, selection: Selection, device: str):
    try:
        return torch.compile(module)
    except Exception as error:
        selection.compile_errors[device] = repr(error)
        return None


def torch_devices(selection: Selection, impl: str = "torch"):
    """(device, timed) for each device a torch entry is built on: the CPU first, always for the plain twin
    (untimed unless torch is selected there, so the NumPy entry has its twin to be validated against), then
    every other selected device where torch is timed."""
    for device in ("cpu",) + tuple(d for d in selection.devices if d != "cpu"):
        timed = selection.wants("torch", device)
        if timed or (device == "cpu" and impl == "torch"):
            yield device, timed


def torch_entries(
    torch_module: torch.nn.Module,
    inputs: tuple[np.ndarray, ...],
    selection: Selection,
    call: Callable | None = None,
    impl: str = "torch",
    cpu_bf16: bool = False,
) -> list[Entry]:
    """Entries for ``call(module, *inputs)`` (default: ``module(*inputs)``) on every selected device.

    The CPU fp32 entry is always built, untimed unless torch is selected, so
    the NumPy entry always has its twin to be validated against. ``cpu_bf16`` adds
    a CPU bf16 autocast entry (CUDA always has one).
    """
    entries = []
    for device, timed in torch_devices(selection, impl):
        module = torch_module if device == "cpu" else copy.deepcopy(torch_module).to(device)
        args = tuple(torch.from_numpy(x).to(device) for x in inputs)
        entries.append(_entry(impl, device, "fp32", call or _call, module, args, timed))
        if (device == "cpu" and cpu_bf16 and timed) or (device == "cuda" and torch.cuda.is_bf16_supported()):
            entries.append(_entry(impl, device, "bf16", call or _call, module, args, timed))
        compiled = _compiled(module, selection, device) if selection.compile and timed and call is None else None
        if compiled is not None:
            entries.append(_entry("torch-compile", device, "fp32", _call, compiled, args, timed))
    return entries
