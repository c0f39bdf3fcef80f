#!/usr/bin/env bash
# One prepared run for a CUDA machine, with no set-up: `make gpu` (or `bash scripts/gpu_run.sh`).
#
# Uses the machine's own python3 (a GPU image's torch with CUDA, numpy, tiktoken, safetensors,
# transformers, pytest, hypothesis, matplotlib, regex, tqdm) with PYTHONPATH=.; builds no .venv, needs no
# network, no package registry and no file outside this repository. About 5 minutes on one H200, and never
# more than TOTAL_S (450 s): each step runs under its own time limit, cut to what is left of TOTAL_S, so one
# slow step cannot eat the others; each writes its own results before the next starts (a benchmark step
# stopped by its limit leaves <tag>.partial.json, the rows measured so far):
#   0. the environment: versions, GPU, and whether a C compiler is there (torch.compile needs one);
#   1. the CUDA tests (tests/test_cuda.py: TF32 off, every attention path, gradients, sync-free decode);
#   2. the CUDA benchmark rows, validated against NumPy on the CPU: components, the 124M forward (torch,
#      torch-sdpa, Hugging Face), greedy decode at B=1 and B=8, the train step (torch, nanoGPT's way), each
#      in fp32 (TF32 off) and bf16 autocast;
#   3. short training runs of the small config on the GPU (gpt_cli train), fp32 and bf16 autocast (their
#      metrics and loss plot; the checkpoints stay in a scratch folder, removed at the end);
#   4. last, as they are the slowest and the likeliest to fail: torch.compile of the forward (T=1024), then
#      of the train step, each beside its eager rows, compile time (in the notes) apart from step time;
#      then gpt_cli train --compile (the small config), if time is left.
# Everything lands in one folder, $OUT (default gpu-results/<date>): summary.txt, one log per step, and the
# benchmark results (bench/gpu.{json,md}, bench-compile/gpu-compile-{forward,train}.{json,md}). Merge into a
# CPU report with
#   python -m benchmarks --compare $OUT/bench/gpu.json
# Dry run on a CPU machine first: DEVICE=cpu QUICK=1 TOTAL_S=1800 bash scripts/gpu_run.sh (CUDA tests skip;
# tiny sizes; SCALE=4 times the limits). ONLY="train-bf16 compile-train" reruns just the steps named.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-gpu-results/$(date -u +%Y%m%d-%H%M%S)}
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
export PYTHONDONTWRITEBYTECODE=1
TOTAL_S=${TOTAL_S:-450}  # the whole run's limit: no step starts, or runs, past it (8 minutes less a margin)
if [ "${QUICK:-0}" = 1 ]; then  # the dry run's sizes: every step and flag, tiny shapes (and a slow CPU's limits)
    SHAPES=(--quick --seq-lens 16,64 --repeats 2) COMPILE_SHAPES=(--quick --seq-lens 64 --repeats 2)
    TRAIN_STEPS=4 SCALE=${SCALE:-4}
else
    SHAPES=(--seq-lens 128,1024 --repeats 5) COMPILE_SHAPES=(--seq-lens 1024 --repeats 5)
    TRAIN_STEPS=40 SCALE=${SCALE:-1}
fi
mkdir -p "$OUT"
SCRATCH=$(mktemp -d)  # what must not come back: training checkpoints
trap 'rm -rf "$SCRATCH"' EXIT
export HYPOTHESIS_STORAGE_DIRECTORY="$SCRATCH/hypothesis"
status=0
started=$SECONDS

step() {  # step NAME SECONDS COMMAND...: run one step under a limit, log it, remember a failure
    local name=$1 limit=$(($2 * SCALE))
    shift 2
    if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi  # ONLY="step names": a rerun
    local left=$((TOTAL_S - (SECONDS - started)))
    [ "$limit" -le "$left" ] || limit=$left
    if [ "$limit" -lt 15 ]; then
        echo "== $name: SKIPPED, ${left}s left of TOTAL_S=${TOTAL_S}" | tee -a "$OUT/summary.txt"
        status=1
        return
    fi
    echo "== $name (limit ${limit}s, at $((SECONDS - started))s): $*" | tee -a "$OUT/summary.txt"
    local start=$SECONDS
    timeout -k 5 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "   rc=$rc in $((SECONDS - start))s$([ "$rc" -eq 124 ] && echo ' (TIMED OUT)')" | tee -a "$OUT/summary.txt"
    tail -n 3 "$OUT/$name.log" | sed 's/^/   | /' | tee -a "$OUT/summary.txt"
    [ "$rc" -eq 0 ] || status=1
}

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  device: $DEVICE  quick: ${QUICK:-0}  python: $PY"
    git rev-parse HEAD 2>/dev/null || echo "no git checkout"
    "$PY" -c "
import importlib, platform, sys
print('python', platform.python_version())
for name in ('torch', 'numpy', 'tiktoken', 'safetensors', 'transformers', 'pytest', 'hypothesis', 'matplotlib',
             'regex', 'tqdm', 'triton'):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as error:
        print(name, 'MISSING:', repr(error))
import torch
print('cuda', torch.version.cuda, 'available', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '',
      'bf16', torch.cuda.is_available() and torch.cuda.is_bf16_supported())
print('cpu threads', torch.get_num_threads())
"
    for cc in cc gcc g++ clang; do printf '%s: %s\n' "$cc" "$(command -v "$cc" || echo missing)"; done
    nvidia-smi || echo "nvidia-smi: not available"
} > "$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt" | head -20

step cuda-tests 90 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py
step benchmarks 150 "$PY" -m benchmarks --device "$DEVICE" --impl torch \
    --workloads components,forward,generate-kv-cache,train-step "${SHAPES[@]}" --out "$OUT/bench" --tag gpu
for dtype in float32 bf16; do  # checkpoints (~150 MB a run) stay in $SCRATCH; the metrics and plot come back
    step "train-$dtype" 30 "$PY" -m gpt_cli train --impl torch --device "$DEVICE" --dtype "$dtype" --config small \
        --max-steps "$TRAIN_STEPS" --eval-every 20 --keep 1 --no-progress --out "$SCRATCH/train-$dtype"
    mkdir -p "$OUT/train-$dtype"
    cp "$SCRATCH/train-$dtype/"{metrics.jsonl,loss-plot.png} "$OUT/train-$dtype/" 2>/dev/null
done
step compile-forward 90 "$PY" -m benchmarks --device "$DEVICE" --impl torch --compile \
    --workloads forward "${COMPILE_SHAPES[@]}" --out "$OUT/bench-compile" --tag gpu-compile-forward
step compile-train 120 "$PY" -m benchmarks --device "$DEVICE" --impl torch --compile \
    --workloads train-step "${COMPILE_SHAPES[@]}" --out "$OUT/bench-compile" --tag gpu-compile-train
step train-compile 60 "$PY" -m gpt_cli train --impl torch --device "$DEVICE" --compile --config small \
    --max-steps "$TRAIN_STEPS" --eval-every 20 --keep 1 --no-progress --out "$SCRATCH/train-compile"
cp "$SCRATCH/train-compile/metrics.jsonl" "$OUT/train-compile.metrics.jsonl" 2>/dev/null
echo "results in $OUT (rc=$status, $((SECONDS - started))s in all)" | tee -a "$OUT/summary.txt"
exit $status
