"""The benchmark command runs end to end: ``python -m benchmarks --quick`` in a subprocess, then its JSON.

No test here asserts a speed: a shared CI machine's timings say nothing about
the code. What is checked is that the suite validated every implementation
against the NumPy reference and recorded a time for every row.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMPONENTS = {"attention-wrapper", "attention-mha", "layernorm", "gelu", "feedforward", "block"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out), "--tag", "smoke"],
        cwd=REPO, capture_output=True, text=True, timeout=900,  # a hang guard, not a speed check (~15 s when quiet)
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, json.loads((out / "smoke.json").read_text())


def test_quick_run_writes_the_environment(quick_run):
    _, result = quick_run
    env = result["environment"]
    assert result["schema"] == 1
    for key in ("cpu", "numpy", "torch", "cuda", "env", "date"):
        assert key in env
    assert env["cpu"]["usable_cores"] >= 1
    assert env["numpy"]["blas"]["name"] and env["torch"]["blas"]
    assert isinstance(env["cuda"]["available"], bool)
    if not env["cuda"]["available"]:
        assert env["cuda"]["reason"]


def test_quick_run_validated_every_row_and_timed_it(quick_run):
    _, result = quick_run
    assert result["validation_passed"] is True and result["errors"] == []
    rows = result["rows"]
    assert {row["workload"] for row in rows} >= COMPONENTS | {"forward"}
    assert {(row["impl"], row["device"]) for row in rows} >= {("numpy", "cpu"), ("torch", "cpu"), ("torch-sdpa", "cpu")}
    for row in rows:
        assert row["validation"]["passed"] is True, row
        assert 0 < row["min_s"] <= row["median_s"] <= row["max_s"], row
        assert row["repeats"] == len(row["times_s"]) >= 3
        assert row["flops"] > 0 and row["gflops_per_s"] > 0 and row["bytes"] > 0


def test_quick_run_measured_ceilings_memory_and_wrote_the_report(quick_run):
    out, result = quick_run
    for key in ("numpy/cpu/fp32", "torch/cpu/fp32"):
        assert result["ceilings"][key]["matmul"]["median"] > 0
        assert result["ceilings"][key]["copy"]["median"] > 0
    forward = [row for row in result["rows"] if row["workload"] == "forward"]
    assert sorted({row["params"]["T"] for row in forward}) == [16, 32, 64]
    fp32 = [row for row in forward if row["precision"] == "fp32"]  # the ceilings are fp32's (bf16 rows have none)
    assert fp32 and all(0 < row["flop_fraction"] for row in fp32)
    assert {p["impl"] for p in result["memory_probes"]} == {"numpy", "torch"}
    assert all(p["peak_rss_mb"] >= p["weights_mb"] > 0 for p in result["memory_probes"])
    markdown = (out / "smoke.md").read_text()
    assert "| forward |" in markdown and "numpy/cpu/fp32" in markdown
    assert (out / "smoke.time.png").stat().st_size > 0 and (out / "smoke.speedup.png").stat().st_size > 0
