"""Crystal structures viewed down a zone axis: the in-plane lattice and the layered atoms.

Coordinates follow the contract (``x`` = axis 0, ``y`` = axis 1, Angstrom). The in-plane lattice
``A0`` has the lattice vectors as columns; its reciprocal ``G0 = A0^-T`` (no factor 2 pi), in 1/A.
The beam runs along ``z``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms


@dataclass(frozen=True)
class Crystal:
    """A layered crystal seen down its zone axis.

    Attributes
    ----------
    name : str
    lattice : (2, 2) array
        In-plane lattice vectors as columns, Angstrom.
    layer_thickness : float
        Thickness of one layer along the beam, Angstrom.
    layer_sites : tuple of tuples
        Per layer parity (0, 1), the atoms ``(symbol, u, v, dz)``: fractional in-plane
        coordinates and height above the layer's base, Angstrom. Even layers use entry 0, odd
        layers entry 1 (the 2H stacking of WS2 alternates; a perovskite repeats).
    symmetry_deg : float
        In-plane rotational symmetry of the projected lattice (60 hexagonal, 90 square).
    """

    name: str
    lattice: np.ndarray
    layer_thickness: float
    layer_sites: tuple
    symmetry_deg: float

    @property
    def reciprocal(self) -> np.ndarray:
        """``G0 = A0^-T``: reciprocal basis vectors as columns, 1/Angstrom."""
        return np.linalg.inv(self.lattice).T

    def layers(self, n_layers: int) -> Atoms:
        """The primitive in-plane cell with ``n_layers`` stacked along ``z`` (ASE atoms)."""
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        symbols, positions = [], []
        for layer in range(n_layers):
            for symbol, u, v, dz in self.layer_sites[layer % len(self.layer_sites)]:
                xy = self.lattice @ np.array([u, v])
                symbols.append(symbol)
                positions.append([xy[0], xy[1], layer * self.layer_thickness + dz])
        cell = np.zeros((3, 3))
        cell[0, :2] = self.lattice[:, 0]
        cell[1, :2] = self.lattice[:, 1]
        cell[2, 2] = n_layers * self.layer_thickness
        return Atoms(symbols=symbols, positions=positions, cell=cell, pbc=True)


def _ws2() -> Crystal:
    a = 3.153  # Angstrom, 2H-WS2
    c_half = 6.1615  # one layer: c / 2 of the 2H cell (c = 12.323 A)
    dz_s = 1.585  # S above and below W
    z_w = c_half / 2
    lattice = a * np.array([[1.0, -0.5], [0.0, np.sqrt(3) / 2]])
    even = (("W", 1 / 3, 2 / 3, z_w), ("S", 2 / 3, 1 / 3, z_w - dz_s), ("S", 2 / 3, 1 / 3, z_w + dz_s))
    odd = (("W", 2 / 3, 1 / 3, z_w), ("S", 1 / 3, 2 / 3, z_w - dz_s), ("S", 1 / 3, 2 / 3, z_w + dz_s))
    return Crystal("WS2", lattice, c_half, (even, odd), 60.0)


def _srtio3() -> Crystal:
    a = 3.905  # Angstrom, cubic perovskite, viewed down [001]
    lattice = a * np.eye(2)
    cell = (
        ("Sr", 0.0, 0.0, 0.0),
        ("O", 0.5, 0.5, 0.0),
        ("Ti", 0.5, 0.5, a / 2),
        ("O", 0.5, 0.0, a / 2),
        ("O", 0.0, 0.5, a / 2),
    )
    return Crystal("SrTiO3", lattice, a, (cell,), 90.0)


CRYSTALS = {"WS2": _ws2, "SrTiO3": _srtio3}


def get_crystal(name: str) -> Crystal:
    """The crystal called ``name`` (one of :data:`CRYSTALS`)."""
    try:
        return CRYSTALS[name]()
    except KeyError:
        raise ValueError(f"unknown crystal {name!r}; known: {sorted(CRYSTALS)}") from None
