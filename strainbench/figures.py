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
from matplotlib.colors import Colormap, LogNorm  # noqa: E402

from .io.atomic import atomic_path  # noqa: E402
from .io.dataset import DatasetReader  # noqa: E402


def save_figure(fig: plt.Figure, out: str | os.PathLike) -> None:
    """Save atomically as PNG and, beside it, PDF."""
    out = Path(out)
    for suffix in (".png", ".pdf"):
        with atomic_path(out.with_suffix(suffix)) as tmp:
            fig.savefig(tmp, format=suffix[1:], dpi=150, bbox_inches="tight")
    plt.close(fig)


def _masked_cmap(name: str) -> Colormap:
    """A copy of colormap ``name`` that draws NaN (no answer) in grey."""
    cmap = plt.get_cmap(name).copy()
    cmap.set_bad("0.6")
    return cmap


def _abs_percentile(arrays: Sequence[np.ndarray], default: float, q: float = 99) -> float:
    """The ``q``-th percentile of ``|value|`` over the finite values of ``arrays``, or ``default`` if none."""
    finite = [np.abs(a[np.isfinite(a)]) for a in arrays]
    values = np.concatenate(finite) if finite else np.zeros(0)
    return float(np.percentile(values, q)) if values.size else default


def _show_pattern(ax: plt.Axes, pattern: np.ndarray) -> None:
    """A diffraction pattern on a log scale spanning five decades below its maximum."""
    positive = pattern[pattern > 0]
    vmin = max(positive.min() if positive.size else 1e-3, pattern.max() * 1e-5)
    ax.imshow(np.clip(pattern, vmin, None), norm=LogNorm(vmin=vmin, vmax=pattern.max()), cmap="magma")


def _label_range(labels: dict[str, np.ndarray]) -> float:
    """The largest |strain| of the labels, percent (vacuum's NaN left out)."""
    return 100 * max(float(np.nanmax(np.abs(labels[k]))) for k in ("exx", "eyy", "exy"))


def _positions_of_grains(grain_map: np.ndarray, n: int) -> list[tuple[int, int]]:
    """The most central position of ``n`` of the largest grains (for example patterns; vacuum,
    a negative id, is no grain)."""
    ids, sizes = np.unique(grain_map[grain_map >= 0], return_counts=True)
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
                ax = axes[i, j]
                _show_pattern(ax, ds.read_rows(rx, rx + 1)[0, ry])
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
    axes[0].imshow(np.ma.masked_less(labels["grain"], 0), cmap=_masked_cmap("tab20"), interpolation="nearest")
    axes[0].contour(mask, levels=[0.5], colors="k", linewidths=1.5)
    axes[0].set_title("grains (reference outlined, vacuum grey)")
    lim = _label_range(labels)
    for ax, key in zip(axes[1:4], ("exx", "eyy", "exy")):
        im = ax.imshow(np.ma.masked_invalid(labels[key] * 100), cmap=_masked_cmap("RdBu_r"), vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(f"{key} (ground truth)")
        fig.colorbar(im, ax=ax, fraction=0.046, label="strain (%)")
    im = axes[4].imshow(np.ma.masked_invalid(labels["theta"]), cmap=_masked_cmap("twilight"), vmin=0, vmax=360, interpolation="nearest")
    axes[4].set_title("theta (ground truth)")
    fig.colorbar(im, ax=axes[4], fraction=0.046, label="rotation (deg)")
    for ax in axes:
        ax.set_xlabel("y (scan column)")
    axes[0].set_ylabel("x (scan row)")
    fig.suptitle(f"{attrs.get('run', '')} seed {attrs.get('seed', '')}: {attrs.get('crystal', '')}, {attrs.get('engine', '')} engine", fontsize=10)
    save_figure(fig, out)


def plot_mae_vs_noise(metrics_files: Sequence[str | os.PathLike], out: str | os.PathLike, bound_files: Sequence[str | os.PathLike] = ()) -> None:
    """The paper's Fig. 3 as a plot: MAE vs noise level per method and component.

    Our methods are solid lines (mean over seeds, bars = min..max), the paper's values dashed,
    the Cramér-Rao limit (given ``bound_files``) a black dotted line.
    """
    from .table import COMPONENTS, PAPER_METHODS, load_bounds, load_metrics, load_paper_table

    metrics = load_metrics(metrics_files)
    bounds = load_bounds(bound_files)
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
        if not bounds.empty:
            limit = bounds.groupby("noise_level")[f"mae_{key}"].mean() * 1e3
            ax.plot(limit.index * 100, limit.values, ":", color="black", marker=".", label="limit (Cramér-Rao)")
        ax.set_title(f"{label} ({key})")
        ax.set_xlabel("background noise (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("MAE vs ground truth (x 1e-3)")
    axes[-1].legend(fontsize=8)
    save_figure(fig, out)


def plot_grain_errors(metrics_files: Sequence[str | os.PathLike], out: str | os.PathLike) -> None:
    """Each grain's offset (median signed error) against its thickness, per method and component.

    One row per method, one column per component (exx, eyy, exy); a point per grain and noise level
    (colour), at the grain's thickness in layers (its id where the dataset records none), spread
    sideways by noise level. Noise-free, the points show the thickness-dependent bias that the
    reference grain's own offset sets to zero; with noise, how the thin grains' offsets move. The
    metrics files are ``strainbench evaluate``'s (with their ``grains``), of one seed.
    """
    import json

    rows = [json.loads(Path(p).read_text()) for p in metrics_files]
    rows = [r for r in rows if r.get("grains")]
    if not rows:
        raise ValueError("no metrics file holds per-grain errors (from 'strainbench evaluate')")
    methods = sorted({r["method"] for r in rows})
    levels = sorted({round(float(r["noise_level"]), 4) for r in rows})
    norm = plt.Normalize(100 * min(levels), max(100 * max(levels), 1e-9))  # percent, as in Fig. 3
    cmap = plt.get_cmap("viridis")
    fig, axes = plt.subplots(len(methods), 3, figsize=(14, 3.4 * len(methods)), sharex=True, sharey=True, squeeze=False, layout="constrained")
    for r in rows:
        i = methods.index(r["method"])
        shift = 0.5 * (levels.index(round(float(r["noise_level"]), 4)) / max(len(levels) - 1, 1) - 0.5)
        for j, key in enumerate(("exx", "eyy", "exy")):
            x = [g.get("layers", g["grain"]) + shift for g in r["grains"] if g["median_error"][key] is not None]
            y = [g["median_error"][key] * 1e3 for g in r["grains"] if g["median_error"][key] is not None]
            axes[i, j].scatter(x, y, s=10, color=cmap(norm(100 * float(r["noise_level"]))))
    reference = {r.get("reference_layers") for r in rows} - {None}
    for i, m in enumerate(methods):
        for j, key in enumerate(("exx", "eyy", "exy")):
            ax = axes[i, j]
            ax.axhline(0, color="grey", lw=0.8)
            ax.grid(alpha=0.3)
            ax.set_title(f"{m}: {key}")
        axes[i, 0].set_ylabel("grain's median error (x 1e-3)")
    has_layers = all("layers" in g for r in rows for g in r["grains"])
    for ax in axes[-1]:
        ax.set_xlabel("grain thickness (layers)" if has_layers else "grain")
    label = "background noise (%)" + (f"; reference grain: {', '.join(map(str, sorted(reference)))} layers" if reference else "")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, label=label, shrink=0.8)
    save_figure(fig, out)


def _virtual_image(reader: DatasetReader) -> np.ndarray:
    """Mean intensity outside the direct beam at each scan position (a virtual dark field).

    Every pattern carries the same total, so the plain mean (the paper's Fig. 2a) shows only
    shot noise here; outside the direct beam (where the vacuum probe is below 1% of its peak)
    the grains' thickness and orientation show.
    """
    outside = reader.probe < 0.01 * reader.probe.max()
    image = np.zeros(reader.scan_shape)
    for r0, block in reader.iter_blocks(4):
        image[r0 : r0 + block.shape[0]] = block[..., outside].mean(axis=-1)
    return image


def plot_strain_maps(
    noise_free: str | os.PathLike,
    noisy: str | os.PathLike,
    strains: dict[str, str | os.PathLike],
    out: str | os.PathLike,
    errors_out: str | os.PathLike,
) -> None:
    """The paper's Fig. 2 (for the noise level of ``noisy``) and the error maps.

    Fig. 2: virtual dark field, one pattern noise-free and noisy, then for the ground truth and
    each method the exx, eyy, exy maps (one colour range for all, in percent) and their
    histograms. Error maps: ``estimate - label`` per method, one symmetric range for all.
    Positions where a method gave no answer are grey.
    """
    from .io.strain import read_strain

    with DatasetReader(noisy) as ds:
        labels = ds.labels()
        mean_image = _virtual_image(ds)
        w = ds.attrs.get("noise_level", float("nan"))
        rx, ry = _positions_of_grains(labels["grain"], 1)[0]
        noisy_pattern = ds.read_rows(rx, rx + 1)[0, ry]
        scan_shape = ds.scan_shape
    with DatasetReader(noise_free) as ds:
        clean_pattern = ds.read_rows(rx, rx + 1)[0, ry]
    maps = {"ground truth": {k: labels[k] for k in ("exx", "eyy", "exy")}}
    for name, path in strains.items():
        est = read_strain(path, scan_shape)
        maps[name] = {k: est[k] for k in ("exx", "eyy", "exy")}
    lim = _label_range(labels) * 1.1
    cmap = _masked_cmap("RdBu_r")

    rows = len(maps) + 1
    fig, axes = plt.subplots(rows, 6, figsize=(20, 3.3 * rows), layout="constrained")
    axes[0, 0].imshow(mean_image, cmap="gray")
    axes[0, 0].set_title(f"virtual dark field, {w:.0%} noise")
    axes[0, 0].plot(ry, rx, "r+", ms=10)
    for ax, pattern, title in ((axes[0, 1], clean_pattern, "pattern, noise-free"), (axes[0, 2], noisy_pattern, f"pattern, {w:.0%} noise")):
        _show_pattern(ax, pattern)
        ax.set_title(f"{title} at ({rx}, {ry})")
    for ax in axes[0, 3:]:
        ax.axis("off")
    bins = np.linspace(-lim, lim, 81)
    for i, (name, m) in enumerate(maps.items(), start=1):
        for j, key in enumerate(("exx", "eyy", "exy")):
            im = axes[i, j].imshow(np.ma.masked_invalid(m[key] * 100), cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest")
            axes[i, j].set_title(f"{name}: {key}")
            values = m[key][np.isfinite(m[key])] * 100
            axes[i, 3 + j].hist(values, bins=bins, color="C0" if i > 1 else "k")
            axes[i, 3 + j].set_title(f"{name}: {key} histogram")
            axes[i, 3 + j].set_xlabel("strain (%)")
        fig.colorbar(im, ax=axes[i, 2], fraction=0.046, label="strain (%)")
    for ax in axes[:, :3].ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    save_figure(fig, out)

    methods = [n for n in maps if n != "ground truth"]
    if not methods:
        return
    errs = {n: {k: (maps[n][k] - labels[k]) * 100 for k in ("exx", "eyy", "exy")} for n in methods}
    elim = _abs_percentile([e for d in errs.values() for e in d.values()], default=1.0)
    fig, axes = plt.subplots(len(methods), 3, figsize=(12, 3.6 * len(methods)), squeeze=False, layout="constrained")
    for i, n in enumerate(methods):
        for j, key in enumerate(("exx", "eyy", "exy")):
            im = axes[i, j].imshow(np.ma.masked_invalid(errs[n][key]), cmap=cmap, vmin=-elim, vmax=elim, interpolation="nearest")
            axes[i, j].set_title(f"{n}: {key} - label, {w:.0%} noise")
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        fig.colorbar(im, ax=axes[i, 2], fraction=0.046, label="error (% strain)")
    save_figure(fig, errors_out)


def plot_method_maps(dataset: str | os.PathLike, strains: dict[str, str | os.PathLike], out: str | os.PathLike) -> None:
    """Each method's exx, eyy, exy and rotation side by side on data without labels.

    A virtual image for orientation; one colour range for every strain map (the 99th percentile
    of |strain| over all methods, in percent), one for every rotation map (degrees, relative to
    the reference region); positions where a method gave no answer are grey.
    """
    from .io.strain import read_strain

    with DatasetReader(dataset) as ds:
        image = _virtual_image(ds)
        scan_shape = ds.scan_shape
    maps = {n: read_strain(p, scan_shape) for n, p in strains.items()}
    lim = 100 * _abs_percentile([m[k] for m in maps.values() for k in ("exx", "eyy", "exy")], default=0.01)
    alim = _abs_percentile([m["theta"] for m in maps.values()], default=1.0)
    cmap = _masked_cmap("RdBu_r")
    twilight = _masked_cmap("twilight_shifted")
    rows = max(len(maps), 1)
    fig, axes = plt.subplots(rows, 5, figsize=(17, 3.3 * rows), squeeze=False, layout="constrained")
    for i, (name, m) in enumerate(maps.items()):
        axes[i, 0].imshow(image, cmap="gray")
        axes[i, 0].set_title("virtual image" if i == 0 else "")
        for j, key in enumerate(("exx", "eyy", "exy"), start=1):
            im = axes[i, j].imshow(np.ma.masked_invalid(m[key] * 100), cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest")
            axes[i, j].set_title(f"{name}: {key}")
        fig.colorbar(im, ax=axes[i, 3], fraction=0.046, label="strain (%)")
        im = axes[i, 4].imshow(np.ma.masked_invalid(m["theta"]), cmap=twilight, vmin=-alim, vmax=alim, interpolation="nearest")
        axes[i, 4].set_title(f"{name}: rotation")
        fig.colorbar(im, ax=axes[i, 4], fraction=0.046, label="rotation (deg)")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    save_figure(fig, out)
