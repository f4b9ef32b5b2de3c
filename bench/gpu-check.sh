#!/usr/bin/env bash
# Every GPU measurement the open issues ask for, in one run on the lent GPU
# machine (shared/GPU.md), each step under its own time limit so that one
# slow step cannot eat the session's device time.
#
# Here (no GPU), once per session:
#   bash ../shared/gpu/make-cuda-home.sh $HOME/cuda
#   export CUDA_HOME=$HOME/cuda/cuda13 PATH=$HOME/cuda/cuda13/bin:$PATH CUDA_COMPUTE_CAP=90 CUDAFORGE_THREADS=2
#   CARGO_TARGET_DIR=target/cuda cargo build --release -p virl-studio --features cuda --bin virl
#       # 16m56s on 2 cores on 2026-12-04
#   mkdir -p .gpu && strip -o .gpu/virl target/cuda/release/virl   # 87 MB
#   xz -T2 -6 -c .gpu/virl > .gpu/virl.xz && rm .gpu/virl          # fits the 64 MiB carry
#   cp ../shared/gpu/run-on-gpu.sh .gpu/
# Then, with the device tool (carry: .gpu):
#   bash bench/gpu-check.sh            # writes everything under $OUT
set -u
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
V="bash .gpu/run-on-gpu.sh .gpu/virl.xz"
T0=$(date +%s)
log() { echo "== [$(( $(date +%s) - T0 )) s] $*" | tee -a "$OUT/log.txt"; }
# run LIMIT_S CMD...: one step, cut at LIMIT_S seconds
run() { local lim=$1; shift; log "$*"; timeout "$lim" "$@" >>"$OUT/log.txt" 2>&1 || log "FAILED or cut ($?): $*"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$OUT/gpu.txt" 2>&1
python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__)" >"$OUT/versions.txt" 2>&1
xz -dkf .gpu/virl.xz && chmod +x .gpu/virl

# ZoomNet on the GPU against PyTorch on the GPU, and the CPU of the same machine.
run 60 $V bench policy --device cuda --iters 10
run 60 python3 bench/torch_reference.py --device cuda --iters 10
run 90 $V bench train --device cuda --iters 5
run 60 $V bench policy --device cpu --iters 3
run 60 python3 bench/torch_reference.py --device cpu --iters 3

# Time to target on the GPU: the default schedule (virl train, no config),
# seed 0, cut at 240 s; its evaluations carry their wall time.
S=/tmp/gpu-s0
run 240 $V train --device cuda --seed 0 --session "$S" --log
cp "$S"/metrics.jsonl "$S"/events.jsonl "$S"/session.toml "$OUT"/ 2>/dev/null

# Qwen3-VL: tokens/s against transformers' generate, tiny shapes.
run 60 $V vlm init --preset tiny --out "$OUT/q-tiny"
run 60 $V bench vlm --model "$OUT/q-tiny" --device cuda --crop-side 0 --reps 5
run 90 python3 bench/qwen3vl_speed.py --model "$OUT/q-tiny" --device cuda --reps 5
rm -rf "$OUT/q-tiny"
log done
