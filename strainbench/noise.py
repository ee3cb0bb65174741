"""The paper's noise model (docs/contract.md, as in the authors' code).

For a noise-free pattern ``I`` normalised to sum 1 and the background
``B(q) = 1 / (1 + |q|^2 / width^2)`` (``q`` the detector's centred FFT frequencies in cycles per
pixel), also normalised to sum 1::

    mix   = (1 - w) I + w B
    noisy = Poisson(mix * counts_per_probe) / counts_per_probe * intensity_coefficient

``w`` is the noise level. At ``w = 0`` the pattern is only scaled by ``intensity_coefficient``,
with no shot noise, so the noise-free column of the table is truly noise-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def background(shape: tuple[int, int], width: float = 0.01) -> np.ndarray:
    """The Lorentzian background ``B(q)``, float64, summing to 1."""
    qx = np.fft.fftshift(np.fft.fftfreq(shape[0]))
    qy = np.fft.fftshift(np.fft.fftfreq(shape[1]))
    q2 = qx[:, None] ** 2 + qy[None, :] ** 2
    b = 1.0 / (1.0 + q2 / width**2)
    return b / b.sum()


@dataclass(frozen=True)
class NoiseModel:
    """Parameters of the noise model.

    Attributes
    ----------
    level : w, the expected fraction of counts in the background, 0..1
    counts_per_probe : expected electron counts in one pattern
    intensity_coefficient : scale of the written patterns (a pattern sums to about this)
    background_width : width of ``B(q)``, cycles per pixel
    """

    level: float
    counts_per_probe: float = 1e5
    intensity_coefficient: float = 1e5 / 4
    background_width: float = 0.01

    def __post_init__(self):
        if not 0.0 <= self.level <= 1.0:
            raise ValueError(f"noise level must lie in [0, 1], got {self.level}")
        if self.counts_per_probe <= 0 or self.intensity_coefficient <= 0:
            raise ValueError("counts_per_probe and intensity_coefficient must be positive")

    def expected_counts(self, clean: np.ndarray) -> np.ndarray:
        """``lambda = mix * counts_per_probe`` for noise-free patterns ``(..., Qx, Qy)``."""
        clean = np.asarray(clean, dtype=np.float64)
        unit = clean / clean.sum(axis=(-2, -1), keepdims=True)
        mix = (1.0 - self.level) * unit + self.level * background(clean.shape[-2:], self.background_width)
        return mix * self.counts_per_probe

    def apply(self, clean: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """Noisy patterns (float32) from noise-free ones ``(..., Qx, Qy)``.

        ``rng`` may be None only at ``level == 0``, where no random draw is made.
        """
        if self.level == 0.0:
            clean = np.asarray(clean, dtype=np.float64)
            unit = clean / clean.sum(axis=(-2, -1), keepdims=True)
            return (unit * self.intensity_coefficient).astype(np.float32)
        return self.sample(self.expected_counts(clean), rng)

    def sample(self, expected_counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Poisson draw from precomputed ``expected_counts``, scaled to the written units."""
        counts = rng.poisson(expected_counts)
        return (counts * (self.intensity_coefficient / self.counts_per_probe)).astype(np.float32)
