"""The benchmark's metric (docs/contract.md): MAE against ground truth outside the reference region.

For ``exx, eyy, exy``: mean of ``|estimate - label|`` over the crystal's scan positions outside the
reference region where the method gave an answer (vacuum, grain id -1, is not scored). For ``theta``: the same with the label taken relative to
the reference grain's rotation and the difference wrapped into ``[-s/2, s/2)`` with ``s`` the
lattice's rotational symmetry (60 degrees hexagonal, 90 square). Coverage is the fraction of the
crystal positions outside the reference region where all of ``exx, eyy, exy`` are finite. In vacuum
a method should give no answer: ``vacuum_false_answers`` is the fraction of vacuum positions where
it did (all three finite; None without vacuum). No offset is removed and nothing is fitted to the
labels.

Per grain (:func:`grain_errors`, in every metrics file under ``grains``): the same errors split by
the grain of ``labels/grain``, with the median signed error (a grain's offset: the positions of a
grain share one strain, so on noise-free data every position carries the same error) beside the MAE,
and the grain's thickness (layers) and tilt where the dataset's provenance records them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .io.conventions import wrap_angle_deg
from .io.dataset import STRAIN_LABELS, DatasetReader
from .io.strain import read_strain


def _mean_abs(errors: np.ndarray) -> float | None:
    errors = errors[np.isfinite(errors)]
    return float(np.mean(np.abs(errors))) if errors.size else None


def scored_positions(labels: dict[str, np.ndarray], reference_mask: np.ndarray) -> np.ndarray:
    """The positions the MAE is taken over: crystal (grain id >= 0) outside the reference region."""
    return ~reference_mask & (labels["grain"] >= 0)


def strain_errors(labels: dict[str, np.ndarray], estimate: dict[str, np.ndarray], reference_mask: np.ndarray, symmetry_deg: float) -> dict[str, np.ndarray]:
    """Per-position signed errors (NaN where no answer), over :func:`scored_positions`."""
    outside = scored_positions(labels, reference_mask)
    ref_theta = float(np.median(labels["theta"][reference_mask]))
    errors = {k: (estimate[k].astype(np.float64) - labels[k])[outside] for k in ("exx", "eyy", "exy")}
    theta_true = labels["theta"].astype(np.float64) - ref_theta
    errors["theta"] = wrap_angle_deg(estimate["theta"].astype(np.float64) - theta_true, symmetry_deg)[outside]
    return errors


def _answered(errors: dict[str, np.ndarray]) -> np.ndarray:
    """Where all of ``exx, eyy, exy`` have an error (the method gave an answer)."""
    return np.isfinite(errors["exx"]) & np.isfinite(errors["eyy"]) & np.isfinite(errors["exy"])


def _median(errors: np.ndarray) -> float | None:
    errors = errors[np.isfinite(errors)]
    return float(np.median(errors)) if errors.size else None


def grain_errors(
    errors: dict[str, np.ndarray],
    grain: np.ndarray,
    layers: Sequence[int] | None = None,
    tilt_deg: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """Per grain: positions, coverage, median signed error and MAE of ``exx, eyy, exy`` (and MAE of
    ``theta``, degrees).

    ``errors`` are :func:`strain_errors`' per-position errors (positions outside the reference),
    ``grain`` the grain ids of those positions. ``layers`` (per grain id) and ``tilt_deg`` (per
    grain id, two angles each, flattened, as the simulator's ``grain_tilt_deg`` attribute) add the
    grain's thickness and tilt magnitude (degrees) to its row.
    """
    tilt = None if tilt_deg is None else np.hypot(*np.asarray(tilt_deg, dtype=np.float64).reshape(-1, 2).T)
    answered = _answered(errors)
    rows = []
    for g in np.unique(grain):
        on = grain == g
        row: dict[str, Any] = {"grain": int(g), "positions": int(on.sum()), "coverage": float(answered[on].mean())}
        if layers is not None and g < len(layers):
            row["layers"] = int(layers[g])
        if tilt is not None and g < len(tilt):
            row["tilt_deg"] = float(tilt[g])
        row["median_error"] = {k: _median(errors[k][on]) for k in ("exx", "eyy", "exy")}
        row["mae"] = {k: _mean_abs(errors[k][on]) for k in ("exx", "eyy", "exy", "theta")}
        rows.append(row)
    return rows


def evaluate(dataset: str | os.PathLike, strain: str | os.PathLike) -> dict[str, Any]:
    """MAE of ``exx, eyy, exy`` (dimensionless) and ``theta`` (degrees), coverage (0..1), and the
    same per grain (:func:`grain_errors`)."""
    with DatasetReader(dataset) as ds:
        labels = ds.labels()
        mask = ds.reference_mask
        attrs = ds.attrs
        scan_shape = ds.scan_shape
    est = read_strain(strain, scan_shape)
    symmetry = float(attrs.get("symmetry_deg", 360.0))
    estimate = {k: est[k] for k in STRAIN_LABELS}
    errors = strain_errors(labels, estimate, mask, symmetry)
    answered = _answered(errors)
    vacuum = labels["grain"] < 0
    in_vacuum = _answered({k: estimate[k][vacuum] for k in ("exx", "eyy", "exy")})
    layers = attrs.get("grain_layers")
    reference_grain = int(np.bincount(labels["grain"][mask].astype(np.int64)).argmax()) if mask.any() else -1
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
        "vacuum_positions": int(vacuum.sum()),
        "vacuum_false_answers": float(in_vacuum.mean()) if in_vacuum.size else None,
        "grains": grain_errors(errors, labels["grain"][scored_positions(labels, mask)], layers, attrs.get("grain_tilt_deg")),
        "reference_grain": reference_grain,
        "reference_layers": int(layers[reference_grain]) if layers is not None and 0 <= reference_grain < len(layers) else None,
    }


def grain_table(grains: list[dict[str, Any]]) -> str:
    """:func:`grain_errors`' rows as a Markdown table, strain x 1e-3, thinnest grains first."""

    def f(v: float | None) -> str:
        return "-" if v is None else f"{v * 1e3:+.2f}"

    lines = [
        "| grain | layers | tilt (deg) | positions | coverage | median error exx / eyy / exy (x 1e-3) | MAE exx / eyy / exy (x 1e-3) |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in sorted(grains, key=lambda g: (g.get("layers", 0), g["grain"])):
        med, mae = g["median_error"], g["mae"]
        tilt = f"{g['tilt_deg']:.2f}" if "tilt_deg" in g else "-"
        lines.append(
            f"| {g['grain']} | {g.get('layers', '-')} | {tilt} | {g['positions']} | {g['coverage']:.1%} | "
            f"{' / '.join(f(med[k]) for k in ('exx', 'eyy', 'exy'))} | "
            f"{' / '.join('-' if mae[k] is None else f'{mae[k] * 1e3:.2f}' for k in ('exx', 'eyy', 'exy'))} |"
        )
    return "\n".join(lines)
