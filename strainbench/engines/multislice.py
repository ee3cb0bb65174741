"""Multislice engine: dynamical convergent-beam diffraction of each grain with abTEM.

Strain is uniform in a grain, so one pattern per grain is simulated: the grain's crystal, strained
and rotated by ``F = (I + E) R(theta)`` in the plane and tilted by a small angle, is built with ASE
as a circular flake (``flake_diameter`` across, ``layers`` thick) in vacuum, so that any rotation
fits an orthogonal cell; a probe of the configured energy and convergence semi-angle is placed at
its centre and propagated by the multislice method (abTEM, Lobato potentials, infinite projection).

Resampling onto the detector is exact integration: the cell is ``oversampling / sampling`` wide,
so the simulated diffraction grid is ``oversampling`` times finer than the detector, and every
detector pixel is the sum of ``oversampling x oversampling`` simulated pixels. ``oversampling`` is
odd, so the optical axis falls on the centre of detector pixel ``(Qx // 2, Qy // 2)``. The
real-space grid is fine enough that abTEM's 2/3 anti-aliasing aperture lies outside the detector.

abTEM runs single-threaded with FFTW's deterministic ``FFTW_ESTIMATE`` planning, so that the same
grain gives the same bytes; grains run in parallel processes.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from tqdm.auto import tqdm

from ..crystal import Crystal
from ..optics import DetectorGeometry
from ..polycrystal import Polycrystal

VACUUM_Z = 2.0  # Angstrom of vacuum above and below the flake


def _configure_abtem():
    import abtem

    abtem.config.set(
        {
            "device": "cpu",
            "diagnostics.progress_bar": False,
            "fft": "fftw",
            "fftw.planning_effort": "FFTW_ESTIMATE",
            "fftw.threads": 1,
            "dask.lazy": False,
        }
    )
    return abtem


def _fft_size(n: int) -> int:
    """Smallest even ``m >= n`` whose prime factors are 2, 3 and 5."""
    m = n + (n % 2)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 2


@dataclass(frozen=True)
class MultisliceEngine:
    """Multislice CBED of strained, rotated, tilted crystal flakes, one pattern per grain.

    Attributes
    ----------
    crystal : the crystal of every grain
    geometry : detector grid and optics
    flake_diameter : Angstrom
    oversampling : odd integer, simulated diffraction pixels per detector pixel (each axis)
    slice_thickness : Angstrom
    workers : parallel processes (0: one per CPU core)
    """

    crystal: Crystal
    geometry: DetectorGeometry
    flake_diameter: float
    oversampling: int
    slice_thickness: float
    workers: int = 0

    name = "multislice"

    def __post_init__(self):
        if self.oversampling < 1 or self.oversampling % 2 == 0:
            raise ValueError(f"oversampling must be an odd positive integer, got {self.oversampling}")

    @property
    def extent(self) -> float:
        """Width of the square simulation cell, Angstrom."""
        return self.oversampling / self.geometry.sampling

    @property
    def gpts(self) -> int:
        """Real-space grid points per axis: the detector's corner within 2/3 of Nyquist."""
        k_corner = np.hypot(*self.geometry.shape) / 2 * self.geometry.sampling
        n = int(np.ceil(self.extent * 3 * k_corner * 1.02))
        return _fft_size(max(n, self.oversampling * max(self.geometry.shape) + 2))

    def flake(self, F: np.ndarray, n_layers: int, tilt_deg: np.ndarray) -> Atoms:
        """The grain as a circular flake centred in the cell: in-plane ``F``, then the tilt."""
        cell_atoms = self.crystal.layers(n_layers)
        frac = cell_atoms.get_scaled_positions(wrap=False)[:, :2]
        z = cell_atoms.positions[:, 2]
        symbols = np.array(cell_atoms.get_chemical_symbols())
        radius = self.flake_diameter / 2
        shortest = np.min(np.linalg.svd(F @ self.crystal.lattice, compute_uv=False))
        n = int(np.ceil(radius / shortest)) + 2
        i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
        uv = (np.stack([i.ravel(), j.ravel()], -1)[:, None, :] + frac[None]).reshape(-1, 2)
        xy = uv @ (F @ self.crystal.lattice).T
        keep = np.hypot(xy[:, 0], xy[:, 1]) < radius
        n_cells = i.size
        positions = np.column_stack([xy[keep], np.tile(z, n_cells)[keep]])
        atoms = Atoms(symbols=np.tile(symbols, n_cells)[keep].tolist(), positions=positions)
        centre = np.array([0.0, 0.0, positions[:, 2].mean()])
        atoms.rotate(float(tilt_deg[0]), "x", center=centre)
        atoms.rotate(float(tilt_deg[1]), "y", center=centre)
        pos = atoms.positions
        pos[:, :2] += self.extent / 2
        pos[:, 2] += VACUUM_Z - pos[:, 2].min()
        atoms.positions = pos
        atoms.cell = [self.extent, self.extent, pos[:, 2].max() + VACUUM_Z]
        atoms.pbc = True
        return atoms

    def _to_detector(self, fine: np.ndarray) -> np.ndarray:
        """Crop the simulated (fftshift-ed) diffraction grid around the axis and bin it."""
        b = self.oversampling
        Qx, Qy = self.geometry.shape
        n = fine.shape[-1]
        sx = n // 2 - (Qx // 2) * b - b // 2
        sy = n // 2 - (Qy // 2) * b - b // 2
        crop = fine[sx : sx + Qx * b, sy : sy + Qy * b]
        return crop.reshape(Qx, b, Qy, b).sum(axis=(1, 3)).astype(np.float64)

    def _probe_model(self, abtem):
        return abtem.Probe(
            energy=self.geometry.energy_ev,
            semiangle_cutoff=self.geometry.semiangle_mrad,
            extent=self.extent,
            gpts=self.gpts,
        )

    def probe(self) -> np.ndarray:
        """The vacuum probe on the detector grid, unit total intensity."""
        abtem = _configure_abtem()
        centre = (self.extent / 2, self.extent / 2)
        fine = self._probe_model(abtem).build(scan=centre).diffraction_patterns(max_angle=None).array
        out = self._to_detector(np.asarray(fine))
        return out / out.sum()

    def grain_pattern(self, F: np.ndarray, n_layers: int, tilt_deg: np.ndarray) -> np.ndarray:
        """Noise-free pattern of one grain on the detector grid (relative intensities)."""
        abtem = _configure_abtem()
        atoms = self.flake(F, n_layers, tilt_deg)
        potential = abtem.Potential(
            atoms,
            gpts=self.gpts,
            slice_thickness=self.slice_thickness,
            projection="infinite",
            parametrization="lobato",
        )
        exit_wave = self._probe_model(abtem).multislice(potential, scan=(self.extent / 2, self.extent / 2))
        fine = exit_wave.diffraction_patterns(max_angle=None, fftshift=True).array
        return self._to_detector(np.asarray(fine))

    def grain_patterns(self, polycrystal: Polycrystal, progress: bool = True) -> np.ndarray:
        """Noise-free patterns of every grain, float64 ``(n_grains, Qx, Qy)``, in parallel."""
        F = polycrystal.deformations()
        jobs = [(F[g], int(polycrystal.layers[g]), polycrystal.tilt[g]) for g in range(polycrystal.n_grains)]
        workers = self.workers or os.cpu_count() or 1
        workers = min(workers, len(jobs))
        bar = tqdm(total=len(jobs), desc="multislice grains", unit="grain", disable=not progress)
        if workers == 1:
            out = []
            for job in jobs:
                out.append(self.grain_pattern(*job))
                bar.update()
        else:
            with ThreadPoolExecutor(workers) as pool:
                out = []
                for pattern in pool.map(self.grain_pattern, *zip(*jobs)):
                    out.append(pattern)
                    bar.update()
        bar.close()
        return np.stack(out)
