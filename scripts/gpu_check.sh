#!/usr/bin/env bash
# GPU path check (<= 3 minutes on one GPU): resnet56 on synthetic CIFAR-shaped data,
# one training epoch, a 21-point train+test probe curve (fp32, then bf16 autocast),
# each next to a plain torch.no_grad forward loop at the same batch size.
# Usage: scripts/gpu_check.sh [OUT_DIR]     (needs torch with CUDA; run from the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
python3 -m asymvalley.bench.gpu_check --device cuda --out "$out/gpu_check_fp32.json"
python3 -m asymvalley.bench.gpu_check --device cuda --autocast bf16 --out "$out/gpu_check_bf16.json"
