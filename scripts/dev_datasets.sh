#!/usr/bin/env bash
# Datasets of one config's development seed (its dev_seed) at chosen noise levels, and their
# noise-free cache, for tuning and for the evidence in docs/ (scripts/method_variants.py).
# Usage: bash scripts/dev_datasets.sh CONFIG OUTDIR [LEVEL ...]   (default levels 0 0.25 0.5 0.7)
#   bash scripts/dev_datasets.sh config/config.yaml dev/spots
set -euo pipefail
config=$1; out=$2; shift 2
[ $# -gt 0 ] && levels=("$@") || levels=(0 0.25 0.5 0.7)
seed=$(python -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['dev_seed'])" "$config")
mkdir -p "$out"
strainbench clean --config "$config" --seed "$seed" --out "$out/clean.h5" --no-progress
for w in "${levels[@]}"; do
  strainbench simulate --config "$config" --seed "$seed" --noise-level "$w" --clean "$out/clean.h5" \
    --out "$out/w$w.h5" --no-progress
done
