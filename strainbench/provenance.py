"""Where a run ran, and how it compares with the committed reference run of the same name.

:func:`machine` describes this machine (CPU model, cores, memory, GPU, package versions);
the workflow writes it with the run's wall time to ``results/<run>/machine.json`` when a run ends.
:func:`compare_tables` sets a run's table beside ``results/reference/<run>/table.csv``: the largest
difference of any MAE cell per method, in the table's units (1e-3). py4DSTEM and the bound are
the same to the last digit on any machine with the same package versions; CC-ST-AE's training sums
in an order that depends on the CPU's vector instructions, so its cells may differ by up to
:data:`REFERENCE_SPREAD` from machine to machine.
"""

from __future__ import annotations

import json
import os
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from .io.atomic import atomic_path

PACKAGES = ("strainbench", "numpy", "scipy", "torch", "py4DSTEM", "abtem", "h5py", "snakemake")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * size / 2**30, 1)


def _gpu() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def machine() -> dict[str, Any]:
    """This machine: CPU model and cores, memory (GiB), GPU (None without one), OS, Python and
    the versions of the packages a run uses (None where one is not installed)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "gpu": _gpu(),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "packages": versions,
    }


def write_machine(path: str | os.PathLike, wall_seconds: float, **extra: Any) -> None:
    """``machine()`` with the run's wall time (seconds) and ``extra`` fields, as JSON at ``path``."""
    record = {**machine(), "wall_seconds": round(wall_seconds, 1), **extra}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")


_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)")


def _mae_cells(table_csv: str | os.PathLike) -> dict[tuple[str, str], float]:
    """The MAE part of a table CSV (``strainbench table``) as ``{(component, column): value}``;
    a cell of several seeds contributes its mean, a failed or empty cell nothing."""
    df = pd.read_csv(table_csv, header=[0, 1, 2])
    level = df.iloc[:, 0]  # the noise level
    cells = {}
    for (part, component, column) in df.columns:
        if part != "mae_1e-3" or "(ours)" not in column:
            continue
        for w, value in zip(level, df[(part, component, column)]):
            match = _NUMBER.match(str(value))
            if match:
                cells[(f"{component} {column}", str(w))] = float(match.group(1))
    return cells


REFERENCE_SPREAD = 0.05  # 1e-3: the MAE cells of the same run on other x86-64 machines differ by less


def compare_tables(run_csv: str | os.PathLike, reference_csv: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Per method: the largest absolute difference (1e-3) between the run's MAE cells and the
    reference's, where it is, and how many cells the two share."""
    run, ref = _mae_cells(run_csv), _mae_cells(reference_csv)
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(set(run) & set(ref)):
        column, level = key
        method = column.split(" ")[-2]
        diff = abs(run[key] - ref[key])
        entry = out.setdefault(method, {"largest": -1.0, "where": "", "cells": 0})
        entry["cells"] += 1
        if diff > entry["largest"]:
            entry.update(largest=round(diff, 3), where=f"{column.rsplit(' ', 2)[0]} at {level}")
    return out
