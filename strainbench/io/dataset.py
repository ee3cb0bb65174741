"""Dataset files of the data contract (version 1): read, validate, and stream-write.

Layout (HDF5)::

    datacube          float32 (Rx, Ry, Qx, Qy)  diffraction patterns, non-negative
    probe             float32 (Qx, Qy)          noise-free vacuum probe, centred
    reference_mask    bool    (Rx, Ry)          the unstrained reference region
    labels/exx|eyy|exy float32 (Rx, Ry)         ground-truth strain (simulated data only)
    labels/theta      float32 (Rx, Ry)          ground-truth rotation, degrees
    labels/grain      int32   (Rx, Ry)          grain id
    attrs: format="strainbench.dataset", version=1, noise_level, counts_per_probe, seed,
           symmetry_deg, and provenance.

A method reads only ``datacube``, ``probe`` and ``reference_mask``; the values of the datacube are
checked (finite, non-negative) block by block as they are read, so a 10 GB cube is never held
whole and never scanned twice.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np

from .atomic import atomic_h5
from .errors import ContractError

DATASET_FORMAT = "strainbench.dataset"
CONTRACT_VERSION = 1
STRAIN_LABELS = ("exx", "eyy", "exy", "theta")
LABEL_KEYS = STRAIN_LABELS + ("grain",)
_LABEL_DTYPES = {"exx": np.float32, "eyy": np.float32, "exy": np.float32, "theta": np.float32, "grain": np.int32}


def _attr_value(value: Any) -> Any:
    """HDF5-storable form of an attribute (dicts and lists of mixed types become JSON)."""
    if isinstance(value, (dict, list, tuple)) and not (
        isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value)
    ):
        return json.dumps(value, sort_keys=True)
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def check_format(path: str | os.PathLike, attrs: Mapping[str, Any], expected: str) -> None:
    """Raise :class:`ContractError` unless ``attrs`` carry ``format=expected`` and version 1."""
    fmt = _decode(attrs.get("format"))
    if fmt is None:
        raise ContractError(path, f"missing attribute 'format' (expected {expected!r})")
    if fmt != expected:
        raise ContractError(path, f"attribute format={fmt!r}, expected {expected!r}")
    version = _decode(attrs.get("version"))
    if version is None:
        raise ContractError(path, "missing attribute 'version'")
    if version != CONTRACT_VERSION:
        raise ContractError(
            path, f"contract version {version!r} is not supported (this reader knows {CONTRACT_VERSION})"
        )


def file_format(path: str | os.PathLike) -> str | None:
    """The ``format`` attribute of an HDF5 file (None if absent); ContractError if unreadable."""
    with _open_h5(path) as f:
        return _decode(f.attrs.get("format"))


def _open_h5(path: str | os.PathLike) -> h5py.File:
    p = Path(path)
    if not p.exists():
        raise ContractError(p, "no such file")
    try:
        return h5py.File(p, "r")
    except OSError as err:
        raise ContractError(p, f"not a readable HDF5 file (truncated or corrupt?): {err}") from None


def _require(f: h5py.File, path: str | os.PathLike, key: str, shape: tuple[int, ...] | None, dtype: Any, ndim: int) -> h5py.Dataset:
    if key not in f:
        raise ContractError(path, f"missing dataset '{key}'")
    d = f[key]
    if not isinstance(d, h5py.Dataset):
        raise ContractError(path, f"'{key}' is not a dataset")
    if d.ndim != ndim:
        raise ContractError(path, f"'{key}' has shape {d.shape}, expected {ndim} dimensions")
    if shape is not None and tuple(d.shape) != tuple(shape):
        raise ContractError(path, f"'{key}' has shape {tuple(d.shape)}, expected {tuple(shape)}")
    if np.dtype(d.dtype) != np.dtype(dtype):
        raise ContractError(path, f"'{key}' has dtype {d.dtype}, expected {np.dtype(dtype).name}")
    return d


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Shapes and attributes of a validated dataset file."""

    path: Path
    scan_shape: tuple[int, int]
    pattern_shape: tuple[int, int]
    attrs: dict[str, Any]
    has_labels: bool
    empty_patterns: int | None = None  # patterns that are zero everywhere (None: values not read)


class DatasetReader:
    """Read a contract dataset file; the structure is validated on opening.

    Use as a context manager. ``iter_blocks`` yields the datacube scan row by scan row (or in
    blocks of rows) and checks every value it yields.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._f = _open_h5(self.path)
        try:
            self._validate_structure()
        except BaseException:
            self._f.close()
            raise

    def _validate_structure(self) -> None:
        f, p = self._f, self.path
        check_format(p, f.attrs, DATASET_FORMAT)
        cube = _require(f, p, "datacube", None, np.float32, 4)
        Rx, Ry, Qx, Qy = cube.shape
        if min(cube.shape) < 1:
            raise ContractError(p, f"'datacube' has an empty axis: shape {cube.shape}")
        self.scan_shape = (int(Rx), int(Ry))
        self.pattern_shape = (int(Qx), int(Qy))
        self._cube = cube
        probe = _require(f, p, "probe", self.pattern_shape, np.float32, 2)
        probe_values = probe[()]
        if not np.isfinite(probe_values).all():
            raise ContractError(p, "'probe' contains NaN or infinite values")
        if (probe_values < 0).any():
            raise ContractError(p, "'probe' contains negative values")
        if probe_values.sum() <= 0:
            raise ContractError(p, "'probe' is all zeros")
        self.probe = probe_values
        mask = _require(f, p, "reference_mask", self.scan_shape, np.bool_, 2)
        self.reference_mask = mask[()]
        if not self.reference_mask.any():
            raise ContractError(p, "'reference_mask' selects no scan position")
        self.has_labels = "labels" in f
        if self.has_labels:
            for key in LABEL_KEYS:
                _require(f, p, f"labels/{key}", self.scan_shape, _LABEL_DTYPES[key], 2)
        self.attrs = {k: _decode(v) for k, v in f.attrs.items()}

    @property
    def info(self) -> DatasetInfo:
        return DatasetInfo(self.path, self.scan_shape, self.pattern_shape, dict(self.attrs), self.has_labels)

    def labels(self) -> dict[str, np.ndarray]:
        """Ground-truth maps ``exx, eyy, exy, theta, grain``; ContractError if the file has none."""
        if not self.has_labels:
            raise ContractError(self.path, "has no 'labels' group (experimental data?): nothing to evaluate against")
        return {k: self._f[f"labels/{k}"][()] for k in LABEL_KEYS}

    def _check_block(self, block: np.ndarray, row0: int) -> np.ndarray:
        bad = ~np.isfinite(block)
        if bad.any():
            rx, ry = np.argwhere(bad.any(axis=(2, 3)))[0]
            raise ContractError(self.path, f"'datacube' holds NaN or infinite values at scan position ({row0 + rx}, {ry})")
        neg = block < 0
        if neg.any():
            rx, ry = np.argwhere(neg.any(axis=(2, 3)))[0]
            raise ContractError(self.path, f"'datacube' holds negative counts at scan position ({row0 + rx}, {ry})")
        return block

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Patterns of scan rows ``start:stop``, float32 ``(rows, Ry, Qx, Qy)``, checked."""
        try:
            block = self._cube[start:stop]
        except OSError as err:
            raise ContractError(self.path, f"cannot read 'datacube' rows {start}:{stop} (truncated file?): {err}") from None
        return self._check_block(block, start)

    def iter_blocks(self, rows_per_block: int = 1) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_row, block)`` over the scan, each block ``(rows, Ry, Qx, Qy)`` float32."""
        for start in range(0, self.scan_shape[0], rows_per_block):
            stop = min(start + rows_per_block, self.scan_shape[0])
            yield start, self.read_rows(start, stop)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "DatasetReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def validate_dataset(path: str | os.PathLike, check_values: bool = True) -> DatasetInfo:
    """Check a dataset file against the contract; returns its :class:`DatasetInfo`.

    With ``check_values`` every pattern is read (block by block) and checked for NaN and
    negative counts, and the patterns that are zero everywhere are counted; a datacube of zeros
    only is an error.
    """
    with DatasetReader(path) as reader:
        if not check_values:
            return reader.info
        rows = max(1, int(64e6 // (4 * np.prod(reader.pattern_shape) * reader.scan_shape[1])))
        empty = 0
        for _, block in reader.iter_blocks(rows):
            empty += int((block.max(axis=(2, 3)) == 0).sum())
        if empty == int(np.prod(reader.scan_shape)):
            raise ContractError(reader.path, "every pattern of 'datacube' is zero")
        return dataclasses.replace(reader.info, empty_patterns=empty)


class DatasetWriter:
    """Stream a dataset file to disk; it appears at its path only when complete.

    Use as a context manager::

        with DatasetWriter(path, scan_shape, pattern_shape, probe, reference_mask, attrs, labels) as w:
            for row0, block in blocks:
                w.write_rows(row0, block)

    The datacube is chunked one pattern per chunk; every row must be written before the block ends.
    A probe known only once every pattern has been read (estimated from the data) is given as
    ``probe=None`` and written with :meth:`set_probe` before the block ends.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        scan_shape: tuple[int, int],
        pattern_shape: tuple[int, int],
        probe: np.ndarray | None,
        reference_mask: np.ndarray,
        attrs: Mapping[str, Any],
        labels: Mapping[str, np.ndarray] | None = None,
    ):
        self.path = Path(path)
        self.scan_shape = tuple(int(v) for v in scan_shape)
        self.pattern_shape = tuple(int(v) for v in pattern_shape)
        if reference_mask.shape != self.scan_shape:
            raise ContractError(self.path, f"reference_mask shape {reference_mask.shape} does not match scan {self.scan_shape}")
        self._probe = None if probe is None else self._checked_probe(probe)
        self._mask = np.asarray(reference_mask, dtype=bool)
        self._attrs = dict(attrs)
        self._labels = labels
        self._rows_written = np.zeros(self.scan_shape[0], dtype=bool)

    def __enter__(self) -> "DatasetWriter":
        self._ctx = atomic_h5(self.path)
        f = self._ctx.__enter__()
        try:
            f.attrs["format"] = DATASET_FORMAT
            f.attrs["version"] = CONTRACT_VERSION
            for key, value in sorted(self._attrs.items()):
                f.attrs[key] = _attr_value(value)
            self._cube = f.create_dataset(
                "datacube",
                shape=self.scan_shape + self.pattern_shape,
                dtype=np.float32,
                chunks=(1, 1) + self.pattern_shape,
            )
            if self._probe is not None:
                f.create_dataset("probe", data=self._probe)
            f.create_dataset("reference_mask", data=self._mask)
            if self._labels is not None:
                for key in LABEL_KEYS:
                    value = np.asarray(self._labels[key], dtype=_LABEL_DTYPES[key])
                    if value.shape != self.scan_shape:
                        raise ContractError(self.path, f"label '{key}' shape {value.shape} does not match scan {self.scan_shape}")
                    f.create_dataset(f"labels/{key}", data=value)
        except BaseException as err:
            self._ctx.__exit__(type(err), err, err.__traceback__)
            raise
        return self

    def _checked_probe(self, probe: np.ndarray) -> np.ndarray:
        if probe.shape != self.pattern_shape:
            raise ContractError(self.path, f"probe shape {probe.shape} does not match pattern shape {self.pattern_shape}")
        return np.asarray(probe, dtype=np.float32)

    def set_probe(self, probe: np.ndarray, attrs: Mapping[str, Any] | None = None) -> None:
        """Write the probe of a writer opened with ``probe=None``, and further root attributes."""
        if self._probe is not None:
            raise ContractError(self.path, "the probe was already written")
        self._probe = self._checked_probe(probe)
        self._cube.file.create_dataset("probe", data=self._probe)
        self.set_attrs(attrs or {})

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Add root attributes known only once the patterns have been written."""
        for key, value in sorted(attrs.items()):
            self._cube.file.attrs[key] = _attr_value(value)

    def write_rows(self, row0: int, block: np.ndarray) -> None:
        """Write scan rows ``row0 : row0 + len(block)``; ``block`` is ``(rows, Ry, Qx, Qy)``."""
        expected = self.scan_shape[1:] + self.pattern_shape
        if block.shape[1:] != expected:
            raise ContractError(self.path, f"block of shape {block.shape} does not fit rows of shape {expected}")
        self._cube[row0 : row0 + block.shape[0]] = block.astype(np.float32, copy=False)
        self._rows_written[row0 : row0 + block.shape[0]] = True

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self._rows_written.all():
            missing = np.flatnonzero(~self._rows_written)
            exc = ContractError(self.path, f"scan rows {missing[:5].tolist()}... were never written")
            self._ctx.__exit__(type(exc), exc, None)
            raise exc
        if exc_type is None and self._probe is None:
            exc = ContractError(self.path, "the probe was never written (set_probe)")
            self._ctx.__exit__(type(exc), exc, None)
            raise exc
        self._ctx.__exit__(exc_type, exc, tb)
