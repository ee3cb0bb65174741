"""A polycrystal on the scan grid: Voronoi grains of varied sizes, vacuum, and their ground truth.

Grains are the cells of a power diagram (a Voronoi diagram with random additive weights, which
gives a spread of grain sizes) on the ``(Rx, Ry)`` scan grid. Each grain carries a uniform strain
``exx, eyy, exy`` drawn from ``U(-strain_max, strain_max)``, a rotation ``theta`` from
``U(0, 360)`` degrees, a thickness in layers and a small crystal tilt (used by the multislice
engine). The largest grain is the unstrained reference (``E = 0``), as in the paper's data.

Vacuum (``vacuum_fraction`` of the scan, grain id :data:`VACUUM`): holes between the flakes, the
positions where a smooth random field (white noise blurred over half the mean grain width) is
lowest, never in the reference grain. There the beam meets no crystal: the pattern is the probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import scipy.ndimage as ndi

from .io.conventions import deformation_gradient
from .rng import stream


VACUUM = -1
"""The grain id of scan positions without crystal."""


@dataclass(frozen=True)
class PolycrystalOptions:
    """What a polycrystal is drawn from (the config's ``scan`` and ``polycrystal`` sections).

    Attributes
    ----------
    scan_shape : (Rx, Ry) scan positions
    n_grains : seed points of the power diagram
    size_spread : weight spread, in units of the mean grain area
    strain_max : strain components are drawn from U(-strain_max, strain_max)
    layers_range : (min, max) thickness in crystal layers
    tilt_max_deg : largest crystal tilt, degrees
    vacuum_fraction : share of the scan without crystal, 0..1
    """

    scan_shape: tuple[int, int]
    n_grains: int
    size_spread: float
    strain_max: float
    layers_range: tuple[int, int]
    tilt_max_deg: float
    vacuum_fraction: float = 0.0

    @classmethod
    def from_config(cls, cfg: Mapping) -> "PolycrystalOptions":
        pc = cfg["polycrystal"]
        return cls(
            scan_shape=tuple(int(v) for v in cfg["scan"]["shape"]),
            n_grains=int(pc["grains"]),
            size_spread=float(pc["size_spread"]),
            strain_max=float(pc["strain_max"]),
            layers_range=tuple(int(v) for v in pc["layers"]),
            tilt_max_deg=float(pc["tilt_max_deg"]),
            vacuum_fraction=float(pc.get("vacuum_fraction", 0.0)),
        )


@dataclass(frozen=True)
class Polycrystal:
    """Grain map and per-grain parameters.

    Attributes
    ----------
    grain_map : int32 (Rx, Ry)
        Grain id of each scan position, ``0 .. n_grains - 1``, or :data:`VACUUM`.
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

    @property
    def vacuum_mask(self) -> np.ndarray:
        return self.grain_map == VACUUM

    def deformations(self) -> np.ndarray:
        """``F = (I + E) R(theta)`` of every grain, ``(n_grains, 2, 2)``."""
        return deformation_gradient(self.exx, self.eyy, self.exy, self.theta)

    def label_maps(self) -> dict[str, np.ndarray]:
        """Per-position ground truth in the dataset's ``labels/`` layout (NaN strain and
        rotation in vacuum, whose grain id is :data:`VACUUM`)."""
        g = self.grain_map
        vacuum = self.vacuum_mask
        crystal = np.where(vacuum, 0, g)

        def per_position(values: np.ndarray) -> np.ndarray:
            return np.where(vacuum, np.nan, values[crystal]).astype(np.float32)

        return {
            "exx": per_position(self.exx),
            "eyy": per_position(self.eyy),
            "exy": per_position(self.exy),
            "theta": per_position(self.theta),
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


def vacuum_holes(grain_map: np.ndarray, reference: int, fraction: float, grain_width: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean map of the vacuum: the ``fraction`` of the scan where white noise blurred over
    ``grain_width / 2`` positions (periodic edges) is lowest, the reference grain excluded."""
    field = ndi.gaussian_filter(rng.standard_normal(grain_map.shape), sigma=0.5 * grain_width, mode="wrap")
    count = int(round(fraction * grain_map.size))
    if count == 0:
        return np.zeros(grain_map.shape, dtype=bool)
    field[grain_map == reference] = np.inf
    order = np.argsort(field, axis=None, kind="stable")[:count]
    holes = np.zeros(grain_map.size, dtype=bool)
    holes[order] = True
    return holes.reshape(grain_map.shape) & (grain_map != reference)


def make_polycrystal(options: PolycrystalOptions, seed: int) -> Polycrystal:
    """Draw a polycrystal; every draw comes from ``seed`` (same seed, same polycrystal)."""
    o = options
    grain_map = power_diagram(o.scan_shape, o.n_grains, o.size_spread, stream(seed, "grains"))
    n = int(grain_map.max()) + 1
    rng = stream(seed, "grain-parameters")
    strain = rng.uniform(-o.strain_max, o.strain_max, size=(n, 3))
    theta = rng.uniform(0.0, 360.0, size=n)
    layers = rng.integers(o.layers_range[0], o.layers_range[1] + 1, size=n)
    tilt_magnitude = o.tilt_max_deg * np.sqrt(rng.uniform(0, 1, size=n))
    tilt_direction = rng.uniform(0, 2 * np.pi, size=n)
    tilt = tilt_magnitude[:, None] * np.stack([np.cos(tilt_direction), np.sin(tilt_direction)], -1)
    reference = int(np.argmax(np.bincount(grain_map.ravel(), minlength=n)))
    strain[reference] = 0.0
    if o.vacuum_fraction > 0:
        grain_width = float(np.sqrt(grain_map.size / n))
        holes = vacuum_holes(grain_map, reference, o.vacuum_fraction, grain_width, stream(seed, "vacuum"))
        grain_map = np.where(holes, VACUUM, grain_map).astype(np.int32)
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
