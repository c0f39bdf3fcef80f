"""``python -m benchmarks``: NumPy vs torch, CPU vs CUDA, every workload validated before it is timed.

Default suite (about 3 minutes on a 2-core CPU, plus the gradient workloads): the
device ceilings, each component at GPT-2 124M shapes (B=8, T=1024), the 124M
forward at B=1 and T in {128, 512, 1024}, greedy generation with and without
the KV cache, the forward's peak memory in fresh processes, the 124M train step
(forward + loss + backward) at B=4, T=256 and each component's forward + backward. Writes ``<tag>.json``,
``<tag>.md`` and ``<tag>.time.png`` / ``<tag>.speedup.png`` to
``benchmarks/results/<device-name>/<date>/`` (or ``--out``), and prints the table.
"""

from __future__ import annotations

import os
import sys

# OpenBLAS reads these when NumPy loads it, and on some processors they select a slower kernel
# for a current NumPy. Only this command's own process drops them (re-executing itself before
# NumPy is imported), records what it dropped, and records which kernel then runs.
_OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_DROPPED = "BENCHMARKS_DROPPED_OPENBLAS_ENV"

_OVERRIDDEN = any(v in os.environ for v in _OPENBLAS_OVERRIDES)
if __name__ == "__main__" and "--keep-openblas-env" not in sys.argv and _OVERRIDDEN:
    _env = {k: v for k, v in os.environ.items() if k not in _OPENBLAS_OVERRIDES}
    _env[_DROPPED] = ";".join(f"{k}={os.environ[k]}" for k in _OPENBLAS_OVERRIDES if k in os.environ)
    os.execve(sys.executable, [sys.executable, "-m", "benchmarks", *sys.argv[1:]], _env)

import argparse
import datetime
import json
import shlex
import subprocess
import time
from pathlib import Path

import torch
from tqdm import tqdm

from gpt_common.validation import check_memory

from . import bench_components, bench_forward, bench_train, ceilings, environment, harness, report
from .configs import SIZES, config_for
from .entries import Selection

REPO = Path(__file__).resolve().parents[1]
GROUPS = ["components", "forward", "generate", "train", "backward"]
GENERATE_NAMES = ["generate-kv-cache", "generate-no-cache"]


def _csv(kind=str):
    return lambda text: [kind(item) for item in text.split(",") if item]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny config, a few repeats: seconds (the smoke test)")
    parser.add_argument("--device", type=_csv(), default=None, help="cpu,cuda (default: cpu, and cuda if available)")
    parser.add_argument("--impl", type=_csv(), default=["numpy", "torch"], help="numpy,torch (default both)")
    parser.add_argument("--workloads", type=_csv(), default=GROUPS,
                        help=f"groups {','.join(GROUPS)} or names "
                             f"{','.join(bench_components.NAMES + GENERATE_NAMES + bench_train.BACKWARD_NAMES)},"
                             f"{','.join(bench_train.TRAIN_NAMES)}")
    parser.add_argument("--sizes", type=_csv(), default=None,
                        help=f"forward model sizes: {','.join(SIZES)}, any named config or a JSON file (default 124M)")
    parser.add_argument("--seq-lens", type=_csv(int), default=None, help="forward lengths T (default 128,512,1024)")
    parser.add_argument("--batch", type=int, default=None, help="batch B of the component workloads (default 8)")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens per generation workload (default 16)")
    parser.add_argument("--train-batch", type=int, default=None, help="batch B of the train step (default 4)")
    parser.add_argument("--train-seq-len", type=int, default=None, help="length T of the train step (default 256)")
    parser.add_argument("--repeats", type=int, default=None, help="fixed timed repeats (default: fit a time budget)")
    parser.add_argument("--compile", action="store_true", help="add torch.compile of the twin as an entry")
    parser.add_argument("--compare", type=Path, default=None, help="merge another run's JSON (e.g. a GPU run)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default benchmarks/results/<device>/<date>)")
    parser.add_argument("--tag", default="results", help="file stem of the results (default 'results')")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--keep-openblas-env", action="store_true",
                        help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (by default this command drops them)")
    return parser


def _choices(flag: str, values: list[str] | None, allowed: list[str]) -> None:
    """Each comma-separated value of ``flag`` is one of ``allowed`` (and the list is not empty)."""
    if values is not None and not values:
        raise ValueError(f"{flag} must name at least one of {','.join(allowed)}")
    for value in values or ():
        if value not in allowed:
            raise ValueError(f"{flag} {value!r} is unknown; choose from {','.join(allowed)}")


def _at_least(flag: str, value: int | None, minimum: int) -> None:
    if value is not None and value < minimum:
        raise ValueError(f"{flag} must be >= {minimum}, got {value}")


def check_args(args) -> None:
    """Every flag, before any work: names known, sizes >= 1, lengths within the context, the allocation
    possible, and a --compare file readable JSON (rather than failing after the whole run)."""
    _choices("--device", args.device, ["cpu", "cuda"])
    _choices("--impl", args.impl, ["numpy", "torch"])
    _choices("--workloads", args.workloads,
             GROUPS + bench_components.NAMES + GENERATE_NAMES + bench_train.BACKWARD_NAMES + bench_train.TRAIN_NAMES)
    if args.sizes == []:
        raise ValueError("--sizes must name at least one config")
    for flag, value in (("--batch", args.batch), ("--new-tokens", args.new_tokens), ("--repeats", args.repeats)):
        _at_least(flag, value, 1)
    sizes = args.sizes or (["tiny"] if args.quick else ["124M"])
    for size in sizes:
        cfg = config_for(size)
        for tokens in args.seq_lens or ():
            if not 1 <= tokens <= cfg.context_length:
                raise ValueError(f"--seq-lens {tokens} is outside [1, {cfg.context_length}], the context of {size}")
        tokens, batch = max(args.seq_lens or [1024]), args.batch or 8
        # the largest live activations: attention scores (B, H, T, T) and the MLP's (B, T, 4C), a few of each
        check_memory(4 * 4 * batch * tokens * (cfg.n_heads * tokens + 4 * cfg.emb_dim),
                     f"--batch {batch} at T={tokens} on {size}")
    if args.compare is not None:
        try:
            json.loads(args.compare.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"--compare {args.compare} is not a readable results JSON file: {error}") from None


def _selection(args, notes: list[str]) -> Selection:
    available = ["cpu"] + (["cuda"] if environment.cuda_available() else [])
    devices = args.device or available
    for device in devices:
        if device not in available:
            notes.append(f"device {device} requested but not available here "
                         "(torch.cuda.is_available() is False); skipped")
    return Selection(impls=frozenset(args.impl), devices=tuple(d for d in devices if d in available),
                     compile=args.compile, quick=args.quick)


def _plan(args, on_call) -> harness.Plan:
    if args.quick:
        plan = harness.Plan(min_repeats=3, max_repeats=5, budget_s=0.2, settle_max_s=0.2, quiet_wait_s=0.0,
                            max_retakes=0, on_call=on_call)
    else:
        plan = harness.Plan(min_repeats=3, max_repeats=15, budget_s=3.0, on_call=on_call)
    if args.repeats:
        plan.min_repeats = plan.max_repeats = args.repeats
    return plan


def _wanted(args, names: list[str], group: str) -> list[str]:
    return names if group in args.workloads else [n for n in names if n in args.workloads]


def _workloads(args, selection: Selection, notes: list[str]) -> list[harness.Workload]:
    sizes = args.sizes or (["tiny"] if args.quick else ["124M"])
    configs = {size: config_for(size) for size in sizes}
    seq_lens = args.seq_lens or ([16, 32, 64] if args.quick else [128, 512, 1024])
    first = configs[sizes[0]]
    result = []
    names = _wanted(args, bench_components.NAMES, "components")
    if names:
        batch = args.batch if args.batch is not None else (2 if args.quick else 8)
        tokens = min(max(seq_lens), first.context_length)
        result += bench_components.workloads(first, batch, tokens, selection, names)
    if "forward" in args.workloads:
        result += bench_forward.workloads(configs, seq_lens, 1, selection)
    if "train" in args.workloads or "train-step" in args.workloads:
        batch = args.train_batch or (2 if args.quick else 4)
        tokens = args.train_seq_len or (32 if args.quick else 256)
        result += bench_train.train_workloads(first, sizes[0], batch, tokens, selection)
    if "train" in args.workloads or "adamw" in args.workloads:
        result += bench_train.adamw_workloads(first, sizes[0], selection)
    names = _wanted(args, bench_train.BACKWARD_NAMES, "backward")
    if names:
        batch = args.batch or (2 if args.quick else 8)
        tokens = min(max(seq_lens), first.context_length)
        result += bench_train.backward_workloads(first, batch, tokens, selection, names)
    generate = _wanted(args, GENERATE_NAMES, "generate")
    if generate:
        try:
            from . import bench_generate
        except ImportError as error:
            notes.append(f"generation workloads skipped: {error}")
        else:
            new_tokens = args.new_tokens or (8 if args.quick else 16)
            prompt_len = 8 if args.quick else 16
            made = bench_generate.workloads(first, selection, prompt_len=prompt_len, new_tokens=new_tokens)
            result += [w for w in made if w.name in generate]
    return result


def _generate_goals(rows: list[dict]) -> list[dict]:
    try:
        from . import bench_generate
    except ImportError:
        return []
    return bench_generate.goals(rows)


def compile_notes(rows: list[dict]) -> list[str]:
    """torch.compile's one-off cost, apart from the step times in the table: its first call (validation,
    which compiles) minus a median step."""
    notes = []
    for row in rows:
        first = row["validation"].get("first_call_s")
        if row["impl"] == "torch-compile" and first is not None and "median_s" in row:
            shape = " ".join(f"{k}={v}" for k, v in row["params"].items() if k not in ("weights_mb", "grad_check"))
            notes.append(f"torch.compile {row['workload']} ({shape}, {row['device']} {row['precision']}): compile "
                         f"{first - row['median_s']:.1f} s (first call {first:.1f} s), then {row['median_s']:.3f} s "
                         "a step (median)")
    return notes


def _memory_probes(args, selection: Selection) -> list[dict]:
    """The forward's peak RSS in a fresh process per implementation, at the largest T, for each size."""
    if "forward" not in args.workloads or "cpu" not in selection.devices:
        return []
    probes = []
    sizes = args.sizes or (["tiny"] if args.quick else ["124M"])
    seq_len = max(args.seq_lens or ([64] if args.quick else [1024]))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    for size in sizes:
        tokens = min(seq_len, config_for(size).context_length)
        for impl in sorted(selection.impls):
            command = [sys.executable, "-m", "benchmarks.memory_probe", "--impl", impl, "--size", size,
                       "--seq-len", str(tokens)]
            done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
            if done.returncode != 0:
                probes.append({"impl": impl, "size": size, "T": tokens, "error": done.stderr.strip()[-500:]})
                continue
            probes.append({**json.loads(done.stdout.strip().splitlines()[-1]), "size": size})
    return probes


def _progress(bar: tqdm):
    """A hook that shows the current call on the bar, redrawn at most twice a second."""
    last = [0.0]

    def on_call(label: str) -> None:
        bar.set_postfix_str(label[-70:], refresh=False)
        if time.perf_counter() - last[0] > 0.5:
            bar.refresh()
            last[0] = time.perf_counter()

    return on_call


def _print_summary(result: dict, paths: list[str]) -> None:
    print(report.markdown(result))
    print("written: " + ", ".join(paths))


def _out_dir(args, env: dict) -> Path:
    if args.out:
        return args.out
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return REPO / "benchmarks" / "results" / environment.device_name(env) / stamp


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_args(args)
    except ValueError as error:  # a user's mistake: one line naming the flag, exit 2 (argparse's status)
        print(f"error: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    notes: list[str] = []
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32: TF32 off, recorded in the environment
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    dropped = dict(item.split("=", 1) for item in os.environ.get(_DROPPED, "").split(";") if "=" in item)
    env = environment.collect(dropped)
    if dropped:
        notes.append(f"dropped {dropped} for this run; OpenBLAS kernel: {env['numpy']['blas'].get('corename')}")
    if not env["cuda"]["available"]:
        notes.append("no GPU in this run: " + env["cuda"]["reason"])
    selection = _selection(args, notes)
    workloads = _workloads(args, selection, notes)
    libraries = {"numpy" if impl == "numpy" else "torch" for impl in selection.impls}
    bar = tqdm(total=len(workloads) + 2, unit="step", dynamic_ncols=True, file=sys.stderr)
    plan = _plan(args, _progress(bar))
    bar.set_description("ceilings")
    measured_ceilings = ceilings.measure(libraries, list(selection.devices), args.quick, plan.on_call)
    bar.update()
    rows, errors = [], []
    out = _out_dir(args, env)
    out.mkdir(parents=True, exist_ok=True)
    for workload in workloads:
        bar.set_description(workload.name)
        try:
            rows += harness.run_workload(workload, plan)
        except Exception as error:
            errors.append({"workload": workload.name, "params": workload.params, "error": repr(error)})
        bar.update()
        # what is measured so far, in case the run is stopped (a time limit) before the full report below
        report.write_json(out / f"{args.tag}.partial.json", {"rows": rows, "errors": errors, "notes": notes})
    bench_forward.models.cache_clear()
    bar.set_description("memory probes")
    probes = _memory_probes(args, selection)
    bar.set_description("ceilings again")
    measured_ceilings = ceilings.merge(
        measured_ceilings, ceilings.measure(libraries, list(selection.devices), args.quick, plan.on_call))
    bar.update()
    bar.close()
    report.derive(rows, measured_ceilings)
    compared = report.merge_compare(rows, args.compare) if args.compare else []
    if selection.compile_errors:
        notes.append(f"torch.compile failed: {selection.compile_errors}")
    notes += compile_notes(rows)
    result = {
        "schema": report.SCHEMA,
        "command": shlex.join(["python", "-m", "benchmarks", *(argv if argv is not None else sys.argv[1:])]),
        "device_name": environment.device_name(env),
        "environment": env,
        "selection": {"impls": sorted(selection.impls), "devices": list(selection.devices),
                      "compile": selection.compile, "quick": args.quick, "workloads": args.workloads},
        "ceilings": measured_ceilings,
        "rows": rows,
        "compared_rows": compared,
        "memory_probes": probes,
        "goals": report.goals(rows, probes) + bench_train.goals(rows) + bench_forward.goals(rows)
        + _generate_goals(rows),
        "errors": errors,
        "validation_passed": bool(rows) and all(row["validation"]["passed"] for row in rows) and not errors,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "notes": notes,
    }
    result["duration_s"] = time.perf_counter() - started
    stem = out / args.tag
    paths = [f"{stem}.json", f"{stem}.md"]
    if not args.no_plots:
        paths += report.plot(result, stem)
    result["files"] = paths
    report.write_json(Path(f"{stem}.json"), result)
    Path(f"{stem}.md").write_text(report.markdown(result))
    (out / f"{args.tag}.partial.json").unlink(missing_ok=True)  # the full results replace it
    _print_summary(result, paths)
    return 0 if result["validation_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
