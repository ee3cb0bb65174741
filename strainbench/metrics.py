"""The benchmark's metric (DESIGN.md): MAE against ground truth outside the reference region.

For ``exx, eyy, exy``: mean of ``|estimate - label|`` over the scan positions outside the reference
region where the method gave an answer. For ``theta``: the same with the label taken relative to
the reference grain's rotation and the difference wrapped into ``[-s/2, s/2)`` with ``s`` the
lattice's rotational symmetry (60 degrees hexagonal, 90 square). Coverage is the fraction of the
positions outside the reference region where all of ``exx, eyy, exy`` are finite. No offset is
removed and nothing is fitted to the labels.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .io.conventions import wrap_angle_deg
from .io.dataset import STRAIN_LABELS, DatasetReader
from .io.strain import read_strain


def _mean_abs(errors: np.ndarray) -> float | None:
    errors = errors[np.isfinite(errors)]
    return float(np.mean(np.abs(errors))) if errors.size else None


def strain_errors(labels: dict[str, np.ndarray], estimate: dict[str, np.ndarray], reference_mask: np.ndarray, symmetry_deg: float) -> dict[str, np.ndarray]:
    """Per-position signed errors (NaN where no answer), over the positions outside the reference."""
    outside = ~reference_mask
    ref_theta = float(np.median(labels["theta"][reference_mask]))
    errors = {k: (estimate[k].astype(np.float64) - labels[k])[outside] for k in ("exx", "eyy", "exy")}
    theta_true = labels["theta"].astype(np.float64) - ref_theta
    errors["theta"] = wrap_angle_deg(estimate["theta"].astype(np.float64) - theta_true, symmetry_deg)[outside]
    return errors


def evaluate(dataset: str | os.PathLike, strain: str | os.PathLike) -> dict[str, Any]:
    """MAE of ``exx, eyy, exy`` (dimensionless) and ``theta`` (degrees), and coverage (0..1)."""
    with DatasetReader(dataset) as ds:
        labels = ds.labels()
        mask = ds.reference_mask
        attrs = ds.attrs
        scan_shape = ds.scan_shape
    est = read_strain(strain, scan_shape)
    symmetry = float(attrs.get("symmetry_deg", 360.0))
    errors = strain_errors(labels, {k: est[k] for k in STRAIN_LABELS}, mask, symmetry)
    answered = np.isfinite(errors["exx"]) & np.isfinite(errors["eyy"]) & np.isfinite(errors["exy"])
    return {
        "dataset": os.fspath(dataset),
        "strain": os.fspath(strain),
        "method": est.attrs["method"],
        "method_version": est.attrs["method_version"],
        "device": est.attrs["device"],
        "wall_seconds": float(est.attrs["wall_seconds"]),
        "error": est.attrs.get("error"),
        "noise_level": float(attrs.get("noise_level", float("nan"))),
        "seed": attrs.get("seed"),
        "n_positions": int(answered.size),
        "coverage": float(answered.mean()) if answered.size else 0.0,
        "mae": {k: _mean_abs(v) for k, v in errors.items()},
    }
