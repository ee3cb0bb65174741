import numpy as np
import pytest

from strainbench.io.conventions import (
    deformation_from_reciprocal,
    deformation_gradient,
    reciprocal_deformation,
    rotation_matrix,
    strain_from_deformation,
    wrap_angle_deg,
)


def test_rotation_is_counter_clockwise_on_xy_columns():
    R = rotation_matrix(90.0)
    np.testing.assert_allclose(R @ np.array([1.0, 0.0]), [0.0, 1.0], atol=1e-12)


def test_polar_decomposition_recovers_strain_and_rotation():
    rng = np.random.default_rng(0)
    E = rng.uniform(-0.02, 0.02, size=(200, 3))
    theta = rng.uniform(-179, 179, size=200)
    F = deformation_gradient(E[:, 0], E[:, 1], E[:, 2], theta)
    exx, eyy, exy, th = strain_from_deformation(F)
    np.testing.assert_allclose(np.stack([exx, eyy, exy], -1), E, atol=1e-12)
    np.testing.assert_allclose(th, theta, atol=1e-9)


def test_strain_does_not_depend_on_symmetry_equivalent_rotation():
    F = deformation_gradient(0.01, -0.015, 0.004, 37.0)
    for k in range(6):
        exx, eyy, exy, th = strain_from_deformation(F @ rotation_matrix(60.0 * k))
        np.testing.assert_allclose([exx, eyy, exy], [0.01, -0.015, 0.004], atol=1e-12)
        assert wrap_angle_deg(th - 37.0, 60.0) == pytest.approx(0.0, abs=1e-9)


def test_reciprocal_map_round_trip_and_expansion_shrinks_reciprocal_lattice():
    F = deformation_gradient(0.02, 0.0, 0.0, 0.0)
    M = reciprocal_deformation(F)
    np.testing.assert_allclose(deformation_from_reciprocal(M), F)
    # stretching real space along x by 2% shortens the reciprocal x vector by 1/1.02
    np.testing.assert_allclose(M @ np.array([1.0, 0.0]), [1 / 1.02, 0.0])


def test_nan_deformation_gives_nan_strain():
    F = np.full((3, 2, 2), np.nan)
    F[1] = np.eye(2)
    exx, eyy, exy, th = strain_from_deformation(F)
    assert np.isnan(exx[0]) and np.isnan(th[2])
    assert exx[1] == 0 and th[1] == 0


def test_wrap_angle():
    np.testing.assert_allclose(wrap_angle_deg([0, 31, -31, 59, 90], 60), [0, -29, 29, -1, 30 - 60])


def test_lattice_symmetry_of_hexagonal_square_and_oblique_bases_in_any_orientation():
    from strainbench.io import lattice_symmetry_deg, rotation_matrix

    hexagonal = np.array([[1.0, 0.5], [0.0, np.sqrt(3) / 2]])
    square = np.eye(2)
    oblique = np.array([[1.0, 0.3], [0.0, 1.4]])
    for turn in (0.0, 17.0, 233.0):
        R = rotation_matrix(turn)
        assert lattice_symmetry_deg(R @ hexagonal * 31.0) == 60.0
        assert lattice_symmetry_deg(R @ hexagonal @ np.array([[1, 1], [0, 1]])) == 60.0  # another basis of it
        assert lattice_symmetry_deg(R @ square * 12.0) == 90.0
        assert lattice_symmetry_deg(R @ oblique) == 180.0
    # a strained hexagonal lattice (1%) is still read as hexagonal
    assert lattice_symmetry_deg(np.diag([1.01, 0.99]) @ hexagonal) == 60.0
