"""Methods side by side on data without ground truth: coverage and pairwise agreement.

For each pair of methods, the mean absolute difference of exx, eyy and exy over the positions
outside the reference region where both gave an answer; for each method, its coverage. No MAE:
without labels, agreement between independent methods is the available evidence.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Mapping

import numpy as np

from .io.atomic import atomic_path
from .io.dataset import DatasetReader
from .io.strain import read_strain

STRAIN = ("exx", "eyy", "exy")


def agreement(dataset: str | os.PathLike, strains: Mapping[str, str | os.PathLike]) -> dict:
    """Coverage per method and pairwise mean absolute differences (dimensionless strain)."""
    with DatasetReader(dataset) as ds:
        scan_shape, outside = ds.scan_shape, ~ds.reference_mask
    maps = {name: read_strain(path, scan_shape) for name, path in strains.items()}
    coverage = {n: float(np.isfinite(m["exx"][outside]).mean()) for n, m in maps.items()}
    pairs = {}
    for a, b in itertools.combinations(sorted(maps), 2):
        both = outside & np.isfinite(maps[a]["exx"]) & np.isfinite(maps[b]["exx"])
        pairs[f"{a} vs {b}"] = {
            "positions": int(both.sum()),
            **{k: (float(np.abs(maps[a][k] - maps[b][k])[both].mean()) if both.any() else None) for k in STRAIN},
        }
    return {"dataset": str(dataset), "coverage": coverage, "mean_abs_difference": pairs}


def write_agreement(result: dict, out_md: str | os.PathLike) -> None:
    """``<out>.md`` (tables in 1e-3) and ``<out>.json`` beside it, atomically."""
    lines = ["Coverage (positions outside the reference region with an answer):", "", "| method | coverage |", "|---|---|"]
    lines += [f"| {n} | {c:.1%} |" for n, c in result["coverage"].items()]
    lines += ["", "Mean absolute difference between methods (x 1e-3), where both answered:", ""]
    lines += ["| pair | positions | exx | eyy | exy |", "|---|---|---|---|---|"]
    for pair, d in result["mean_abs_difference"].items():
        cells = ["n/a" if d[k] is None else f"{d[k] * 1e3:.2f}" for k in STRAIN]
        lines.append(f"| {pair} | {d['positions']} | " + " | ".join(cells) + " |")
    with atomic_path(out_md) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    with atomic_path(os.path.splitext(str(out_md))[0] + ".json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
