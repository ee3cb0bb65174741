"""The results table in the paper's Figure 3 layout, our MAE beside the paper's.

Rows are noise levels; for each of Strain X (``exx``), Strain Y (``eyy``) and Shear (``exy``) a
column per method, ours and the paper's, in units of 1e-3 as in the paper. Our ``x`` is array
axis 0 (docs/contract.md); the paper's "Strain X" column is set beside our ``exx``. A second table gives
what the paper lacks: rotation MAE, coverage, wall time and, with vacuum in the scan, the share of
vacuum positions where a method gave a strain (false answers). Given the Cramér-Rao bounds
(:mod:`strainbench.bound`), a "limit" column per component gives the lowest MAE an unbiased method
could reach, and a third table each method's MAE as a multiple of it. With several seeds a cell
reads ``mean ± standard deviation``; a cell some seeds of which gave no answer says so
(``(2/3 seeds)``), and the caption counts the failed fits.
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
                "vacuum_false_answers": math.nan if m.get("vacuum_false_answers") is None else m["vacuum_false_answers"],
                "wall_seconds": m["wall_seconds"],
                "error": m.get("error"),
            }
        )
    if not rows:
        raise ValueError("no metrics files given")
    return pd.DataFrame(rows)


def load_bounds(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per bound JSON (noise level, the bound's MAE of exx, eyy, exy, theta)."""
    rows = []
    for p in paths:
        b = json.loads(Path(p).read_text())
        rows.append({"noise_level": round(float(b["noise_level"]), 4), **{f"mae_{k}": v for k, v in b["mae_bound"].items()}})
    return pd.DataFrame(rows, columns=["noise_level", "mae_exx", "mae_eyy", "mae_exy", "mae_theta"])


def load_paper_table(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The paper's Figure 3 MAE values (dimensionless), one row per (noise level, method)."""
    src = Path(path) if path is not None else PAPER_TABLE
    df = pd.read_csv(src)
    df["noise_level"] = df["noise_level"].round(4)
    return df


def _cell(values: pd.Series, scale: float, digits: int) -> str:
    """One value per seed -> the value, or ``mean ± sd``; NaN values are seeds that gave no answer:
    ``failed`` if none answered, else the statistic of those that did with ``(k/n seeds)``."""
    v = values.dropna() * scale
    if v.empty:
        return "failed" if len(values) else ""
    text = f"{v.iloc[0]:.{digits}f}" if len(v) == 1 else f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"
    return text if len(v) == len(values) else f"{text} ({len(v)}/{len(values)} seeds)"


def _ratio(mae: pd.Series, limit: pd.Series) -> str:
    """Mean MAE over seeds as a multiple of the mean limit ("no noise" where the limit is 0)."""
    mae, limit = mae.dropna(), limit.dropna()
    if mae.empty or limit.empty:
        return ""
    if limit.mean() == 0:
        return "no noise"
    return f"{mae.mean() / limit.mean():.1f}"


def build_tables(metrics: pd.DataFrame, paper: pd.DataFrame, bounds: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """(MAE table in 1e-3 beside the paper's [and the limit], extras table: rotation MAE, coverage,
    wall time, and [with bounds] the table of MAE / limit per method and component)."""
    methods = sorted(metrics["method"].unique())
    levels = sorted(metrics["noise_level"].unique())
    has_bounds = bounds is not None and not bounds.empty
    has_vacuum = bool(metrics["vacuum_false_answers"].notna().any())
    mae_rows, extra_rows, ratio_rows = [], [], []
    for w in levels:
        at = metrics[metrics["noise_level"] == w]
        row = {("", "noise level"): f"{w:.0%}"}
        extra = {("", "noise level"): f"{w:.0%}"}
        ratio = {("", "noise level"): f"{w:.0%}"}
        limit = bounds[bounds["noise_level"] == w] if has_bounds else None
        for key, label, paper_col in COMPONENTS:
            for m in methods:
                row[(label, f"{m} (ours)")] = _cell(at[at["method"] == m][f"mae_{key}"], 1e3, 2)
                if has_bounds:
                    ratio[(f"{label} MAE / limit", m)] = _ratio(at[at["method"] == m][f"mae_{key}"], limit[f"mae_{key}"])
            if has_bounds:
                row[(label, "limit (CRLB)")] = _cell(limit[f"mae_{key}"], 1e3, 3)
            for pm, pm_label in PAPER_METHODS.items():
                hit = paper[(paper["noise_level"] == w) & (paper["method"] == pm)]
                row[(label, pm_label)] = f"{hit[paper_col].iloc[0] * 1e3:.1f}" if len(hit) else "n/a"
        for m in methods:
            sel = at[at["method"] == m]
            extra[("rotation MAE (deg)", m)] = _cell(sel["mae_theta"], 1.0, 3)
            extra[("coverage (%)", m)] = _cell(sel["coverage"], 100.0, 1)
            if has_vacuum:
                extra[("false answers in vacuum (%)", m)] = _cell(sel["vacuum_false_answers"], 100.0, 1)
            extra[("wall time (s)", m)] = _cell(sel["wall_seconds"], 1.0, 1)
        if has_bounds:
            extra[("rotation MAE (deg)", "limit (CRLB)")] = _cell(limit["mae_theta"], 1.0, 4)
        mae_rows.append(row)
        extra_rows.append(extra)
        ratio_rows.append(ratio)
    return _frame(mae_rows), _frame(extra_rows), _frame(ratio_rows) if has_bounds else None


def _frame(rows: list[dict]) -> pd.DataFrame:
    """Rows keyed by ``(group, column)`` tuples as a frame with two-level columns."""
    df = pd.DataFrame(rows)
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    return df


def _markdown(df: pd.DataFrame) -> str:
    header = [f"{a} {b}".strip() if a else b for a, b in df.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(str(v) for v in r.values) + " |")
    return "\n".join(lines)


def caption(metrics: pd.DataFrame) -> str:
    """What the cells hold: the unit, the seeds per cell and how many fits failed."""
    n_seeds = metrics["seed"].nunique()
    note = f"MAE x 1e-3 outside the reference region; {n_seeds} seed(s) per cell" + (" (mean ± sd)" if n_seeds > 1 else "")
    failed = int(metrics["error"].notna().sum())
    if failed:
        note += (
            f"; {failed} of {len(metrics)} fits failed (see failures.html): a cell marked 'k/n seeds' "
            "averages the k seeds that answered, 'failed' means none did"
        )
    return note


def write_tables(
    metrics_files: Iterable[str | os.PathLike],
    out_prefix: str | os.PathLike,
    paper_csv: str | os.PathLike | None = None,
    bound_files: Iterable[str | os.PathLike] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write ``<prefix>.csv``, ``.md`` and ``.tex`` (each atomically); returns the MAE and extras tables."""
    metrics = load_metrics(metrics_files)
    bounds = load_bounds(bound_files)
    mae, extras, ratios = build_tables(metrics, load_paper_table(paper_csv), bounds)
    tables = [mae, extras] + ([ratios] if ratios is not None else [])
    prefix = Path(out_prefix)
    note = caption(metrics)
    if ratios is not None:
        note += "; limit (CRLB): the Cramér-Rao bound's MAE for an efficient unbiased estimator"
    names = ("mae_1e-3", "extras", "mae_over_limit")
    with atomic_path(prefix.with_suffix(".csv")) as tmp:
        pd.concat(dict(zip(names, tables)), axis=1).to_csv(tmp, index=False)
    with atomic_path(prefix.with_suffix(".md")) as tmp:
        tmp.write_text(f"{note}\n\n" + "\n\n".join(_markdown(t) for t in tables) + "\n")
    with atomic_path(prefix.with_suffix(".tex")) as tmp:
        tmp.write_text(f"% {note}\n" + "\n".join(t.to_latex(index=False, multicolumn=True) for t in tables))
    return mae, extras
