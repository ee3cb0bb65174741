"""Azimuthal means of detector images about a centre."""

from __future__ import annotations

import numpy as np


def radial_profile(image: np.ndarray, centre: np.ndarray | tuple[float, float], step: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """The image's azimuthal mean as ``(radii, values)`` (pixels, image units), in ``step`` pixel
    bins about ``centre`` (pixels); empty bins are left out."""
    xx, yy = np.indices(image.shape)
    rho = np.hypot(xx - centre[0], yy - centre[1]).ravel()
    bins = (rho / step).astype(int)
    totals = np.bincount(bins, image.ravel())
    counts = np.bincount(bins)
    keep = counts > 0
    return (np.flatnonzero(keep) + 0.5) * step, totals[keep] / counts[keep]
