"""Affine transforms in the contract's axes and their use with ``grid_sample``.

An affine ``(A, t)`` acts on pixel-centred detector coordinates normalised to [-1, 1] and ordered
``(x, y)`` = (row, column), as in the data contract. ``warp(image, A, t)(p) = image(A p + t)``:
if the warped pattern matches the base, the pattern's disks sit at ``A p_base + t``, i.e. its
reciprocal lattice is ``A`` times the base's. :func:`affine_grid` builds the sampling grid of
``F.affine_grid(theta, ..., align_corners=False)`` with ``theta = P [A | t]`` in PyTorch's
(column, row) order (``P`` the swap), as a sum of outer products: on CPU PyTorch's own routes it
through batched matrix products with an inner size of 3, four times slower forwards and backwards
for a 128 px pattern.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

def rotation(angle: torch.Tensor) -> torch.Tensor:
    """``R(angle)`` ``(B, 2, 2)``; radians, counter-clockwise on ``(x, y)`` column vectors (the contract's ``R``)."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def rotation_angle(A: torch.Tensor) -> torch.Tensor:
    """Angle (radians) of the rotation part of ``A`` ``(B, 2, 2)``: that of ``R`` in ``A = R S``."""
    return torch.atan2(A[:, 1, 0] - A[:, 0, 1], A[:, 0, 0] + A[:, 1, 1])


def wrap_angle(angle: torch.Tensor, period: float) -> torch.Tensor:
    """``angle`` (radians) wrapped into ``[-period / 2, period / 2)``: ``2 pi`` for a plain angle, a
    base's rotational symmetry for angles that the base cannot tell apart modulo it."""
    return torch.remainder(angle + period / 2, period) - period / 2


def normalised(pixel: torch.Tensor | float, size: int) -> torch.Tensor | float:
    """Pixel index (pixel-centred) to the normalised coordinate in [-1, 1] of ``align_corners=False``."""
    return (2 * pixel + 1) / size - 1


def compose(scale_x: torch.Tensor, scale_y: torch.Tensor, shear: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """``A = R(angle) S`` with ``S = [[1 + scale_x, shear], [shear, 1 + scale_y]]``; ``(B, 2, 2)``.

    ``angle`` in radians (see :func:`rotation`).
    """
    S = torch.stack([torch.stack([1 + scale_x, shear], -1), torch.stack([shear, 1 + scale_y], -1)], -2)
    return rotation(angle) @ S


def affine_grid(A: torch.Tensor, t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``grid_sample``'s grid ``(B, height, width, 2)``, (column, row) order, of the points
    ``A p + t`` for every output pixel ``p`` (pixel-centred, ``align_corners=False``)."""
    rows = normalised(torch.arange(height, device=A.device, dtype=A.dtype), height)[None, :, None]
    columns = normalised(torch.arange(width, device=A.device, dtype=A.dtype), width)[None, None, :]
    a = A[:, :, :, None, None]
    q_row = a[:, 0, 0] * rows + a[:, 0, 1] * columns + t[:, 0, None, None]
    q_column = a[:, 1, 0] * rows + a[:, 1, 1] * columns + t[:, 1, None, None]
    return torch.stack([q_column, q_row], -1)


def invert(A: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse affine: ``p = A q + t``  <=>  ``q = A^-1 p - A^-1 t``."""
    Ainv = torch.linalg.inv(A)
    return Ainv, -(Ainv @ t.unsqueeze(-1)).squeeze(-1)


def warp(image: torch.Tensor, A: torch.Tensor, t: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample ``image`` ``(B, C, H, W)`` at ``A p + t`` for every output pixel ``p`` (``mode``: bilinear or nearest)."""
    grid = affine_grid(A, t, image.shape[-2], image.shape[-1])
    return F.grid_sample(image, grid, mode=mode, padding_mode="zeros", align_corners=False)


def sample_points(image: torch.Tensor, A: torch.Tensor, t: torch.Tensor, points: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """``image (B, C, H, W)`` at ``A p + t`` for the points ``p`` ``(B, M, 2)`` (normalised ``(x, y)``); ``(B, C, M)``.

    The same sampling as :func:`warp` at chosen output pixels only.
    """
    # grid_sample wants (column, row): the rows of A and t swapped (cheaper than flipping the points)
    grid = points @ A.flip(1).transpose(1, 2) + t.flip(-1)[:, None, :]
    return F.grid_sample(image, grid[:, None], mode=mode, padding_mode="zeros", align_corners=False)[:, :, 0]


def sample_at(image: torch.Tensor, q: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """``image (B, C, H, W)`` at the points ``q`` ``(B, M, 2)`` (normalised ``(x, y)``); ``(B, C, M)``."""
    return F.grid_sample(image, q.flip(-1)[:, None], mode=mode, padding_mode="zeros", align_corners=False)[:, :, 0]
