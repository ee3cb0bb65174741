"""Readers for a user's 4D-STEM file: each opens the file's 4D array for reading by scan rows.

The format is chosen by the file's extension:

==========================  ===============  =====================================================
format                      extension        read with
==========================  ===============  =====================================================
NumPy array                 ``.npy``         numpy, memory-mapped
HDF5 with a named dataset   ``.h5 .hdf5``    h5py; ``key`` names the 4D dataset (e.g. ``output4D``)
py4DSTEM / EMD 1.0          ``.emd`` (or an  the EMD 1.0 tree (py4DSTEM's format, written by
                            EMD ``.h5``)     ``py4DSTEM.save``): the ``DataCube`` node is found by
                                             its ``python_class``, its calibration read with
                                             ``py4DSTEM.read``; the data itself is read by h5py
                                             in blocks, because py4DSTEM's reader loads a whole
                                             array into memory
Quantum Detectors Merlin    ``.mib``         rosettasciio (lazy); the scan shape from the ``.hdr``
                                             file beside it or from ``scan_shape``
NanoMegas ASTAR blockfile   ``.blo``         rosettasciio (lazy)
HyperSpy / pyxem            ``.hspy``        rosettasciio (lazy)
==========================  ===============  =====================================================

Gatan ``.dm3``/``.dm4`` files are refused: rosettasciio reads them, but no program outside
DigitalMicrograph writes them, so their import cannot be proven by a round-trip test here; convert
them to ``.hspy`` (``hyperspy.load(f).save("f.hspy")``) first.

Axis order: the array's axes are named by a permutation of ``Rx Ry Qx Qy`` (scan rows, scan
columns, detector rows, detector columns). The default ``RxRyQxQy`` is py4DSTEM's order and
rosettasciio's numpy order (navigation rows, navigation columns, then the detector image).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from .io.errors import ContractError

AXES = ("Rx", "Ry", "Qx", "Qy")
HDF5_SUFFIXES = (".h5", ".hdf5")
RSCIIO_SUFFIXES = (".mib", ".blo", ".hspy")
SUFFIXES = (".npy", *HDF5_SUFFIXES, ".emd", *RSCIIO_SUFFIXES)


def parse_axes(text: str) -> tuple[int, ...]:
    """``"QxQyRxRy"`` -> the permutation that puts the file's axes in ``(Rx, Ry, Qx, Qy)`` order."""
    tokens = [text[i : i + 2] for i in range(0, len(text), 2)]
    if sorted(tokens) != sorted(AXES) or len(text) != 8:
        raise ValueError(f"axes must order Rx, Ry, Qx and Qy, e.g. RxRyQxQy; got {text!r}")
    return tuple(tokens.index(a) for a in AXES)


def parse_scan_shape(text: str) -> tuple[int, int]:
    """``"64x48"`` -> (64 scan rows, 48 scan columns)."""
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"scan shape must read ROWSxCOLUMNS, e.g. 64x48; got {text!r}") from None
    if rows < 1 or cols < 1:
        raise ValueError(f"scan shape {text!r} is empty")
    return rows, cols


@dataclass
class Source:
    """A 4D array in a user's file, read by blocks of scan rows in ``(Rx, Ry, Qx, Qy)`` order.

    ``array`` is anything sliceable with a ``shape`` (numpy memmap, h5py dataset, dask array);
    ``close`` releases the file; ``metadata`` is what the reader learnt besides the data (JSON-able).
    """

    path: Path
    array: object
    order: tuple[int, ...]
    close: Callable[[], None] = lambda: None
    metadata: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(int(self.array.shape[i]) for i in self.order)  # type: ignore[return-value]

    def rows(self, r0: int, r1: int) -> np.ndarray:
        """Scan rows ``r0:r1`` as float64 ``(rows, Ry, Qx, Qy)``."""
        index = [slice(None)] * 4
        index[self.order[0]] = slice(r0, r1)
        block = np.asarray(self.array[tuple(index)], dtype=np.float64)
        return np.transpose(block, self.order)


def open_source(
    path: str | os.PathLike,
    key: str | None = None,
    axes: str = "RxRyQxQy",
    scan_shape: str | None = None,
) -> Source:
    """The 4D data of ``path``; call ``source.close()`` when done."""
    p = Path(path)
    order = parse_axes(axes)
    if not p.exists():
        raise ContractError(p, "no such file")
    suffix = p.suffix.lower()
    if suffix in (".dm3", ".dm4"):
        raise ContractError(p, "Gatan DigitalMicrograph files are not supported (see strainbench.readers); convert to .hspy first: hyperspy.load(f).save('f.hspy')")
    if suffix not in SUFFIXES:
        raise ContractError(p, f"unknown format {suffix!r}: supported are {', '.join(SUFFIXES)}")
    if scan_shape and suffix != ".mib":
        raise ContractError(p, "--scan-shape applies to .mib files only (other formats store the scan shape)")
    if suffix == ".npy":
        source = _open_npy(p, order)
    elif suffix in RSCIIO_SUFFIXES:
        source = _open_rsciio(p, order, scan_shape)
    else:
        source = _open_hdf5(p, order, key)
    if len(source.array.shape) != 4:
        source.close()
        raise ContractError(p, f"holds a {len(source.array.shape)}-dimensional array of shape {tuple(source.array.shape)}; 4D-STEM data is 4-dimensional")
    return source


def _open_npy(p: Path, order: tuple[int, ...]) -> Source:
    try:
        return Source(p, np.load(p, mmap_mode="r"), order)
    except (ValueError, OSError) as err:
        raise ContractError(p, f"not a readable .npy file (truncated?): {err}") from None


def _open_hdf5(p: Path, order: tuple[int, ...], key: str | None) -> Source:
    try:
        handle = h5py.File(p, "r")
    except OSError as err:
        raise ContractError(p, f"not a readable HDF5 file (truncated?): {err}") from None
    try:
        metadata: dict = {}
        if not key and _is_emd(handle):
            key, metadata = _emd_datacube(p, handle)
        if not key:
            raise ContractError(p, "an HDF5 file that is not a py4DSTEM/EMD 1.0 file needs --key, the path of its 4D dataset (e.g. output4D)")
        if key not in handle or not isinstance(handle[key], h5py.Dataset):
            raise ContractError(p, f"has no dataset {key!r}")
        return Source(p, handle[key], order, handle.close, metadata)
    except BaseException:
        handle.close()
        raise


def _optional(module: str, p: Path):
    """An optional reader library, or an error that says how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ContractError(p, f"reading this format needs {module.split('.')[0]}: pip install 'strainbench[formats]'") from None


def _is_emd(handle: h5py.File) -> bool:
    """An EMD 1.0 file (the spec's root attributes)."""
    return handle.attrs.get("emd_group_type") == "file" and int(handle.attrs.get("version_major", 0)) == 1


def _emd_datacube(p: Path, handle: h5py.File) -> tuple[str, dict]:
    """The path of the file's one DataCube's data and its calibration (read by py4DSTEM)."""
    cubes: list[str] = []
    handle.visititems(lambda name, obj: cubes.append(name) if isinstance(obj, h5py.Group) and obj.attrs.get("python_class") == "DataCube" else None)
    if len(cubes) != 1:
        found = ", ".join(cubes) or "none"
        raise ContractError(p, f"an EMD file must hold exactly one DataCube to import without --key (found: {found}); name one with --key GROUP/data")
    py4DSTEM = _optional("py4DSTEM", p)
    root = py4DSTEM.read(str(p), emdpath=cubes[0].split("/")[0], tree=False)  # the root node only, no arrays
    metadata: dict = {"emd_datacube": cubes[0]}
    calibration = root.metadata.get("calibration")
    if calibration is not None:
        params = {k: v for k, v in calibration._params.items() if not k.startswith("_")}
        metadata["calibration"] = json.loads(json.dumps(params, default=str))
    return f"{cubes[0]}/data", metadata


def _open_rsciio(p: Path, order: tuple[int, ...], scan_shape: str | None) -> Source:
    module = {".mib": "quantumdetector", ".blo": "blockfile", ".hspy": "hspy"}[p.suffix.lower()]
    reader = _optional(f"rsciio.{module}", p)
    kwargs = {}
    wanted = parse_scan_shape(scan_shape) if scan_shape else None
    if wanted is not None:
        kwargs["navigation_shape"] = (wanted[1], wanted[0])  # rosettasciio: (columns, rows)
    try:
        signal = reader.file_reader(str(p), lazy=True, **kwargs)[0]
    except UnicodeDecodeError:
        raise ContractError(p, f"not a readable {p.suffix} file: its frame headers (or the .hdr file beside it) are not the text the detector writes (a damaged file, or another format under this name?)") from None
    except Exception as err:  # rosettasciio raises many types for a damaged file
        raise ContractError(p, f"not a readable {p.suffix} file (truncated?): {type(err).__name__}: {err}") from None
    data = signal["data"]
    navigate = [bool(a.get("navigate")) for a in sorted(signal["axes"], key=lambda a: a["index_in_array"])]
    if data.ndim == 4 and navigate != [True, True, False, False]:
        raise ContractError(p, f"axes are not two scan axes followed by the detector image (navigate flags {navigate})")
    if wanted is not None and tuple(data.shape[:2]) != wanted:
        raise ContractError(p, f"holds {tuple(data.shape[:2])} scan positions' complete rows, not the {wanted[0]} x {wanted[1]} scan asked for (truncated acquisition?)")
    if p.suffix.lower() == ".mib" and data.ndim != 4:
        raise ContractError(p, f"the scan shape is unknown (no .hdr file beside it): give --scan-shape ROWSxCOLUMNS ({int(np.prod(data.shape[:-2]))} frames)")
    return Source(p, data, order)
