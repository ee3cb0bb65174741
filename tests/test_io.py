"""Every way a contract file can be wrong gets one clear error naming the file and the problem."""

import shutil

import h5py
import numpy as np
import pytest

from strainbench.io import (
    ContractError,
    DatasetReader,
    DatasetWriter,
    read_strain,
    validate_dataset,
    write_strain,
)

SCAN, PAT = (4, 5), (16, 16)


def _labels():
    z = np.zeros(SCAN, np.float32)
    return {"exx": z, "eyy": z, "exy": z, "theta": z, "grain": np.zeros(SCAN, np.int32)}


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.h5"
    mask = np.zeros(SCAN, bool)
    mask[0, 0] = True
    with DatasetWriter(path, SCAN, PAT, np.ones(PAT), mask, {"noise_level": 0.1, "seed": 3}, _labels()) as w:
        w.write_rows(0, np.ones(SCAN + PAT, np.float32))
    return path


def _corrupt(good, tmp_path, edit):
    bad = tmp_path / "bad.h5"
    shutil.copy(good, bad)
    with h5py.File(bad, "a") as f:
        edit(f)
    return bad


def test_good_file_validates(good):
    info = validate_dataset(good)
    assert info.scan_shape == SCAN and info.pattern_shape == PAT and info.has_labels
    assert info.attrs["noise_level"] == 0.1


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda f: f.__delitem__("probe"), "missing dataset 'probe'"),
        (lambda f: f.__delitem__("reference_mask"), "missing dataset 'reference_mask'"),
        (lambda f: f.__delitem__("labels/theta"), "missing dataset 'labels/theta'"),
        (lambda f: (f.__delitem__("probe"), f.create_dataset("probe", data=np.ones((8, 8), np.float32))), "'probe' has shape (8, 8), expected (16, 16)"),
        (lambda f: (f.__delitem__("datacube"), f.create_dataset("datacube", data=np.ones((4, 5, 16), np.float32))), "expected 4 dimensions"),
        (lambda f: (f.__delitem__("datacube"), f.create_dataset("datacube", data=np.ones(SCAN + PAT, np.float64))), "dtype float64, expected float32"),
        (lambda f: (f.__delitem__("reference_mask"), f.create_dataset("reference_mask", data=np.zeros(SCAN, bool))), "selects no scan position"),
        (lambda f: f.attrs.__setitem__("format", "something.else"), "format='something.else'"),
        (lambda f: f.attrs.__delitem__("format"), "missing attribute 'format'"),
        (lambda f: f.attrs.__setitem__("version", 2), "contract version 2 is not supported"),
        (lambda f: f["datacube"].__setitem__((2, 3, 5, 5), np.nan), "NaN or infinite values at scan position (2, 3)"),
        (lambda f: f["datacube"].__setitem__((1, 4, 0, 0), -1.0), "negative counts at scan position (1, 4)"),
        (lambda f: f["probe"].__setitem__((0, 0), np.nan), "'probe' contains NaN"),
    ],
)
def test_dataset_errors_name_file_and_problem(good, tmp_path, edit, message):
    bad = _corrupt(good, tmp_path, edit)
    with pytest.raises(ContractError) as err:
        validate_dataset(bad)
    assert str(bad) in str(err.value)
    assert message in str(err.value)


def test_truncated_and_missing_files(good, tmp_path):
    data = good.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ContractError, match="cut.h5"):
        validate_dataset(cut)
    with pytest.raises(ContractError, match="no such file"):
        validate_dataset(tmp_path / "absent.h5")


def test_labels_absent_is_clear(good, tmp_path):
    bad = _corrupt(good, tmp_path, lambda f: f.__delitem__("labels"))
    with DatasetReader(bad) as ds:
        assert not ds.has_labels
        with pytest.raises(ContractError, match="no 'labels' group"):
            ds.labels()


def test_interrupted_write_leaves_no_file(tmp_path):
    path = tmp_path / "partial.h5"
    mask = np.ones(SCAN, bool)
    with pytest.raises(RuntimeError):
        with DatasetWriter(path, SCAN, PAT, np.ones(PAT), mask, {}) as w:
            w.write_rows(0, np.ones((1,) + SCAN[1:] + PAT, np.float32))
            raise RuntimeError("killed")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_incomplete_write_is_an_error_and_leaves_no_file(tmp_path):
    path = tmp_path / "incomplete.h5"
    with pytest.raises(ContractError, match="never written"):
        with DatasetWriter(path, SCAN, PAT, np.ones(PAT), np.ones(SCAN, bool), {}) as w:
            w.write_rows(0, np.ones((2,) + SCAN[1:] + PAT, np.float32))
    assert not path.exists()


def test_probe_written_after_the_patterns(tmp_path):
    """A probe estimated from the data is written last (set_probe); forgetting it leaves no file."""
    full = np.ones((SCAN[0],) + SCAN[1:] + PAT, np.float32)
    path = tmp_path / "late.h5"
    with DatasetWriter(path, SCAN, PAT, None, np.ones(SCAN, bool), {}) as w:
        w.write_rows(0, full)
        w.set_probe(2 * np.ones(PAT), {"probe_source": "late"})
    with DatasetReader(path) as ds:
        assert ds.probe.max() == 2 and ds.attrs["probe_source"] == "late"
    with pytest.raises(ContractError, match="probe was never written"):
        with DatasetWriter(tmp_path / "noprobe.h5", SCAN, PAT, None, np.ones(SCAN, bool), {}) as w:
            w.write_rows(0, full)
    assert not (tmp_path / "noprobe.h5").exists()


def _maps(shape=SCAN):
    return {k: np.zeros(shape, np.float32) for k in ("exx", "eyy", "exy", "theta")}


def test_strain_round_trip(tmp_path):
    path = tmp_path / "s.h5"
    maps = _maps()
    maps["exx"][1, 2] = np.nan
    write_strain(path, maps, method="m", method_version="1", device="cpu", wall_seconds=1.5, params={"a": 1})
    got = read_strain(path, SCAN)
    assert np.isnan(got.exx[1, 2]) and got.attrs["params"] == {"a": 1} and got.attrs["method"] == "m"


def test_strain_errors(tmp_path):
    path = tmp_path / "s.h5"
    write_strain(path, _maps(), method="m", method_version="1", device="cpu", wall_seconds=1.0, params={})
    with pytest.raises(ContractError, match="but its dataset's scan is"):
        read_strain(path, (9, 9))
    with h5py.File(path, "a") as f:
        del f["eyy"]
    with pytest.raises(ContractError, match="missing dataset 'eyy'"):
        read_strain(path)
    with pytest.raises(ContractError, match="lack"):
        write_strain(tmp_path / "t.h5", {"exx": np.zeros(SCAN)}, method="m", method_version="1", device="cpu", wall_seconds=0, params={})
    assert not (tmp_path / "t.h5").exists()
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.attrs["format"] = "strainbench.dataset"
        f.attrs["version"] = 1
    with pytest.raises(ContractError, match="expected 'strainbench.strain'"):
        read_strain(tmp_path / "d.h5")
