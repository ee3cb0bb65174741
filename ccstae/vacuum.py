"""Which patterns show a crystal: the rest (vacuum, holes between flakes) get no strain.

The test, per pattern, at its fitted transform: the spot mask carried into the pattern's frame
(``on``) against the ring of pixels around each spot (``off``, out to the probe's edge beyond the
mask). The contrast is ``mean(on) - mean(off)``; its significance ``z`` is the contrast over its
standard error, ``std(off) sqrt(1 / n_on + 1 / n_off)``. A pattern shows the crystal if ``z`` is
at least ``MIN_SIGNIFICANCE`` (noisy data: a pattern without a crystal gives ``z`` close to a
standard normal draw, even where the fit puts the mask on whatever noise it can; 4 standard errors
are passed by about 3 in 100,000 such patterns) and its contrast is at least ``MIN_CONTRAST`` of the reference
region's median contrast (noise-free data, where any structure is significant: the probe's own
faint tails give a vacuum pattern a few percent of a thin grain's contrast at most).
"""

from __future__ import annotations

import math

import torch

from .affine import invert, warp
from .refine import grow

MIN_SIGNIFICANCE = 4.0  # standard errors of the spot contrast
MIN_CONTRAST = 0.05  # of the reference region's median spot contrast


def spot_contrast(patterns: torch.Tensor, A: torch.Tensor, t: torch.Tensor, mask: torch.Tensor, margin: float, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """``(contrast, z)`` of every pattern ``(N,)`` each: the mean of ``patterns (N, 1, Q, Q)`` over
    the spot ``mask (1, 1, Q, Q)`` carried into its frame by the transform ``(A, t)``, less the
    mean over the pixels within ``margin`` pixels of the mask, and that difference in standard
    errors (module docstring)."""
    grown = grow(mask, int(math.ceil(margin)))
    contrast, z = [], []
    for i in range(0, patterns.shape[0], batch_size):
        x = patterns[i : i + batch_size]
        B, s = invert(A[i : i + batch_size], t[i : i + batch_size])
        on = warp(mask.expand(x.shape[0], -1, -1, -1), B, s)
        off = warp(grown.expand(x.shape[0], -1, -1, -1), B, s) * (on < 0.01)
        n_on, n_off = on.sum((1, 2, 3)).clamp_min(1.0), off.sum((1, 2, 3)).clamp_min(1.0)
        mean_on = (on * x).sum((1, 2, 3)) / n_on
        mean_off = (off * x).sum((1, 2, 3)) / n_off
        spread = ((off * (x - mean_off[:, None, None, None]) ** 2).sum((1, 2, 3)) / n_off).sqrt()
        contrast.append(mean_on - mean_off)
        z.append((mean_on - mean_off) / (spread.clamp_min(1e-12) * torch.sqrt(1 / n_on + 1 / n_off)))
    return torch.cat(contrast), torch.cat(z)


def crystal_positions(patterns: torch.Tensor, A: torch.Tensor, t: torch.Tensor, mask: torch.Tensor, margin: float, reference: torch.Tensor) -> torch.Tensor:
    """``(N,)`` bool: the patterns that show the crystal (module docstring); ``reference`` indexes
    the reference region's patterns."""
    contrast, z = spot_contrast(patterns, A, t, mask, margin)
    typical = contrast[reference].median()
    return (z >= MIN_SIGNIFICANCE) & (contrast >= MIN_CONTRAST * typical)
