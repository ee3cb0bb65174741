"""Electron optics and the detector grid.

The detector samples reciprocal space at ``sampling`` 1/Angstrom per pixel. The optical axis (the
undiffracted beam) falls on pixel index ``(Qx // 2, Qy // 2)``, the centre of an ``fftshift``-ed
grid; a reciprocal vector ``g = (gx, gy)`` lands at pixel ``centre + g / sampling`` (``x`` = axis 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def electron_wavelength(energy_ev: float) -> float:
    """Relativistic electron wavelength in Angstrom for an accelerating voltage in eV."""
    return 12.2643 / np.sqrt(energy_ev * (1.0 + 0.978476e-6 * energy_ev))


@dataclass(frozen=True)
class DetectorGeometry:
    """Detector grid and probe-forming optics.

    Attributes
    ----------
    shape : (Qx, Qy) pixels
    sampling : reciprocal-space pixel size, 1/Angstrom
    energy_ev : beam energy, eV
    semiangle_mrad : probe convergence semi-angle, mrad
    """

    shape: tuple[int, int]
    sampling: float
    energy_ev: float
    semiangle_mrad: float

    @property
    def wavelength(self) -> float:
        """Angstrom."""
        return electron_wavelength(self.energy_ev)

    @property
    def centre(self) -> np.ndarray:
        """Pixel index of the optical axis, ``(Qx // 2, Qy // 2)``."""
        return np.array([self.shape[0] // 2, self.shape[1] // 2], dtype=np.float64)

    @property
    def disk_radius(self) -> float:
        """Radius of a Bragg disk (the convergence semi-angle), 1/Angstrom."""
        return self.semiangle_mrad * 1e-3 / self.wavelength

    @property
    def disk_radius_px(self) -> float:
        return self.disk_radius / self.sampling

    @property
    def q_max(self) -> float:
        """Largest |g| whose disk still touches the detector, 1/Angstrom."""
        half = np.hypot(*self.shape) / 2 * self.sampling
        return half + self.disk_radius

    def to_pixels(self, g: np.ndarray) -> np.ndarray:
        """Pixel coordinates ``(..., 2)`` of reciprocal vectors ``g`` ``(..., 2)`` in 1/Angstrom."""
        return self.centre + np.asarray(g) / self.sampling
