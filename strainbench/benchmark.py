"""Simulator throughput: noisy patterns per second written to disk, and seconds per grain.

Noisy dataset generation (Poisson draws and the HDF5 write of every scan position) is the part
that scales with the scan; the noise-free per-grain patterns are made once per seed. The two are
timed separately: throughput of the noise stage at a config's detector size (on patterns of the
kinematic engine, whose cost per position is the same as any engine's), and the engine's own
seconds per grain.
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from .config import make_engine, validate_config
from .simulate import simulate_clean, write_noisy_dataset


def noise_stage_throughput(cfg: Mapping, scan_shape: tuple[int, int], noise_level: float, repeats: int = 2) -> float:
    """Patterns per second of :func:`write_noisy_dataset` at the config's detector size (best of ``repeats``)."""
    bench = copy.deepcopy(dict(cfg))
    bench["scan"] = {"shape": list(scan_shape)}
    bench["engine"] = {"name": "kinematic"}
    bench = validate_config(bench, "<benchmark>")
    clean = simulate_clean(bench, seed=0, progress=False)
    best = np.inf
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            t0 = time.perf_counter()
            write_noisy_dataset(Path(tmp) / f"bench{i}.h5", clean, bench, noise_level, progress=False)
            best = min(best, time.perf_counter() - t0)
    return scan_shape[0] * scan_shape[1] / best


def engine_seconds_per_grain(cfg: Mapping, n_grains: int = 2) -> float:
    """Mean seconds of the configured engine for one grain pattern (after a warm-up grain)."""
    from .io.conventions import deformation_gradient

    engine = make_engine(cfg)
    rng = np.random.default_rng(0)
    layers = cfg["polycrystal"]["layers"]
    args = []
    for _ in range(n_grains + 1):
        F = deformation_gradient(*rng.uniform(-0.02, 0.02, 3), rng.uniform(0, 360))
        kwargs = {"F": F, "n_layers": int(rng.integers(layers[0], layers[1] + 1))}
        if engine.name == "multislice":
            kwargs["tilt_deg"] = np.array([cfg["polycrystal"]["tilt_max_deg"] / 2, 0.0])
        args.append(kwargs)
    engine.grain_pattern(**args[0])
    t0 = time.perf_counter()
    for kwargs in args[1:]:
        engine.grain_pattern(**kwargs)
    return (time.perf_counter() - t0) / n_grains


def run_benchmark(configs: Mapping[str, Mapping], scan_shape: tuple[int, int], grains: int) -> list[dict]:
    """Benchmark each named config; returns one result row per config."""
    rows = []
    for name, cfg in configs.items():
        shape = tuple(cfg["detector"]["shape"])
        row = {
            "config": name,
            "detector": f"{shape[0]}x{shape[1]}",
            "engine": cfg["engine"]["name"],
            "noisy_patterns_per_s": noise_stage_throughput(cfg, scan_shape, 0.25),
            "noise_free_patterns_per_s": noise_stage_throughput(cfg, scan_shape, 0.0),
        }
        row["engine_s_per_grain"] = engine_seconds_per_grain(cfg, grains) if grains > 0 else float("nan")
        rows.append(row)
    return rows
