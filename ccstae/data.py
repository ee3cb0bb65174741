"""Loading a contract dataset for CC-ST-AE: preprocessing, geometry from the probe, masks.

Preprocessing: the Anscombe transform ``sqrt(counts + 3/8)``, which makes Poisson noise of any
count level nearly uniform (so that a change of mask or scale does not trade signal for noise
variance) and keeps the weak disks from being swamped by the direct beam, scaled by the mean count.
Counts are the intensities divided by the detector's gain, estimated from the data as the
smallest positive intensity (one electron, on counted data; on noise-free data it is tiny and
the transform is a plain square root). Everything the model needs about the geometry comes from the probe: its centre
(centre of mass) and radius (half-maximum area), as it must on experimental data.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from strainbench.io import ContractError, DatasetReader, lattice_symmetry_deg


@dataclass
class PatternSet:
    """Preprocessed patterns and what is known about them.

    Attributes
    ----------
    patterns : float32 (N, 1, Q, Q), preprocessed (square root of mean-1 patterns)
    scan_shape : (Rx, Ry); pattern ``i`` is scan position ``divmod(i, Ry)``
    reference_mask : bool (Rx, Ry)
    probe_radius : pixels (from the area above half maximum); probe_centre : (x, y) pixels
    probe_edge : pixels, the radius beyond which the probe's radial profile stays below
        ``EDGE_LEVEL`` of its peak: the disk with its edge blur
    fingerprint : BLAKE2b hex digest of the datacube, probe and reference mask as stored (the
        dataset's content, whatever its file name; binds a checkpoint to its dataset)
    """

    patterns: torch.Tensor
    scan_shape: tuple[int, int]
    reference_mask: np.ndarray
    probe_radius: float
    probe_centre: tuple[float, float]
    probe_edge: float
    fingerprint: str = ""


def preprocess(block: np.ndarray, gain: float) -> np.ndarray:
    """``sqrt((I / gain + 3/8) / mean(I / gain))`` per pattern, float32; ``block`` is ``(..., Q, Q)``."""
    counts = np.asarray(block, dtype=np.float64) / gain
    mean = counts.mean(axis=(-2, -1), keepdims=True)
    return np.sqrt((counts + 0.375) / np.maximum(mean, 1e-12)).astype(np.float32)


def estimate_gain(reader: DatasetReader, rows_per_block: int = 8) -> float:
    """Intensity of one count: the smallest positive intensity of the first block of scan rows
    that holds any (ContractError naming the file if every pattern is zero)."""
    for _, block in reader.iter_blocks(rows_per_block):
        positive = block[block > 0]
        if positive.size:
            return float(positive.min())
    raise ContractError(reader.path, "every pattern of the datacube is zero")


EDGE_LEVEL = 0.05  # of the probe's peak: where its edge ends (probe_geometry)


def probe_geometry(probe: np.ndarray) -> tuple[float, tuple[float, float], float]:
    """Radius (from the area above half maximum), centre of mass and outer edge (the largest
    distance from the centre of a pixel above ``EDGE_LEVEL`` of the peak) of the vacuum probe,
    pixels."""
    xx, yy = np.indices(probe.shape)
    total = probe.sum()
    centre = (float((probe * xx).sum() / total), float((probe * yy).sum() / total))
    radius = float(np.sqrt((probe > 0.5 * probe.max()).sum() / np.pi))
    bright = probe > EDGE_LEVEL * probe.max()
    edge = float(np.hypot(xx[bright] - centre[0], yy[bright] - centre[1]).max())
    return radius, centre, max(edge, radius)


def blur_matrix(size: int, sigma: float) -> torch.Tensor:
    """``(size, size)`` matrix of a 1-D Gaussian blur (``sigma`` pixels, truncated at 3 sigma) with
    replicated edges: ``blur_matrix @ v`` blurs a column vector ``v``."""
    k = int(np.ceil(3 * sigma))
    g = torch.exp(-0.5 * (torch.arange(-k, k + 1.0) / sigma) ** 2)
    taps = (torch.arange(size)[:, None] + torch.arange(-k, k + 1)[None]).clamp(0, size - 1)
    return torch.zeros(size, size).scatter_add_(1, taps, (g / g.sum()).expand(size, -1))


def gaussian_blur(patterns: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, 1, Qx, Qy)`` patterns, ``sigma`` in pixels (0: unchanged),
    edges replicated; as two matrix products (a one-channel ``conv2d`` is six times slower on CPU)."""
    if sigma <= 0:
        return patterns
    rows = blur_matrix(patterns.shape[-2], sigma).to(patterns)
    columns = blur_matrix(patterns.shape[-1], sigma).to(patterns).T
    out = torch.empty_like(patterns)
    for i in range(0, patterns.shape[0], 512):
        out[i : i + 512] = rows @ patterns[i : i + 512] @ columns
    return out


def load_patterns(path: str) -> PatternSet:
    """Read and preprocess every pattern of a dataset file (block by block)."""
    with DatasetReader(path) as reader:
        Rx, Ry = reader.scan_shape
        Q = reader.pattern_shape
        out = np.empty((Rx * Ry, 1) + Q, dtype=np.float32)
        gain = estimate_gain(reader)
        digest = hashlib.blake2b(digest_size=16)
        for part in (np.asarray(reader.scan_shape + Q), reader.probe, reader.reference_mask):
            digest.update(np.ascontiguousarray(part).tobytes())
        for r0, block in reader.iter_blocks(8):
            digest.update(np.ascontiguousarray(block).tobytes())
            rows = block.shape[0]
            out[r0 * Ry : (r0 + rows) * Ry, 0] = preprocess(block.reshape((-1,) + Q), gain)
        radius, centre, edge = probe_geometry(reader.probe)
        return PatternSet(torch.from_numpy(out), (Rx, Ry), reader.reference_mask.copy(), radius, centre, edge, digest.hexdigest())


def radial_grid(size: int, centre: tuple[float, float]) -> torch.Tensor:
    """Distance of each pixel from ``centre``, pixels, ``(size, size)``."""
    xx, yy = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    return torch.hypot(xx - centre[0], yy - centre[1])


def ring_mask(size: int, centre: tuple[float, float], inner: float, outer: float) -> torch.Tensor:
    """1 between radii ``inner`` and ``outer`` (pixels), else 0; ``(1, 1, size, size)``."""
    r = radial_grid(size, centre)
    return ((r >= inner) & (r <= outer)).float()[None, None]


BACKGROUND_QUANTILE = 0.1  # of a base's pixels at one radius: below its disks, which cover well under 90% of a circle


def radial_floor(image: torch.Tensor, centre: tuple[float, float], ring: torch.Tensor, quantile: float = BACKGROUND_QUANTILE) -> torch.Tensor:
    """The background of ``image (1, 1, Q, Q)`` under its disks: at each integer distance from
    ``centre`` (pixels), the ``quantile`` of the ring's pixels at that distance; same shape, 0
    outside ``ring``."""
    r = radial_grid(image.shape[-1], centre).round().long().view(-1)
    inside = ring.view(-1) > 0
    values, radii = image.reshape(-1)[inside], r[inside]
    floor = torch.zeros(int(r.max()) + 1, dtype=image.dtype, device=image.device)
    for k in radii.unique().tolist():
        floor[k] = values[radii == k].quantile(quantile)
    return (floor[r] * inside).view_as(image)


def shells(distance: np.ndarray, width: float) -> np.ndarray:
    """Shell index (0 innermost) of each spot at ``distance`` from the centre (pixels): spots
    whose sorted distances lie within ``width`` of their neighbour's share a shell."""
    if len(distance) == 0:
        return np.empty(0, dtype=int)
    order = np.argsort(distance)
    index = np.cumsum(np.diff(distance[order], prepend=distance[order[0]]) > width)
    shell = np.empty(len(distance), dtype=int)
    shell[order] = index
    return shell


LATTICE_CANDIDATES = 12  # the strongest maxima among which on_lattice seeks a basis


def on_lattice(points: np.ndarray, heights: np.ndarray, origin: np.ndarray, tolerance: float, region: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Which of ``points`` ``(n, 2)`` (pixels; ``heights (n,)``) lie within ``tolerance`` pixels of
    the lattice through ``origin`` that explains the strongest of them best, ``(n,)`` bool, and
    that lattice's basis ``(2, 2)`` (rows; None if there is none).

    Every pair of the ``LATTICE_CANDIDATES`` highest points (as vectors from ``origin``) spans a
    trial basis. Its score is the total height of those points on its lattice times the fraction
    of its lattice points inside ``region`` (a boolean image where points can be found) that hold
    one of ``points``: a lattice finer than the crystal's, which puts maxima of noise on its
    points too, leaves most of its points empty. The best score wins, the smaller cell among
    equals. Fewer than two non-collinear points: all are kept.
    """
    v = points - origin
    top = np.argsort(-heights, kind="stable")[:LATTICE_CANDIDATES]
    inside = np.argwhere(region) - origin  # pixels where a spot could be found, from the origin
    best, best_score, best_area, best_basis = None, -np.inf, np.inf, None
    for i, a in enumerate(top):
        for b in top[i + 1 :]:
            basis = np.column_stack([v[a], v[b]])
            area = abs(np.linalg.det(basis))
            if area < 0.1 * np.linalg.norm(v[a]) * np.linalg.norm(v[b]):
                continue  # (nearly) collinear
            hk = np.linalg.solve(basis, v.T).T
            on = np.linalg.norm((np.round(hk) - hk) @ basis.T, axis=1) <= tolerance
            nodes = np.unique(np.round(np.linalg.solve(basis, inside.T).T), axis=0)
            at = nodes[np.any(nodes != 0, axis=1)] @ basis.T  # lattice points near the region, from the origin
            pixel = np.round(at + origin).astype(int)
            ok = (pixel >= 0).all(1) & (pixel < region.shape).all(1)
            at = at[ok][region[tuple(pixel[ok].T)]]
            if len(at) == 0:
                continue
            filled = (np.linalg.norm(at[:, None] - v[None], axis=-1) <= tolerance).any(1).mean()
            score = float(heights[top][on[top]].sum()) * filled
            if score > best_score * (1 + 1e-9) or (score >= best_score * (1 - 1e-9) and area < best_area):
                best, best_score, best_area, best_basis = on, score, area, basis.T
    if best is None:
        return np.ones(len(points), dtype=bool), None
    hk = np.round(np.linalg.solve(best_basis.T, v[best].T).T)  # the indexed points' indices
    return best, np.linalg.lstsq(hk, v[best], rcond=None)[0]  # the basis fitted to every indexed point


def shortest_vector(basis: np.ndarray) -> float:
    """Length of the shortest non-zero vector of the lattice spanned by the rows of ``basis``
    ``(2, 2)`` (Lagrange-Gauss reduction)."""
    a, b = (np.asarray(v, dtype=np.float64) for v in basis)
    if a @ a > b @ b:
        a, b = b, a
    while True:
        b = b - np.round((a @ b) / (a @ a)) * a
        if b @ b >= a @ a:
            return float(np.sqrt(a @ a))
        a, b = b, a


class Spots(NamedTuple):
    """The diffraction spots of a pattern: pixel ``(x, y)`` of each, the lattice's shortest
    spacing (pixels; 0 where no lattice was found) and its rotational symmetry (degrees; 360 where
    none was found)."""

    centres: list[tuple[int, int]]
    spacing: float
    symmetry_deg: float = 360.0


def spot_centres(base: torch.Tensor, ring: torch.Tensor, centre: tuple[float, float], disk_radius: float, min_separation: float) -> Spots:
    """The diffraction spots of a base ``(1, 1, Q, Q)`` inside ``ring``.

    Spots are local maxima of the base less its :func:`radial_floor` (the direct beam's tail and
    the diffuse background, which fall steeply with the distance from ``centre``), smoothed by a
    disk of the probe's radius, at least half a probe radius inside ``ring`` (away from the direct
    beam's smoothed edge), at least ``min_separation`` pixels apart, on the lattice of the
    strongest of them (:func:`on_lattice`, within ``disk_radius`` of a lattice point): a maximum of
    noise, or of a disk's fringes, is no spot.
    """
    k = int(np.ceil(disk_radius))
    yy, xx = torch.meshgrid(torch.arange(-k, k + 1.0), torch.arange(-k, k + 1.0), indexing="ij")
    kernel = (torch.hypot(xx, yy) <= disk_radius).float()
    above = (base - radial_floor(base, centre, ring)) * ring
    smooth = F.conv2d(above, (kernel / kernel.sum())[None, None].to(base), padding=k)
    window = int(2 * (min_separation // 2) + 1)
    inner = -F.max_pool2d(-ring, 2 * (k // 2) + 1, stride=1, padding=k // 2) > 0  # ring eroded by ~r/2
    peaks = (smooth == F.max_pool2d(smooth, window, stride=1, padding=window // 2)) & inner & (smooth > 0)
    found = torch.nonzero(peaks[0, 0]).cpu()
    if found.numel() == 0:
        return Spots([], 0.0)
    heights = smooth[0, 0].cpu()[found[:, 0], found[:, 1]].float().numpy()
    on, basis = on_lattice(found.numpy().astype(np.float64), heights, np.asarray(centre), disk_radius, inner[0, 0].cpu().numpy())
    centres = [tuple(p) for p in found[torch.from_numpy(on)].tolist()]
    if basis is None:
        return Spots(centres, 0.0)
    return Spots(centres, shortest_vector(basis), lattice_symmetry_deg(basis.T))


def clear_of_direct_beam(spots: Spots, centre: tuple[float, float], disk_radius: float, reach: float) -> Spots:
    """The spots whose disks' inner edges lie at least ``reach`` pixels beyond the direct beam's
    edge (both disks of ``disk_radius`` pixels): the direct beam outshines a diffracted disk tens
    of times, and whatever spreads it (its tails, a blur of the pattern) pulls a disk it reaches."""
    kept = [p for p in spots.centres if math.hypot(p[0] - centre[0], p[1] - centre[1]) - 2 * disk_radius >= reach]
    return spots._replace(centres=kept)


def spot_mask(centres: list[tuple[int, int]], ring: torch.Tensor, radius: float) -> torch.Tensor:
    """1 within ``radius`` pixels of any of ``centres`` (:func:`spot_centres`' ``centres``) and inside ``ring``
    ``(1, 1, Q, Q)``, else 0; the ring itself where there is no spot."""
    if not centres:
        return ring
    size = ring.shape[-1]
    mask = torch.zeros_like(ring)
    for x, y in centres:
        mask = torch.maximum(mask, (radial_grid(size, (x, y)) <= radius).to(ring)[None, None])
    return mask * ring


def encoder_input(patterns: torch.Tensor, ring: torch.Tensor, centre: tuple[float, float], size: int) -> torch.Tensor:
    """The encoder's view of each pattern, ``(N, 1, size, size)``.

    The ring region with its azimuthal mean (at each integer radius from ``centre``) removed,
    so that what is left is the disks' angular modulation, not the radially symmetric direct-beam
    tail and background; average-pooled to ``size x size`` and scaled to unit variance.
    """
    q = patterns.shape[-1]
    r = radial_grid(q, centre).round().long().view(-1)
    onehot = F.one_hot(r, int(r.max()) + 1).to(patterns)
    onehot = onehot * ring.view(-1, 1)
    counts = onehot.sum(0).clamp_min(1.0)
    out = torch.empty(patterns.shape[0], 1, size, size, dtype=patterns.dtype, device=patterns.device)
    for i in range(0, patterns.shape[0], 256):
        x = patterns[i : i + 256].reshape(-1, q * q) * ring.view(1, -1)
        radial = (x @ onehot) / counts
        x = (x - radial @ onehot.T).view(-1, 1, q, q)
        pooled = F.adaptive_avg_pool2d(x, size)
        out[i : i + 256] = pooled / pooled.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    return out
