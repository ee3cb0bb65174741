"""Kinematic engine: convergent-beam disks at the reciprocal-lattice points, rendered sub-pixel.

Each reflection ``g`` of the strained, rotated lattice ``G = (I + E)^-T R(theta) G0`` is a uniform
disk of the convergence radius ``alpha / lambda`` centred at ``g`` (kinematic CBED disks are
uniform). Its intensity is ``|F(g)|^2`` with the zero-order-Laue-zone structure factor of the
grain's layers, ``F(g) = sum_j f_j(|g|) exp(2 pi i g . r_j)``, electron scattering factors of the
screened-Coulomb (Wentzel) atom ``f(s) ~ Z / ((2 pi s)^2 + R_TF^-2)`` with the Thomas-Fermi radius
``R_TF = 0.885 a0 Z^-1/3``, and a Debye-Waller factor ``exp(-B |g|^2 / 4)``. The diffracted disks
share ``1 - direct_beam_fraction`` of the intensity, the direct beam the rest.

Disk edges are anti-aliased by a Gaussian edge profile ``0.5 erfc((d - r) / (sqrt(2) sigma))``
(a disk blurred by the detector's point spread ``sigma`` pixels), so that a sub-pixel shift of a
disk moves its centroid by exactly that shift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.data import atomic_numbers
from scipy.special import erfc

from ..crystal import Crystal
from ..io.conventions import reciprocal_deformation
from ..optics import DetectorGeometry
from ..polycrystal import Polycrystal

BOHR = 0.529177  # Angstrom


def wentzel_scattering_factor(symbol: str, s: np.ndarray) -> np.ndarray:
    """Relative electron scattering factor of a screened-Coulomb atom at ``s = |g|`` (1/A)."""
    z = atomic_numbers[symbol]
    r_tf = 0.885 * BOHR * z ** (-1.0 / 3.0)
    return z / ((2 * np.pi * np.asarray(s)) ** 2 + r_tf**-2)


def structure_factor(crystal: Crystal, n_layers: int, hk: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Zero-order-Laue-zone structure factor of ``n_layers`` layers at indices ``hk`` (n, 2).

    ``g`` (n, 2) are the reflections' reciprocal vectors in 1/A (used for ``|g|`` in the atomic
    scattering factors); the phases come from the fractional coordinates, so they do not change
    under strain.
    """
    atoms = crystal.layers(n_layers)
    frac = atoms.get_scaled_positions(wrap=False)[:, :2]
    s = np.linalg.norm(g, axis=-1)
    F = np.zeros(hk.shape[0], dtype=np.complex128)
    for symbol, uv in zip(atoms.get_chemical_symbols(), frac):
        F += wentzel_scattering_factor(symbol, s) * np.exp(2j * np.pi * (hk @ uv))
    return F


def render_disks(geometry: DetectorGeometry, centres_px: np.ndarray, weights: np.ndarray, edge_sigma_px: float) -> np.ndarray:
    """Sum of anti-aliased uniform disks; each disk integrates to its weight (before clipping).

    ``centres_px`` (n, 2) are pixel coordinates, ``weights`` (n,) the disks' total intensities.
    """
    Qx, Qy = geometry.shape
    r = geometry.disk_radius_px
    norm = np.pi * (r**2 + edge_sigma_px**2)  # integral of the blurred disk profile
    px = np.arange(Qx, dtype=np.float64)
    py = np.arange(Qy, dtype=np.float64)
    image = np.zeros((Qx, Qy))
    reach = r + 6 * edge_sigma_px + 1
    for (cx, cy), w in zip(centres_px, weights):
        x0, x1 = max(int(np.floor(cx - reach)), 0), min(int(np.ceil(cx + reach)) + 1, Qx)
        y0, y1 = max(int(np.floor(cy - reach)), 0), min(int(np.ceil(cy + reach)) + 1, Qy)
        if x0 >= x1 or y0 >= y1:
            continue
        d = np.hypot(px[x0:x1, None] - cx, py[None, y0:y1] - cy)
        image[x0:x1, y0:y1] += (w / norm) * 0.5 * erfc((d - r) / (np.sqrt(2.0) * edge_sigma_px))
    return image


@dataclass(frozen=True)
class KinematicEngine:
    """Kinematic CBED patterns of a polycrystal, one pattern per grain.

    Attributes
    ----------
    crystal : the crystal of every grain
    geometry : detector grid and optics
    debye_waller_b : B factor, Angstrom^2
    direct_beam_fraction : share of the intensity in the undiffracted disk, 0..1
    edge_sigma_px : Gaussian edge blur of the disks, pixels
    """

    crystal: Crystal
    geometry: DetectorGeometry
    debye_waller_b: float
    direct_beam_fraction: float
    edge_sigma_px: float

    name = "kinematic"

    def _reflections(self, M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices and vectors (1/A) of the reflections of ``G = M G0`` that reach the detector."""
        G = M @ self.crystal.reciprocal
        g_min = np.min(np.linalg.svd(G, compute_uv=False))
        n = int(np.ceil(self.geometry.q_max / g_min)) + 1
        h, k = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
        hk = np.stack([h.ravel(), k.ravel()], -1)
        g = hk @ G.T
        keep = np.linalg.norm(g, axis=-1) <= self.geometry.q_max
        keep &= np.any(hk != 0, axis=-1)
        return hk[keep], g[keep]

    def probe(self) -> np.ndarray:
        """The vacuum probe: the undiffracted disk alone, unit total intensity."""
        return render_disks(self.geometry, self.geometry.centre[None], np.ones(1), self.edge_sigma_px)

    def grain_pattern(self, F: np.ndarray, n_layers: int, shift_px: np.ndarray | tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
        """Noise-free pattern of a grain with real-space deformation ``F`` (2, 2), every disk moved
        by ``shift_px`` (a displaced pattern centre, pixels)."""
        hk, g = self._reflections(reciprocal_deformation(F))
        intensity = np.abs(structure_factor(self.crystal, n_layers, hk, g)) ** 2
        intensity *= np.exp(-0.5 * self.debye_waller_b * np.sum(g**2, axis=-1))
        intensity *= (1.0 - self.direct_beam_fraction) / intensity.sum()
        centres = np.concatenate([self.geometry.centre[None], self.geometry.to_pixels(g)]) + np.asarray(shift_px, dtype=np.float64)
        weights = np.concatenate([[self.direct_beam_fraction], intensity])
        return render_disks(self.geometry, centres, weights, self.edge_sigma_px)

    def grain_patterns(self, polycrystal: Polycrystal, progress: bool = False) -> np.ndarray:
        """Noise-free patterns of every grain, float64 ``(n_grains, Qx, Qy)``."""
        F = polycrystal.deformations()
        return np.stack([self.grain_pattern(F[i], int(polycrystal.layers[i])) for i in range(polycrystal.n_grains)])
