"""Tokens per second: GPT-2 BPE from scratch (numpy_gpt) vs tiktoken, on one text file.

    python -m benchmarks.bench_tokenizer [--file PATH] [--repeats N] [--json OUT]

Default file: ../shared/data/tinyshakespeare.txt next to the repository if it is
there, else the bundled sample. Validates first (both give the same ids), then
times interleaved repetitions through the harness's one timing loop. "cold" is a fresh
from-scratch tokenizer (built outside the clock), its cache of merged pieces empty; "warm"
reuses one that has seen the text.
"""

import argparse
import json
import os
import platform
import statistics
import sys
from importlib.metadata import version
from pathlib import Path

import numpy_gpt.tokenizer as np_tok
import torch_gpt.tokenizer as torch_tok
from benchmarks.harness import Entry, Plan, time_entries
from gpt_common.bpe import load_ranks

REPO = Path(__file__).resolve().parents[1]
SHAKESPEARE = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"


def measure(text: str, repeats: int) -> dict[str, list[float]]:
    """Seconds per encode of ``text`` for each encoder, repetitions interleaved so drifts hit all alike."""
    ranks = load_ranks(np_tok.GPT2_RANKS_FILE, np_tok.GPT2_RANKS_SHA256)
    tiktoken_encoding = torch_tok.BPETokenizer(ranks).encoding
    warm = np_tok.BPETokenizer(ranks)  # the warm-up call fills its cache; tiktoken's pays its own set-up
    cold = {}
    entries = [
        Entry("numpy", "cpu", "fp32", lambda: cold["tokenizer"].encode(text), name="from-scratch (cold cache)",
              prepare=lambda: cold.update(tokenizer=np_tok.BPETokenizer(ranks))),
        Entry("numpy", "cpu", "fp32", lambda: warm.encode(text), name="from-scratch (warm cache)"),
        Entry("tiktoken", "cpu", "fp32", lambda: tiktoken_encoding.encode(text), name="tiktoken"),
    ]
    timed = time_entries(entries, repeats, Plan(measure_memory=False), "tokenizer")
    return {key: row["times_s"] for key, row in timed.items()}


def validate(text: str) -> int:
    """Both encoders must give the same ids (and ours must decode back to the text); returns the count."""
    ours, theirs = np_tok.get_tokenizer("gpt2"), torch_tok.get_tokenizer("gpt2")
    ids = ours.encode(text)
    if ids != theirs.encoding.encode(text) or ours.decode(ids) != text:
        raise SystemExit("validation failed: the from-scratch encoder and tiktoken disagree on this file")
    return len(ids)


def environment() -> dict[str, str]:
    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": str(os.cpu_count()),
            "processor": platform.processor() or "unknown",
            **{name: version(name) for name in ("tiktoken", "regex", "numpy")}}


def report(path: Path, text: str, n_tokens: int, times: dict[str, list[float]]) -> dict:
    rows = {name: {"min_s": min(ts), "median_s": statistics.median(ts),
                   "tokens_per_s_best": n_tokens / min(ts), "tokens_per_s_median": n_tokens / statistics.median(ts)}
            for name, ts in times.items()}
    base = rows["tiktoken"]["median_s"]
    for row in rows.values():
        row["times_tiktoken_median"] = row["median_s"] / base
    return {"file": str(path), "bytes": len(text.encode("utf-8")), "tokens": n_tokens,
            "repeats": len(times["tiktoken"]), "environment": environment(), "results": rows}


def print_report(result: dict) -> None:
    print(f"file {result['file']}: {result['bytes']:,} bytes, {result['tokens']:,} GPT-2 tokens, "
          f"{result['repeats']} interleaved repeats")
    print("  " + ", ".join(f"{k} {v}" for k, v in result["environment"].items()))
    print(f"  {'encoder':28} {'min s':>8} {'median s':>9} {'tokens/s (median)':>18} {'x tiktoken':>11}")
    for name, row in result["results"].items():
        print(f"  {name:28} {row['min_s']:8.3f} {row['median_s']:9.3f} "
              f"{row['tokens_per_s_median']:18,.0f} {row['times_tiktoken_median']:11.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path,
                        default=SHAKESPEARE if SHAKESPEARE.exists() else np_tok.SAMPLE_TEXT_FILE)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    text = args.file.read_text(encoding="utf-8")
    n_tokens = validate(text)
    result = report(args.file, text, n_tokens, measure(text, args.repeats))
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
