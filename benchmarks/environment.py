"""What ran the benchmark: CPU, threads, BLAS kernels, library versions, GPU and precision settings.

Everything a reader needs to judge a number from another machine goes into
the results file, so a table is never separated from its context.
"""

from __future__ import annotations

import ctypes
import datetime
import os
import platform
import sys

import numpy as np
import torch

__all__ = ["collect", "cuda_available", "device_name", "openblas_info", "slug"]

# Variables that change what the libraries do; recorded whether set or not.
WATCHED_ENV = [
    "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
    "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX",
]


def cuda_available() -> bool:
    return torch.cuda.is_available()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _loaded_openblas() -> str | None:
    """Path of the OpenBLAS library NumPy loaded, read from this process's memory map."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    return min(paths) if paths else None


def openblas_info() -> dict:
    """OpenBLAS version, the kernel it chose for this CPU (corename) and its thread count, via its own C API."""
    info: dict = {"library": _loaded_openblas()}
    config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    info.update(name=config.get("name"), version=config.get("version"))
    if info["library"] is None:
        return info
    lib = ctypes.CDLL(info["library"])
    for prefix, suffix in (("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", "")):
        corename = getattr(lib, f"{prefix}get_corename{suffix}", None)
        if corename is None:
            continue
        corename.restype = ctypes.c_char_p
        get_config = getattr(lib, f"{prefix}get_config{suffix}")
        get_config.restype = ctypes.c_char_p
        threads = getattr(lib, f"{prefix}get_num_threads{suffix}")
        info.update(corename=corename().decode(), config=get_config().decode(), threads=int(threads()))
        break
    return info


def _torch_blas() -> str:
    for item in torch.__config__.show().split(","):
        if "BLAS_INFO" in item:
            return item.split("=", 1)[1].strip()
    return "unknown"


def _transparent_hugepages() -> str | None:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return f.read().strip()
    except OSError:
        return None


def _cuda_info() -> dict:
    if not cuda_available():
        return {"available": False, "reason": "torch.cuda.is_available() is False: no CUDA device or a CPU-only torch"}
    props = torch.cuda.get_device_properties(0)
    return {
        "available": True,
        "name": torch.cuda.get_device_name(0),
        "memory_gb": round(props.total_memory / 2**30, 1),
        "capability": f"{props.major}.{props.minor}",
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "bf16_supported": torch.cuda.is_bf16_supported(),
    }


def collect(removed_env: dict | None = None) -> dict:
    """The environment record stored at the top of every results file."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": {"model": _cpu_model(), "logical_cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0))},
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "numpy": {"version": np.__version__, "blas": openblas_info()},
        "torch": {
            "version": torch.__version__,
            "blas": _torch_blas(),
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "parallel_info": torch.__config__.parallel_info().strip().splitlines()[:4],
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        },
        "cuda": _cuda_info(),
        "dtype": "float32 (bf16 autocast rows on CUDA say bf16)",
        "env": {name: os.environ.get(name) for name in WATCHED_ENV},
        "env_removed_for_this_run": removed_env or {},
        "transparent_hugepages": _transparent_hugepages(),
    }


def slug(text: str) -> str:
    """A file-name-safe lower-case version of a device name."""
    keep = "".join(c.lower() if c.isalnum() else "-" for c in text)
    return "-".join(part for part in keep.split("-") if part and part not in {"r", "tm", "cpu"})


def device_name(env: dict) -> str:
    """The results sub-folder: ``cpu-<model>`` or ``cuda-<gpu>``."""
    if env["cuda"]["available"]:
        return "cuda-" + slug(env["cuda"]["name"])
    return "cpu-" + slug(env["cpu"]["model"])
