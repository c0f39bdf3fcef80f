"""Generation at GPT-2 124M shapes (random weights), batch 1, greedy, CPU: the KV cache's speed-up, the
memory-bandwidth bound, and peak memory, all measured in one run.

    python -m benchmarks.bench_generate [--size 124M] [--prompt-len 16] [--new-tokens 64] [--repeats 3] [--json PATH]

1. The weights are written once as a Hugging Face GPT-2 checkpoint (Conv1D layout, fused c_attn, tied head)
   and loaded by both packages' ``load_pretrained``: the models are laid out as real GPT-2 weights would be.
2. Validate: greedy tokens with and without the cache, in NumPy and in torch, must be the same.
3. Time, interleaved: generation of --new-tokens (cache / no cache, each package), and the prefill alone
   (one new token), so the decode rate is (new_tokens - 1) / (generate - prefill).
4. The bound: one new token needs every weight it uses read once (all blocks and the tied head; of the
   position table, one row). It cannot come faster than y = W x over a float32 matrix of that many bytes;
   that product is timed in both libraries in the same rounds, and the faster one is the bound.
5. Peak memory: a fresh process per package loads the checkpoint and generates; its resident-set high-water
   mark during each phase, against the weights' size.

``run_generation_workload`` and ``workloads`` let the benchmark harness time the same calls.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import numpy_gpt
from gpt_common.checkpoint import WEIGHTS_FILE
from gpt_common.config import GPTConfig

from .hf_checkpoint import write_gpt2_checkpoint
from .procfs import reset_peak_rss, status_kib

__all__ = ["main", "run_generation_workload", "write_gpt2_checkpoint", "load_models", "prompt_ids",
           "bytes_per_token", "workloads", "goals"]

IMPLS = ("numpy", "torch")


def load_models(path: Path):
    """(numpy model, torch model) loaded from the checkpoint at ``path``, both in eval mode."""
    import torch_gpt

    return numpy_gpt.load_pretrained(path), torch_gpt.load_pretrained(path)


def prompt_ids(cfg: GPTConfig, prompt_len: int, seed: int = 0, batch: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, cfg.vocab_size, (batch, prompt_len))


def bytes_per_token(cfg: GPTConfig) -> int:
    """float32 bytes one decode step must read: every parameter except the position table (one row used)."""
    tied = numpy_gpt.checkpoint.state_shapes(cfg)
    count = sum(int(np.prod(shape)) for key, shape in tied.items() if key not in ("out_head.weight", "pos_emb.weight"))
    return 4 * (count + cfg.emb_dim)


def run_generation_workload(impl: str, use_cache: bool, *, model, prompt: np.ndarray, new_tokens: int) -> np.ndarray:
    """One greedy generation of ``new_tokens`` after ``prompt`` (1, T) by ``model`` (numpy_gpt's GPTModel for
    impl "numpy", torch_gpt's for "torch"); the (1, T + new_tokens) ids as a NumPy array."""
    if impl == "numpy":
        return numpy_gpt.generate(model, prompt, new_tokens, use_cache=use_cache)
    import torch

    import torch_gpt

    device = next(model.parameters()).device
    with torch.inference_mode():
        ids = torch.from_numpy(prompt).to(device)
        return torch_gpt.generate(model, ids, new_tokens, use_cache=use_cache).cpu().numpy()


def workloads(cfg: GPTConfig, selection, prompt_len: int = 16, new_tokens: int = 64, seed: int = 123,
              batches: tuple[int, ...] = (1, 8)) -> list:
    """Harness workloads (group "generate"): greedy generation with the cache at each batch size in ``batches``
    and without it at B=1, NumPy and torch CPU (and Hugging Face's ``generate``)."""
    from . import flops

    cfg = cfg.replace(qkv_bias=True)  # as GPT-2's checkpoints
    steps = [prompt_len + i for i in range(new_tokens)]
    uncached = sum(flops.model_forward(cfg, 1, t) for t in steps)
    step_bytes = float(new_tokens * bytes_per_token(cfg))  # every weight read once per step, whatever B is
    result = [_workload("generate-kv-cache", cfg, selection, prompt_len, new_tokens, seed, batch, True,
                        batch * uncached / np.mean(steps), step_bytes) for batch in batches]  # ~ one token's work
    return result + [_workload("generate-no-cache", cfg, selection, prompt_len, new_tokens, seed, 1, False,
                               uncached, step_bytes)]


def _workload(name, cfg, selection, prompt_len, new_tokens, seed, batch, use_cache, flop_count, byte_count):
    from . import peers
    from .harness import Entry, Workload

    def build():
        directory = tempfile.TemporaryDirectory()
        write_gpt2_checkpoint(numpy_gpt.GPTModel(cfg, seed=seed), Path(directory.name))
        models = dict(zip(IMPLS, load_models(Path(directory.name))))
        directory.cleanup()  # the NumPy model holds its own arrays; torch's mapping stays valid once unlinked
        prompt = prompt_ids(cfg, prompt_len, batch=batch)
        entries = [Entry(impl, "cpu", "fp32", lambda impl=impl: run_generation_workload(
            impl, use_cache, model=models[impl], prompt=prompt, new_tokens=new_tokens), timed=selection.wants(impl))
            for impl in IMPLS]
        for device in (d for d in selection.devices if d != "cpu" and selection.wants("torch", d)):
            model = copy.deepcopy(models["torch"]).to(device)  # the twin on the GPU: same weights, same tokens
            entries.append(Entry("torch", device, "fp32", lambda m=model: run_generation_workload(
                "torch", use_cache, model=m, prompt=prompt, new_tokens=new_tokens), timed=True))
        if peers.hf_available() and selection.wants("torch", "cpu"):
            hf = peers.hf_model(models["numpy"])
            entries.append(Entry("hf", "cpu", "fp32", lambda: peers.hf_generate(hf, prompt, new_tokens, use_cache),
                                 timed=True))
        return entries

    params = {"B": batch, "T_prompt": prompt_len, "new_tokens": new_tokens}
    return Workload("generate", name, params, flop_count, byte_count, build, exact=True)


def goals(rows: list[dict]) -> list[dict]:
    """Issue 17's decode figures: tokens/s and the share of the memory-bandwidth bound (every weight read once per
    step at the same run's copy speed), per implementation and batch size; at B=1, within 1.2x of the bound."""
    result = []
    for row in rows:
        if row["workload"] != "generate-kv-cache" or "median_s" not in row or "bandwidth_fraction" not in row:
            continue
        batch, tokens = row["params"]["B"], row["params"]["new_tokens"]
        result.append({
            "goal": f"{row['impl']} greedy decode with the KV cache (B={batch}) within 1.2x of the bandwidth bound",
            "reached": f"{batch * tokens / row['median_s']:.1f} tok/s (min-time {batch * tokens / row['min_s']:.1f}), "
                       f"{100 * row['bandwidth_fraction']:.0f}% of the bound (prefill included)",
            "met": row["bandwidth_fraction"] >= 1 / 1.2})
    return result


# ---- the standalone run


def _bound_calls(cfg: GPTConfig):
    """y = W x over one float32 matrix holding as many bytes as a decode step reads, two ways in each library."""
    import torch
    import torch.nn.functional as F

    rows = bytes_per_token(cfg) // (4 * cfg.emb_dim)
    weights = np.random.default_rng(0).standard_normal((rows, cfg.emb_dim), dtype=np.float32)
    vector = np.ones((1, cfg.emb_dim), dtype=np.float32)
    weights_t, vector_t = torch.from_numpy(weights), torch.from_numpy(vector)
    return {"bound/numpy/matvec": lambda: weights @ vector[0], "bound/numpy/linear": lambda: vector @ weights.T,
            "bound/torch/mv": lambda: torch.mv(weights_t, vector_t[0]),
            "bound/torch/linear": lambda: F.linear(vector_t, weights_t)}


def _validate(models, prompt, new_tokens) -> dict:
    outputs = {
        f"{impl}/{'cache' if cache else 'no-cache'}": run_generation_workload(
            impl, cache, model=models[impl], prompt=prompt, new_tokens=new_tokens)
        for impl in IMPLS for cache in (True, False)
    }
    reference = outputs["numpy/cache"]
    return {key: _agreement(out, reference) for key, out in outputs.items()}


def _agreement(out, reference) -> dict:
    same = bool(np.array_equal(out, reference))
    first_difference = None if same else int(np.argmax(out[0] != reference[0]))
    return {"same_tokens_as_numpy_cache": same, "first_difference": first_difference}


def _time_all(models, prompt, cfg, new_tokens: int, repeats: int) -> tuple[dict, dict]:
    """Every call once per round through the harness's one timing loop: seconds, and others' CPU share."""
    from .harness import Entry, Plan, time_entries

    calls = {}
    for impl in IMPLS:
        for cache in (True, False):
            calls[f"{impl}/{'cache' if cache else 'no-cache'}"] = (
                lambda impl=impl, cache=cache: run_generation_workload(
                    impl, cache, model=models[impl], prompt=prompt, new_tokens=new_tokens))
        calls[f"{impl}/prefill"] = lambda impl=impl: run_generation_workload(
            impl, True, model=models[impl], prompt=prompt, new_tokens=1)
    calls.update(_bound_calls(cfg))
    impl_of = lambda key: key.removeprefix("bound/").split("/")[0]  # whose worker threads to wake before a call
    entries = [Entry(impl_of(key), "cpu", "fp32", fn, name=key) for key, fn in calls.items()]
    progress = lambda label: print(f"  {label}", file=sys.stderr)
    timed = time_entries(entries, repeats, Plan(measure_memory=False, on_call=progress), "generate")
    return ({key: row["times_s"] for key, row in timed.items()},
            {key: row["others_cpu_fraction"] for key, row in timed.items()})


def _rates(times: dict[str, list[float]], cfg: GPTConfig, new_tokens: int) -> dict:
    """tokens/s (best and median) for each generation, the decode rate, and the bound."""
    result = {}
    best = {impl: min(min(t) for key, t in times.items() if key.startswith(f"bound/{impl}/")) for impl in IMPLS}
    bound_s = min(best.values())
    result["bound"] = {"bytes_per_token": bytes_per_token(cfg), "best_s": bound_s, "tokens_per_s": 1 / bound_s,
                       "GB_per_s": bytes_per_token(cfg) / bound_s / 1e9,
                       "numpy_best_s": best["numpy"], "torch_best_s": best["torch"]}
    for impl in IMPLS:
        for kind in ("cache", "no-cache"):
            t = times[f"{impl}/{kind}"]
            result[f"{impl}/{kind}"] = {"best_s": min(t), "median_s": statistics.median(t),
                                        "tokens_per_s_best": new_tokens / min(t),
                                        "tokens_per_s_median": new_tokens / statistics.median(t)}
        prefill = times[f"{impl}/prefill"]
        decode_best = (min(times[f"{impl}/cache"]) - min(prefill)) / (new_tokens - 1)
        decode_median = (statistics.median(times[f"{impl}/cache"]) - statistics.median(prefill)) / (new_tokens - 1)
        result[f"{impl}/decode"] = {"s_per_token_best": decode_best, "tokens_per_s_best": 1 / decode_best,
                                    "tokens_per_s_median": 1 / decode_median, "x_bound_best": decode_best / bound_s,
                                    "prefill_best_s": min(prefill)}
        result[f"{impl}/cache_speedup"] = min(times[f"{impl}/no-cache"]) / min(times[f"{impl}/cache"])
    return result


def _status_mb() -> dict[str, float]:
    fields = {name: status_kib(name) for name in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}
    return {name: kib / 1024 for name, kib in fields.items() if kib is not None}


def _probe_memory(impl: str, path: Path, prompt_len: int, new_tokens: int) -> dict:
    """In this (fresh) process: RSS high-water marks while loading and while generating."""
    if impl == "torch":
        import torch_gpt  # noqa: F401  (imported before the baseline: the library is not the load's cost)
    base = _status_mb()
    reset_peak_rss()
    model = numpy_gpt.load_pretrained(path) if impl == "numpy" else sys.modules["torch_gpt"].load_pretrained(path)
    loaded = _status_mb()
    reset_peak_rss()
    run_generation_workload(impl, True, model=model, prompt=prompt_ids(model.cfg, prompt_len), new_tokens=new_tokens)
    generated = _status_mb()
    return {"baseline_rss_mb": base["VmRSS"], "load_peak_mb": loaded["VmHWM"] - base["VmRSS"],
            "after_load_mb": loaded["VmRSS"] - base["VmRSS"], "generate_peak_mb": generated["VmHWM"] - base["VmRSS"],
            "after_generate_anon_mb": generated["RssAnon"], "after_generate_file_mb": generated["RssFile"]}


def _memory(path: Path, prompt_len: int, new_tokens: int) -> dict:
    result = {}
    for impl in IMPLS:
        command = [sys.executable, "-m", "benchmarks.bench_generate", "--probe-memory", impl, str(path),
                   "--prompt-len", str(prompt_len), "--new-tokens", str(new_tokens)]
        done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
        result[impl] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _report(result: dict, weights_mb: float, new_tokens: int) -> None:
    rates, memory = result["rates"], result["memory"]
    bound = rates["bound"]
    print(f"\nGPT-2 {result['size']} shapes, B=1, prompt {result['prompt_len']}, {new_tokens} new tokens, greedy, "
          f"float32, CPU; weights {weights_mb:.0f} MB")
    print(f"bound: {bound['bytes_per_token'] / 1e6:.0f} MB per token through y = W x in {bound['best_s'] * 1e3:.1f} ms "
          f"({bound['GB_per_s']:.1f} GB/s) -> at most {bound['tokens_per_s']:.1f} tokens/s "
          f"(numpy {bound['numpy_best_s'] * 1e3:.1f} ms, torch {bound['torch_best_s'] * 1e3:.1f} ms)")
    print(f"{'':8}{'cache tok/s':>14}{'no cache tok/s':>16}{'speed-up':>10}{'decode tok/s':>14}{'x bound':>9}"
          f"{'load peak MB':>14}{'gen peak MB':>13}")
    for impl in IMPLS:
        cached, uncached, decode = rates[f"{impl}/cache"], rates[f"{impl}/no-cache"], rates[f"{impl}/decode"]
        print(f"{impl:8}{cached['tokens_per_s_best']:>8.1f} ({cached['tokens_per_s_median']:.1f})"
              f"{uncached['tokens_per_s_best']:>9.2f} ({uncached['tokens_per_s_median']:.2f})"
              f"{rates[f'{impl}/cache_speedup']:>9.1f}x{decode['tokens_per_s_best']:>14.1f}{decode['x_bound_best']:>9.2f}"
              f"{memory[impl]['load_peak_mb']:>14.0f}{memory[impl]['generate_peak_mb']:>13.0f}")
    print("tokens/s: best (median) of the repeats; decode excludes the prefill; x bound: decode time per token "
          "/ bound time (1.0 is the bound); memory: RSS high-water mark above the process's baseline.")
    long_calls = [key for key, t in result["times_s"].items() if statistics.median(t) >= 0.2]  # /proc/stat ticks
    if long_calls:
        noisy = max(result["others_cpu_fraction"][key] for key in long_calls)
        print(f"other processes used {noisy:.0%} of the CPUs while calls were timed")
    for key, check in result["validation"].items():
        if not check["same_tokens_as_numpy_cache"]:
            print(f"VALIDATION: {key} differs from numpy/cache from token {check['first_difference']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="124M", help="a GPT-2 size (124M ... 1558M) or 'tiny'")
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--probe-memory", nargs=2, metavar=("IMPL", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe_memory:
        impl, path = args.probe_memory
        print(json.dumps(_probe_memory(impl, Path(path), args.prompt_len, args.new_tokens)))
        return 0
    from .configs import config_for
    from .environment import collect

    cfg = config_for(args.size).replace(qkv_bias=True)  # GPT-2's checkpoints have query/key/value biases
    result = {"size": args.size, "prompt_len": args.prompt_len, "new_tokens": args.new_tokens, "environment": collect()}
    with tempfile.TemporaryDirectory() as directory:
        print("writing a GPT-2 checkpoint of random weights ...", file=sys.stderr)
        write_gpt2_checkpoint(numpy_gpt.GPTModel(cfg, seed=123), Path(directory))
        weights_mb = (Path(directory) / WEIGHTS_FILE).stat().st_size / 1e6
        models = dict(zip(IMPLS, load_models(Path(directory))))
        prompt = prompt_ids(cfg, args.prompt_len)
        print("validating ...", file=sys.stderr)
        result["validation"] = _validate(models, prompt, args.new_tokens)
        print("timing ...", file=sys.stderr)
        times, others = _time_all(models, prompt, cfg, args.new_tokens, args.repeats)
        result["times_s"], result["others_cpu_fraction"] = times, others
        result["rates"] = _rates(times, cfg, args.new_tokens)
        del models
        print("measuring memory in fresh processes ...", file=sys.stderr)
        result["memory"] = _memory(Path(directory), args.prompt_len, args.new_tokens)
        result["weights_mb"] = weights_mb
    _report(result, weights_mb, args.new_tokens)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
