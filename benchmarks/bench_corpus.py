"""A real-sized corpus: ``prepare`` on >= 1 GB of text, then training from its shards and from the bundled text.

    python -m benchmarks.bench_corpus                        # 1 GB of tinyshakespeare, repeated; a few minutes
    python -m benchmarks.bench_corpus --gb 0.05 --steps 10   # a quick look

The corpus is public-domain text repeated to size (``--text``, default the tinyshakespeare copy in
``../shared/data``; its repeats cost tiktoken as much as fresh text, which it does not cache). Every
command runs in a fresh process, through a wrapper that reports the process' peak resident set
(Linux's VmHWM, which ``exec`` resets; ``ru_maxrss`` would carry the parent's over):

1. ``prepare`` once: wall time, its own tokens/s, and tiktoken alone on one thread on the first batch of the
   same text (the ratio prepare x is measured in that same process).
2. ``train`` from the shards and from the bundled text, interleaved ``--repeats`` times, the same model and
   steps: tokens/s (median over the steps after the first two, per run; min and median over runs) and peak
   memory. A memory map's pages count in the resident set only once read, so reading a window costs only
   its own pages.

Results go to ``--out`` (JSON and a markdown table).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TEXT = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
# Runs a module's main in this process and prints VmHWM (peak RSS, KiB) as the last line of stderr.
PEAK_WRAPPER = (
    "import runpy, sys\n"
    "module = sys.argv[1]; sys.argv = sys.argv[1:]\n"
    "try:\n"
    "    runpy.run_module(module, run_name='__main__')\n"
    "except SystemExit as exit:\n"
    "    code = exit.code\n"
    "else:\n"
    "    code = 0\n"
    "hwm = next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM'))\n"
    "print(f'VmHWM {hwm}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)
TRAIN_FLAGS = ["--impl", "torch", "--threads", "2", "--batch-size", "8", "--eval-every", "1000000",
               "--eval-batches", "1", "--no-progress", "--keep", "1"]


def run_measured(argv: list[str], cwd: Path) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stderr) of ``python -m argv[0] argv[1:]`` in a fresh process."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK_WRAPPER, *argv], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    peak = int(re.findall(r"VmHWM (\d+)", done.stderr)[-1]) * 1024
    return seconds, peak, done.stderr


def make_corpus(source: Path, target: Path, gigabytes: float) -> int:
    """``source`` repeated (whole copies) until ``target`` holds at least ``gigabytes`` GB; its size."""
    text = source.read_bytes()
    copies = max(1, -(-int(gigabytes * 1e9) // len(text)))
    if target.is_file() and target.stat().st_size == copies * len(text):
        return target.stat().st_size
    with open(target, "wb") as file:
        for _ in range(copies):
            file.write(text)
    return target.stat().st_size


def prepare_row(corpus: Path, shards_dir: Path) -> dict:
    shutil.rmtree(shards_dir, ignore_errors=True)
    seconds, peak, err = run_measured(["gpt_cli", "prepare", str(corpus), "--out", str(shards_dir),
                                       "--no-progress"], REPO)
    rate = re.search(r"in ([\d.]+) s: ([\d,]+) tokens/s with (\d+) thread", err)
    reference = re.search(r"characters\): ([\d,]+) tokens/s \(prepare x([\d.]+)\)", err)
    manifest = json.loads((shards_dir / "manifest.json").read_text(encoding="utf-8"))
    return {"bytes": corpus.stat().st_size, "tokens": manifest["tokens"], "shards": len(manifest["shards"]),
            "wall_s": round(seconds, 1), "peak_rss_mb": round(peak / 2**20, 1),
            "prepare_tokens_per_s": _number(rate.group(2)), "threads": int(rate.group(3)),
            "tiktoken_one_thread_tokens_per_s": _number(reference.group(1)), "ratio": float(reference.group(2)),
            "closing_note": err.strip().splitlines()[-2]}


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def train_row(data: str, out: Path, steps: int) -> dict:
    """One training run of ``steps`` steps: its tokens/s (median after two warm-up steps) and peak memory."""
    shutil.rmtree(out, ignore_errors=True)
    seconds, peak, _ = run_measured(["gpt_cli", "train", "--data", data, "--out", str(out), "--max-steps",
                                     str(steps), *TRAIN_FLAGS], REPO)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    rates = [r["tokens_per_s"] for r in records[2:]] or [r["tokens_per_s"] for r in records]
    return {"tokens_per_s": statistics.median(rates), "peak_rss_mb": peak / 2**20, "wall_s": seconds}


def training_rows(shards_dir: Path, work: Path, steps: int, repeats: int) -> dict:
    """Shards and the bundled text, interleaved; min and median of each over the repeats."""
    from gpt_common.tokenizer import SAMPLE_TEXT_FILE

    sources = {"shards": str(shards_dir), "bundled text": str(SAMPLE_TEXT_FILE)}
    runs = {name: [] for name in sources}
    for _ in range(repeats):
        for name, data in sources.items():
            runs[name].append(train_row(data, work / f"run-{name.replace(' ', '-')}", steps))
    return {name: {key: {"min": round(min(r[key] for r in rows), 1),
                         "median": round(statistics.median(r[key] for r in rows), 1)}
                   for key in ("tokens_per_s", "peak_rss_mb", "wall_s")} for name, rows in runs.items()}


def markdown(result: dict) -> str:
    prep, train = result["prepare"], result["train"]
    lines = [
        f"Corpus: {prep['bytes'] / 1e9:.2f} GB ({result['text']} repeated), {prep['tokens']:,} tokens in "
        f"{prep['shards']} shards. Load average at start {result['load_average'][0]}, end "
        f"{result['load_average_end'][0]} ({os.cpu_count()} cores, shared).",
        "",
        "| step | tokens/s | peak RSS (MB) | wall (s) |",
        "|---|---|---|---|",
        f"| prepare ({prep['threads']} threads) | {prep['prepare_tokens_per_s']:,.0f} | {prep['peak_rss_mb']} | "
        f"{prep['wall_s']} |",
        f"| tiktoken alone, one thread (same text, same process) | {prep['tiktoken_one_thread_tokens_per_s']:,.0f} "
        "| | |",
    ]
    for name, row in train.items():
        lines.append(f"| train from {name} (median of {result['repeats']}; min) | {row['tokens_per_s']['median']:,.0f}"
                     f" ({row['tokens_per_s']['min']:,.0f}) | {row['peak_rss_mb']['median']} "
                     f"({row['peak_rss_mb']['min']}) | {row['wall_s']['median']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT, help="public-domain text to repeat")
    parser.add_argument("--gb", type=float, default=1.0, help="corpus size in GB (default 1)")
    parser.add_argument("--steps", type=int, default=30, help="training steps per run (default 30)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved training runs of each (default 2)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpt-twins-corpus"), help="corpus and shards")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "corpus-cpu")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"text": args.text.name, "load_average": os.getloadavg(), "repeats": args.repeats, "steps": args.steps,
              "train_flags": TRAIN_FLAGS}
    corpus = args.work / "corpus.txt"
    make_corpus(args.text, corpus, args.gb)
    result["prepare"] = prepare_row(corpus, args.work / "shards")
    print(json.dumps(result["prepare"]), flush=True)
    result["train"] = training_rows(args.work / "shards", args.work, args.steps, args.repeats)
    result["load_average_end"] = os.getloadavg()
    (args.out / "corpus.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (args.out / "corpus.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
