"""CC-ST-AE: blocks, the affine parametrisation and its inverse, strain extraction, a short fit."""

import math

import h5py
import numpy as np
import pytest
import scipy.ndimage as ndi

torch = pytest.importorskip("torch")

from ccstae.affine import affine_grid, compose, invert, sample_points, warp  # noqa: E402
from ccstae.data import clear_of_direct_beam, gaussian_blur, radial_grid, ring_mask, spot_centres, spot_mask  # noqa: E402
from ccstae.model import CCSTAE, AffineHead, AffineLimits, Encoder, KSparse, ResidualBlock  # noqa: E402
from ccstae.strain import strain_maps  # noqa: E402
from strainbench.io import DatasetReader, reciprocal_deformation  # noqa: E402
from strainbench.io.conventions import deformation_gradient  # noqa: E402
from strainbench.metrics import evaluate  # noqa: E402


def _grad_ok(module, out):
    out.square().mean().backward()
    grads = [p.grad for p in module.parameters() if p.requires_grad]
    return grads and all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_block_shapes_and_gradients():
    torch.manual_seed(0)
    block = ResidualBlock(8)
    y = block(torch.randn(2, 8, 16, 16))
    assert y.shape == (2, 8, 16, 16) and _grad_ok(block, y)
    enc = Encoder(32)
    h = enc(torch.randn(3, 1, 32, 32))
    assert h.shape == (3, 64) and _grad_ok(enc, h)
    ks = KSparse(64, 4)
    onehot = ks(torch.randn(5, 64))
    assert torch.allclose(onehot.detach().sum(-1), torch.ones(5)) and set(onehot.detach().unique().tolist()) <= {0.0, 1.0}
    (onehot * torch.arange(4.0)).sum().backward()
    assert ks.logits.weight.grad.abs().sum() > 0  # trained through the soft values
    head = AffineHead(64, 4, AffineLimits())
    with torch.no_grad():
        head.linear.weight.normal_(0, 10.0)
    A, t, params = head(torch.randn(6, 64), torch.eye(4)[[0, 1, 2, 3, 0, 1]])
    assert A.shape == (6, 2, 2) and t.shape == (6, 2)
    assert params.abs().max() <= 0.05 + 1e-6 and t.abs().max() <= 0.1 + 1e-6
    model = CCSTAE(48, 32, num_bases=2)
    A, t, base, params = model(torch.rand(4, 1, 32, 32))
    assert base.shape == (4, 1, 48, 48)
    (base.mean() + A.sum() + t.sum()).backward()
    assert model.base_logits.grad.abs().sum() > 0


def _disk_image(size, centre, radius=4.0):
    xx, yy = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    d = torch.hypot(xx - centre[0], yy - centre[1])
    return torch.sigmoid((radius - d) / 0.7)[None, None]


def _centroid(img):
    img = img[0, 0]
    xx, yy = torch.meshgrid(torch.arange(img.shape[0], dtype=torch.float64), torch.arange(img.shape[1], dtype=torch.float64), indexing="ij")
    w = img.double()
    return torch.stack([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()])


def test_transform_then_inverse_returns_the_image():
    img = _disk_image(64, (30.0, 36.0), 6.0) + 0.5 * _disk_image(64, (20.0, 25.0), 5.0)
    A = compose(torch.tensor([0.03]), torch.tensor([-0.02]), torch.tensor([0.01]), torch.tensor([math.radians(25.0)]))
    t = torch.tensor([[0.02, -0.03]])
    back = warp(warp(img, A, t), *invert(A, t))
    assert (back - img).abs().max() < 0.06  # two bilinear resamplings
    assert torch.allclose(_centroid(back), _centroid(img), atol=0.02)


def test_affine_grid_is_pytorchs_with_axes_swapped():
    """Our grid equals ``F.affine_grid`` of ``theta = P [A | t]`` (``P`` the row/column swap), also in its gradient."""
    torch.manual_seed(0)
    A = (torch.eye(2) + 0.1 * torch.randn(3, 2, 2)).requires_grad_()
    t = (0.1 * torch.randn(3, 2)).requires_grad_()
    P = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    theta = torch.cat([P @ A @ P, (t @ P).unsqueeze(-1)], -1)
    reference = torch.nn.functional.affine_grid(theta, [3, 1, 20, 24], align_corners=False)
    ours = affine_grid(A, t, 20, 24)
    assert ours.shape == reference.shape and torch.allclose(ours, reference, atol=1e-6)
    weights = torch.randn_like(ours)
    grads = torch.autograd.grad((ours * weights).sum(), (A, t))
    grads_ref = torch.autograd.grad((reference * weights).sum(), (A, t))
    assert all(torch.allclose(g, r, atol=1e-4) for g, r in zip(grads, grads_ref))


def test_sample_points_is_the_warp_at_those_points():
    """Sampling chosen output pixels gives the warped image's values there (bilinear and nearest)."""
    torch.manual_seed(1)
    image = torch.rand(2, 3, 20, 24)
    A = torch.eye(2) + 0.1 * torch.randn(2, 2, 2)
    t = 0.1 * torch.randn(2, 2)
    rows, columns = torch.tensor([[0, 7, 19], [3, 11, 12]]), torch.tensor([[0, 5, 23], [9, 2, 17]])
    points = torch.stack([(2 * rows + 1) / 20 - 1, (2 * columns + 1) / 24 - 1], -1).float()
    for mode in ("bilinear", "nearest"):
        warped = warp(image, A, t, mode=mode)
        expected = torch.stack([warped[b][:, rows[b], columns[b]] for b in range(2)])
        assert torch.allclose(sample_points(image, A, t, points, mode=mode), expected, atol=1e-6)


def test_gaussian_blur_is_a_convolution_with_replicated_edges():
    torch.manual_seed(2)
    patterns = torch.rand(3, 1, 20, 24)
    sigma = 1.7
    k = math.ceil(3 * sigma)
    g = torch.exp(-0.5 * (torch.arange(-k, k + 1.0) / sigma) ** 2)
    g = g / g.sum()
    padded = torch.nn.functional.pad(patterns, (k, k, k, k), mode="replicate")
    reference = torch.nn.functional.conv2d(torch.nn.functional.conv2d(padded, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))
    assert torch.allclose(gaussian_blur(patterns, sigma), reference, atol=1e-6)
    assert torch.equal(gaussian_blur(patterns, 0.0), patterns)


def test_axes_and_sense_of_the_warp():
    """A pattern whose disk sits at A p (contract x = rows) is warped by A back onto p."""
    size, c = 64, 31.5  # pixel-centred normalised coordinates: the centre is (size - 1) / 2
    p = torch.tensor([c + 12.0, c + 3.0])
    A = compose(torch.tensor([0.04]), torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([math.radians(10.0)]))
    q = c + (A[0].double() @ (p.double() - c))
    pattern = _disk_image(size, q.tolist())
    aligned = warp(pattern, A, torch.zeros(1, 2))
    assert torch.allclose(_centroid(aligned), p.double(), atol=0.03)


def test_strain_from_affines_with_known_strain():
    rng = np.random.default_rng(0)
    E = rng.uniform(-0.02, 0.02, size=(12, 3))
    theta = rng.uniform(0, 360, size=12)
    E[0] = 0
    # a pattern's A is its reciprocal deformation (times the base's, which the reference fixes)
    base = reciprocal_deformation(deformation_gradient(0, 0, 0, 17.0))
    A = np.stack([reciprocal_deformation(deformation_gradient(*e, th)) @ np.linalg.inv(base) for e, th in zip(E, theta)])
    mask = np.zeros((3, 4), bool)
    mask[0, 0] = True
    maps = strain_maps(A, (3, 4), mask)
    est = np.stack([maps[k].ravel() for k in ("exx", "eyy", "exy")], -1)
    np.testing.assert_allclose(est, E, atol=1e-10)


def test_reference_region_split_between_symmetry_basins():
    """A hexagonal base matches ``A`` and ``A R(60 k)`` alike. A reference region whose patterns
    fell into three such basins still gives each pattern's strain (its element-wise median over
    all basins would not)."""
    rng = np.random.default_rng(1)
    E = rng.uniform(-0.02, 0.02, size=(12, 3))
    E[:6] = 0.0  # the unstrained reference region: the first six patterns
    theta = np.where(np.arange(12) < 6, 20.0, rng.uniform(0, 360, size=12))
    basins = np.array([0, 0, 0, 60, -120, 60, 0, 60, 120, 180, -60, 0])
    A = np.stack([reciprocal_deformation(deformation_gradient(*e, th)) @ reciprocal_deformation(deformation_gradient(0, 0, 0, b)) for e, th, b in zip(E, theta, basins)])
    mask = np.zeros((3, 4), bool)
    mask[0, :] = True
    mask[1, :2] = True
    maps = strain_maps(A, (3, 4), mask)
    est = np.stack([maps[k].ravel() for k in ("exx", "eyy", "exy")], -1)
    np.testing.assert_allclose(est, E, atol=1e-10)
    naive = np.median(A[:6], axis=0)
    assert np.abs(np.linalg.svd(naive, compute_uv=False) - 1).max() > 0.1  # what the plain median gave
    # with the lattice's symmetry the rotation is the equivalent one nearest the reference's
    wrapped = strain_maps(A, (3, 4), mask, symmetry_deg=60.0)["theta"].ravel()
    expected = (theta - 20.0 + 30.0) % 60.0 - 30.0
    np.testing.assert_allclose(wrapped, expected, atol=1e-6)
    assert (np.abs(maps["theta"].ravel()[6:] - expected[6:]) > 1).any()  # without it, basins show


def test_short_fit_beats_the_zero_predictor(tiny_dataset_clean, tmp_path):
    from ccstae.cli import run_fit

    out = tmp_path / "ccstae.h5"
    run_fit(str(tiny_dataset_clean), str(out), None, "cpu", progress=False)
    m = evaluate(tiny_dataset_clean, out)
    with DatasetReader(tiny_dataset_clean) as ds:
        labels, mask = ds.labels(), ds.reference_mask
    assert m["coverage"] == 1.0 and m["device"] == "cpu"
    for key in ("exx", "eyy", "exy"):
        zero = float(np.abs(labels[key][~mask]).mean())
        assert m["mae"][key] < 0.4 * zero, (key, m["mae"][key], zero)
    assert not out.with_name(out.name + ".ckpt").exists()
    with h5py.File(out) as f:  # noise-free: the learned base stays in the reference region's frame
        stretch = np.asarray(f.attrs["base_frame_stretch"])
    assert stretch.shape == (2,) and np.abs(stretch - 1).max() < 0.01, stretch


def test_fit_is_deterministic_and_resumes_from_its_checkpoint(tiny_dataset_clean, tmp_path):
    from ccstae.data import load_patterns
    from ccstae.train import FitConfig, fit

    torch.set_num_threads(2)
    data = load_patterns(str(tiny_dataset_clean))
    cfg = FitConfig(rotation_epochs=1, strain_epochs=2)
    a = fit(data, cfg, torch.device("cpu"), progress=False)
    ckpt = tmp_path / "fit.ckpt"
    b = fit(data, cfg, torch.device("cpu"), progress=False, checkpoint=ckpt)
    np.testing.assert_array_equal(a.A, b.A)  # same seed, same bytes on the CPU
    assert ckpt.exists()
    resumed = fit(data, cfg, torch.device("cpu"), progress=False, checkpoint=ckpt)
    assert len(resumed.history) == 3 and resumed.history == b.history  # nothing left to train
    np.testing.assert_array_equal(resumed.A, b.A)



def test_strain_stage_penalises_a_rotation_that_leaves_the_rotation_stage_answer():
    from ccstae.train import FitConfig, loss_terms

    model = CCSTAE(32, 32, num_bases=1)  # untrained: every rotation is 0
    x, small, mask = torch.rand(4, 1, 32, 32), torch.rand(4, 1, 32, 32), torch.ones(1, 1, 32, 32)
    cfg = FitConfig()
    free, _ = loss_terms(model, x, small, mask, cfg, False)
    near, _ = loss_terms(model, x, small, mask, cfg, False, anchor=torch.full((4,), math.radians(4.0)))
    far, _ = loss_terms(model, x, small, mask, cfg, False, anchor=torch.tensor([0.5, -0.5, 0.5 + 2 * math.pi, 0.0]))
    assert torch.isclose(near, free)  # within the tolerance: no penalty
    excess = (0.5 - math.radians(cfg.rotation_tolerance_deg)) * 3 / 4  # three of four patterns 0.5 rad off (one wrapped)
    assert torch.isclose(far - free, torch.tensor(cfg.range_weight * excess), rtol=1e-4)


def test_fit_stops_with_a_clear_error_when_the_training_diverges():
    from ccstae.data import PatternSet
    from ccstae.train import FitConfig, fit

    patterns = torch.rand(16, 1, 32, 32)
    patterns[5, 0, 3, 3] = float("inf")  # one pixel no contract check would let through
    reference = np.zeros((4, 4), dtype=bool)
    reference[:2, :2] = True
    data = PatternSet(patterns, (4, 4), reference, 3.0, (15.5, 15.5), 3.5)
    with pytest.raises(FloatingPointError, match="diverged"):
        fit(data, FitConfig(rotation_epochs=1, strain_epochs=1, batch_size=8), torch.device("cpu"), progress=False)

def test_device_choice():
    from ccstae.cli import choose_device

    assert choose_device("cpu").type == "cpu"
    assert choose_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            choose_device("cuda")


def test_cubic_lattice_without_code_changes(tiny_cfg, tmp_path):
    """Generality: SrTiO3 [001] (square lattice, 4-fold) on the tiny detector, defaults unchanged."""
    import copy

    from ccstae.cli import run_fit
    from strainbench.simulate import simulate_clean, write_noisy_dataset

    cfg = copy.deepcopy(tiny_cfg)
    cfg["crystal"]["name"] = "SrTiO3"
    cfg["optics"]["semiangle_mrad"] = 1.5  # disks of 4.6 px at 15 px spacing
    dataset = tmp_path / "sto_w0.h5"
    write_noisy_dataset(dataset, simulate_clean(cfg, seed=1, progress=False), cfg, 0.0, progress=False)
    out = tmp_path / "sto_strain.h5"
    run_fit(str(dataset), str(out), None, "cpu", progress=False)
    m = evaluate(dataset, out)
    assert m["coverage"] == 1.0
    assert max(m["mae"][k] for k in ("exx", "eyy", "exy")) < 1e-3, m["mae"]  # measured 0.32e-3 at most


def test_base_initialisation_reproduces_bright_and_faint_pixels():
    # a direct beam 100 times the mean after the Anscombe transform: log(expm1(100)) overflows float32
    init = torch.full((48, 48), 0.5)
    init[24, 24], init[0, 0] = 150.0, 2e-3
    model = CCSTAE(48, 32, num_bases=1, init_base=init)
    assert torch.isfinite(model.base_logits).all()
    assert torch.allclose(model.bases()[0], init, rtol=1e-5)


def test_spot_centres_are_the_lattice_over_a_steep_background_and_noise():
    # a hexagonal lattice of disks (29 px) on a steep central background, its outer shells
    # fainter, and maxima of noise between them: the spots are the lattice points, whatever their
    # height, and none of the maxima off the lattice; the lattice spacing comes with them
    size, centre, radius = 128, (64.0, 64.0), 4.0
    r = radial_grid(size, centre)
    base = 200.0 / (1.0 + r**2 / 4.0)
    g1, g2 = np.array([29.0, 0.0]), 29.0 * np.array([0.5, math.sqrt(3) / 2])
    expected = set()
    for h in range(-3, 4):
        for k in range(-3, 4):
            p = np.array(centre) + h * g1 + k * g2
            d = float(np.hypot(*(p - centre)))
            if 0 < d < 58:
                base = base + (1.0 if d < 40 else 0.2) * (radial_grid(size, tuple(p)) <= radius).float()
                expected.add((round(p[0]), round(p[1])))
    rng = np.random.default_rng(0)
    for x, y in rng.uniform(10, 118, size=(40, 2)):
        base = base + 0.05 * (radial_grid(size, (x, y)) <= 1.5).float()
    ring = ring_mask(size, centre, 1.3 * radius, 0.48 * size)
    spots = spot_centres(base[None, None], ring, centre, radius, 2 * radius)
    assert abs(spots.spacing - 29.0) < 0.3
    found = set(spots.centres)
    assert len(found) == len(expected) and all(min(abs(x - ex) + abs(y - ey) for ex, ey in expected) <= 1 for x, y in found)
    mask = spot_mask(spots.centres, ring, 1.1 * radius)
    _, count = ndi.label(mask[0, 0].numpy() > 0)
    assert count == len(expected) and mask.shape == base[None, None].shape
    # the direct beam's reach: disks whose inner edge lies within it of the beam's edge are left out
    clear = clear_of_direct_beam(spots, centre, radius, 29.0 - 2 * radius + 1)
    assert all(math.hypot(x - centre[0], y - centre[1]) > 40 for x, y in clear.centres) and len(clear.centres) == len(expected) - 6


def test_fit_config_rejects_unknown_keys_and_bad_refinement_settings():
    from ccstae.train import FitConfig

    assert FitConfig.from_dict({"refine_highpass": 0.0, "refine_background": True}).refine_background
    for bad in ({"refine_highpas": 0.5}, {"refine_highpass": -0.5}, {"refine_strain_limit": 0.0}):
        with pytest.raises(ValueError):
            FitConfig.from_dict(bad)
