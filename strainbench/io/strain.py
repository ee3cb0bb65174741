"""Strain files of the data contract (version 1), written by every method.

Layout (HDF5)::

    exx, eyy, exy, theta   float32 (Rx, Ry)   relative to the reference region; NaN = no answer
    attrs: format="strainbench.strain", version=1, method, method_version, device,
           wall_seconds, params (JSON)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .atomic import atomic_h5
from .dataset import CONTRACT_VERSION, STRAIN_LABELS, _decode, _open_h5, _require, check_format
from .errors import ContractError

STRAIN_FORMAT = "strainbench.strain"
STRAIN_KEYS = STRAIN_LABELS


@dataclass
class StrainMaps:
    """The four maps of a strain file and its attributes (``params`` decoded from JSON)."""

    exx: np.ndarray
    eyy: np.ndarray
    exy: np.ndarray
    theta: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in STRAIN_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.exx.shape)


def write_strain(
    path: str | os.PathLike,
    maps: Mapping[str, np.ndarray],
    *,
    method: str,
    method_version: str,
    device: str,
    wall_seconds: float,
    params: Mapping[str, Any],
    extra_attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write a strain file atomically. ``maps`` holds ``exx, eyy, exy, theta`` of one shape."""
    missing = [k for k in STRAIN_KEYS if k not in maps]
    if missing:
        raise ContractError(path, f"strain maps lack {missing}")
    shape = np.shape(maps["exx"])
    if len(shape) != 2:
        raise ContractError(path, f"strain maps must be 2-D (Rx, Ry), got shape {shape}")
    for key in STRAIN_KEYS:
        if np.shape(maps[key]) != shape:
            raise ContractError(path, f"map '{key}' has shape {np.shape(maps[key])}, 'exx' has {shape}")
    with atomic_h5(path) as f:
        f.attrs["format"] = STRAIN_FORMAT
        f.attrs["version"] = CONTRACT_VERSION
        f.attrs["method"] = method
        f.attrs["method_version"] = method_version
        f.attrs["device"] = device
        f.attrs["wall_seconds"] = float(wall_seconds)
        f.attrs["params"] = json.dumps(dict(params), sort_keys=True, default=str)
        for key, value in sorted((extra_attrs or {}).items()):
            f.attrs[key] = value
        for key in STRAIN_KEYS:
            f.create_dataset(key, data=np.asarray(maps[key], dtype=np.float32))


def read_strain(path: str | os.PathLike, scan_shape: tuple[int, int] | None = None) -> StrainMaps:
    """Read and validate a strain file; ``scan_shape`` (from its dataset) is checked if given."""
    p = Path(path)
    with _open_h5(p) as f:
        check_format(p, f.attrs, STRAIN_FORMAT)
        maps = {}
        for key in STRAIN_KEYS:
            if key not in f:
                raise ContractError(p, f"missing dataset '{key}'")
            dset = _require(f, p, key, None, np.float32, 2)
            if scan_shape is not None and tuple(dset.shape) != tuple(scan_shape):
                raise ContractError(
                    p, f"'{key}' has shape {tuple(dset.shape)}, but its dataset's scan is {tuple(scan_shape)}"
                )
            maps[key] = dset[()]
        shape = maps["exx"].shape
        for key in STRAIN_KEYS:
            if maps[key].shape != shape:
                raise ContractError(p, f"'{key}' has shape {maps[key].shape}, 'exx' has {shape}")
        attrs = {k: _decode(v) for k, v in f.attrs.items()}
    for key in ("method", "method_version", "device", "wall_seconds", "params"):
        if key not in attrs:
            raise ContractError(p, f"missing attribute '{key}'")
    try:
        attrs["params"] = json.loads(attrs["params"])
    except (TypeError, json.JSONDecodeError) as err:
        raise ContractError(p, f"attribute 'params' is not JSON: {err}") from None
    return StrainMaps(attrs=attrs, **maps)
