"""Validate, warm up, then time: the method every workload goes through (llm.c's pattern).

A ``Workload`` names one computation at one shape and knows its FLOP and byte
counts; ``build`` makes its inputs and one ``Entry`` per implementation.
``run_workload`` then

1. validates: every entry's output is compared with the NumPy reference (and
   NumPy's with its torch twin) before anything is timed; a mismatch is
   reported and that entry is not timed;
2. warms up each entry (the validation call was the first warm-up), recording its
   peak memory during the last warm-up call;
3. times ``repeats`` rounds, each calling every entry once in a rotated order
   (interleaved, so drift in the machine hits all entries alike). Before each
   call it lets the previous library's worker threads go idle (``settle``),
   and it synchronises CUDA before reading the clock.

Shared machines: every call also records how much CPU *other* processes
used meanwhile (from /proc/stat). ``settle`` waits a little for the machine to
go quiet, and a long call that other processes disturbed is retaken; the
rows keep the counts, so a noisy run says so.

``time_rounds`` is the one timing loop, with the one retake rule (``Plan``): every benchmark times
through it, the workloads here via ``run_workload`` and the standalone runs (generation's bound and
prefill, the ceilings, the tokenizer, the book's chapter 5 run) via ``time_entries``.
"""

from __future__ import annotations

import gc
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gpt_common.tolerances import BENCHMARK_NORMWISE

from .procfs import reset_peak_rss, status_kib

__all__ = ["Entry", "Workload", "Plan", "settle", "run_workload", "time_entries", "time_rounds", "summary",
           "cpu_busy_s"]

_TICKS = os.sysconf("SC_CLK_TCK")
_CPUS = len(os.sched_getaffinity(0))


@dataclass
class Entry:
    """One implementation of a workload: ``run()`` does one call and returns its output."""

    impl: str  # numpy | torch | torch-sdpa | torch-compile
    device: str  # cpu | cuda
    precision: str  # fp32 | bf16 (autocast)
    run: Callable[[], Any]
    timed: bool = True  # False: built only to validate the others (the twin of a lone selected impl)
    name: str = ""  # the result's key where impl/device/precision does not tell calls apart (standalone runs)
    prepare: Callable[[], None] | None = None  # untimed set-up before each timed call (a fresh cold cache)

    @property
    def key(self) -> str:
        return self.name or f"{self.impl}/{self.device}/{self.precision}"


@dataclass
class Workload:
    """A computation at one shape; ``build()`` returns its entries, the NumPy one first."""

    group: str  # components | forward | generate
    name: str
    params: dict
    flops: float  # floating-point operations of one call (see flops.py for the conventions)
    bytes: float  # least bytes one call must move: inputs, weights and outputs once each
    build: Callable[[], list[Entry]]
    exact: bool = False  # outputs (token ids) must match exactly; bf16 entries are then not compared


@dataclass
class Plan:
    """How hard to measure: warm-up calls, and repeats chosen to fill ``budget_s`` within [min, max]."""

    warmup: int = 1
    min_repeats: int = 3
    max_repeats: int = 20
    budget_s: float = 6.0
    settle_max_s: float = 0.5
    quiet_wait_s: float = 1.0  # longest wait, per call, for other processes to leave the CPUs ...
    quiet_budget_s: float = 20.0  # ... and in all: a busy machine makes a noisy run, not an endless one
    retake_above: float = 0.25  # the retake rule: retake a call (>= 0.2 s) if others used more than this share ...
    max_retakes: int = 2  # ... at most this often per sample ...
    retake_budget: int = 12  # ... and this often in all
    measure_memory: bool = True
    on_call: Callable[[str], None] = lambda label: None  # progress hook, called after every call

    def quiet_wait(self) -> float:
        """This call's allowance for waiting on other processes, taken from the run's budget."""
        return max(0.0, min(self.quiet_wait_s, self.quiet_budget_s))


def cpu_busy_s() -> float:
    """CPU seconds all processes used so far, plus the hypervisor's steal time, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    except (OSError, ValueError):
        return 0.0
    return (user + nice + system + irq + softirq + steal) / _TICKS


def settle(max_s: float = 0.5, quiet_wait_s: float = 0.0, step_s: float = 0.01) -> float:
    """Sleep until this process's threads stop using CPU, then (up to ``quiet_wait_s``) until other processes do.

    Measured here: OpenBLAS keeps a core busy for ~100 ms after a matmul, torch's
    OpenMP pool for ~5 ms, and timing one library while the other spins cost 16-22%.
    Returns the seconds spent waiting for other processes.
    """
    start = time.perf_counter()
    while time.perf_counter() - start < max_s:  # our own threads first
        cpu = time.process_time()
        time.sleep(step_s)
        if time.process_time() - cpu < 0.1 * step_s:
            break
    quiet_start = time.perf_counter()
    while time.perf_counter() - quiet_start < quiet_wait_s:
        busy, own, wall = cpu_busy_s(), time.process_time(), time.perf_counter()
        time.sleep(0.1)
        others = cpu_busy_s() - busy - (time.process_time() - own)
        if others < 0.15 * _CPUS * (time.perf_counter() - wall):
            break
    return time.perf_counter() - quiet_start


_WAKE_NUMPY = np.ones((256, 256), np.float32)
_WAKE_TORCH = torch.ones(256, 256)
_WAKE_TORCH_VECTOR = torch.ones(1 << 18)  # big enough for torch to split an elementwise op across threads


def _wake(entry: Entry) -> None:
    """An untimed tiny call that gets this library's worker threads running again after ``settle``.

    On these virtual machines an idle vCPU can take milliseconds to come back: a tiny
    torch op right after a 50 ms sleep took 4-12 ms instead of 0.06 ms. This removes
    most of that (not all: the minimum, not the maximum, is the figure to trust for
    workloads of a few milliseconds).
    """
    if entry.impl == "numpy":
        _WAKE_NUMPY @ _WAKE_NUMPY
    elif entry.device == "cpu":
        with torch.inference_mode():
            _WAKE_TORCH_VECTOR.mul_(1.0)
            _WAKE_TORCH @ _WAKE_TORCH


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _timed_call(entry: Entry) -> tuple[float, float]:
    """Seconds for one call, and the CPU seconds other processes used meanwhile."""
    if entry.prepare is not None:
        entry.prepare()
    _wake(entry)
    _sync(entry.device)
    busy, own = cpu_busy_s(), time.process_time()
    start = time.perf_counter()
    out = entry.run()
    _sync(entry.device)
    elapsed = time.perf_counter() - start
    others = cpu_busy_s() - busy - (time.process_time() - own)
    del out
    return elapsed, max(0.0, others)


def _peak_memory(entry: Entry) -> dict:
    """Peak memory of one call: process RSS high-water mark on CPU, ``max_memory_allocated`` on CUDA.

    ``delta_mb`` is the peak minus what was resident just before the call (weights,
    inputs, libraries and whatever the allocator kept from earlier calls).
    """
    gc.collect()
    if entry.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        out = entry.run()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        del out
        return {"kind": "cuda_max_memory_allocated", "peak_mb": peak / 2**20, "delta_mb": (peak - before) / 2**20}
    if not reset_peak_rss():
        return {"kind": "unavailable: /proc/self/clear_refs not writable"}
    before = status_kib("VmRSS")
    out = entry.run()
    peak = status_kib("VmHWM")
    del out
    return {"kind": "process_rss_high_water", "peak_mb": peak / 1024, "delta_mb": (peak - before) / 1024}


def _as_numpy(out: Any) -> np.ndarray:
    if isinstance(out, torch.Tensor):
        return out.detach().float().cpu().numpy()
    return np.asarray(out)


def _check(workload: Workload, entry: Entry, out: np.ndarray, other: Entry, ref: np.ndarray) -> dict:
    """Whether ``out`` agrees with ``ref``: exactly for token ids, normwise otherwise.

    The tolerance is the project's one rule (``gpt_common/tolerances.py`` ``BENCHMARK_NORMWISE``, reasoned there),
    so the benchmarks and the tests cannot disagree on what "agrees" means.
    """
    if workload.exact:
        if "bf16" in (entry.precision, other.precision):
            return {"passed": True, "against": other.key, "note": "bf16 changes greedy choices; not compared"}
        agree = out.shape == ref.shape and bool(np.array_equal(out, ref))
        return {"passed": agree, "against": other.key, "max_rel_diff": 0.0 if agree else 1.0}
    if out.shape != ref.shape:
        return {"passed": False, "against": other.key, "error": f"shape {out.shape} != {ref.shape}"}
    tolerance = BENCHMARK_NORMWISE["bf16" if "bf16" in (entry.precision, other.precision) else "fp32"]
    rtol, atol = tolerance.rtol, tolerance.atol
    diffs = np.abs(out.astype(np.float64) - ref)
    worst = np.unravel_index(int(np.argmax(diffs)), diffs.shape)
    diff, scale = float(diffs[worst]), float(np.abs(ref).max())
    return {
        "passed": bool(np.isfinite(diff) and diff <= atol + rtol * scale),
        "against": other.key,
        "max_abs_diff": diff,
        "max_rel_diff": diff / max(scale, 1e-30),
        "worst": {"index": [int(i) for i in worst], "value": float(out[worst]), "reference": float(ref[worst])},
    }


def _validate(workload: Workload, entries: list[Entry]) -> dict[str, dict]:
    """Each entry against the NumPy reference (entries[0]); NumPy against its torch CPU fp32 twin."""
    outputs, first_call, errors = {}, {}, {}
    for entry in entries:
        start = time.perf_counter()
        try:
            outputs[entry.key] = _as_numpy(entry.run())
        except Exception as error:
            errors[entry.key] = repr(error)
        first_call[entry.key] = time.perf_counter() - start
    reference = entries[0]
    twin = next((e for e in entries[1:] if e.impl == "torch" and e.device == "cpu" and e.precision == "fp32"), None)
    checks = {}
    for entry in entries:
        other = twin if entry is reference else reference
        if other is None or entry.key in errors or other.key in errors:
            error = errors.get(entry.key) or errors.get(getattr(other, "key", None)) or "no twin to compare with"
            checks[entry.key] = {"passed": False, "error": error}
            continue
        checks[entry.key] = _check(workload, entry, outputs[entry.key], other, outputs[other.key].astype(np.float64))
        checks[entry.key]["first_call_s"] = first_call[entry.key]
    return checks


def time_rounds(entries: list[Entry], repeats: int, plan: Plan, label: str = "") -> dict[str, dict]:
    """The one timing loop: ``repeats`` rounds of one call per entry, rotating who goes first, each call after
    ``settle``; a call of 0.2 s or more that other processes disturbed is retaken (``Plan``'s retake rule)."""
    stats = {e.key: {"times": [], "retaken": 0} for e in entries}
    gc.collect()
    busy, own, wall = cpu_busy_s(), time.process_time(), time.perf_counter()
    for r in range(repeats):
        order = entries[r % len(entries):] + entries[: r % len(entries)]
        plan.quiet_budget_s -= settle(plan.settle_max_s, plan.quiet_wait())  # once per round
        for entry in order:
            record = stats[entry.key]
            for attempt in range(plan.max_retakes + 1):
                if attempt:
                    plan.quiet_budget_s -= settle(plan.settle_max_s, plan.quiet_wait())
                else:
                    settle(plan.settle_max_s)
                gc.disable()
                try:
                    elapsed, others = _timed_call(entry)
                finally:
                    gc.enable()
                disturbed = elapsed >= 0.2 and others > plan.retake_above * _CPUS * elapsed
                if not disturbed or attempt == plan.max_retakes or plan.retake_budget <= 0:
                    break
                record["retaken"] += 1
                plan.retake_budget -= 1
            record["times"].append(elapsed)
            plan.on_call(f"{label}: {entry.key}")
    # Share of the CPUs other processes used over all the rounds (near 0 on a quiet machine); per call,
    # /proc/stat's 10 ms ticks are too coarse for short calls.
    others = (cpu_busy_s() - busy - (time.process_time() - own)) / ((time.perf_counter() - wall) * _CPUS)
    for record in stats.values():
        record["others_cpu_fraction"] = min(max(others, 0.0), 1.0)
    return stats


def summary(record: dict) -> dict:
    """min, median and max seconds of one entry's timed calls, with its retakes and the others' CPU share."""
    times = record["times"]
    return {
        "min_s": min(times),
        "median_s": statistics.median(times),
        "max_s": max(times),
        "repeats": len(times),
        "times_s": times,
        "retaken": record["retaken"],
        "others_cpu_fraction": record["others_cpu_fraction"],
    }


def run_workload(workload: Workload, plan: Plan) -> list[dict]:
    """Validate, warm up, measure memory, then time the entries interleaved; one result row per timed entry."""
    started = time.perf_counter()
    entries = workload.build()
    timed = [e for e in entries if e.timed]
    base = {"group": workload.group, "workload": workload.name, "params": workload.params,
            "flops": workload.flops, "bytes": workload.bytes}
    shown = {k: v for k, v in workload.params.items() if k not in ('weights_mb', 'grad_check')}
    label = f"{workload.name} {' '.join(f'{k}={v}' for k, v in shown.items())}"
    checks = _validate(workload, entries)
    rows = {e.key: {**base, "impl": e.impl, "device": e.device, "precision": e.precision,
                    "validation": checks[e.key]} for e in timed}
    plan.on_call(f"{label}: validated")
    valid = [e for e in timed if checks[e.key]["passed"]]
    warm = {}
    for entry in valid:  # the validation call was the first warm-up; these are the rest
        for _ in range(plan.warmup):
            settle(plan.settle_max_s)
            start = time.perf_counter()
            if plan.measure_memory:
                rows[entry.key]["memory"] = _peak_memory(entry)  # untimed: the clear_refs write walks page tables
            else:
                entry.run()
            _sync(entry.device)
            warm[entry.key] = time.perf_counter() - start
    if valid:
        per_round = sum(warm.values()) + 0.02 * len(valid)
        repeats = int(min(plan.max_repeats, max(plan.min_repeats, math.floor(plan.budget_s / per_round))))
        for key, record in time_rounds(valid, repeats, plan, label).items():
            rows[key].update(summary(record))
    for row in rows.values():
        row["workload_wall_s"] = time.perf_counter() - started  # build, validation, warm-up and timing
    del entries, timed, valid
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return list(rows.values())


def time_entries(entries: list[Entry], repeats: int, plan: Plan | None = None, label: str = "") -> dict[str, dict]:
    """Standalone runs: ``plan.warmup`` untimed calls of each entry, then ``time_rounds``; each entry's summary."""
    plan = plan or Plan(measure_memory=False)
    for entry in entries:
        for _ in range(plan.warmup):
            if entry.prepare is not None:
                entry.prepare()
            entry.run()
            _sync(entry.device)
    return {key: summary(record) for key, record in time_rounds(entries, repeats, plan, label).items()}
