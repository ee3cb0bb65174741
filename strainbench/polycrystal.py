"""A polycrystal on the scan grid: Voronoi grains of varied sizes and their ground truth.

Grains are the cells of a power diagram (a Voronoi diagram with random additive weights, which
gives a spread of grain sizes) on the ``(Rx, Ry)`` scan grid. Each grain carries a uniform strain
``exx, eyy, exy`` drawn from ``U(-strain_max, strain_max)``, a rotation ``theta`` from
``U(0, 360)`` degrees, a thickness in layers and a small crystal tilt (used by the multislice
engine). The largest grain is the unstrained reference (``E = 0``), as in the paper's data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .io.conventions import deformation_gradient
from .rng import stream


@dataclass(frozen=True)
class Polycrystal:
    """Grain map and per-grain parameters.

    Attributes
    ----------
    grain_map : int32 (Rx, Ry)
        Grain id of each scan position, ``0 .. n_grains - 1``.
    exx, eyy, exy : float64 (n_grains,)
        Lab-frame strain, dimensionless (``exy`` tensor shear).
    theta : float64 (n_grains,)
        Rotation, degrees in [0, 360).
    layers : int (n_grains,)
        Thickness in crystal layers.
    tilt : float64 (n_grains, 2)
        Crystal tilt about the x and y axes, degrees.
    reference : int
        Id of the unstrained reference grain.
    """

    grain_map: np.ndarray
    exx: np.ndarray
    eyy: np.ndarray
    exy: np.ndarray
    theta: np.ndarray
    layers: np.ndarray
    tilt: np.ndarray
    reference: int

    @property
    def n_grains(self) -> int:
        return int(self.exx.shape[0])

    @property
    def reference_mask(self) -> np.ndarray:
        return self.grain_map == self.reference

    def deformations(self) -> np.ndarray:
        """``F = (I + E) R(theta)`` of every grain, ``(n_grains, 2, 2)``."""
        return deformation_gradient(self.exx, self.eyy, self.exy, self.theta)

    def label_maps(self) -> dict[str, np.ndarray]:
        """Per-position ground truth in the dataset's ``labels/`` layout."""
        g = self.grain_map
        return {
            "exx": self.exx[g].astype(np.float32),
            "eyy": self.eyy[g].astype(np.float32),
            "exy": self.exy[g].astype(np.float32),
            "theta": self.theta[g].astype(np.float32),
            "grain": g.astype(np.int32),
        }


def power_diagram(scan_shape: tuple[int, int], n_grains: int, size_spread: float, rng: np.random.Generator) -> np.ndarray:
    """Label each scan position with its power-diagram cell.

    Seeds are uniform over the scan; weights are ``U(0, size_spread) * mean_cell_area``, so
    ``size_spread = 0`` gives a plain Voronoi diagram and larger values a wider spread of sizes.
    Empty cells are dropped and ids renumbered ``0 .. n - 1`` in order of first appearance.
    """
    Rx, Ry = scan_shape
    seeds = rng.uniform(0, 1, size=(n_grains, 2)) * np.array([Rx, Ry])
    weights = rng.uniform(0, size_spread, size=n_grains) * (Rx * Ry / n_grains)
    xx, yy = np.meshgrid(np.arange(Rx) + 0.5, np.arange(Ry) + 0.5, indexing="ij")
    power = (xx[..., None] - seeds[:, 0]) ** 2 + (yy[..., None] - seeds[:, 1]) ** 2 - weights
    raw = np.argmin(power, axis=-1)
    _, first = np.unique(raw.ravel(), return_index=True)
    order = raw.ravel()[np.sort(first)]
    relabel = np.full(n_grains, -1)
    relabel[order] = np.arange(order.size)
    return relabel[raw].astype(np.int32)


def make_polycrystal(
    scan_shape: tuple[int, int],
    n_grains: int,
    size_spread: float,
    strain_max: float,
    layers_range: tuple[int, int],
    tilt_max_deg: float,
    seed: int,
) -> Polycrystal:
    """Draw a polycrystal; every draw comes from ``seed`` (same seed, same polycrystal)."""
    grain_map = power_diagram(scan_shape, n_grains, size_spread, stream(seed, "grains"))
    n = int(grain_map.max()) + 1
    rng = stream(seed, "grain-parameters")
    strain = rng.uniform(-strain_max, strain_max, size=(n, 3))
    theta = rng.uniform(0.0, 360.0, size=n)
    layers = rng.integers(layers_range[0], layers_range[1] + 1, size=n)
    tilt_magnitude = tilt_max_deg * np.sqrt(rng.uniform(0, 1, size=n))
    tilt_direction = rng.uniform(0, 2 * np.pi, size=n)
    tilt = tilt_magnitude[:, None] * np.stack([np.cos(tilt_direction), np.sin(tilt_direction)], -1)
    reference = int(np.argmax(np.bincount(grain_map.ravel(), minlength=n)))
    strain[reference] = 0.0
    return Polycrystal(
        grain_map=grain_map,
        exx=strain[:, 0],
        eyy=strain[:, 1],
        exy=strain[:, 2],
        theta=theta,
        layers=layers,
        tilt=tilt,
        reference=reference,
    )
