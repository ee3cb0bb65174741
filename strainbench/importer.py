"""A user's 4D-STEM file turned into a contract dataset without labels (``strainbench import``).

Formats and axis order: see :mod:`strainbench.readers` (``.npy``, HDF5 with a named dataset,
py4DSTEM/EMD, Merlin ``.mib``, ``.blo``, ``.hspy``). The file is read once, a block of scan rows at
a time, never whole; what the reader learnt besides the data (e.g. a py4DSTEM calibration) is kept
in the ``source_metadata`` attribute (JSON).

Detector crop (``qx0:qx1,qy0:qy1``, applied first) and binning (``bin`` x ``bin`` pixels summed;
the cropped size must be divisible by it). The reference region is required (a rectangle of scan
positions ``x0:x1,y0:y1`` or a boolean ``.npy`` mask): without one the import refuses, it never
guesses. The vacuum probe: a ``.npy`` file (the final pattern shape), the mean pattern of a vacuum
scan region, or, by default, estimated from the data: the mean pattern of the whole scan,
median-filtered over 5 x 5 pixels, kept out to the direct beam's edge (where its radial profile
falls fastest in the log) and clipped at the disk's plateau, so that a central peak such as the
noise model's background (a narrow Lorentzian) neither shrinks the disk nor sets its maximum
(:func:`estimate_probe`).

NaN or infinite values are an error naming the file and the scan position; negative values (dark
subtraction) are set to zero and counted in the ``clipped_negative_values`` attribute.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import scipy.ndimage as ndi

from .io.dataset import DatasetWriter
from .io.errors import ContractError
from .radial import radial_profile
from .readers import Source, open_source


def parse_rect(text: str, what: str) -> tuple[slice, slice]:
    """``"a:b,c:d"`` -> two slices (end exclusive)."""
    try:
        parts = [p.split(":") for p in text.split(",")]
        (a, b), (c, d) = [(int(x), int(y)) for x, y in parts]
    except ValueError:
        raise ValueError(f"{what} must read a:b,c:d (integers), got {text!r}") from None
    if a >= b or c >= d or min(a, c) < 0:
        raise ValueError(f"{what} {text!r} is empty or negative")
    return slice(a, b), slice(c, d)


def transform(block: np.ndarray, crop: tuple[slice, slice] | None, binning: int) -> np.ndarray:
    """Crop then bin the detector axes of ``(rows, Ry, Qx, Qy)``."""
    if crop is not None:
        block = block[:, :, crop[0], crop[1]]
    if binning > 1:
        r, c, qx, qy = block.shape
        block = block.reshape(r, c, qx // binning, binning, qy // binning, binning).sum(axis=(3, 5))
    return block


MIN_DISK_RADIUS = 3.0  # px: the direct beam's edge is sought beyond it (a central peak lies within)
MIN_PATTERN_PX = 16  # a side, after crop and binning: room for the direct beam and a first ring of disks


def estimate_probe(mean_pattern: np.ndarray) -> np.ndarray:
    """The direct beam of the mean pattern, a ``(Qx, Qy)`` image (see the module docstring).

    Centre: the intensity-weighted centre of the region above half the maximum around it. Edge: the
    radius (beyond ``MIN_DISK_RADIUS``, in 0.5 px bins) where the logarithm of the radial profile
    falls fastest: a disk's edge drops the intensity by a large factor within a pixel or two,
    while a central peak of ``1 / r^2`` tails falls by ``2 / r`` per pixel in the log. Inside
    the edge (plus 2 px of soft edge) the pattern is kept, clipped at the disk's plateau (the
    median over the outer half of the disk, its last pixel left out) so that a central peak does
    not raise the maximum from which methods read the radius; zero outside.
    """
    smooth = ndi.median_filter(mean_pattern, size=5)  # a one-pixel spike is not the disk
    labels, _ = ndi.label(smooth > 0.5 * smooth.max())
    core = labels == labels[np.unravel_index(np.argmax(smooth), smooth.shape)]
    cx, cy = ndi.center_of_mass(smooth * core)
    xx, yy = np.indices(smooth.shape)
    rho = np.hypot(xx - cx, yy - cy)
    radii, values = radial_profile(smooth, (cx, cy), step=0.5)
    inscribed = radii < min(smooth.shape) / 2
    radii, values = radii[inscribed], values[inscribed]
    profile = np.log(np.maximum(values, smooth.max() * 1e-3))  # floor: empty detector
    slope = np.gradient(ndi.gaussian_filter1d(profile, 1.0), radii)
    beyond = radii >= MIN_DISK_RADIUS
    if not beyond.any():
        raise ValueError(f"the direct beam's edge is sought beyond {MIN_DISK_RADIUS} px from its centre, which the {smooth.shape[0]} x {smooth.shape[1]} px mean pattern does not reach; give the probe (--probe or --probe-region)")
    edge = radii[beyond][np.argmin(slope[beyond])]
    plateau = np.median(smooth[(rho <= edge - 1) & (rho >= 0.5 * edge)])
    return np.where(rho <= edge + 2, np.minimum(smooth, plateau), 0.0)


def _blocks(source: Source, rows_per_block: int) -> Iterator[tuple[int, np.ndarray]]:
    Rx = source.shape[0]
    for r0 in range(0, Rx, rows_per_block):
        yield r0, source.rows(r0, min(r0 + rows_per_block, Rx))


def import_dataset(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    key: str | None = None,
    axes: str = "RxRyQxQy",
    scan_shape: str | None = None,
    reference_region: str | None = None,
    reference_mask: str | os.PathLike | None = None,
    crop: str | None = None,
    binning: int = 1,
    probe: str | os.PathLike | None = None,
    probe_region: str | None = None,
) -> dict:
    """Write the contract dataset ``out`` from the user's file ``path``; returns a summary."""
    source = open_source(path, key, axes, scan_shape)
    p = source.path
    try:
        Rx, Ry, Qx, Qy = source.shape
        crop_slices = parse_rect(crop, "--crop") if crop else None
        if crop_slices is not None and (crop_slices[0].stop > Qx or crop_slices[1].stop > Qy):
            raise ContractError(p, f"crop {crop} reaches outside the {Qx} x {Qy} detector")
        cx = (crop_slices[0].stop - crop_slices[0].start) if crop_slices else Qx
        cy = (crop_slices[1].stop - crop_slices[1].start) if crop_slices else Qy
        if binning < 1 or cx % binning or cy % binning:
            raise ContractError(p, f"binning {binning} does not divide the (cropped) detector {cx} x {cy}")
        pattern_shape = (cx // binning, cy // binning)
        if min(pattern_shape) < MIN_PATTERN_PX:
            raise ContractError(p, f"patterns of {pattern_shape[0]} x {pattern_shape[1]} px after crop and binning {binning} are too small: at least {MIN_PATTERN_PX} px a side are needed (bin less)")
        mask = _reference(p, (Rx, Ry), reference_region, reference_mask)
        rows_per_block = max(1, int(64e6 // (8 * Ry * Qx * Qy)))
        region = parse_rect(probe_region, "--probe-region") if probe_region else None
        if region is not None and (region[0].stop > Rx or region[1].stop > Ry):
            raise ContractError(p, f"probe region {probe_region} reaches outside the {Rx} x {Ry} scan")
        given_probe = _probe_file(probe, pattern_shape) if probe is not None else None
        attrs = {
            "source_file": str(p),
            "source_axes": axes,
            "source_key": key or "",
            "source_scan_shape": scan_shape or "",
            "crop": crop or "",
            "bin": int(binning),
            "experimental": True,
            "source_metadata": json.dumps(source.metadata),
        }
        # one pass: value checks, the mean pattern (probe estimate), the vacuum region's sum, the patterns
        total = np.zeros(pattern_shape)
        vacuum = np.zeros(pattern_shape)
        negatives = 0
        with DatasetWriter(out, (Rx, Ry), pattern_shape, given_probe, mask, attrs) as writer:
            for r0, block in _blocks(source, rows_per_block):
                bad = ~np.isfinite(block)
                if bad.any():
                    i, j = np.argwhere(bad.any(axis=(2, 3)))[0]
                    raise ContractError(p, f"NaN or infinite values at scan position ({r0 + i}, {j})")
                negatives += int((block < 0).sum())
                block = transform(np.maximum(block, 0.0), crop_slices, binning)
                writer.write_rows(r0, block)
                total += block.sum(axis=(0, 1))
                if region is not None:
                    rows = np.arange(r0, r0 + block.shape[0])
                    inside = (rows >= region[0].start) & (rows < region[0].stop)
                    vacuum += block[inside][:, region[1]].sum(axis=(0, 1))
            late = {"clipped_negative_values": negatives}
            if given_probe is not None:
                late["probe_source"] = f"file {probe}"
                writer.set_attrs(late)
            else:
                probe_array, late["probe_source"] = _probe_from_data(p, vacuum if region is not None else None, total)
                writer.set_probe(probe_array, late)
            attrs.update(late)
    finally:
        source.close()
    return {"out": str(out), "scan_shape": [Rx, Ry], "pattern_shape": list(pattern_shape), **attrs}


def _reference(path: Path, scan: tuple[int, int], region: str | None, mask_file: str | os.PathLike | None) -> np.ndarray:
    if region is None and mask_file is None:
        raise ContractError(path, "a reference region is required (--reference-region x0:x1,y0:y1 or --reference-mask mask.npy): strain is measured relative to it, and the import will not guess one")
    mask = np.zeros(scan, dtype=bool)
    if region is not None:
        rows, cols = parse_rect(region, "--reference-region")
        if rows.stop > scan[0] or cols.stop > scan[1]:
            raise ContractError(path, f"reference region {region} reaches outside the {scan[0]} x {scan[1]} scan")
        mask[rows, cols] = True
    if mask_file is not None:
        given = np.load(mask_file)
        if given.shape != scan:
            raise ContractError(Path(mask_file), f"reference mask of shape {given.shape} does not match the {scan[0]} x {scan[1]} scan")
        mask |= given.astype(bool)
    if not mask.any():
        raise ContractError(path, "the reference region selects no scan position")
    return mask


def _probe_file(probe_file: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    probe = np.load(probe_file)
    if probe.shape != shape:
        raise ContractError(Path(probe_file), f"probe of shape {probe.shape} does not match the pattern shape {shape} (after crop and binning)")
    if not np.isfinite(probe).all() or probe.sum() <= 0 or (probe < 0).any():
        raise ContractError(Path(probe_file), "probe has NaN, negative values or no intensity")
    return probe.astype(np.float64)


def _probe_from_data(path: Path, vacuum: np.ndarray | None, total: np.ndarray) -> tuple[np.ndarray, str]:
    if vacuum is not None:
        if vacuum.sum() <= 0:
            raise ContractError(path, "the probe region's patterns hold no intensity")
        return vacuum, "mean pattern of the probe region"
    if total.sum() <= 0:
        raise ContractError(path, "every pattern is zero")
    try:
        return estimate_probe(total), "estimated: the direct beam of the mean pattern"
    except ValueError as err:
        raise ContractError(path, str(err)) from None
