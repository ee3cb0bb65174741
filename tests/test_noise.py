import numpy as np
import pytest

from strainbench.noise import NoiseModel, background


def _pattern(shape=(48, 48)):
    p = np.zeros(shape)
    p[20:28, 20:28] = 50.0
    p[5:9, 30:34] = 2.0
    return p


def test_background_formula():
    b = background((64, 64), 0.01)
    assert b.sum() == pytest.approx(1.0)
    q = np.fft.fftshift(np.fft.fftfreq(64))
    expected = 1 / (1 + (q[:, None] ** 2 + q[None, :] ** 2) / 0.01**2)
    np.testing.assert_allclose(b, expected / expected.sum())
    assert np.unravel_index(np.argmax(b), b.shape) == (32, 32)


def test_noise_free_level_only_scales():
    model = NoiseModel(0.0, counts_per_probe=1e5, intensity_coefficient=2.5e4)
    p = _pattern()
    out = model.apply(p, None)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (p / p.sum() * 2.5e4).astype(np.float32))


@pytest.mark.parametrize("w", [0.05, 0.25, 0.7])
def test_expected_background_fraction_is_the_noise_level(w):
    """The mean of many noisy patterns decomposes into (1 - w) I + w B, up to Poisson error."""
    model = NoiseModel(w, counts_per_probe=1e5, intensity_coefficient=1.0)
    p = _pattern()
    rng = np.random.default_rng(1)
    mean = np.mean([model.apply(p, rng) for _ in range(400)], axis=0).astype(np.float64)
    A = np.column_stack([(p / p.sum()).ravel(), background(p.shape).ravel()])
    coef = np.linalg.lstsq(A, mean.ravel(), rcond=None)[0]
    assert coef[1] == pytest.approx(w, abs=0.003)
    assert coef[0] == pytest.approx(1 - w, abs=0.003)


def test_variance_is_poisson():
    model = NoiseModel(0.5, counts_per_probe=1e5, intensity_coefficient=2.5e4)
    p = _pattern()
    lam = model.expected_counts(p)
    rng = np.random.default_rng(2)
    draws = np.stack([model.apply(p, rng) for _ in range(2000)]) * (1e5 / 2.5e4)
    np.testing.assert_allclose(draws, np.round(draws))  # integer counts
    pixels = [(24, 24), (6, 31), (40, 5), (32, 32)]
    n = draws.shape[0]
    for px in pixels:
        # 4 standard errors of the sample variance and mean of a Poisson variable
        assert draws[:, px[0], px[1]].var() == pytest.approx(lam[px], rel=4 * np.sqrt((1 / lam[px] + 2) / n))
        assert draws[:, px[0], px[1]].mean() == pytest.approx(lam[px], rel=4 / np.sqrt(lam[px] * n))


def test_noise_level_out_of_range_is_refused():
    with pytest.raises(ValueError, match="noise level"):
        NoiseModel(1.5)
