"""The device's own ceilings, measured in the same run: a large matmul (FLOP/s) and a large copy (bytes/s).

Every result row is divided by the ceiling of its own implementation, device
and precision, so "60% of the ceiling" means 60% of what this library reached
on this machine today, not of a datasheet number. The ceiling is the best
repeat, measured at the start and again at the end of the run (the higher
counts): a ceiling is what the hardware can do, and a shared machine's noise
only ever lowers it.
"""

from __future__ import annotations

import statistics

import numpy as np
import torch

from .harness import Entry, Plan, time_entries

__all__ = ["measure", "merge", "ceiling_key"]


def ceiling_key(impl: str, device: str, precision: str) -> str:
    """Which ceiling a row is measured against: NumPy's for NumPy, torch's (per device/precision) otherwise."""
    library = "numpy" if impl == "numpy" else "torch"
    return f"{library}/{device}/{precision}"


def _timer(repeats: int, plan: Plan, device: str = "cpu", impl: str = "torch"):
    """Seconds per call of a function, through the harness's one timing loop (the warm-up call first touches
    the output and initialises the library)."""

    def time(fn) -> list[float]:
        entry = Entry(impl, device, "fp32", fn)
        return time_entries([entry], repeats, plan, "ceilings")[entry.key]["times_s"]

    return time


def _record(kind: str, work: float, times: list[float], unit: str, shape: str) -> dict:
    median, best = statistics.median(times), min(times)
    return {"kind": kind, "shape": shape, "unit": unit,
            "median": work / median / 1e9, "best": work / best / 1e9, "times_s": times}


def _numpy_ceilings(n: int, copy_mb: int, repeats: int, plan: Plan) -> dict:
    time = _timer(repeats, plan, impl="numpy")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    matmul = _record("matmul", 2.0 * n**3, time(lambda: np.matmul(a, b, out=c)), "GFLOP/s", f"{n}x{n}x{n}")
    src = np.ones(copy_mb * 2**18, np.float32)
    dst = np.empty_like(src)
    copy = _record("copy", 2.0 * src.nbytes, time(lambda: np.copyto(dst, src)), "GB/s", f"{copy_mb} MiB")
    # Fresh memory on every call: the page faults of first touch, which large per-call temporaries pay.
    fresh = _record("first_touch", src.nbytes, time(lambda: np.full_like(src, 2.0)), "GB/s", f"{copy_mb} MiB")
    return {"numpy/cpu/fp32": {"matmul": matmul, "copy": copy, "first_touch": fresh}}


def _torch_ceilings(device: str, n: int, copy_mb: int, repeats: int, precisions: list[str], plan: Plan) -> dict:
    time = _timer(repeats, plan, device)
    out = {}
    generator = torch.Generator().manual_seed(0)
    src = torch.ones(copy_mb * 2**18, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    with torch.inference_mode():
        copy = _record("copy", 2.0 * src.nbytes, time(lambda: dst.copy_(src)), "GB/s", f"{copy_mb} MiB")
        for precision in precisions:
            dtype = torch.bfloat16 if precision == "bf16" else torch.float32
            a = torch.randn(n, n, generator=generator).to(device=device, dtype=dtype)
            b = torch.randn(n, n, generator=generator).to(device=device, dtype=dtype)
            c = torch.empty(n, n, device=device, dtype=dtype)
            run = lambda a=a, b=b, c=c: torch.matmul(a, b, out=c)  # bound now, not at the loop's end
            matmul = _record("matmul", 2.0 * n**3, time(run), "GFLOP/s", f"{n}x{n}x{n} {dtype}")
            out[f"torch/{device}/{precision}"] = {"matmul": matmul, "copy": copy}
    return out


def measure(libraries: set[str], devices: list[str], quick: bool, on_step=lambda label: None) -> dict:
    """Ceilings for each selected library and device: NumPy on CPU, torch on CPU and on CUDA (fp32 and bf16)."""
    ceilings = {}
    repeats = 3 if quick else 5
    # one plan for all, so its budget for waiting on other processes bounds the whole measurement
    plan = Plan(settle_max_s=0.2, quiet_wait_s=0.0, measure_memory=False) if quick else Plan(measure_memory=False)
    if "numpy" in libraries and "cpu" in devices:
        ceilings.update(_numpy_ceilings(256 if quick else 2048, 8 if quick else 256, repeats, plan))
        on_step("ceilings: numpy")
    if "torch" in libraries:
        for device in devices:
            big = device == "cuda" and not quick
            precisions = ["fp32", "bf16"] if device == "cuda" else ["fp32"]
            n = 8192 if big else (256 if quick else 2048)
            copy_mb = 1024 if big else (8 if quick else 256)
            ceilings.update(_torch_ceilings(device, n, copy_mb, repeats, precisions, plan))
            on_step(f"ceilings: torch {device}")
    return ceilings


def merge(first: dict, second: dict) -> dict:
    """Per ceiling and kind, the measurement with the higher best figure, tagged with when it was taken."""
    merged = {}
    for key in first.keys() | second.keys():
        merged[key] = {}
        for kind in (first.get(key, {}).keys() | second.get(key, {}).keys()):
            a, b = first.get(key, {}).get(kind), second.get(key, {}).get(kind)
            pick, when = (a, "start") if b is None or (a is not None and a["best"] >= b["best"]) else (b, "end")
            merged[key][kind] = {**pick, "taken_at": when,
                                 "other_best": (b if pick is a else a or {}).get("best")}
    return dict(sorted(merged.items()))
