"""Failed fits: the report's failures page and the summary a run ends with on the terminal.

A fit that fails is recorded by :func:`strainbench.methods.run_method` as a strain file of NaNs
with an ``error`` attribute; the table shows its cells as ``failed``. The workflow passes the
paths (strain files, metrics files, logs): nothing here knows the run's folder layout.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import h5py

from .io.atomic import atomic_path
from .table import load_metrics


@dataclass(frozen=True)
class FailedFit:
    """One failed fit: the method, its strain file (the failure record), the error and the log."""

    method: str
    strain: str
    error: str
    log: str


def failed_fits(cells: Iterable[tuple[str, str, str]]) -> list[FailedFit]:
    """The failures among ``(method, strain file, log file)`` triples: strain files that exist and
    carry an ``error`` attribute (missing or unreadable files are not fits that ran)."""
    found = []
    for method, strain, log in cells:
        try:
            with h5py.File(strain, "r") as f:
                error = f.attrs.get("error")
        except OSError:
            continue
        if error is not None:
            found.append(FailedFit(method, strain, error.decode() if isinstance(error, bytes) else str(error), log))
    return found


def summary(failures: Sequence[FailedFit], total: int, table: str, page: str, command: str) -> str:
    """The lines a run ends with: how many of ``total`` fits failed, each with its error and log,
    and the command that retries them (``command`` is the run's snakemake command line)."""
    if not failures:
        return f"strainbench: all {total} fits answered; table: {table}"
    lines = [
        f"strainbench: {len(failures)} of {total} fits FAILED; their cells read 'failed' in {table}, "
        f"errors and logs in {page}:"
    ]
    for f in failures:
        lines.append(f"  {f.method}: {f.strain}: {f.error} (log: {f.log})")
    lines.append("Retry them with: " + command + " --forcerun " + " ".join(f.strain for f in failures))
    return "\n".join(lines)


def write_failures(metrics_files: Sequence[str | os.PathLike], log_files: Sequence[str | os.PathLike], out: str | os.PathLike) -> int:
    """An HTML page listing every failed cell with its error and the full text of its fit log
    (``log_files[i]`` belongs to ``metrics_files[i]``), for the report; returns the number of failures."""
    if len(metrics_files) != len(log_files):
        raise ValueError(f"{len(metrics_files)} metrics files but {len(log_files)} logs: give one log per metrics file")
    metrics = load_metrics(metrics_files)
    metrics["log"] = [str(p) for p in log_files]
    failed = metrics[metrics["error"].notna()].sort_values(["method", "noise_level", "seed"])
    parts = ["<html><body><h1>Failed fits</h1>"]
    if failed.empty:
        parts.append("<p>None: every method answered at every noise level and seed.</p>")
    for _, r in failed.iterrows():
        log = Path(r["log"])
        text = log.read_text(errors="replace") if log.exists() else f"(no log at {log})"
        parts.append(f"<h2>{html.escape(str(r['method']))}, noise {r['noise_level']:.0%}, seed {r['seed']}</h2>")
        parts.append(f"<p>{html.escape(str(r['error']))}</p><pre>{html.escape(text)}</pre>")
    parts.append("</body></html>")
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(parts) + "\n")
    return len(failed)
