"""A reference strain measurement from disk positions, independent of the simulator's formula.

Used by the tests (to verify the simulator's ground truth) and by ``strainbench bias`` (to measure
the multiple-scattering bias of noise-free multislice data). It is not a benchmarked method. It
uses nothing of the simulator's geometry except the noise-free pattern and the vacuum probe:
disks are found as peaks of the cross-correlation with the probe, located sub-pixel either by the
centre of mass of the disk (``"com"``, for uniform kinematic disks) or by a fit of the disk's edge
(``"edge"``: cross-correlation of the gradient magnitudes of pattern and probe, whose peak does not
move with the intensity inside a disk), indexed from the two shortest lattice vectors, fitted by
least squares, and turned into strain relative to a reference by the contract's left polar
decomposition.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, optimize

from .io.conventions import deformation_from_reciprocal, reduced_basis, strain_from_deformation


def _correlate(image: np.ndarray, template_at_origin: np.ndarray) -> np.ndarray:
    return np.real(np.fft.ifft2(np.fft.fft2(image) * np.conj(np.fft.fft2(template_at_origin))))


def _centre_of(probe: np.ndarray) -> np.ndarray:
    xx, yy = np.indices(probe.shape)
    return np.array([(probe * xx).sum(), (probe * yy).sum()]) / probe.sum()


def _disk_radius(probe: np.ndarray) -> float:
    return float(np.sqrt((probe > 0.5 * probe.max()).sum() / np.pi))


def _edges(image: np.ndarray) -> np.ndarray:
    return ndimage.gaussian_gradient_magnitude(image, sigma=1.0)


def find_disks(pattern: np.ndarray, probe: np.ndarray, method: str = "com", rel_threshold: float = 0.05) -> np.ndarray:
    """Sub-pixel disk centres ``(n, 2)`` in pixels, the direct beam first."""
    centre = np.round(_centre_of(probe)).astype(int)
    r = _disk_radius(probe)
    at_origin = np.roll(probe, (-centre[0], -centre[1]), axis=(0, 1))
    corr = _correlate(pattern, at_origin)
    peaks = (corr == ndimage.maximum_filter(corr, size=int(r))) & (corr > 0)
    coords = np.argwhere(peaks)
    values = corr[peaks]
    order = np.argsort(-values)
    coords, values = coords[order], values[order]
    # thresholds relative to the diffracted disks, not the direct beam (the first peak)
    keep = values >= rel_threshold * values[1]
    keep[0] = True
    coords = coords[keep]
    margin = r + 3
    inside = np.all((coords >= margin) & (coords <= np.array(pattern.shape) - 1 - margin), axis=1)
    inside[0] = True
    coords = coords[inside].astype(np.float64)
    if method == "com":
        return np.array([_com_refine(pattern, c, r + 2.5) for c in coords])
    probe_edges = _edges(probe)
    pattern_edges = _edges(pattern)
    probe_centre = _centre_of(probe)
    return np.array([_edge_refine(pattern_edges, probe_edges, probe_centre, c, r + 3) for c in coords])


def _com_refine(pattern: np.ndarray, c: np.ndarray, radius: float, iterations: int = 3) -> np.ndarray:
    xx, yy = np.indices(pattern.shape)
    for _ in range(iterations):
        w = pattern * (np.hypot(xx - c[0], yy - c[1]) <= radius)
        c = np.array([(w * xx).sum(), (w * yy).sum()]) / w.sum()
    return c


def _edge_refine(pattern_edges: np.ndarray, probe_edges: np.ndarray, probe_centre: np.ndarray, c: np.ndarray, radius: float, iterations: int = 3) -> np.ndarray:
    """Disk centre maximising the overlap of the disk's edge with the probe's edge (sub-pixel).

    The probe's gradient magnitude is sampled at ``p - c + probe_centre`` by cubic splines; the
    overlap is summed over a window of ``radius`` around the coarse centre ``c``.
    """
    xx, yy = np.indices(pattern_edges.shape)
    spline = ndimage.spline_filter(probe_edges, order=3)
    for _ in range(iterations):  # the window follows the estimate, so that it cuts the edge evenly
        window = np.hypot(xx - c[0], yy - c[1]) <= radius
        px, py = xx[window].astype(float), yy[window].astype(float)
        weights = pattern_edges[window]

        def overlap(centre):
            coords = np.stack([px - centre[0] + probe_centre[0], py - centre[1] + probe_centre[1]])
            return -np.dot(weights, ndimage.map_coordinates(spline, coords, order=3, prefilter=False))

        c = optimize.minimize(overlap, c, method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-12}).x
    return c


def fit_lattice(disks: np.ndarray) -> np.ndarray:
    """Reciprocal basis (columns, pixels) fitted to disk centres; the direct beam is ``disks[0]``.

    The starting basis follows the contract's :func:`reduced_basis` rule; all disks are then
    indexed on it and the basis refined by least squares.
    """
    g = disks[1:] - disks[0]
    B = reduced_basis(g)
    for _ in range(2):
        hk = np.linalg.solve(B, g.T).T
        idx = np.round(hk)
        ok = np.all(np.abs(hk - idx) < 0.2, axis=1) & np.any(idx != 0, axis=1)
        B = np.linalg.lstsq(idx[ok], g[ok], rcond=None)[0].T
    return B


def strain_relative(B: np.ndarray, B_ref: np.ndarray) -> tuple[float, float, float, float]:
    """``exx, eyy, exy, theta`` of a grain with reciprocal basis ``B`` relative to ``B_ref``."""
    F = deformation_from_reciprocal(B @ np.linalg.inv(B_ref))
    return tuple(float(v) for v in strain_from_deformation(F))


def measure(patterns: np.ndarray, probe: np.ndarray, reference: int, method: str = "com") -> np.ndarray:
    """``(n_grains, 4)``: exx, eyy, exy, theta of each grain pattern relative to the reference."""
    bases = [fit_lattice(find_disks(p, probe, method)) for p in patterns]
    return np.array([strain_relative(B, bases[reference]) for B in bases])
