"""The Cramér-Rao lower bound of strain and rotation under the paper's noise model.

At a scan position of grain ``g`` the detector counts are Poisson with expectation
``lambda(p) = counts_per_probe * ((1 - w) I_p(params) + w B_p)`` (:mod:`strainbench.noise`), with
``I`` the grain's noise-free pattern (sum 1) and ``params = (exx, eyy, exy, theta, cx, cy)``: the
lab-frame strain and rotation (degrees) of the contract and the pattern centre (pixels, nuisance).
The Fisher information is ``F_ij = sum_p (d lambda/d p_i)(d lambda/d p_j) / lambda``; no unbiased
estimator has a variance below ``diag(F^-1)``, and an efficient one has a mean absolute error of
``sqrt(2/pi) sigma``. The positions of one grain share one pattern, so the bound is computed once
per grain and averaged over positions like the MAE (outside the reference region). The reference
is the median over the reference region; its own error is neglected.

Derivatives of ``I`` come from the simulator:

- ``kinematic`` engine: central finite differences of the renderer itself, steps ``1e-5`` in strain,
  ``1e-3`` degree in rotation and ``1e-3`` pixel in the centre (disk shifts of ~1e-3 pixel against
  edges ~0.5 pixel wide: truncation error ~1e-6 relative, round-off ~1e-12 in float64).
- ``multislice`` engine (rerunning multislice per perturbed parameter is too costly): each disk is
  moved as a whole with its content held fixed. A pixel's intensity is shared among the disks
  (direct beam included) by a model of each (the probe's radial profile scaled to the disk's
  brightness); ``dI/d params = -grad I . sum_k share_k d(centre_k)/d params``, with the
  pattern's gradient by fourth-order central differences (a local stencil). The
  changes of the disks' contents with strain (dynamical intensities, which carry some strain
  information too) are left out.

At ``w = 0`` there is no noise: the bound is zero, reported as such.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .crystal import get_crystal
from .io.conventions import deformation_gradient, reciprocal_deformation
from .io.dataset import DatasetReader
from .io.errors import ContractError
from .noise import background
from .radial import radial_profile
from .simulate import CleanSet, read_clean

PARAMETERS = ("exx", "eyy", "exy", "theta", "centre_x", "centre_y")
STRAIN_KEYS = ("exx", "eyy", "exy", "theta")
STEPS = (1e-5, 1e-5, 1e-5, 1e-3, 1e-3, 1e-3)  # strain, strain, strain, degrees, pixels, pixels


def fisher_information(expected: np.ndarray, jacobian: np.ndarray) -> np.ndarray:
    """``F = J diag(1 / lambda) J^T`` for Poisson counts; ``expected (...)`` > 0, ``jacobian (k, ...)``."""
    J = jacobian.reshape(jacobian.shape[0], -1)
    return (J / expected.reshape(1, -1)) @ J.T


def poisson_crlb(pattern: np.ndarray, jacobian: np.ndarray, noise_level: float, counts_per_probe: float, background_width: float) -> np.ndarray:
    """Standard deviations ``sqrt(diag(F^-1))`` of the parameters for one pattern.

    ``pattern (Qx, Qy)`` sums to 1; ``jacobian (k, Qx, Qy)`` is ``dI/d params``. Zeros at ``w = 0``.
    """
    if noise_level == 0.0:
        return np.zeros(jacobian.shape[0])
    mix = (1 - noise_level) * pattern + noise_level * background(pattern.shape, background_width)
    F = fisher_information(counts_per_probe * mix, counts_per_probe * (1 - noise_level) * jacobian)
    return np.sqrt(np.diag(np.linalg.inv(F)))


def _positions(params: np.ndarray, G0: np.ndarray, hk: np.ndarray, sampling: float, centre: np.ndarray) -> np.ndarray:
    """Pixel positions ``(n, 2)`` of the disks ``hk`` (direct beam ``(0, 0)`` included)."""
    M = reciprocal_deformation(deformation_gradient(*params[:4]))
    return centre + params[4:6] + (hk @ (M @ G0).T) / sampling


def image_gradient(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(dI/dx, dI/dy)`` per pixel by fourth-order central differences (five-point stencil;
    second-order at the two outer pixels of each edge).

    A local stencil, not a Fourier derivative: the direct beam's sharp edge, a thousand times
    brighter than a weak disk, would ring across the whole pattern.
    """

    def along(axis: int) -> np.ndarray:
        f = np.moveaxis(image, axis, 0)
        d = np.gradient(f, axis=0)
        d[2:-2] = (-f[4:] + 8 * f[3:-1] - 8 * f[1:-3] + f[:-4]) / 12
        return np.moveaxis(d, 0, axis)

    return along(0), along(1)


def disk_shares(pattern: np.ndarray, probe: np.ndarray, params: np.ndarray, G0: np.ndarray, sampling: float, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's share of each disk ``(pixels, disks)`` and the disks' indices ``hk (disks, 2)``,
    for the disks near the detector (direct beam included).

    A pixel's intensity is shared among the disks in proportion to a model of each: the probe's
    radial profile about the disk's centre, scaled to the pattern's mean intensity over the disk's
    inner half (so the bright direct beam's edge is not carried along with a weak neighbouring
    disk). ``probe`` is the vacuum probe, centred at ``centre``.
    """
    q = np.hypot(*pattern.shape) / 2 * sampling
    g_min = np.min(np.linalg.svd(G0, compute_uv=False))
    n = int(np.ceil(1.2 * q / g_min)) + 1
    h, k = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    hk = np.stack([h.ravel(), k.ravel()], -1)
    base = _positions(params, G0, hk, sampling, centre)
    near = np.abs(base - np.asarray(pattern.shape) / 2).max(-1) < max(pattern.shape)  # disks near the detector
    hk, base = hk[near], base[near]
    radii, profile = radial_profile(probe, centre)
    inner = radii[profile >= 0.5 * profile.max()].max() / 2  # half the disk radius
    xx, yy = np.indices(pattern.shape)
    rho = np.hypot(xx.ravel()[:, None] - base[None, :, 0], yy.ravel()[:, None] - base[None, :, 1])  # (pixels, disks)
    core = rho <= inner
    amplitude = (pattern.ravel()[:, None] * core).sum(0) / np.maximum(core.sum(0), 1)
    model = amplitude[None] * np.interp(rho, radii, profile, right=0.0)
    return model / np.maximum(model.sum(1, keepdims=True), 1e-300), hk


def disk_moving_jacobian(pattern: np.ndarray, probe: np.ndarray, params: np.ndarray, G0: np.ndarray, sampling: float, centre: np.ndarray) -> np.ndarray:
    """``dI/d params`` ``(6, Qx, Qy)`` with every disk moved as a whole (multislice approximation),
    each pixel moving with the disks it belongs to (:func:`disk_shares`)."""
    share, hk = disk_shares(pattern, probe, params, G0, sampling, centre)
    gx, gy = image_gradient(pattern)
    out = np.empty((len(PARAMETERS),) + pattern.shape)
    for i, step in enumerate(STEPS):
        dp = np.zeros(len(PARAMETERS))
        dp[i] = step
        velocity = (_positions(params + dp, G0, hk, sampling, centre) - _positions(params - dp, G0, hk, sampling, centre)) / (2 * step)
        v = share @ velocity  # (pixels, 2)
        d = -(gx.ravel() * v[:, 0] + gy.ravel() * v[:, 1]).reshape(pattern.shape)
        out[i] = d - pattern * d.sum()  # the simulator keeps every pattern at sum 1 on the detector
    return out


def kinematic_jacobian(engine: Any, params: np.ndarray, n_layers: int) -> np.ndarray:
    """``dI/d params`` ``(6, Qx, Qy)`` by central finite differences of the kinematic renderer."""

    def render(p: np.ndarray) -> np.ndarray:
        image = engine.grain_pattern(deformation_gradient(*p[:4]), n_layers, shift_px=p[4:6])
        return image / image.sum()

    out = np.empty((len(PARAMETERS),) + tuple(engine.geometry.shape))
    for i, step in enumerate(STEPS):
        dp = np.zeros(len(PARAMETERS))
        dp[i] = step
        out[i] = (render(params + dp) - render(params - dp)) / (2 * step)
    return out


def engine_from_clean(clean: CleanSet, pattern_shape: tuple[int, int]):
    """The simulator's engine rebuilt from a clean cache's provenance attributes."""
    from .config import make_engine

    a = clean.attrs
    name = a["engine"]
    section = a.get("engine_params") or {}
    if isinstance(section, str):  # stored as JSON in HDF5 attributes
        section = json.loads(section)
    cfg = {
        "crystal": {"name": a["crystal"]},
        "optics": {"energy_ev": a["energy_ev"], "semiangle_mrad": a["semiangle_mrad"]},
        "detector": {"shape": list(pattern_shape), "sampling": a["sampling_inv_angstrom"]},
        "engine": {"name": name, name: dict(section)},
    }
    return make_engine(cfg)


@dataclass
class GrainBound:
    """Standard deviations of one grain's parameters (strain unitless, theta degrees)."""

    grain: int
    sigma: dict[str, float]


def grain_parameters(clean: CleanSet, g: int) -> np.ndarray:
    """Grain ``g``'s true ``(exx, eyy, exy, theta, centre_x, centre_y)``, the centre at 0."""
    poly = clean.polycrystal
    return np.array([poly.exx[g], poly.eyy[g], poly.exy[g], poly.theta[g], 0.0, 0.0])


def grain_jacobian(clean: CleanSet, g: int, engine: Any = None) -> np.ndarray:
    """``dI/d params`` ``(6, Qx, Qy)`` of grain ``g``'s pattern: by the kinematic ``engine`` (from
    :func:`engine_from_clean`) where the cache is kinematic, else by moving its disks."""
    params = grain_parameters(clean, g)
    if clean.attrs["engine"] == "kinematic":
        return kinematic_jacobian(engine, params, int(clean.polycrystal.layers[g]))
    shape = clean.patterns.shape[1:]
    centre = np.array([shape[0] // 2, shape[1] // 2], dtype=np.float64)
    G0 = get_crystal(clean.attrs["crystal"]).reciprocal
    return disk_moving_jacobian(clean.patterns[g], clean.probe, params, G0, float(clean.attrs["sampling_inv_angstrom"]), centre)


def grain_bounds(clean: CleanSet, noise_level: float, counts_per_probe: float, background_width: float) -> tuple[list[GrainBound], str]:
    """The bound of every grain of ``clean`` and the derivative method used."""
    poly = clean.polycrystal
    shape = clean.patterns.shape[1:]
    kinematic = clean.attrs["engine"] == "kinematic"
    engine = engine_from_clean(clean, shape) if kinematic else None
    out = []
    for g in range(poly.n_grains):
        if noise_level == 0.0:
            sigma = np.zeros(len(PARAMETERS))
        else:
            J = grain_jacobian(clean, g, engine)
            sigma = poisson_crlb(clean.patterns[g], J, noise_level, counts_per_probe, background_width)
        out.append(GrainBound(g, {k: float(s) for k, s in zip(PARAMETERS, sigma)}))
    return out, ("renderer finite differences" if kinematic else "disk moving (contents fixed)")


def dataset_bound(dataset: str | os.PathLike, clean_path: str | os.PathLike) -> dict[str, Any]:
    """The bound of a dataset, per grain and averaged like the MAE; a JSON-ready dict."""
    t0 = time.perf_counter()
    clean = read_clean(clean_path)
    with DatasetReader(dataset) as ds:
        attrs = ds.attrs
        labels, reference = ds.labels(), ds.reference_mask
        pattern_shape = ds.pattern_shape
    if int(attrs["seed"]) != int(clean.attrs["seed"]) or tuple(pattern_shape) != clean.patterns.shape[1:]:
        raise ContractError(clean_path, f"is not the clean cache of {dataset} (seed or pattern size differ)")
    if not np.array_equal(labels["grain"], clean.polycrystal.grain_map):
        raise ContractError(clean_path, f"its grain map differs from the labels of {dataset}")
    w = float(attrs["noise_level"])
    bounds, method = grain_bounds(clean, w, float(attrs["counts_per_probe"]), float(attrs["background_width"]))
    outside = ~reference & (labels["grain"] >= 0)  # crystal outside the reference, as the MAE
    grains = labels["grain"][outside].astype(int)
    factor = math.sqrt(2 / math.pi)
    mae = {k: float(np.mean([factor * bounds[g].sigma[k] for g in grains])) for k in STRAIN_KEYS}
    return {
        "dataset": str(dataset),
        "noise_level": w,
        "counts_per_probe": float(attrs["counts_per_probe"]),
        "derivatives": method,
        "note": "noise-free: no estimator has any variance, the bound is zero" if w == 0 else "",
        "n_positions": int(outside.sum()),
        "mae_bound": mae,
        "grains": [{"grain": b.grain, "sigma": b.sigma} for b in bounds],
        "seconds": time.perf_counter() - t0,
    }
