"""Methods as folders: discovery of ``method.yaml`` files and a failure-tolerant runner.

A method is a folder holding ``method.yaml`` (``name``, ``command`` with ``{dataset}``,
``{strain}`` and optionally ``{threads}`` placeholders, ``container``, ``resources``). The workflow
finds them with :func:`discover_methods` and runs each through :func:`run_method`:

* the method writes to a temporary file beside the output, which replaces the output only once
  it is a valid strain file of the dataset's scan: a crash never leaves half a file, and a method
  that writes nothing is never credited with a file that was already there;
* a failure (non-zero exit status, or no valid strain file) is recorded as a strain file of NaNs
  with the error in its ``error`` attribute, so one failing cell never stops the table; an
  existing valid strain file at the output is never replaced by such a record;
* the output may not be the dataset, and an existing file that is not a strain file is never
  overwritten (:func:`strainbench.io.check_output_path`).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import numpy as np
import yaml

from .io import STRAIN_FORMAT, STRAIN_KEYS, ContractError, check_output_path
from .io.dataset import DatasetReader
from .io.strain import read_strain, write_strain

METHOD_GLOBS = ("ccstae/method.yaml", "baselines/*/method.yaml")
REQUIRED_KEYS = ("name", "command", "resources")
PLACEHOLDERS = ("dataset", "strain", "threads")
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
RESOURCE_KEYS = ("threads", "mem_mb", "runtime_min", "gpu")


def load_method(path: str | os.PathLike) -> dict:
    """Read and check one ``method.yaml``; ValueError naming the file for anything wrong."""
    p = Path(path)
    try:
        spec = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{p}: not valid YAML: {err}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"{p}: method.yaml must be a mapping with keys {list(REQUIRED_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if k not in spec]
    if missing:
        raise ValueError(f"{p}: method.yaml lacks {missing}")
    if not isinstance(spec["name"], str) or not NAME_PATTERN.fullmatch(spec["name"]):
        raise ValueError(f"{p}: 'name' must be a letter followed by letters, digits or '_', got {spec['name']!r}")
    if not isinstance(spec["command"], str):
        raise ValueError(f"{p}: 'command' must be a string (a shell command), got {spec['command']!r}")
    for placeholder in ("{dataset}", "{strain}"):
        if placeholder not in spec["command"]:
            raise ValueError(f"{p}: 'command' must contain {placeholder}")
    resources = spec["resources"]
    if not isinstance(resources, dict):
        raise ValueError(f"{p}: 'resources' must be a mapping of {list(RESOURCE_KEYS)} to numbers")
    for key, value in resources.items():
        if key not in RESOURCE_KEYS:
            raise ValueError(f"{p}: unknown resource {key!r} (known: {list(RESOURCE_KEYS)})")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{p}: resource {key!r} must be a non-negative integer, got {value!r}")
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


def render_command(template: str, dataset: str, strain: str, threads: int) -> str:
    """``template`` with ``{dataset}``, ``{strain}`` (shell-quoted) and ``{threads}`` filled in;
    any other brace (``awk '{print $1}'``) is left as it is."""
    values = {"dataset": shlex.quote(dataset), "strain": shlex.quote(strain), "threads": str(int(threads))}
    return re.sub(r"\{(" + "|".join(PLACEHOLDERS) + r")\}", lambda m: values[m.group(1)], template)


def _partial_path(out: Path) -> Path:
    """Where the method writes before its file is checked: beside ``out``, the same name each run
    (so that what a killed run left is found and removed, and a method's own checkpoint beside it
    is found again)."""
    return out.with_name(f".{out.name}.partial.h5")


def _holds_valid_strain(path: Path, scan_shape: tuple[int, int]) -> bool:
    if not path.exists():
        return False
    try:
        maps = read_strain(path, scan_shape)
    except ContractError:
        return False
    return "error" not in maps.attrs


def run_method(name: str, command: str, dataset: str, out: str, threads: int) -> int:
    """Run a method's command on ``dataset`` and put its strain file at ``out`` (see the module
    docstring). Returns 0 when the strain file or the failure record is at ``out``; 1 when the
    method failed and a valid strain file already at ``out`` was kept."""
    final = check_output_path(out, inputs=[dataset], replaces=STRAIN_FORMAT)
    with DatasetReader(dataset) as ds:
        scan_shape = ds.scan_shape
    partial = _partial_path(final)
    partial.unlink(missing_ok=True)
    cmd = render_command(command, dataset, str(partial), threads)
    print(f"[strainbench] {name}: {cmd}", flush=True)
    t0 = time.perf_counter()
    status = subprocess.run(cmd, shell=True).returncode
    wall = time.perf_counter() - t0
    error = None
    if status != 0:
        error = f"command exited with status {status} (see the rule's log)"
    elif not partial.exists():
        error = "the command exited with status 0 but wrote no strain file"
    else:
        try:
            read_strain(partial, scan_shape)
        except ContractError as err:
            error = f"no valid strain file: {err.problem}"
    if error is None:
        os.replace(partial, final)
        return 0
    partial.unlink(missing_ok=True)
    if _holds_valid_strain(final, scan_shape):
        print(f"[strainbench] {name} failed: {error}; the valid strain file already at {final} was kept", flush=True)
        return 1
    print(f"[strainbench] {name} failed: {error}; recording NaN maps at {final}", flush=True)
    nan = np.full(scan_shape, np.nan, np.float32)
    write_strain(
        final, {k: nan for k in STRAIN_KEYS}, method=name, method_version="unknown",
        device="unknown", wall_seconds=wall, params={}, extra_attrs={"error": error},
    )
    return 0
