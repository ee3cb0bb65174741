#!/usr/bin/env bash
# Regenerate the simulator figures committed under results/reference/simulator/ (docs/simulator.md).
# Usage: bash scripts/simulator_figures.sh   (about 1 minute on two cores)
set -euo pipefail
out=results/reference/simulator
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
for cfg in tiny config; do
  strainbench clean --config "config/$cfg.yaml" --seed 1 --out "$work/$cfg-clean.h5" --no-progress
  for w in 0 0.25 0.7; do
    strainbench simulate --config "config/$cfg.yaml" --seed 1 --noise-level "$w" \
      --clean "$work/$cfg-clean.h5" --out "$work/$cfg-$w.h5" --no-progress
  done
  strainbench figures patterns --datasets "$work/$cfg-0.h5" "$work/$cfg-0.25.h5" "$work/$cfg-0.7.h5" \
    --out "$out/patterns_$cfg.png"
  strainbench figures ground-truth --datasets "$work/$cfg-0.h5" --out "$out/ground_truth_$cfg.png"
done
