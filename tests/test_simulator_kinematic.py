"""The kinematic engine's ground truth, checked by an independent disk fit (strainbench.diskfit)."""

import copy

import numpy as np
import pytest

from strainbench.config import make_engine, validate_config
from strainbench.diskfit import measure
from strainbench.engines.kinematic import render_disks
from strainbench.io import DatasetReader
from strainbench.io.conventions import wrap_angle_deg
from strainbench.optics import DetectorGeometry
from strainbench.polycrystal import Polycrystal

ROTATIONS = np.array([0.3, 29.6, 30.4, 59.7, 60.2, 89.6, 90.3, 137.0, 251.0, 333.3])


def _grains(theta: np.ndarray, seed: int) -> Polycrystal:
    rng = np.random.default_rng(seed)
    n = theta.size
    E = rng.uniform(-0.02, 0.02, size=(n, 3))
    E[0] = 0.0  # grain 0 is the reference
    return Polycrystal(
        grain_map=np.zeros((2, 2), np.int32), exx=E[:, 0], eyy=E[:, 1], exy=E[:, 2], theta=theta,
        layers=np.ones(n, int), tilt=np.zeros((n, 2)), reference=0,
    )


@pytest.mark.parametrize("crystal, semiangle", [("WS2", 2.5), ("SrTiO3", 1.2)])
def test_kinematic_strain_recovered_by_independent_disk_fit(tiny_cfg, crystal, semiangle):
    cfg = copy.deepcopy(tiny_cfg)
    cfg["crystal"]["name"] = crystal
    cfg["optics"]["semiangle_mrad"] = semiangle
    engine = make_engine(validate_config(cfg))
    theta = np.concatenate([[17.0], ROTATIONS])
    poly = _grains(theta, seed=4)
    est = measure(engine.grain_patterns(poly), engine.probe(), reference=0, method="com")
    truth = np.stack([poly.exx, poly.eyy, poly.exy], -1)
    mae = np.abs(est[1:, :3] - truth[1:]).mean(axis=0)
    assert np.all(mae < 1e-4), mae
    dtheta = wrap_angle_deg(est[1:, 3] - (theta[1:] - theta[0]), engine.crystal.symmetry_deg)
    assert np.abs(dtheta).mean() < 0.05


def test_subpixel_disk_shift_moves_centroid_by_the_shift():
    geo = DetectorGeometry((64, 64), 0.0125, 300e3, 2.5)
    xx, yy = np.indices(geo.shape)
    for shift in (0.1, 0.25, 0.5, 0.73):
        base = np.array([30.0, 31.0])
        imgs = [render_disks(geo, c[None], np.ones(1), 0.5) for c in (base, base + [shift, -shift / 2])]
        cents = [np.array([(im * xx).sum(), (im * yy).sum()]) / im.sum() for im in imgs]
        np.testing.assert_allclose(cents[1] - cents[0], [shift, -shift / 2], atol=1e-3)


def test_probe_is_centred_direct_beam(tiny_clean):
    probe = tiny_clean.probe
    xx, yy = np.indices(probe.shape)
    centre = np.array([(probe * xx).sum(), (probe * yy).sum()]) / probe.sum()
    np.testing.assert_allclose(centre, np.array(probe.shape) // 2, atol=1e-6)


def test_dataset_holds_grain_patterns_and_labels(tiny_clean, tiny_dataset_clean):
    poly = tiny_clean.polycrystal
    with DatasetReader(tiny_dataset_clean) as ds:
        labels = ds.labels()
        cube = ds.read_rows(0, ds.scan_shape[0])
        assert ds.attrs["noise_level"] == 0.0
        assert ds.attrs["symmetry_deg"] == 60.0
        np.testing.assert_array_equal(ds.reference_mask, poly.grain_map == poly.reference)
        np.testing.assert_allclose(ds.probe.sum(), ds.attrs["intensity_coefficient"], rtol=1e-5)
    np.testing.assert_array_equal(labels["grain"], poly.grain_map)
    for key in ("exx", "eyy", "exy", "theta"):
        np.testing.assert_array_equal(labels[key], getattr(poly, key)[poly.grain_map].astype(np.float32))
    # at w = 0 each pattern is its grain's noise-free pattern, scaled, with no noise
    g = poly.grain_map
    expected = (tiny_clean.patterns[g] * 2.5e4).astype(np.float32)
    np.testing.assert_allclose(cube, expected, rtol=1e-6)
    assert labels["exx"][poly.reference_mask].max() == 0.0


def test_polycrystal_ranges_and_grain_sizes(tiny_clean):
    poly = tiny_clean.polycrystal
    sizes = np.bincount(poly.grain_map.ravel())
    assert poly.n_grains >= 4 and sizes.min() > 0
    assert sizes.max() > 2 * sizes.min(), "grain sizes should vary"
    assert poly.reference == int(np.argmax(sizes))
    others = np.arange(poly.n_grains) != poly.reference
    for key in ("exx", "eyy", "exy"):
        v = getattr(poly, key)[others]
        assert np.all(np.abs(v) <= 0.02) and np.any(v != 0)
    assert np.all((poly.theta >= 0) & (poly.theta < 360))
