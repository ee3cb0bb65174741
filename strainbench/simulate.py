"""Dataset generation: the polycrystal and its noise-free per-grain patterns (cached once per
seed), then one noisy dataset per noise level, streamed to HDF5 row by row.

Determinism: the polycrystal comes from ``(seed, "grains")`` streams, the noise of scan row ``r``
at level ``w`` from ``(seed, "noise", round(w * 1e6), r)``; so the same config and seed give the
same bytes whatever the number of threads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np
from tqdm.auto import tqdm

from . import __version__
from .config import make_engine, noise_model
from .io.atomic import atomic_h5
from .io.dataset import DatasetWriter, _attr_value, _decode, check_format
from .io.errors import ContractError
from .polycrystal import Polycrystal, PolycrystalOptions, make_polycrystal
from .rng import stream

CLEAN_FORMAT = "strainbench.clean"


@dataclass
class CleanSet:
    """Everything of one seed that does not depend on the noise level.

    Attributes
    ----------
    polycrystal : the grains and their ground truth
    patterns : float64 (n_grains, Qx, Qy), noise-free, each summing to 1
    probe : float64 (Qx, Qy), vacuum probe, summing to 1
    attrs : provenance (config, engine, optics), written into every dataset of the seed
    """

    polycrystal: Polycrystal
    patterns: np.ndarray
    probe: np.ndarray
    attrs: dict[str, Any]


def simulate_clean(cfg: Mapping, seed: int, progress: bool = True) -> CleanSet:
    """Draw the polycrystal of ``seed`` and simulate one noise-free pattern per grain."""
    poly = make_polycrystal(PolycrystalOptions.from_config(cfg), seed)
    engine = make_engine(cfg)
    patterns = engine.grain_patterns(poly, progress=progress)
    patterns = patterns / patterns.sum(axis=(1, 2), keepdims=True)
    probe = engine.probe()
    probe = probe / probe.sum()
    geometry = engine.geometry
    attrs = {
        "run": cfg["run"],
        "seed": int(seed),
        "engine": engine.name,
        "crystal": engine.crystal.name,
        "symmetry_deg": float(engine.crystal.symmetry_deg),
        "lattice_angstrom": engine.crystal.lattice.T.ravel().tolist(),
        "energy_ev": geometry.energy_ev,
        "semiangle_mrad": geometry.semiangle_mrad,
        "sampling_inv_angstrom": geometry.sampling,
        "disk_radius_px": geometry.disk_radius_px,
        "reference_grain": int(poly.reference),
        "grain_layers": poly.layers.tolist(),
        "grain_tilt_deg": poly.tilt.ravel().tolist(),
        "strainbench_version": __version__,
        "engine_params": {k: v for k, v in cfg["engine"].get(engine.name, {}).items()},
    }
    return CleanSet(poly, patterns, probe, attrs)


def write_clean(path: str | os.PathLike, clean: CleanSet) -> None:
    """Cache a :class:`CleanSet` (atomically)."""
    poly = clean.polycrystal
    with atomic_h5(path) as f:
        f.attrs["format"] = CLEAN_FORMAT
        f.attrs["version"] = 1
        for key, value in sorted(clean.attrs.items()):
            f.attrs[key] = _attr_value(value)
        f.create_dataset("patterns", data=clean.patterns)
        f.create_dataset("probe", data=clean.probe)
        g = f.create_group("grains")
        g.attrs["reference"] = poly.reference
        g.create_dataset("grain_map", data=poly.grain_map)
        for key in ("exx", "eyy", "exy", "theta", "layers", "tilt"):
            g.create_dataset(key, data=getattr(poly, key))


def read_clean(path: str | os.PathLike) -> CleanSet:
    """Read a cache written by :func:`write_clean`."""
    p = Path(path)
    try:
        f = h5py.File(p, "r")
    except OSError as err:
        raise ContractError(p, f"not a readable clean-pattern cache: {err}") from None
    with f:
        check_format(p, f.attrs, CLEAN_FORMAT)
        g = f["grains"]
        poly = Polycrystal(
            grain_map=g["grain_map"][()],
            reference=int(g.attrs["reference"]),
            **{k: g[k][()] for k in ("exx", "eyy", "exy", "theta", "layers", "tilt")},
        )
        attrs = {k: _decode(v) for k, v in f.attrs.items() if k not in ("format", "version")}
        return CleanSet(poly, f["patterns"][()], f["probe"][()], attrs)


def _rows_per_block(clean: CleanSet) -> int:
    Ry = clean.polycrystal.grain_map.shape[1]
    return max(1, int(32e6 // (8 * clean.patterns[0].size * Ry)))


def write_noisy_dataset(
    path: str | os.PathLike,
    clean: CleanSet,
    cfg: Mapping,
    noise_level: float,
    threads: int = 0,
    progress: bool = True,
) -> None:
    """Apply the noise model at ``noise_level`` to every scan position and write the dataset.

    Rows are generated in parallel threads (``threads``; 0 = one per core), each from its own
    seeded stream, and written in scan order; the file appears only when complete.
    """
    noise = noise_model(cfg, noise_level)
    poly = clean.polycrystal
    seed = int(clean.attrs["seed"])
    level_key = int(round(noise.level * 1e6))
    Rx, Ry = poly.grain_map.shape
    # one noise-free pattern per grain, the probe alone last (vacuum)
    sources = np.concatenate([clean.patterns, clean.probe[None]])
    source_map = np.where(poly.vacuum_mask, len(clean.patterns), poly.grain_map)
    expected = noise.expected_counts(sources) if noise.level > 0 else sources

    def row(r: int) -> np.ndarray:
        index = source_map[r]
        if noise.level == 0:
            return noise.apply(sources[index], None)
        return noise.sample(expected[index], stream(seed, "noise", level_key, r))

    attrs = dict(clean.attrs)
    attrs.update(
        noise_level=noise.level,
        counts_per_probe=noise.counts_per_probe,
        intensity_coefficient=noise.intensity_coefficient,
        background_width=noise.background_width,
    )
    threads = threads or os.cpu_count() or 1
    with DatasetWriter(
        path,
        scan_shape=(Rx, Ry),
        pattern_shape=clean.patterns.shape[1:],
        probe=clean.probe * noise.intensity_coefficient,
        reference_mask=poly.reference_mask,
        attrs=attrs,
        labels=poly.label_maps(),
    ) as writer, ThreadPoolExecutor(threads) as pool:
        block = _rows_per_block(clean)
        bar = tqdm(total=Rx * Ry, desc=f"noise {noise.level:.2f}", unit="pattern", disable=not progress)
        for r0 in range(0, Rx, block):
            rows = list(pool.map(row, range(r0, min(r0 + block, Rx))))
            writer.write_rows(r0, np.stack(rows))
            bar.update(len(rows) * Ry)
        bar.close()
