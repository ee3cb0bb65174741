"""Where a method's error above the Cramér-Rao limit comes from: each grain's systematic offset
(bias) against its scatter, beside the limit, grain by grain.

    python scripts/error_budget.py --dataset results/quick_spots/datasets/s1_w0.25.h5 \
        --bound results/quick_spots/bound/s1_w0.25.json \
        --strain ccstae=results/quick_spots/strain/ccstae/s1_w0.25.h5 \
        --strain py4dstem=results/quick_spots/strain/py4dstem/s1_w0.25.h5

Over the crystal outside the reference region (as the table's MAE), for each method: the MAE, the
MAE once every grain's mean error is taken away (what is left is scatter; an efficient unbiased
estimator would reach the limit), and the limit; then per grain, its thickness (layers), the
positions answered, and for each method the grain's offset (mean error) and scatter (standard
deviation), each the mean over exx, eyy and exy, x 1e-3, beside the grain's limit
(``sqrt(2 / pi) sigma``, the MAE of an efficient estimator).
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from strainbench.io import DatasetReader, read_strain
from strainbench.metrics import scored_positions, strain_errors

KEYS = ("exx", "eyy", "exy")


def grain_errors(labels: dict, estimate, reference: np.ndarray, symmetry_deg: float) -> dict[int, np.ndarray]:
    """Errors ``(n, 3)`` of the answered scored positions (those of the table's MAE), per grain id."""
    errors = strain_errors(labels, estimate, reference, symmetry_deg)
    error = np.stack([errors[k] for k in KEYS], -1)
    grain = labels["grain"][scored_positions(labels, reference)]
    answered = np.isfinite(error).all(-1)
    return {int(g): error[answered & (grain == g)] for g in np.unique(grain)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--bound", required=True, help="the dataset's bound JSON (strainbench bound)")
    parser.add_argument("--strain", action="append", required=True, help="NAME=strain file")
    args = parser.parse_args(argv)
    with DatasetReader(args.dataset) as ds:
        labels, reference = ds.labels(), ds.reference_mask
        layers = np.atleast_1d(ds.attrs.get("grain_layers", []))
        symmetry = float(ds.attrs.get("symmetry_deg", 360.0))
    bound = json.loads(open(args.bound).read())
    factor = math.sqrt(2 / math.pi)
    limit = {g["grain"]: factor * np.mean([g["sigma"][k] for k in KEYS]) for g in bound["grains"]}
    methods = dict(item.split("=", 1) for item in args.strain)
    errors = {name: grain_errors(labels, read_strain(path, labels["grain"].shape), reference, symmetry) for name, path in methods.items()}
    print("| method | MAE | MAE less each grain's offset | limit |  (x 1e-3, mean of exx / eyy / exy)")
    print("|---|---|---|---|")
    for name, per_grain in errors.items():
        all_errors = np.concatenate([e for e in per_grain.values() if len(e)])
        scatter = np.concatenate([e - e.mean(0) for e in per_grain.values() if len(e)])
        print(f"| {name} | {1e3 * np.abs(all_errors).mean():.3f} | {1e3 * np.abs(scatter).mean():.3f} | {1e3 * np.mean([bound['mae_bound'][k] for k in KEYS]):.3f} |")
    print()
    head = " | ".join(f"{n} offset | {n} scatter" for n in errors)
    print(f"| grain | layers | positions | {head} | limit |")
    print("|---|---|---|" + "---|---|" * len(errors) + "---|")
    for g in sorted(errors[next(iter(errors))]):
        cells = []
        for per_grain in errors.values():
            e = per_grain[g]
            cells += [f"{1e3 * np.abs(e.mean(0)).mean():.3f}", f"{1e3 * e.std(0).mean():.3f}"] if len(e) else ["-", "-"]
        thickness = int(layers[g]) if g < len(layers) else "-"
        print(f"| {g} | {thickness} | {len(errors[next(iter(errors))][g])} | {' | '.join(cells)} | {1e3 * limit[g]:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
