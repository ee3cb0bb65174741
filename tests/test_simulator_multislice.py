"""The multislice engine's ground truth, checked by the independent edge fit (strainbench.diskfit)."""

import copy

import numpy as np
import pytest

from strainbench.config import load_config, make_engine
from strainbench.diskfit import measure
from strainbench.polycrystal import Polycrystal

from .conftest import ROOT

pytest.importorskip("abtem")


@pytest.fixture(scope="module")
def quick_engine():
    cfg = copy.deepcopy(load_config(ROOT / "config" / "quick_disks.yaml"))
    return make_engine(cfg)


def _grains(layers, tilt_deg, seed=5):
    theta = np.array([12.0, 0.4, 29.7, 59.8, 90.2, 200.0])
    rng = np.random.default_rng(seed)
    n = theta.size
    E = rng.uniform(-0.02, 0.02, size=(n, 3))
    E[0] = 0.0
    tilt = np.zeros((n, 2))
    tilt[1:, 0] = tilt_deg
    return Polycrystal(np.zeros((2, 2), np.int32), E[:, 0], E[:, 1], E[:, 2], theta, np.asarray(layers), tilt, 0)


@pytest.mark.slow
def test_multislice_strain_recovered_at_equal_thickness(quick_engine):
    poly = _grains([3] * 6, 0.0)
    patterns = quick_engine.grain_patterns(poly, progress=False)
    assert patterns.shape == (6, 128, 128)
    est = measure(patterns, quick_engine.probe(), reference=0, method="edge")
    truth = np.stack([poly.exx, poly.eyy, poly.exy], -1)
    mae = np.abs(est[1:, :3] - truth[1:]).mean(axis=0)
    assert np.all(mae < 1e-3), mae


@pytest.mark.slow
def test_multislice_is_deterministic_and_thickness_changes_the_disks(quick_engine):
    from strainbench.io.conventions import deformation_gradient

    F = deformation_gradient(0.01, -0.01, 0.005, 33.0)
    a = quick_engine.grain_pattern(F, 3, np.zeros(2))
    b = quick_engine.grain_pattern(F, 3, np.zeros(2))
    np.testing.assert_array_equal(a, b)
    thick = quick_engine.grain_pattern(F, 9, np.zeros(2))
    # dynamical diffraction: more layers send more intensity out of the direct beam, non-linearly
    c = np.array(a.shape) // 2
    direct_thin = a[c[0] - 5 : c[0] + 6, c[1] - 5 : c[1] + 6].sum() / a.sum()
    direct_thick = thick[c[0] - 5 : c[0] + 6, c[1] - 5 : c[1] + 6].sum() / thick.sum()
    assert direct_thick < direct_thin
