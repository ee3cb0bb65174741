"""The Cramér-Rao bound: a closed form, an efficient estimator reaching it, the two derivative
methods agreeing, and the dataset-level bound (zero without noise)."""

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.special import erfc

from strainbench.bound import (
    PARAMETERS,
    dataset_bound,
    disk_moving_jacobian,
    engine_from_clean,
    fisher_information,
    kinematic_jacobian,
    poisson_crlb,
    image_gradient,
)
from strainbench.crystal import get_crystal
from strainbench.engines.kinematic import render_disks
from strainbench.io.conventions import deformation_gradient
from strainbench.noise import background
from strainbench.optics import DetectorGeometry
from strainbench.simulate import write_clean

GEOMETRY = DetectorGeometry(shape=(64, 64), sampling=0.02, energy_ev=300e3, semiangle_mrad=3.0)


def test_fisher_of_a_disk_on_a_flat_background_matches_the_closed_form():
    """A uniform disk (radius R, edge blur s, amplitude a per pixel) on a flat background b:
    ``F_xx = pi a^2 int f'(rho)^2 rho / (b + a f(rho)) d rho`` with ``f = erfc((rho - R)/(sqrt 2 s))/2``."""
    a, b, s = 40.0, 200.0, 1.0
    R = GEOMETRY.disk_radius_px
    centre = GEOMETRY.centre + np.array([0.3, -0.2])
    norm = math.pi * (R**2 + s**2)
    disk = render_disks(GEOMETRY, centre[None], np.array([a * norm]), s)  # amplitude a inside
    expected = b + disk

    def f(rho):
        return 0.5 * erfc((rho - R) / (math.sqrt(2) * s))

    def fprime(rho):
        return -a * math.exp(-0.5 * ((rho - R) / s) ** 2) / (math.sqrt(2 * math.pi) * s)

    closed = math.pi * integrate.quad(lambda r: fprime(r) ** 2 * r / (b + a * f(r)), 0, R + 10 * s, points=[R])[0]
    gx, _ = image_gradient(disk)
    stencil = fisher_information(expected, -gx[None])[0, 0]
    h = 1e-3
    plus = render_disks(GEOMETRY, (centre + [h, 0])[None], np.array([a * norm]), s)
    minus = render_disks(GEOMETRY, (centre - [h, 0])[None], np.array([a * norm]), s)
    finite = fisher_information(expected, ((plus - minus) / (2 * h))[None])[0, 0]
    assert abs(stencil / closed - 1) < 0.05, (stencil, closed)
    assert abs(finite / closed - 1) < 0.05, (finite, closed)


@pytest.fixture(scope="module")
def one_grain():
    """A kinematic WS2 grain on a 64 px detector and its renderer."""
    from strainbench.engines.kinematic import KinematicEngine

    engine = KinematicEngine(get_crystal("WS2"), GEOMETRY, debye_waller_b=0.3, direct_beam_fraction=0.9, edge_sigma_px=0.7)
    params = np.array([0.004, -0.003, 0.002, 23.0, 0.0, 0.0])
    return engine, params


def _render(engine, p):
    image = engine.grain_pattern(deformation_gradient(*p[:4]), 1, shift_px=p[4:6])
    return image / image.sum()


def test_an_efficient_estimator_reaches_the_bound(one_grain):
    """Fisher scoring (one-step efficient estimator, re-rendered at each step) over many noise
    draws: its spread lies within 20% of the bound and not below it beyond the sampling error."""
    engine, truth = one_grain
    w, counts = 0.5, 2e4
    bkg = background(GEOMETRY.shape, 0.01)

    def lam(p):
        return counts * ((1 - w) * _render(engine, p) + w * bkg)

    J = kinematic_jacobian(engine, truth, 1)
    sigma = poisson_crlb(_render(engine, truth), J, w, counts, 0.01)
    Jl = counts * (1 - w) * J.reshape(len(PARAMETERS), -1)
    lam0 = lam(truth).ravel()
    F_inv = np.linalg.inv(fisher_information(lam0, Jl))
    rng = np.random.default_rng(7)
    draws = 150
    estimates = np.empty((draws, len(PARAMETERS)))
    for i in range(draws):
        n = rng.poisson(lam0)
        p = truth.copy()
        for _ in range(2):
            lp = lam(p).ravel()
            p = p + F_inv @ (Jl @ ((n - lp) / lp))
        estimates[i] = p
    spread = estimates.std(axis=0, ddof=1)
    sampling = 1 / math.sqrt(2 * (draws - 1))  # relative standard error of a standard deviation
    ratio = spread / sigma
    assert np.all(ratio < 1.2), ratio
    assert np.all(ratio > 1 - 2.5 * sampling), ratio


def test_disk_moving_agrees_with_the_renderer_on_kinematic_disks(one_grain):
    """The multislice approximation (disks moved as wholes, stencil gradient) against finite
    differences of the renderer, where it should hold: kinematic disks do move as wholes."""
    engine, params = one_grain
    pattern = _render(engine, params)
    exact = poisson_crlb(pattern, kinematic_jacobian(engine, params, 1), 0.25, 1e5, 0.01)
    moved = poisson_crlb(pattern, disk_moving_jacobian(pattern, engine.probe(), params, get_crystal("WS2").reciprocal, GEOMETRY.sampling, GEOMETRY.centre), 0.25, 1e5, 0.01)
    np.testing.assert_allclose(moved, exact, rtol=0.1)


def test_dataset_bound_is_zero_without_noise_and_grows_with_it(tiny_cfg, tiny_clean, tiny_dataset, tiny_dataset_clean, tmp_path):
    cache = tmp_path / "clean.h5"
    write_clean(cache, tiny_clean)
    noisy = dataset_bound(tiny_dataset, cache)
    quiet = dataset_bound(tiny_dataset_clean, cache)
    assert quiet["mae_bound"] == {k: 0.0 for k in ("exx", "eyy", "exy", "theta")} and "noise-free" in quiet["note"]
    assert noisy["derivatives"] == "renderer finite differences"
    bound = noisy["mae_bound"]
    assert all(0 < bound[k] < 1e-2 for k in ("exx", "eyy", "exy")) and 0 < bound["theta"] < 1.0, bound
    assert len(noisy["grains"]) == tiny_clean.polycrystal.n_grains
    assert engine_from_clean(tiny_clean, tiny_clean.patterns.shape[1:]).name == "kinematic"
