"""Methods as folders: discovery of ``method.yaml`` files and a failure-tolerant runner.

A method is a folder holding ``method.yaml`` (``name``, ``command`` with ``{dataset}``,
``{strain}`` and ``{threads}`` placeholders, ``container``, ``resources``). The workflow finds them
with :func:`discover_methods` and runs each through :func:`run_method`, which records a crash as a
strain file of NaNs with the error in its attributes, so one failing cell never stops the table.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import numpy as np
import yaml

from .io.dataset import DatasetReader
from .io.strain import read_strain, write_strain

METHOD_GLOBS = ("ccstae/method.yaml", "baselines/*/method.yaml")
REQUIRED_KEYS = ("name", "command", "resources")


def load_method(path: str | os.PathLike) -> dict:
    """Read and check one ``method.yaml``."""
    p = Path(path)
    spec = yaml.safe_load(p.read_text())
    missing = [k for k in REQUIRED_KEYS if not isinstance(spec, dict) or k not in spec]
    if missing:
        raise ValueError(f"{p}: method.yaml lacks {missing}")
    for placeholder in ("{dataset}", "{strain}"):
        if placeholder not in spec["command"]:
            raise ValueError(f"{p}: 'command' must contain {placeholder}")
    spec.setdefault("container", None)
    return spec


def discover_methods(root: str | os.PathLike = ".") -> dict[str, dict]:
    """Every method folder under ``root``, by name."""
    found = {}
    for pattern in METHOD_GLOBS:
        for path in sorted(Path(root).glob(pattern)):
            spec = load_method(path)
            if spec["name"] in found:
                raise ValueError(f"{path}: method name {spec['name']!r} is used twice")
            found[spec["name"]] = spec
    return found


def run_method(name: str, command: str, dataset: str, strain: str, threads: int) -> int:
    """Run a method's command; if it fails or writes no valid strain file, write a NaN one.

    Returns the command's exit status (0 also when the failure was recorded).
    """
    cmd = command.format(dataset=shlex.quote(dataset), strain=shlex.quote(strain), threads=threads)
    print(f"[strainbench] {name}: {cmd}", flush=True)
    t0 = time.perf_counter()
    status = subprocess.run(cmd, shell=True).returncode
    wall = time.perf_counter() - t0
    with DatasetReader(dataset) as ds:
        scan_shape = ds.scan_shape
    error = None
    if status != 0:
        error = f"command exited with status {status} (see the rule's log)"
    else:
        try:
            read_strain(strain, scan_shape)
        except ValueError as err:
            error = f"no valid strain file: {err}"
    if error is not None:
        print(f"[strainbench] {name} failed: {error}; recording NaN maps", flush=True)
        nan = np.full(scan_shape, np.nan, np.float32)
        write_strain(
            strain, {k: nan for k in ("exx", "eyy", "exy", "theta")}, method=name, method_version="unknown",
            device="unknown", wall_seconds=wall, params={}, extra_attrs={"error": error},
        )
    return status
