#!/usr/bin/env bash
# The shipped generator's whole recipe from scratch on one GPU, then its evaluation, with every result in one
# folder that can be copied back:
#
#   bash scripts/train-generator-gpu.sh [OUT_DIR]     # default: $OUT when set (a lent GPU machine), else runs/gpu
#
# It runs `python -m training rebuild gan --device cuda`, the same command that trains on the CPU: on CUDA the
# training command picks a batch of 256 with both learning rates doubled (training.loop.fit_to_device), keeps
# the data set on the GPU and computes in bf16. Its budget is 10 minutes on one H100-class GPU; `timings.txt`
# records what each part took. Interrupted, run it again: the rebuild resumes from the last finished epoch.
#
# Left in OUT_DIR: rebuild/ (every run directory: options, statistics, grids, GIF, curves, TensorBoard, the
# resume state and the checkpoints), generator/ and discriminator/ (the checkpoints, ready for models/weights/
# after review), evaluation.json and evaluation.md (`evaluate` on the new generator), timings.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-${OUT:-runs/gpu}}"
mkdir -p "$out"
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "train-generator-gpu: no CUDA device here; the same recipe runs on the CPU with:" >&2
  echo "  python -m training rebuild gan --out $out/rebuild" >&2
  exit 2
fi

started=$(date +%s)
python -m training rebuild gan --out "$out/rebuild" --device cuda --no-progress 2>&1 | tee "$out/rebuild.log"
trained=$(date +%s)
product=$(python -c "from training.commands.rebuild import shipped; print(shipped('gan', '$out/rebuild')['generator'].parent)")
rm -rf "$out/generator" "$out/discriminator"
cp -r "$product/generator" "$product/discriminator" "$out/"
python -m training evaluate --generator "$out/generator" --device cuda --out "$out/evaluation.json" \
  --metrics fid,gan_test,precision_recall,gan_train --no-progress 2>&1 | tee "$out/evaluate.log"
finished=$(date +%s)
{
  echo "device: $(python -c 'import torch; print(torch.cuda.get_device_name(0))')"
  echo "training: $((trained - started)) s"
  echo "evaluation: $((finished - trained)) s"
  echo "total: $((finished - started)) s"
} | tee "$out/timings.txt"
