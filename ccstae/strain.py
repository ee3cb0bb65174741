"""From each pattern's affine transform to the contract's strain maps.

A pattern whose warp by ``A`` matches the base has its reciprocal lattice at ``A`` times the
base's (``ccstae.affine``), so relative to the reference region (the median ``A_ref`` of its
patterns) the reciprocal deformation is ``M = A A_ref^-1`` and the real-space deformation
``F = M^-T``; the left polar decomposition ``F = (I + E) R(theta)`` gives the strain and rotation.
"""

from __future__ import annotations

import numpy as np

from strainbench.io import deformation_from_reciprocal, strain_from_deformation


def strain_maps(A: np.ndarray, scan_shape: tuple[int, int], reference_mask: np.ndarray) -> dict[str, np.ndarray]:
    """Contract maps ``exx, eyy, exy, theta`` from per-pattern ``A`` ``(N, 2, 2)`` (scan order)."""
    A = A.reshape(scan_shape + (2, 2))
    A_ref = np.median(A[reference_mask], axis=0)
    F = deformation_from_reciprocal(A @ np.linalg.inv(A_ref))
    exx, eyy, exy, theta = strain_from_deformation(F)
    return {"exx": exx, "eyy": eyy, "exy": exy, "theta": theta}
