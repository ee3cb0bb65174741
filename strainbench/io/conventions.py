"""The strain and axis conventions of the data contract (docs/contract.md, version 1).

Axes: ``x`` is array axis 0 (rows), ``y`` is axis 1 (columns), for the scan ``(Rx, Ry)`` and the
detector ``(Qx, Qy)`` alike. Rotations act on ``(x, y)`` column vectors::

    R(t) = [[cos t, -sin t],
            [sin t,  cos t]]

A grain's real-space lattice is ``A = (I + E) R(theta) A0`` (columns of ``A`` are lattice vectors),
so the reciprocal lattice on the detector is ``G = (I + E)^-T R(theta) G0``. ``E`` is the symmetric
lab-frame strain (``exy`` is tensor shear, half the engineering shear) and ``theta`` the rotation in
degrees. ``I + E`` is the left stretch of ``F = (I + E) R(theta)``; it does not depend on which
symmetry-equivalent rotation of the crystal is chosen.

Every method measures ``F`` relative to the reference region and calls
:func:`strain_from_deformation` to express it in these conventions.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "rotation_matrix",
    "deformation_gradient",
    "reciprocal_deformation",
    "strain_from_deformation",
    "deformation_from_reciprocal",
    "wrap_angle_deg",
    "reduced_basis",
    "lattice_symmetry_deg",
]


def rotation_matrix(theta_deg: float | np.ndarray) -> np.ndarray:
    """``R(theta)`` for angles in degrees; shape ``(..., 2, 2)``."""
    t = np.deg2rad(np.asarray(theta_deg, dtype=np.float64))
    c, s = np.cos(t), np.sin(t)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def deformation_gradient(
    exx: float | np.ndarray,
    eyy: float | np.ndarray,
    exy: float | np.ndarray,
    theta_deg: float | np.ndarray,
) -> np.ndarray:
    """Real-space deformation ``F = (I + E) R(theta)``, shape ``(..., 2, 2)``."""
    exx, eyy, exy = (np.asarray(v, dtype=np.float64) for v in (exx, eyy, exy))
    stretch = np.stack(
        [np.stack([1.0 + exx, exy], -1), np.stack([exy, 1.0 + eyy], -1)], -2
    )
    return stretch @ rotation_matrix(theta_deg)


def reciprocal_deformation(F: np.ndarray) -> np.ndarray:
    """The map ``F^-T`` that carries reciprocal vectors: ``G = F^-T G0``."""
    return np.swapaxes(np.linalg.inv(F), -1, -2)


def deformation_from_reciprocal(M: np.ndarray) -> np.ndarray:
    """Inverse of :func:`reciprocal_deformation`: ``F = M^-T`` for ``G = M G0``."""
    return np.swapaxes(np.linalg.inv(M), -1, -2)


def strain_from_deformation(F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Left polar decomposition ``F = (I + E) R(theta)``.

    Parameters
    ----------
    F : array (..., 2, 2)
        Real-space deformation relative to the reference, acting on ``(x, y)`` column vectors.
        Must have a positive determinant (a proper deformation, no mirror).

    Returns
    -------
    exx, eyy, exy, theta_deg : arrays (...)
        The symmetric lab-frame strain ``E = V - I`` with ``V = sqrt(F F^T)`` and the rotation
        ``R = V^-1 F`` in degrees, in (-180, 180]. NaN where ``F`` holds NaN.
    """
    F = np.asarray(F, dtype=np.float64)
    out_shape = F.shape[:-2]
    Ff = F.reshape(-1, 2, 2)
    finite = np.isfinite(Ff).all(axis=(1, 2))
    exx = np.full(Ff.shape[0], np.nan)
    eyy = np.full(Ff.shape[0], np.nan)
    exy = np.full(Ff.shape[0], np.nan)
    theta = np.full(Ff.shape[0], np.nan)
    if finite.any():
        Fg = Ff[finite]
        # V^2 = F F^T is symmetric positive definite; its square root via eigen-decomposition.
        w, Q = np.linalg.eigh(Fg @ np.swapaxes(Fg, 1, 2))
        V = (Q * np.sqrt(w)[:, None, :]) @ np.swapaxes(Q, 1, 2)
        Rm = np.linalg.solve(V, Fg)
        exx[finite] = V[:, 0, 0] - 1.0
        eyy[finite] = V[:, 1, 1] - 1.0
        exy[finite] = 0.5 * (V[:, 0, 1] + V[:, 1, 0])
        theta[finite] = np.rad2deg(np.arctan2(Rm[:, 1, 0], Rm[:, 0, 0]))
    return (
        exx.reshape(out_shape),
        eyy.reshape(out_shape),
        exy.reshape(out_shape),
        theta.reshape(out_shape),
    )


def wrap_angle_deg(angle_deg: np.ndarray | float, period_deg: float) -> np.ndarray:
    """Wrap angles into ``[-period/2, period/2)`` degrees (for symmetry-equivalent rotations)."""
    a = np.asarray(angle_deg, dtype=np.float64)
    return (a + 0.5 * period_deg) % period_deg - 0.5 * period_deg


def reduced_basis(vectors: np.ndarray) -> np.ndarray:
    """A lattice basis ``[g1 g2]`` (columns) chosen by one rule from lattice vectors ``(n, 2)``.

    ``g1`` is the shortest vector; ``g2`` the shortest at a counter-clockwise angle of 40..105
    degrees from ``g1`` (the 60-degree neighbour of a hexagonal lattice, the 90-degree one of a
    square lattice). Applied to every grain, the bases differ only by a strain and a proper
    rotation (never a mirror or a shear of the indexing), so ``B B_ref^-1`` is a valid relative
    reciprocal deformation for :func:`deformation_from_reciprocal`.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    lengths = np.linalg.norm(vectors, axis=1)
    g1 = vectors[np.argmin(lengths)]
    cross = g1[0] * vectors[:, 1] - g1[1] * vectors[:, 0]
    angle = np.degrees(np.arctan2(cross, vectors @ g1))
    candidates = np.flatnonzero((angle > 40) & (angle < 105))
    if candidates.size == 0:
        raise ValueError("no second lattice vector at 40..105 degrees from the shortest one")
    g2 = vectors[candidates[np.argmin(lengths[candidates])]]
    return np.column_stack([g1, g2])


def lattice_symmetry_deg(basis: np.ndarray) -> float:
    """In-plane rotational symmetry of the lattice spanned by the columns of ``basis`` ``(2, 2)``:
    60, 90 or 180 degrees (a rotation by it maps the lattice onto itself, within 8% of an index).
    Rotations of a pattern that differ by it are equivalent; a method reports one of them
    (:func:`wrap_angle_deg`)."""
    basis = np.asarray(basis, dtype=np.float64)
    for sym in (60.0, 90.0):
        coeffs = np.linalg.solve(basis, rotation_matrix(sym) @ basis)
        if np.allclose(coeffs, np.round(coeffs), atol=0.08):
            return sym
    return 180.0
