"""Figures of simulated datasets: diffraction patterns across noise levels, and ground truth.

Patterns are shown on a logarithmic intensity scale (the direct beam is ~100x the Bragg disks);
strain maps share one symmetric colour range with a colour bar in percent.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from .io.atomic import atomic_path  # noqa: E402
from .io.dataset import DatasetReader  # noqa: E402


def save_figure(fig: plt.Figure, out: str | os.PathLike) -> None:
    """Save atomically as PNG and, beside it, PDF."""
    out = Path(out)
    for suffix in (".png", ".pdf"):
        with atomic_path(out.with_suffix(suffix)) as tmp:
            fig.savefig(tmp, format=suffix[1:], dpi=150, bbox_inches="tight")
    plt.close(fig)


def _positions_of_grains(grain_map: np.ndarray, n: int) -> list[tuple[int, int]]:
    """The most central position of ``n`` of the largest grains (for example patterns)."""
    ids, sizes = np.unique(grain_map, return_counts=True)
    out = []
    for g in ids[np.argsort(-sizes)][:n]:
        xs, ys = np.nonzero(grain_map == g)
        k = np.argmin((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2)
        out.append((int(xs[k]), int(ys[k])))
    return out


def plot_patterns(datasets: Sequence[str | os.PathLike], out: str | os.PathLike, n_grains: int = 3) -> None:
    """Patterns of the same scan positions (grains) in each dataset; one column per dataset."""
    readers = [DatasetReader(p) for p in datasets]
    try:
        labels = readers[0].labels()
        positions = _positions_of_grains(labels["grain"], n_grains)
        fig, axes = plt.subplots(len(positions), len(readers), figsize=(2.6 * len(readers), 2.6 * len(positions)), squeeze=False)
        for j, ds in enumerate(readers):
            w = ds.attrs.get("noise_level", float("nan"))
            for i, (rx, ry) in enumerate(positions):
                pattern = ds.read_rows(rx, rx + 1)[0, ry]
                positive = pattern[pattern > 0]
                vmin = max(positive.min() if positive.size else 1e-3, pattern.max() * 1e-5)
                ax = axes[i, j]
                ax.imshow(np.clip(pattern, vmin, None), norm=LogNorm(vmin=vmin, vmax=pattern.max()), cmap="magma")
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(f"{ds.attrs.get('engine', '')}, noise {w:.0%}", fontsize=9)
                if j == 0:
                    g = int(labels["grain"][rx, ry])
                    ax.set_ylabel(f"grain {g}, {labels['theta'][rx, ry]:.0f}°", fontsize=8)
        fig.suptitle("diffraction patterns (log intensity; x = rows, y = columns)", fontsize=10)
        save_figure(fig, out)
    finally:
        for r in readers:
            r.close()


def plot_ground_truth(dataset: str | os.PathLike, out: str | os.PathLike) -> None:
    """Grain map with the reference grain outlined, and the exx, eyy, exy, theta labels."""
    with DatasetReader(dataset) as ds:
        labels = ds.labels()
        mask = ds.reference_mask
        attrs = ds.attrs
    fig, axes = plt.subplots(1, 5, figsize=(18, 3.6), layout="constrained")
    axes[0].imshow(labels["grain"], cmap="tab20", interpolation="nearest")
    axes[0].contour(mask, levels=[0.5], colors="k", linewidths=1.5)
    axes[0].set_title("grains (reference outlined)")
    lim = max(float(np.abs(labels[k]).max()) for k in ("exx", "eyy", "exy")) * 100
    for ax, key in zip(axes[1:4], ("exx", "eyy", "exy")):
        im = ax.imshow(labels[key] * 100, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(f"{key} (ground truth)")
        fig.colorbar(im, ax=ax, fraction=0.046, label="strain (%)")
    im = axes[4].imshow(labels["theta"], cmap="twilight", vmin=0, vmax=360, interpolation="nearest")
    axes[4].set_title("theta (ground truth)")
    fig.colorbar(im, ax=axes[4], fraction=0.046, label="rotation (deg)")
    for ax in axes:
        ax.set_xlabel("y (scan column)")
    axes[0].set_ylabel("x (scan row)")
    fig.suptitle(f"{attrs.get('run', '')} seed {attrs.get('seed', '')}: {attrs.get('crystal', '')}, {attrs.get('engine', '')} engine", fontsize=10)
    save_figure(fig, out)


def plot_mae_vs_noise(metrics_files: Sequence[str | os.PathLike], out: str | os.PathLike) -> None:
    """The paper's Fig. 3 as a plot: MAE vs noise level per method and component.

    Our methods are solid lines (mean over seeds, bars = min..max), the paper's values dashed.
    """
    from .table import COMPONENTS, PAPER_METHODS, load_metrics, load_paper_table

    metrics = load_metrics(metrics_files)
    paper = load_paper_table()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True, layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    methods = sorted(metrics["method"].unique())
    for ax, (key, label, paper_col) in zip(axes, COMPONENTS):
        for i, m in enumerate(methods):
            g = metrics[metrics["method"] == m].groupby("noise_level")[f"mae_{key}"]
            mean, lo, hi = g.mean() * 1e3, g.min() * 1e3, g.max() * 1e3
            ax.errorbar(mean.index * 100, mean.values, yerr=[mean - lo, hi - mean], marker="o", color=colours[i % 10], label=f"{m} (ours)", capsize=2)
        for j, (pm, pm_label) in enumerate(PAPER_METHODS.items()):
            p = paper[paper["method"] == pm]
            ax.plot(p["noise_level"] * 100, p[paper_col] * 1e3, "--", marker="x", color=colours[(len(methods) + j) % 10], label=pm_label)
        ax.set_title(f"{label} ({key})")
        ax.set_xlabel("background noise (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("MAE vs ground truth (x 1e-3)")
    axes[-1].legend(fontsize=8)
    save_figure(fig, out)
