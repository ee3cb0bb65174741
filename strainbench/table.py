"""The results table in the paper's Figure 3 layout, our MAE beside the paper's.

Rows are noise levels; for each of Strain X (``exx``), Strain Y (``eyy``) and Shear (``exy``) a
column per method, ours and the paper's, in units of 1e-3 as in the paper. Our ``x`` is array
axis 0 (DESIGN.md); the paper's "Strain X" column is set beside our ``exx``. A second table gives
what the paper lacks: rotation MAE, coverage and wall time. With several seeds a cell reads
``mean ± standard deviation``.
"""

from __future__ import annotations

import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Iterable

import pandas as pd

from .io.atomic import atomic_path

PAPER_TABLE = resources.files("strainbench") / "data" / "paper_fig3_mae.csv"
COMPONENTS = (("exx", "Strain X", "strain_x_mae"), ("eyy", "Strain Y", "strain_y_mae"), ("exy", "Shear", "shear_mae"))
PAPER_METHODS = {"py4dstem": "paper py4DSTEM", "ccstae": "paper CC-ST-AE"}


def load_metrics(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per metrics JSON (method, noise level, seed, MAEs, coverage, wall time)."""
    rows = []
    for p in paths:
        m = json.loads(Path(p).read_text())
        rows.append(
            {
                "method": m["method"],
                "noise_level": round(float(m["noise_level"]), 4),
                "seed": m["seed"],
                **{f"mae_{k}": (math.nan if v is None else v) for k, v in m["mae"].items()},
                "coverage": m["coverage"],
                "wall_seconds": m["wall_seconds"],
                "error": m.get("error"),
            }
        )
    if not rows:
        raise ValueError("no metrics files given")
    return pd.DataFrame(rows)


def load_paper_table(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The paper's Figure 3 MAE values (dimensionless), one row per (noise level, method)."""
    src = Path(path) if path is not None else PAPER_TABLE
    df = pd.read_csv(src)
    df["noise_level"] = df["noise_level"].round(4)
    return df


def _cell(values: pd.Series, scale: float, digits: int) -> str:
    v = values.dropna() * scale
    if v.empty:
        return "failed" if len(values) else ""
    if len(v) == 1:
        return f"{v.iloc[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def build_tables(metrics: pd.DataFrame, paper: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(MAE table in 1e-3 beside the paper's, extras table: rotation MAE, coverage, wall time)."""
    methods = sorted(metrics["method"].unique())
    levels = sorted(metrics["noise_level"].unique())
    mae_rows, extra_rows = [], []
    for w in levels:
        at = metrics[metrics["noise_level"] == w]
        row = {("", "noise level"): f"{w:.0%}"}
        extra = {("", "noise level"): f"{w:.0%}"}
        for key, label, paper_col in COMPONENTS:
            for m in methods:
                row[(label, f"{m} (ours)")] = _cell(at[at["method"] == m][f"mae_{key}"], 1e3, 2)
            for pm, pm_label in PAPER_METHODS.items():
                hit = paper[(paper["noise_level"] == w) & (paper["method"] == pm)]
                row[(label, pm_label)] = f"{hit[paper_col].iloc[0] * 1e3:.1f}" if len(hit) else "n/a"
        for m in methods:
            sel = at[at["method"] == m]
            extra[("rotation MAE (deg)", m)] = _cell(sel["mae_theta"], 1.0, 3)
            extra[("coverage (%)", m)] = _cell(sel["coverage"], 100.0, 1)
            extra[("wall time (s)", m)] = _cell(sel["wall_seconds"], 1.0, 1)
        mae_rows.append(row)
        extra_rows.append(extra)
    mae = pd.DataFrame(mae_rows)
    mae.columns = pd.MultiIndex.from_tuples(mae.columns)
    extras = pd.DataFrame(extra_rows)
    extras.columns = pd.MultiIndex.from_tuples(extras.columns)
    return mae, extras


def _markdown(df: pd.DataFrame) -> str:
    header = [f"{a} {b}".strip() if a else b for a, b in df.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(str(v) for v in r.values) + " |")
    return "\n".join(lines)


def write_tables(metrics_files: Iterable[str | os.PathLike], out_prefix: str | os.PathLike, paper_csv: str | os.PathLike | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write ``<prefix>.csv``, ``.md`` and ``.tex`` (each atomically); returns the two tables."""
    metrics = load_metrics(metrics_files)
    mae, extras = build_tables(metrics, load_paper_table(paper_csv))
    prefix = Path(out_prefix)
    n_seeds = metrics.groupby(["method", "noise_level"]).size().max()
    note = f"MAE x 1e-3 outside the reference region; {n_seeds} seed(s) per cell" + (" (mean ± sd)" if n_seeds > 1 else "")
    with atomic_path(prefix.with_suffix(".csv")) as tmp:
        pd.concat({"mae_1e-3": mae, "extras": extras}, axis=1).to_csv(tmp, index=False)
    with atomic_path(prefix.with_suffix(".md")) as tmp:
        tmp.write_text(f"{note}\n\n{_markdown(mae)}\n\n{_markdown(extras)}\n")
    with atomic_path(prefix.with_suffix(".tex")) as tmp:
        tmp.write_text(f"% {note}\n" + mae.to_latex(index=False, multicolumn=True) + "\n" + extras.to_latex(index=False, multicolumn=True))
    return mae, extras
