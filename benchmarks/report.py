"""Results out: derived figures per row, the performance goals, JSON, a Markdown report and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

from .ceilings import ceiling_key

__all__ = ["derive", "goals", "write_json", "markdown", "plot", "merge_compare", "SCHEMA"]

SCHEMA = 1


def _shape(params: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items() if k not in ("weights_mb", "grad_check"))


def derive(rows: list[dict], ceilings: dict) -> None:
    """Add GFLOP/s, GB/s (from the median time) and their fractions of the row's own ceiling, in place."""
    for row in rows:
        if "median_s" not in row:
            continue
        row["gflops_per_s"] = row["flops"] / row["median_s"] / 1e9
        row["gbytes_per_s"] = row["bytes"] / row["median_s"] / 1e9
        ceiling = ceilings.get(ceiling_key(row["impl"], row["device"], row["precision"]))
        if ceiling:
            row["ceiling"] = ceiling_key(row["impl"], row["device"], row["precision"])
            row["flop_fraction"] = row["gflops_per_s"] / ceiling["matmul"]["best"]
            row["bandwidth_fraction"] = row["gbytes_per_s"] / ceiling["copy"]["best"]


def _find(rows, workload, impl, device="cpu", precision="fp32", **params):
    for row in rows:
        if (row["workload"], row["impl"], row["device"], row["precision"]) == (workload, impl, device, precision) \
                and all(row["params"].get(k) == v for k, v in params.items()) and "median_s" in row:
            return row
    return None


def goals(rows: list[dict], probes: list[dict]) -> list[dict]:
    """The issue's targets, each with the figure reached and whether it was met (only those this run measured)."""
    result = []
    numpy_row = _find(rows, "forward", "numpy", size="124M", B=1, T=1024)
    torch_row = _find(rows, "forward", "torch", size="124M", B=1, T=1024)
    if numpy_row and torch_row:
        ratio = numpy_row["median_s"] / torch_row["median_s"]
        result.append({
            "goal": "NumPy 124M forward (B=1, T=1024) no slower than torch CPU, same run (median)",
            "reached": f"numpy {numpy_row['median_s']:.3f} s (min {numpy_row['min_s']:.3f}), torch "
                       f"{torch_row['median_s']:.3f} s (min {torch_row['min_s']:.3f}): numpy/torch = {ratio:.2f} "
                       f"(min/min {numpy_row['min_s'] / torch_row['min_s']:.2f})",
            "met": ratio <= 1.0,
        })
    for row, name in ((numpy_row, "NumPy"), (torch_row, "torch CPU")):
        if row and "flop_fraction" in row:
            best = row["flop_fraction"] * row["median_s"] / row["min_s"]
            result.append({
                "goal": f"{name} 124M forward (B=1, T=1024) at >= 60% of its own matmul ceiling (median)",
                "reached": f"{row['gflops_per_s']:.0f} GFLOP/s = {100 * row['flop_fraction']:.0f}% of {row['ceiling']} "
                           f"({row['flops'] / 1e9:.0f} GFLOP; fastest repeat {100 * best:.0f}%)",
                "met": row["flop_fraction"] >= 0.6,
            })
    for probe in probes:
        if probe.get("impl") == "numpy" and probe.get("size") == "124M" and probe.get("T") == 1024:
            limit = probe["weights_mb"] + 400
            result.append({
                "goal": "NumPy forward (124M, T=1024) peak memory < weights + 400 MB (whole fresh process)",
                "reached": f"peak RSS {probe['peak_rss_mb']:.0f} MB vs {probe['weights_mb']:.0f} + 400 "
                           f"= {limit:.0f} MB (logits alone {probe['logits_mb']:.0f} MB)",
                "met": probe["peak_rss_mb"] < limit,
            })
    return result


def merge_compare(rows: list[dict], path: Path) -> list[dict]:
    """Rows from another run's results file for devices this run did not measure (e.g. CUDA from a GPU run)."""
    other = json.loads(Path(path).read_text())
    here = {row["device"] for row in rows}
    merged = []
    for row in other.get("rows", []):
        if row["device"] not in here:
            merged.append({**row, "source": str(path),
                           "source_device": other.get("environment", {}).get("cuda", {}).get("name")
                           if row["device"] == "cuda" else other.get("environment", {}).get("cpu", {}).get("model")})
    return merged


def write_json(path: Path, result: dict) -> None:
    path.write_text(json.dumps(result, indent=1, default=str))


# ---- Markdown


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.1f}" if seconds < 10 else f"{seconds * 1e3:.0f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _row_line(row: dict) -> str:
    v = row["validation"]
    check = ("ok" if v["passed"] else "FAIL") + (f" {v['max_rel_diff']:.0e}" if "max_rel_diff" in v else "")
    memory = row.get("memory", {})
    mem = f"{max(memory['delta_mb'], 0.0):.0f}" if "delta_mb" in memory else "-"
    impl = row["impl"] + (" (other run)" if "source" in row else "")
    return (f"| {row['workload']} | {_shape(row['params'])} | {impl} | {row['device']} | {row['precision']} | "
            f"{_ms(row.get('min_s'))} | {_ms(row.get('median_s'))} | {_ms(row.get('max_s'))} | "
            f"{row.get('gflops_per_s', 0):.1f} | {_pct(row.get('flop_fraction'))} | "
            f"{row.get('gbytes_per_s', 0):.1f} | {_pct(row.get('bandwidth_fraction'))} | {mem} | {check} | "
            f"{row.get('others_cpu_fraction', 0):.2f} |")


def _speedups(rows: list[dict]) -> list[tuple[str, str, str, float]]:
    """(workload, shape, kind, speed-up): torch CPU vs NumPy, and CUDA (fp32, bf16) vs torch CPU."""
    out = []
    for row in rows:
        if (row["impl"], row["device"], row["precision"]) != ("torch", "cpu", "fp32") or "median_s" not in row:
            continue
        numpy_row = _find(rows, row["workload"], "numpy", **row["params"])
        if numpy_row:
            out.append((row["workload"], _shape(row["params"]), "torch CPU vs NumPy",
                        numpy_row["median_s"] / row["median_s"]))
        for precision in ("fp32", "bf16"):
            gpu = _find(rows, row["workload"], "torch", "cuda", precision, **row["params"])
            if gpu:
                label = f"CUDA {precision} vs torch CPU" + (" (other run)" if "source" in gpu else "")
                out.append((row["workload"], _shape(row["params"]), label, row["median_s"] / gpu["median_s"]))
    return out


def markdown(result: dict) -> str:
    env, rows = result["environment"], result["rows"] + result.get("compared_rows", [])
    blas = env["numpy"]["blas"]
    lines = [
        f"# Benchmarks: {result['device_name']}",
        "",
        f"{env['date']}; {env['cpu']['model']}, {env['cpu']['usable_cores']} cores; numpy {env['numpy']['version']} "
        f"({blas.get('name')} {blas.get('version')}, kernel {blas.get('corename')}, {blas.get('threads')} threads); "
        f"torch {env['torch']['version']} ({env['torch']['blas']}, {env['torch']['threads']} threads); float32.",
        "",
        ("GPU: " + f"{env['cuda']['name']}, TF32 {'on' if env['cuda']['tf32_matmul'] else 'off'}"
         if env["cuda"]["available"] else "No GPU in this run: " + env["cuda"]["reason"] + "."),
        "",
        f"Command: `{result['command']}`; {result['duration_s']:.0f} s.",
        "",
        "## Ceilings (measured in this run: best repeat, of the start and end measurements; median in brackets)",
        "",
        "| library/device/precision | matmul GFLOP/s | copy GB/s | first touch GB/s |",
        "|---|---|---|---|",
    ]
    for key, c in result["ceilings"].items():
        touch = f"{c['first_touch']['best']:.1f}" if "first_touch" in c else "-"
        lines.append(f"| {key} ({c['matmul']['shape']}) | {c['matmul']['best']:.0f} ({c['matmul']['median']:.0f}) | "
                     f"{c['copy']['best']:.1f} ({c['copy']['median']:.1f}) | {touch} |")
    if result["goals"]:
        lines += ["", "## Performance goals", "", "| goal | reached | met |", "|---|---|---|"]
        lines += [f"| {g['goal']} | {g['reached']} | {'yes' if g['met'] else '**no**'} |" for g in result["goals"]]
    lines += [
        "", "## Results", "",
        "Times in ms (min / median / max over the repeats); GFLOP/s and GB/s from the median; % of the row's own "
        "ceiling (its library, device and precision); memory: peak above what was resident before the call (MB); "
        "check: agreement with the NumPy reference (NumPy's own row: with its torch twin), max relative difference; "
        "others: share of the CPUs other processes used while timing.",
        "",
        "| workload | shape | impl | device | dtype | min | median | max | GFLOP/s | % FLOP ceiling | GB/s | "
        "% BW ceiling | peak MB | check | others |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row_line(row) for row in rows]
    speedups = _speedups(rows)
    if speedups:
        lines += ["", "## Speed-ups (ratio of medians)", "", "| workload | shape | comparison | speed-up |",
                  "|---|---|---|---|"]
        lines += [f"| {w} | {s} | {k} | {x:.2f}x |" for w, s, k, x in speedups]
    if not any(row["device"] == "cuda" for row in rows):
        lines += ["", "CUDA vs CPU: no CUDA rows (no GPU here; merge a GPU run's file with `--compare FILE`)."]
    if result.get("memory_probes"):
        lines += ["", "## Forward peak memory in a fresh process", "",
                  "| impl | size | T | weights MB | logits MB | process peak RSS MB | peak - weights MB |",
                  "|---|---|---|---|---|---|---|"]
        for p in result["memory_probes"]:
            if "error" in p:
                lines.append(f"| {p['impl']} | {p['size']} | {p['T']} | error: {p['error']} | | | |")
                continue
            lines.append(f"| {p['impl']} | {p['size']} | {p['T']} | {p['weights_mb']:.0f} | {p['logits_mb']:.0f} | "
                         f"{p['peak_rss_mb']:.0f} | {p['peak_rss_mb'] - p['weights_mb']:.0f} |")
    if result.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {note}" for note in result["notes"]]
    return "\n".join(lines) + "\n"


# ---- plots


def plot(result: dict, stem: Path) -> list[str]:
    """``<stem>.time.png`` (forward time vs T per implementation) and ``<stem>.speedup.png``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] + result.get("compared_rows", []) if "median_s" in r]
    written = []
    forward = [r for r in rows if r["workload"] == "forward"]
    sizes = list(dict.fromkeys(r["params"]["size"] for r in forward))
    if forward:
        fig, axes = plt.subplots(1, len(sizes), figsize=(5.5 * len(sizes), 4.2), squeeze=False)
        for ax, size in zip(axes[0], sizes):
            series: dict[str, list] = {}
            for r in forward:
                if r["params"]["size"] == size:
                    key = f"{r['impl']} {r['device']} {r['precision']}" + (" (other run)" if "source" in r else "")
                    series.setdefault(key, []).append(r)
            for key, points in series.items():
                points.sort(key=lambda r: r["params"]["T"])
                t = [p["params"]["T"] for p in points]
                med = [p["median_s"] * 1e3 for p in points]
                err = [[m - p["min_s"] * 1e3 for m, p in zip(med, points)],
                       [p["max_s"] * 1e3 - m for m, p in zip(med, points)]]
                ax.errorbar(t, med, yerr=err, marker="o", capsize=3, label=key)
            ax.set(xscale="log", xlabel="sequence length T (B=1)", ylabel="forward time, ms (median, min-max)",
                   title=f"GPT-2 {size} forward")
            ax.set_xticks(sorted({r["params"]["T"] for r in forward}))
            ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_ylim(bottom=0)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(f"{stem}.time.png", dpi=110)
        plt.close(fig)
        written.append(f"{stem}.time.png")
    speedups = _speedups(rows)
    if speedups:
        kinds = list(dict.fromkeys(k for _, _, k, _ in speedups))
        fig, axes = plt.subplots(1, len(kinds), figsize=(6.5 * len(kinds), 0.32 * len(speedups) + 2), squeeze=False)
        for ax, kind in zip(axes[0], kinds):
            items = [(f"{w} {s}", x) for w, s, k, x in speedups if k == kind]
            bars = ax.barh([label for label, _ in items], [x for _, x in items], color="tab:blue")
            ax.bar_label(bars, labels=[f"{x:.2f}x" for _, x in items], fontsize=7, padding=2)
            ax.axvline(1.0, color="black", lw=1)
            ax.set(xlabel="speed-up (ratio of medians; > 1: faster)", title=kind)
            ax.set_xlim(0, max(x for _, x in items) * 1.15)
            ax.tick_params(axis="y", labelsize=7)
            ax.invert_yaxis()
        fig.tight_layout()
        fig.savefig(f"{stem}.speedup.png", dpi=110)
        plt.close(fig)
        written.append(f"{stem}.speedup.png")
    return written
