"""``strainbench import``: every format round-trips (axis order, crop, binning), the probe and the
reference region, and bad input gets an error naming the file and the problem."""

import h5py
import numpy as np
import pytest

from strainbench.importer import estimate_probe, import_dataset
from strainbench.io import ContractError, DatasetReader


@pytest.fixture(scope="module")
def cube(tiny_dataset):
    """The tiny simulated dataset's patterns (24 x 24 scan, 96 x 96 px) and probe."""
    with DatasetReader(tiny_dataset) as ds:
        return ds.read_rows(0, ds.scan_shape[0]).astype(np.float64), ds.probe.astype(np.float64)


def _read(path):
    with DatasetReader(path) as ds:
        return ds.read_rows(0, ds.scan_shape[0]), ds.reference_mask, ds.probe, ds.has_labels, ds.attrs


def test_npy_round_trip_with_reference_region(cube, tmp_path):
    data, _ = cube
    np.save(tmp_path / "scan.npy", data)
    out = tmp_path / "d.h5"
    import_dataset(tmp_path / "scan.npy", out, reference_region="0:4,2:6")
    patterns, mask, probe, has_labels, attrs = _read(out)
    np.testing.assert_allclose(patterns, data.astype(np.float32))
    assert mask.sum() == 16 and mask[0:4, 2:6].all() and not has_labels
    assert attrs["probe_source"].startswith("estimated")
    assert probe.argmax() == np.argmax(data.mean(axis=(0, 1)))  # the direct beam


def test_hdf5_with_axis_order_crop_and_binning(cube, tmp_path):
    data, probe = cube
    src = tmp_path / "scan.h5"
    with h5py.File(src, "w") as f:  # detector axes first, as some readers write them
        f.create_dataset("output4D", data=np.transpose(data, (2, 3, 0, 1)))
    np.save(tmp_path / "probe.npy", probe[8:88, 8:88].reshape(40, 2, 40, 2).sum(axis=(1, 3)))
    out = tmp_path / "d.h5"
    import_dataset(src, out, key="output4D", axes="QxQyRxRy", reference_region="0:2,0:2", crop="8:88,8:88", binning=2, probe=tmp_path / "probe.npy")
    patterns, _, imported_probe, _, attrs = _read(out)
    expected = data[:, :, 8:88, 8:88].reshape(24, 24, 40, 2, 40, 2).sum(axis=(3, 5))
    np.testing.assert_allclose(patterns, expected.astype(np.float32), rtol=1e-6)
    assert imported_probe.shape == (40, 40) and attrs["bin"] == 2 and attrs["crop"] == "8:88,8:88"


def test_probe_from_a_vacuum_region_and_negative_values_clipped(cube, tmp_path):
    data, probe = cube
    data = data.copy()
    data[0:2, 0:3] = probe  # vacuum
    data[5, 5, 0, 0] = -3.0  # dark-subtracted
    np.save(tmp_path / "scan.npy", data)
    out = tmp_path / "d.h5"
    import_dataset(tmp_path / "scan.npy", out, reference_region="10:12,10:12", probe_region="0:2,0:3")
    patterns, _, imported_probe, _, attrs = _read(out)
    np.testing.assert_allclose(imported_probe / imported_probe.sum(), probe / probe.sum(), rtol=1e-5, atol=1e-9)
    assert attrs["clipped_negative_values"] == 1 and patterns[5, 5, 0, 0] == 0


def test_estimated_probe_is_the_direct_beam(cube):
    _, probe = cube
    mean = probe * 0.9 + 0.001  # a beam on a weak flat background
    est = estimate_probe(mean)
    assert est[probe > 0.5 * probe.max()].all() and est[0, 0] == 0


@pytest.mark.parametrize(
    "setup, kwargs, message",
    [
        ("npy", {}, "reference region is required"),
        ("npy", {"reference_region": "20:30,0:2"}, "outside the 24 x 24 scan"),
        ("txt", {"reference_region": "0:2,0:2"}, "unknown format"),
        ("npy3d", {"reference_region": "0:2,0:2"}, "3-dimensional"),
        ("truncated", {"reference_region": "0:2,0:2"}, "truncated"),
        ("nan", {"reference_region": "0:2,0:2"}, "NaN or infinite values at scan position (3, 4)"),
        ("npy", {"reference_region": "0:2,0:2", "probe": "badprobe"}, "does not match the pattern shape"),
        ("npy", {"reference_region": "0:2,0:2", "binning": 5}, "does not divide"),
        ("h5", {"reference_region": "0:2,0:2"}, "needs --key"),
        ("h5", {"reference_region": "0:2,0:2", "key": "nope"}, "has no dataset 'nope'"),
    ],
)
def test_bad_input_is_refused_with_the_file_named(cube, tmp_path, setup, kwargs, message):
    data, _ = cube
    src = tmp_path / "scan.npy"
    if setup in ("npy", "nan", "truncated"):
        if setup == "nan":
            data = data.copy()
            data[3, 4, 10, 10] = np.nan
        np.save(src, data)
        if setup == "truncated":
            src.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    elif setup == "npy3d":
        np.save(src, data[0])
    elif setup == "txt":
        src = tmp_path / "scan.txt"
        src.write_text("1 2 3")
    elif setup == "h5":
        src = tmp_path / "scan.h5"
        with h5py.File(src, "w") as f:
            f.create_dataset("output4D", data=data)
    if kwargs.get("probe") == "badprobe":
        np.save(tmp_path / "badprobe.npy", np.ones((10, 10)))
        kwargs = {**kwargs, "probe": tmp_path / "badprobe.npy"}
    out = tmp_path / "d.h5"
    with pytest.raises(ContractError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        import_dataset(src, out, **kwargs)
    assert str(src.name) in str(err.value) or "badprobe" in str(err.value)
    assert not out.exists()  # nothing half-written


def test_estimated_probe_ignores_a_central_spike(cube):
    """The noise model's background is a ~1 px peak at the centre: the estimate must find the disk."""
    _, probe = cube
    spiky = probe.copy()
    spiky[48, 48] += 50 * probe.max()

    def radius(p):  # from the area above half maximum, as the methods read it
        return np.sqrt((p > 0.5 * p.max()).sum() / np.pi)

    radius_true, radius_est = radius(probe), radius(estimate_probe(spiky))
    assert abs(radius_est - radius_true) < 0.5, (radius_est, radius_true)
