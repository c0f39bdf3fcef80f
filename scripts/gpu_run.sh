#!/usr/bin/env bash
# One prepared run for a CUDA machine, with no set-up: `make gpu` (or `bash scripts/gpu_run.sh`).
#
# Uses the machine's own python3 (a GPU image's torch with CUDA, numpy, tiktoken, safetensors,
# transformers, pytest, hypothesis, matplotlib) with PYTHONPATH=., and builds no .venv. In under
# 8 minutes it runs, each step under its own time limit so one slow step cannot eat the others:
#   1. the CUDA tests (tests/test_cuda.py: TF32 off, sync-free decode);
#   2. the CUDA benchmark rows: forward, generation, train step and the components, fp32 (TF32 off)
#      and bf16 autocast, beside torch on CPU for the CUDA-vs-CPU ratios;
#   3. a short training run of the small config on the GPU, in fp32 and in bf16 autocast.
# Everything lands in one folder, $OUT (default gpu-results/<date>). Merge it into a CPU report with
#   python -m benchmarks --compare $OUT/bench/gpu.json
# Dry run on a CPU machine first: DEVICE=cpu bash scripts/gpu_run.sh (the CUDA tests then skip).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-gpu-results/$(date -u +%Y%m%d-%H%M%S)}
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT"
status=0

step() {  # step NAME SECONDS COMMAND...: run one step under a limit, log it, remember a failure
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*" | tee -a "$OUT/summary.txt"
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "   rc=$rc in $((SECONDS - start))s" | tee -a "$OUT/summary.txt"
    tail -n 3 "$OUT/$name.log" | sed 's/^/   | /' | tee -a "$OUT/summary.txt"
    [ "$rc" -eq 0 ] || status=1
}

"$PY" -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda,
      'available', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" \
    > "$OUT/environment.txt" 2>&1
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true

step cuda-tests 120 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py
step benchmarks 300 "$PY" -m benchmarks --device "$DEVICE" --impl torch \
    --workloads components,forward,generate,train --seq-lens 128,1024 --repeats 5 --out "$OUT/bench" --tag gpu
step train 60 "$PY" -m gpt_cli train --impl torch --device "$DEVICE" --config small --max-steps 60 \
    --eval-every 20 --no-progress --out "$OUT/train"
step train-bf16 60 "$PY" -m gpt_cli train --impl torch --device "$DEVICE" --dtype bf16 --config small \
    --max-steps 60 --eval-every 20 --no-progress --out "$OUT/train-bf16"
echo "results in $OUT (rc=$status)"
exit $status
