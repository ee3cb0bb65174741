"""Output paths checked before any work starts.

A program that computes for minutes and then cannot write its result, or writes it over one of
its own inputs, loses the work or the data. :func:`check_output_path` is called by every command
of the harness and every method before it reads its input: it creates the output's folder, checks
that a file can be created there, and refuses a path that is a folder, one of the inputs, or an
existing file that the command did not make (an HDF5 file of another ``format``, or any other
file where an HDF5 output is asked for).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

import h5py

from .errors import ContractError


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _hdf5_format(path: Path) -> str | None:
    """The ``format`` attribute of an HDF5 file, ``""`` for HDF5 without one, None for other files."""
    if not h5py.is_hdf5(path):
        return None
    try:
        with h5py.File(path, "r") as f:
            value = f.attrs.get("format", "")
    except OSError:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def check_output_path(
    path: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike] = (),
    replaces: str | None = None,
) -> Path:
    """Make sure ``path`` can receive an output, before the work; returns it as a :class:`Path`.

    ``inputs``: files the command reads; the output may be none of them. ``replaces``: for an
    HDF5 output, the ``format`` attribute of the files it may overwrite (e.g.
    ``"strainbench.strain"``); an existing file of any other kind is refused, never overwritten.
    The output's folder is created if missing. Raises :class:`ContractError` naming the path.
    """
    out = Path(path)
    if out.is_dir():
        raise ContractError(out, "is a folder; give a file name for the output")
    for source in inputs:
        src = Path(source)
        if _same_file(out, src) or out.resolve() == src.resolve():
            raise ContractError(out, f"is also an input ({src}); the output must be a different file")
    if replaces is not None and out.exists():
        found = _hdf5_format(out)
        if found != replaces:
            what = "not an HDF5 file" if found is None else (f"a {found!r} file" if found else "an HDF5 file without a format")
            raise ContractError(out, f"exists and is {what}, not a {replaces!r} file; refusing to overwrite it (delete it or choose another output path)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".check", dir=out.parent)
    except OSError as err:
        raise ContractError(out, f"cannot write in its folder: {err.strerror or err}") from None
    os.close(fd)
    os.unlink(probe)
    return out
