"""The multiple-scattering bias of noise-free data, measured with the reference disk fit.

Two specimen settings are simulated with the configured engine on the grains of one seed: every
grain at one thickness with no tilt (only strain and rotation differ, so an unbiased disk fit
recovers the labels), and the config's own thickness and tilt ranges (dynamical contrast inside the
disks then differs from grain to grain and pulls intensity-weighted disk positions). For each, the
MAE of ``exx, eyy, exy`` of the centre-of-mass and the edge fit of :mod:`strainbench.diskfit`
against the labels, over the grains other than the reference.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Mapping

import numpy as np

from .config import make_engine
from .diskfit import measure
from .polycrystal import PolycrystalOptions, make_polycrystal


def measure_bias(cfg: Mapping, seed: int, progress: bool = True) -> list[dict]:
    """Rows ``{setting, fit, mae_exx, mae_eyy, mae_exy}`` for the two specimen settings."""
    pc = cfg["polycrystal"]
    settings = {
        f"all grains {pc['layers'][0]} layers, no tilt": ((pc["layers"][0], pc["layers"][0]), 0.0),
        f"{pc['layers'][0]}-{pc['layers'][1]} layers, tilt <= {pc['tilt_max_deg']} deg": (tuple(pc["layers"]), float(pc["tilt_max_deg"])),
    }
    engine = make_engine(copy.deepcopy(dict(cfg)))
    probe = engine.probe()
    rows = []
    for name, (layers, tilt) in settings.items():
        options = dataclasses.replace(PolycrystalOptions.from_config(cfg), layers_range=layers, tilt_max_deg=tilt, vacuum_fraction=0.0)
        poly = make_polycrystal(options, seed)
        patterns = engine.grain_patterns(poly, progress=progress)
        truth = np.stack([poly.exx, poly.eyy, poly.exy], -1)
        others = np.arange(poly.n_grains) != poly.reference
        for fit in ("com", "edge"):
            err = np.abs(measure(patterns, probe, poly.reference, fit)[:, :3] - truth)[others]
            rows.append({"setting": name, "fit": fit, **{f"mae_{k}": float(v) for k, v in zip(("exx", "eyy", "exy"), err.mean(axis=0))}})
    return rows
