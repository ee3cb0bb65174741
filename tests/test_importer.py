"""``strainbench import``: every format round-trips (axis order, crop, binning), the probe and the
reference region, and bad input gets an error naming the file and the problem."""

import json

import h5py
import numpy as np
import scipy.ndimage as ndi
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
    brightest = np.unravel_index(np.argmax(data.mean(axis=(0, 1))), probe.shape)
    assert np.hypot(*(np.array(ndi.center_of_mass(probe)) - brightest)) < 1.0  # the direct beam


def test_the_file_is_read_once_by_blocks(cube, tmp_path, monkeypatch):
    """Every scan row is read exactly once, even when the probe is estimated from the data."""
    from strainbench import readers

    data, _ = cube
    np.save(tmp_path / "scan.npy", data)
    read = []
    rows = readers.Source.rows
    monkeypatch.setattr(readers.Source, "rows", lambda self, r0, r1: read.extend(range(r0, r1)) or rows(self, r0, r1))
    import_dataset(tmp_path / "scan.npy", tmp_path / "d.h5", reference_region="0:4,2:6")
    assert sorted(read) == list(range(24))


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


def _half_max_radius(p: np.ndarray) -> float:
    """Radius (px) from the area above half maximum, as the methods read it."""
    return float(np.sqrt((p > 0.5 * p.max()).sum() / np.pi))


def test_estimated_probe_ignores_a_central_spike(cube):
    """The noise model's background is a ~1 px peak at the centre: the estimate must find the disk."""
    _, probe = cube
    spiky = probe.copy()
    spiky[48, 48] += 50 * probe.max()

    radius_true, radius_est = _half_max_radius(probe), _half_max_radius(estimate_probe(spiky))
    assert abs(radius_est - radius_true) < 0.5, (radius_est, radius_true)


# ---- the formats read through py4DSTEM and rosettasciio (strainbench.readers) ----


def _counts(data, top):
    """Integer counts (a detector's) from the float patterns, peak ``top``."""
    return np.round(data / data.max() * top)


def _write_mib(path, frames):
    """A Quantum Detectors Merlin file as the detector writes it: per frame a 384-byte ASCII header
    and a big-endian uint16 image stored bottom row first (rosettasciio flips it back)."""
    rows, cols, height, width = frames.shape
    with open(path, "wb") as f:
        for i, frame in enumerate(frames.reshape(-1, height, width)):
            fields = ["MQ1", f"{i + 1:06d}", "00384", "01", f"{width:04d}", f"{height:04d}", "U16", "   1x1", "01",
                      "2026-01-01 00:00:00.000000", "0.001000", "0", "0", "0", "1.200000E+2", "5.110000E+2",
                      "MQ1A", "2026-01-01T00:00:00.000000000Z", "1000000ns", "12", ""]
            f.write(",".join(fields).encode().ljust(384, b" "))
            f.write(np.flipud(frame).astype(">u2").tobytes())


def _signal(data, units):
    """rosettasciio's signal dictionary for a 4D array (two navigation axes, then the detector)."""
    axes = [dict(size=n, index_in_array=i, name=name, scale=1.0, offset=0.0, units=unit, navigate=i < 2)
            for i, (n, name, unit) in enumerate(zip(data.shape, ("y", "x", "ky", "kx"), units))]
    return dict(data=data, axes=axes, metadata={"General": {"title": "scan"}, "Signal": {"signal_type": ""}},
                original_metadata={}, attributes={"_lazy": False}, tmp_parameters={}, learning_results={},
                models={}, package_info={"name": "strainbench-tests", "version": "0"})


def _write_format(fmt, path, data):
    """``data`` (Rx, Ry, Qx, Qy) written as ``fmt``; returns the import options it needs."""
    if fmt == "emd":
        import py4DSTEM

        cube = py4DSTEM.DataCube(data=data)
        cube.calibration.set_Q_pixel_size(0.025)
        py4DSTEM.save(str(path), cube, mode="o")
        return {}
    if fmt == "mib":
        _write_mib(path, data)
        return {"scan_shape": f"{data.shape[0]}x{data.shape[1]}"}
    from rsciio import blockfile, hspy

    if fmt == "blo":  # ASTAR blockfiles hold 8-bit square patterns
        blockfile.file_writer(str(path), _signal(data.astype(np.uint8), ("nm", "nm", "cm", "cm")), intensity_scaling=None)
    else:
        hspy.file_writer(str(path), _signal(data, ("nm", "nm", "1/nm", "1/nm")))
    return {}


@pytest.mark.parametrize("fmt, top", [("emd", None), ("mib", 4000), ("blo", 255), ("hspy", None)])
def test_every_format_round_trips(cube, tmp_path, fmt, top):
    """A 24 x 20 scan (not square, so a transposed scan would show) written in each format and
    imported with a crop gives the same patterns."""
    data = cube[0][:, :20]
    data = _counts(data, top) if top else data.astype(np.float32)
    src = tmp_path / f"scan.{fmt}"
    options = _write_format(fmt, src, data)
    out = tmp_path / "d.h5"
    import_dataset(src, out, reference_region="0:3,0:3", crop="8:88,8:88", **options)
    patterns, _, _, _, attrs = _read(out)
    np.testing.assert_array_equal(patterns, data[:, :, 8:88, 8:88].astype(np.float32))
    if fmt == "emd":  # the calibration, read by py4DSTEM, travels with the data
        assert json.loads(attrs["source_metadata"])["calibration"]["Q_pixel_size"] == 0.025


@pytest.mark.parametrize(
    "setup, kwargs, message",
    [
        ("dm4", {}, "convert to .hspy"),
        ("mib_no_shape", {}, "give --scan-shape"),
        ("mib_truncated", {"scan_shape": "24x20"}, "not the 24 x 20 scan"),
        ("mib_bad", {"scan_shape": "24x20"}, "not a readable .mib file"),
        ("mib_garbage_frames", {}, "not the text the detector writes"),
        ("emd_two_cubes", {}, "exactly one DataCube"),
        ("hspy_truncated", {}, "not a readable .hspy file"),
    ],
)
def test_bad_microscope_files_are_refused(cube, tmp_path, setup, kwargs, message):
    data = _counts(cube[0][:, :20], 4000)
    fmt = setup.split("_")[0]
    src = tmp_path / f"scan.{fmt}"
    if setup == "dm4":
        src.write_bytes(b"\x00\x00\x00\x04")
    elif setup.startswith("mib"):
        _write_mib(src, data)
        if setup == "mib_truncated":  # the acquisition stopped inside row 5
            frame = 384 + 2 * 96 * 96
            src.write_bytes(src.read_bytes()[: frame * (5 * 20 + 7)])
        elif setup == "mib_bad":
            src.write_bytes(b"not a merlin file" * 30)
        elif setup == "mib_garbage_frames":  # a valid first header, then bytes that are no frame headers
            src.write_bytes(src.read_bytes()[:384] + b"\xff" * 200_000)
    elif setup == "emd_two_cubes":
        import py4DSTEM

        py4DSTEM.save(str(src), py4DSTEM.DataCube(data=data, name="a"), mode="o")
        py4DSTEM.save(str(src), py4DSTEM.DataCube(data=data, name="b"), mode="a", emdpath="a_root")
    elif setup == "hspy_truncated":
        _write_format("hspy", src, data)
        src.write_bytes(src.read_bytes()[:5000])
    out = tmp_path / "d.h5"
    with pytest.raises(ContractError, match=message) as err:
        import_dataset(src, out, reference_region="0:2,0:2", **kwargs)
    assert src.name in str(err.value)
    assert not out.exists()


def test_command_line_imports_a_merlin_file(cube, tmp_path, capsys):
    """``strainbench import scan.mib --scan-shape 24x20``: exit 0 and the summary; a wrong scan shape exits 2."""
    from strainbench.cli import main

    data = _counts(cube[0][:, :20], 4000)
    _write_mib(tmp_path / "scan.mib", data)
    args = ["import", str(tmp_path / "scan.mib"), "--reference-region", "0:2,0:2", "--bin", "2"]
    assert main([*args, "--out", str(tmp_path / "d.h5"), "--scan-shape", "24x20"]) == 0
    assert json.loads(capsys.readouterr().out)["pattern_shape"] == [48, 48]
    assert main([*args, "--out", str(tmp_path / "e.h5"), "--scan-shape", "30x20"]) == 2
    assert "not the 30 x 20 scan" in capsys.readouterr().err and not (tmp_path / "e.h5").exists()


@pytest.mark.parametrize("level", [0.25, 0.7])
def test_estimated_probe_radius_under_the_noise_models_background(cube, level):
    """The noise model's background (a Lorentzian about the centre with 1 / r^2 tails) mixed into
    the mean pattern: the half-maximum radius of the estimate is the disk's. (Before this rule the
    estimate gave 6.8 px for a 10.1 px disk at 25% on quick data, 3.0 px at 70%.)"""
    from strainbench.noise import background

    _, probe = cube
    mean = (1 - level) * probe / probe.sum() + level * background(probe.shape)
    radius_true, radius_est = _half_max_radius(probe), _half_max_radius(estimate_probe(mean))
    assert abs(radius_est - radius_true) < 0.5, (radius_est, radius_true)
