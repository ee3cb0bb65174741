"""From each pattern's affine transform to the contract's strain maps.

A pattern whose warp by ``A`` matches the base has its reciprocal lattice at ``A`` times the
base's (``ccstae.affine``), so relative to the reference region (the median ``A_ref`` of its
patterns, :func:`reference_affine`) the reciprocal deformation is ``M = A A_ref^-1`` and the
real-space deformation ``F = M^-T``; the left polar decomposition ``F = (I + E) R(theta)`` gives
the strain and rotation.

A base with a rotational symmetry (60 degrees for a hexagonal lattice) is matched equally well by
``A`` and ``A R(k sym)``: the fit may put patterns of one grain into different such basins, and the
strain ``E`` does not depend on the choice (``R(k sym)`` maps the base's lattice onto itself). The
median of the reference region does: the element-wise median of affines from several basins is no
affine of any (on ``tiny`` at 70% noise the reference region's patterns fell into six basins 60
degrees apart and every strain came out as -0.5). So ``A_ref`` is the median over the reference
region's most populated basin only.
"""

from __future__ import annotations

import numpy as np

from strainbench.io import deformation_from_reciprocal, strain_from_deformation, wrap_angle_deg


BASIN_HALF_WIDTH_DEG = 15.0  # a quarter of the smallest lattice symmetry (60 degrees): basins stay apart


def reference_affine(A: np.ndarray) -> np.ndarray:
    """Element-wise median ``(2, 2)`` of the reference region's affines ``A`` ``(n, 2, 2)`` whose
    rotation angle lies within ``BASIN_HALF_WIDTH_DEG`` of the most populated such window (1-degree
    bins, circular): one basin of the base's rotational symmetry. A region whose affines all lie
    in one basin gives the plain median."""
    angle = np.degrees(np.arctan2(A[:, 1, 0] - A[:, 0, 1], A[:, 0, 0] + A[:, 1, 1]))
    counts = np.bincount(np.floor(angle % 360.0).astype(int) % 360, minlength=360)
    half = int(BASIN_HALF_WIDTH_DEG)
    windows = np.convolve(np.concatenate([counts[-half:], counts, counts[:half]]), np.ones(2 * half + 1), mode="valid")
    centre = np.argmax(windows) + 0.5
    in_basin = np.abs(wrap_angle_deg(angle - centre, 360.0)) <= BASIN_HALF_WIDTH_DEG + 0.5
    return np.median(A[in_basin], axis=0)


def strain_maps(A: np.ndarray, scan_shape: tuple[int, int], reference_mask: np.ndarray, symmetry_deg: float = 360.0) -> dict[str, np.ndarray]:
    """Contract maps ``exx, eyy, exy, theta`` from per-pattern ``A`` ``(N, 2, 2)`` (scan order);
    ``theta`` (degrees) is the one of the symmetry-equivalent rotations nearest the reference
    region's, in ``[-symmetry_deg / 2, symmetry_deg / 2)``."""
    A = A.reshape(scan_shape + (2, 2))
    A_ref = reference_affine(A[reference_mask])
    F = deformation_from_reciprocal(A @ np.linalg.inv(A_ref))
    exx, eyy, exy, theta = strain_from_deformation(F)
    return {"exx": exx, "eyy": eyy, "exy": exy, "theta": wrap_angle_deg(theta, symmetry_deg).astype(theta.dtype)}
