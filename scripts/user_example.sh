#!/usr/bin/env bash
# The committed user-data example: a labelled dataset's patterns saved as a bare .npy (no probe,
# no labels, no reference mask), run as a user's own scan, then scored against the labels kept aside.
# Usage: bash scripts/user_example.sh DATASET.h5 NAME   (writes results/user_NAME/)
#   bash scripts/user_example.sh results/quick_spots_s2/datasets/s2_w0.25.h5 scan_quick_spots_s2_w25
set -euo pipefail
dataset=$1
stem=$2
mkdir -p dev
# the patterns, and an 8 x 8 rectangle inside the reference grain (what a user would pick by eye)
region=$(python - "$dataset" "dev/$stem.npy" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1]) as f:
    np.save(sys.argv[2], f["datacube"][()])
    mask = f["reference_mask"][()]
n = 8
x, y = next((x, y) for x in range(mask.shape[0] - n + 1) for y in range(mask.shape[1] - n + 1) if mask[x:x + n, y:y + n].all())
print(f"{x}:{x + n},{y}:{y + n}")
PY
)
snakemake --cores all --config user_data="dev/$stem.npy" reference_region="$region"
for method in $(ls "results/user_$stem/strain"); do
  strainbench evaluate --dataset "$dataset" --strain "results/user_$stem/strain/$method/user.h5" --out "results/user_$stem/scored_$method.json"
done
