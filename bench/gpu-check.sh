#!/usr/bin/env bash
# Every GPU measurement the open issues ask for, in one run on the lent GPU
# machine (shared/GPU.md). Prepared without a GPU: NOT RUN YET.
#
# Here (no GPU), once per session:
#   bash ../shared/gpu/make-cuda-home.sh $HOME/cuda
#   export CUDA_HOME=$HOME/cuda/cuda13 PATH=$HOME/cuda/cuda13/bin:$PATH CUDA_COMPUTE_CAP=90 CUDAFORGE_THREADS=2
#   CARGO_TARGET_DIR=target/cuda cargo build --release -p virl-studio --features cuda --bin virl
#       # 17m42s on 2 cores on 2026-11-26 (it builds; nothing has run on a GPU yet)
#   mkdir -p .gpu && strip -o .gpu/virl target/cuda/release/virl   # 86 MB
#   xz -T2 -6 -c .gpu/virl > .gpu/virl.xz && rm .gpu/virl          # 14 MB: fits the 64 MiB carry
#   cp ../shared/gpu/run-on-gpu.sh .gpu/
# Then, with the device tool (carry: .gpu):
#   bash bench/gpu-check.sh            # writes everything under $OUT
set -u
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
V="bash .gpu/run-on-gpu.sh .gpu/virl.xz"
log() { echo "== $*" | tee -a "$OUT/log.txt"; }
run() { log "$*"; "$@" >>"$OUT/log.txt" 2>&1 || log "FAILED ($?): $*"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$OUT/gpu.txt" 2>&1
python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__)" >"$OUT/versions.txt" 2>&1

# Issue 3: ZoomNet on the GPU against PyTorch, and the CPU baseline, same machine.
run $V bench policy --device cuda --iters 10
run python3 bench/torch_reference.py --device cuda --iters 10
run $V bench train --device cuda --iters 5
run $V bench policy --device cpu --iters 3
run python3 bench/torch_reference.py --device cpu --iters 3

# Issue 6: Qwen3-VL equivalence with transformers (the reference is built on
# the CPU in f32 and bf16; ours runs on the GPU) ...
run python3 bench/qwen3vl_reference.py --out "$OUT/qref"
run $V vlm compare --model "$OUT/qref/model" --reference "$OUT/qref/reference.safetensors" --device cuda
run $V vlm compare --model "$OUT/qref/model" --reference "$OUT/qref/reference-bf16.safetensors" --device cuda --dtype bf16
# ... and tokens/s against transformers' generate, tiny and Qwen3-VL-2B shapes.
run $V vlm init --preset tiny --out "$OUT/q-tiny"
run $V bench vlm --model "$OUT/q-tiny" --device cuda --crop-side 0 --reps 5
run python3 bench/qwen3vl_speed.py --model "$OUT/q-tiny" --device cuda --reps 5
run $V vlm init --preset 2b --out "$OUT/q-2b"
for G in 1 8; do
  run $V bench vlm --model "$OUT/q-2b" --device cuda --dtype bf16 --image-side 512 --new-tokens 128 --crop-side 0 --reps 3 --group $G
done
run python3 bench/qwen3vl_speed.py --model "$OUT/q-2b" --device cuda --dtype bf16 --image-side 512 --new-tokens 128 --reps 3
rm -rf "$OUT/q-2b" "$OUT/qref/model"
log done
