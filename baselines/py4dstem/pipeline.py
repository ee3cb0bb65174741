"""py4DSTEM correlation strain mapping of a polycrystal, the way an expert user would run it.

Steps (py4DSTEM 0.14 does the detection, the origin calibration, the indexing and the fitting):

1. **Parameters from the data** (:func:`derive_parameters`): the probe's radius and centre from the
   vacuum probe (``get_probe_size``); the lattice, its rotational symmetry and the shortest spacing
   ``|g1|`` from Bragg disks detected in the mean pattern of the reference region; the correlation
   kernel from the probe (``Probe.get_kernel``, sigmoid edge mode, radii ``(r, ro)``, the trench
   ending short of the neighbouring disks: :func:`trench_outer_radius`).
   Nothing is taken from the simulator's attributes; nothing depends on the noise level.
2. **Bragg disk detection** (:func:`detect_disks`): each pattern is conditioned first
   (:func:`condition_patterns`: the direct beam attenuated to a few times the strongest diffracted
   disk, over an unchanged background), then ``DataCube.find_Bragg_disks`` with
   template matching (a hybrid correlation, ``corrPower = 0.95``: :data:`CORR_POWER`) and
   ``multicorr`` subpixel refinement, thresholds relative
   to the strongest *diffracted* disk (``relativeToPeak = 1``: the direct beam holds ~95% of the
   counts), scan-row blocks in parallel processes (the cube is never held whole).
3. **Origin** (:func:`calibrate_origin`): ``measure_origin`` (the direct beam at each position)
   and a robust plane fit, ``fit_origin``.
4. **Indexing per orientation cluster** (:func:`index_and_fit`): a single basis cannot index a
   polycrystal, so each position's orientation modulo the lattice symmetry is measured from the
   angles of its first-order disks (an n-fold angular moment), positions are clustered into 1-degree
   orientation bins, and each cluster is indexed by py4DSTEM (``index_bragg_directions``,
   ``add_indices_to_braggvectors`` with the cluster's mask) against the reference lattice rotated to
   the cluster's orientation. ``fit_lattice_vectors_all_DPs`` then fits ``g1, g2`` at every position.
5. **Vacuum** (:func:`lattice_contrast`, :func:`shows_crystal`): each fitted lattice is checked
   against the pattern itself. The mean intensity within the probe radius of the fitted lattice's
   diffracted positions is compared with the mean over the rest of each position's neighbourhood;
   a position whose contrast is not significant (fewer than :data:`MIN_SIGNIFICANCE` standard
   errors) or is a small fraction of the reference region's (:data:`MIN_CONTRAST`) gets no
   lattice. In vacuum the detection, relative to the strongest peak there is, returns noise peaks,
   some of which index; the lattice through them holds no more intensity than its surroundings.
6. **Strain** (:func:`strain_maps`): ``F = (B B_ref^-1)^-T`` with ``B = [g1 g2]`` and ``B_ref`` the
   median over the reference region, decomposed by the contract's left polar decomposition.
   Positions where detection, indexing or fitting failed are NaN.
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import numba
import numpy as np

from strainbench.io import DatasetReader, deformation_from_reciprocal, lattice_symmetry_deg, reduced_basis, strain_from_deformation, wrap_angle_deg

warnings.filterwarnings("ignore", module="py4DSTEM")


@dataclass(frozen=True)
class Parameters:
    """Everything the pipeline uses, derived from the probe and the reference region by rule.

    Lengths are detector pixels; angles degrees.
    """

    probe_radius: float
    probe_centre: tuple[float, float]
    kernel_radii: tuple[float, float]
    g1_length: float
    symmetry_deg: float
    reference_basis: tuple[tuple[float, float], tuple[float, float]]
    min_peak_spacing: float
    edge_boundary: int
    subpixel: str
    min_relative_intensity: float
    corr_power: float
    sigma_cc: float
    upsample_factor: int
    max_num_peaks: int
    max_peak_spacing: float
    min_num_peaks: int
    orientation_bin_deg: float
    direct_beam_attenuation: float
    attenuation_radii: tuple[float, float]

    def detection_kwargs(self) -> dict:
        return detection_kwargs(self.min_peak_spacing, self.edge_boundary)

    def as_dict(self) -> dict:
        return asdict(self)


# Settings chosen once, for every dataset and noise level (documented in method.yaml).
MIN_RELATIVE_INTENSITY = 0.1  # of the strongest diffracted disk's correlation peak
# py4DSTEM's correlation power: 1 is the cross-correlation, 0 the phase correlation, between them
# the hybrid correlation. A slight whitening gives the higher spatial frequencies, the disks'
# edges, more weight (noise-free quick data, development seed: 1.05 / 0.97e-3 -> 0.73 / 0.64e-3
# in exx / eyy; 0.8 mislocated whole grains' disks). Used on the conditioned patterns only.
CORR_POWER = 0.95
SIGMA_CC = 2.0  # px, smoothing of the correlation map
UPSAMPLE = 16
SUBPIXEL = "multicorr"  # py4DSTEM's upsampled-DFT refinement
MAX_NUM_PEAKS = 70
MIN_NUM_PEAKS = 5  # indexed peaks (with the direct beam) for a lattice fit
INDEX_TOLERANCE = 0.2  # of |g1|: largest distance of a disk from its lattice point
ORIENTATION_BIN_DEG = 1.0
DIRECT_BEAM_HEADROOM = 3.0  # the attenuated direct beam's correlation peak, in strongest diffracted disks
BLOCKS_IN_FLIGHT_PER_WORKER = 2  # blocks of scan rows read ahead per worker process (memory bound)
# The vacuum rule (:func:`shows_crystal`). A pattern without a crystal gives a significance ``z``
# close to a standard normal draw: 4 standard errors are passed by about 3 in 100,000 such patterns.
MIN_SIGNIFICANCE = 4.0  # standard errors of the lattice contrast
MIN_CONTRAST = 0.05  # of the reference region's median lattice contrast (noise-free data)
CONTRAST_CHUNK = 256  # patterns read at once by lattice_contrast


def detection_kwargs(min_peak_spacing: float, edge_boundary: int) -> dict:
    """``find_Bragg_disks`` keywords: the fixed settings above, with the spacing and edge (px)."""
    return dict(
        corrPower=CORR_POWER,
        sigma_cc=SIGMA_CC,
        subpixel=SUBPIXEL,
        upsample_factor=UPSAMPLE,
        minRelativeIntensity=MIN_RELATIVE_INTENSITY,
        relativeToPeak=1,
        minPeakSpacing=min_peak_spacing,
        edgeBoundary=edge_boundary,
        maxNumPeaks=MAX_NUM_PEAKS,
    )


def _kernel(probe: np.ndarray, radii: tuple[float, float], centre: tuple[float, float]) -> np.ndarray:
    import py4DSTEM

    return py4DSTEM.Probe(data=probe).get_kernel(mode="sigmoid", origin=centre, radii=radii)


def trench_outer_radius(probe_radius: float, g1_length: float, sigma_cc: float) -> float:
    """Outer radius (px) of the kernel's subtracted trench: ``2 r``, or less where the trench would
    reach the nearest neighbouring disk.

    A disk's correlation peak is moved by whatever bright structure the trench overlaps. A
    first-order disk's nearest neighbour is the direct beam, 20 to 50 times brighter, so an overlap
    pulls every first-order peak outward (0.5 to 1.1 px measured on kinematic patterns with ``2 r``
    at ``|g1| = 2.9 r``). The trench therefore ends short of the neighbour's edge, at
    ``|g1| - r - sigma_cc`` (a margin of the correlation smoothing's width), and never beyond
    py4DSTEM's usual ``2 r``. The margin is a judgement checked on the development seed (quick
    seed 0, where outer radii of 1.5 to 1.8 r all beat 2 r at 0 to 50% noise), not a fitted
    constant.
    """
    return float(min(2.0 * probe_radius, g1_length - probe_radius - sigma_cc))


def condition_patterns(patterns: np.ndarray, params: "Parameters") -> np.ndarray:
    """Patterns ``(rows, Ry, Qx, Qy)`` with the direct beam attenuated, for detection.

    The direct beam of a thin crystal outshines its first-order disks hundreds of times, and
    the Fourier interpolation of ``multicorr`` carries part of its correlation peak into theirs
    (0.3-0.5 px along the detector axes, measured on kinematic tiny patterns). Each pattern's direct
    beam is found by py4DSTEM's ``get_origin`` and scaled by ``params.direct_beam_attenuation``
    above the pattern's own background ``b`` (the median of the annulus between the direct beam
    and the first-order disks): ``b + (I - b) w`` with ``w`` rising from the attenuation to 1 as
    a sine-squared ramp over ``params.attenuation_radii`` (px from the origin). The background is
    left as it is, so no ring appears for the detection to find (scaling the background with the
    beam made a ring of false disks at 70% noise). The attenuated beam keeps its shape and stays
    the strongest peak, so ``measure_origin`` still finds it.
    """
    import py4DSTEM
    from py4DSTEM.process.calibration import get_origin

    a = params.direct_beam_attenuation
    if a >= 1.0:
        return patterns
    qx0, qy0 = get_origin(py4DSTEM.DataCube(data=patterns), r=params.probe_radius)[:2]
    qx = np.arange(patterns.shape[2])[None, None, :, None]
    qy = np.arange(patterns.shape[3])[None, None, None, :]
    d = np.hypot(qx - qx0[..., None, None], qy - qy0[..., None, None])
    r_in, r_out = params.attenuation_radii
    ramp = np.sin(0.5 * np.pi * np.clip((d - r_in) / (r_out - r_in), 0.0, 1.0)) ** 2
    annulus = (d >= r_in) & (d <= r_out)
    background = np.nanmedian(np.where(annulus, patterns, np.nan), axis=(2, 3))[..., None, None]
    return (background + (patterns - background) * (a + (1.0 - a) * ramp)).astype(patterns.dtype)


def _find_disks_conditioned(patterns: np.ndarray, kernel: np.ndarray, params: "Parameters") -> list:
    """:func:`_find_disks` on :func:`condition_patterns`' output."""
    return _find_disks(condition_patterns(patterns, params), kernel, params.detection_kwargs())


def _find_disks(patterns: np.ndarray, kernel: np.ndarray, kwargs: dict) -> list:
    """py4DSTEM disk detection on a block ``(rows, Ry, Qx, Qy)``.

    Returns per-position peak arrays ``(n, 3)``: qx, qy (pixels) and correlation intensity.
    """
    import py4DSTEM

    dc = py4DSTEM.DataCube(data=patterns)
    bvs = dc.find_Bragg_disks(template=kernel, **kwargs)
    out = []
    for rx in range(patterns.shape[0]):
        row = []
        for ry in range(patterns.shape[1]):
            v = bvs.raw[rx, ry]
            row.append(np.stack([v.qx, v.qy, v.I], -1) if len(v.qx) else np.zeros((0, 3)))
        out.append(row)
    return out


def detection_correlation_heights(pattern: np.ndarray, kernel: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Heights of ``pattern``'s correlation peaks at ``positions`` ``(n, 2)`` (qx, qy in pixels),
    read in the detection's own correlation map: ``kernel`` with :data:`CORR_POWER` (py4DSTEM's
    ``get_cross_correlation``), smoothed by :data:`SIGMA_CC`; the largest value within one pixel of
    each position. Used to measure peaks found by another correlation in the units the detection
    thresholds and compares."""
    from py4DSTEM.process.utils.cross_correlate import get_cross_correlation
    from scipy.ndimage import gaussian_filter, maximum_filter

    cc = maximum_filter(gaussian_filter(get_cross_correlation(pattern, kernel, CORR_POWER), SIGMA_CC), size=3)
    ix = np.round(positions).astype(int)
    return cc[ix[:, 0], ix[:, 1]]


def _mean_pattern(reader: DatasetReader, mask: np.ndarray) -> np.ndarray:
    total = np.zeros(reader.pattern_shape)
    for r0, block in reader.iter_blocks(8):
        m = mask[r0 : r0 + block.shape[0]]
        total += block[m].sum(axis=0)
    return total / mask.sum()


def derive_parameters(reader: DatasetReader) -> Parameters:
    """Pipeline parameters from the probe and the reference region's mean pattern (by rule)."""
    from py4DSTEM.process.calibration import get_probe_size

    r, x0, y0 = get_probe_size(reader.probe)
    kernel = _kernel(reader.probe, (r, 2 * r), (x0, y0))  # for the mean pattern: g1 not known yet
    mean = _mean_pattern(reader, reader.reference_mask)
    # the mean pattern keeps its direct beam at full strength, which the hybrid correlation cannot
    # take (it found first-order disks 2.5 px off beside a raw beam, and on one quick dataset
    # missed some, making a wrong basis): it is searched with the plain cross-correlation
    mean_kwargs = dict(detection_kwargs(r, int(np.ceil(r))), corrPower=1.0)
    peaks = _find_disks(mean[None, None], kernel, mean_kwargs)[0][0]
    if peaks.shape[0] < 3:
        raise ValueError(f"only {peaks.shape[0]} disks found in the reference region's mean pattern")
    peaks = peaks[np.argsort(-peaks[:, 2])]
    origin = peaks[0, :2]
    vectors = peaks[:, :2] - origin
    vectors = vectors[np.linalg.norm(vectors, axis=1) > r / 2]
    basis = reduced_basis(vectors)
    g1 = float(np.linalg.norm(basis[:, 0]))
    gap = g1 - 2 * r  # between the direct beam's edge and the first-order disks' edges
    kernel_radii = (float(r), trench_outer_radius(r, g1, SIGMA_CC))
    # the direct beam (peaks[0]) and the diffracted disks measured in the detection's correlation
    heights = detection_correlation_heights(mean, _kernel(reader.probe, kernel_radii, (x0, y0)), peaks[:, :2])
    return Parameters(
        probe_radius=float(r),
        probe_centre=(float(x0), float(y0)),
        kernel_radii=kernel_radii,
        g1_length=g1,
        symmetry_deg=lattice_symmetry_deg(basis),
        reference_basis=tuple(map(tuple, basis.T.tolist())),
        min_peak_spacing=0.5 * g1,
        edge_boundary=int(np.ceil(r)),
        subpixel=SUBPIXEL,
        min_relative_intensity=MIN_RELATIVE_INTENSITY,
        corr_power=CORR_POWER,
        sigma_cc=SIGMA_CC,
        upsample_factor=UPSAMPLE,
        max_num_peaks=MAX_NUM_PEAKS,
        max_peak_spacing=INDEX_TOLERANCE * g1,
        min_num_peaks=MIN_NUM_PEAKS,
        orientation_bin_deg=ORIENTATION_BIN_DEG,
        # the direct beam's correlation peak brought down to DIRECT_BEAM_HEADROOM times the
        # strongest diffracted disk's, in the detection's correlation (it stays the strongest
        # peak, for measure_origin); none where the first-order disks touch the direct beam (no
        # annulus between them)
        direct_beam_attenuation=float(min(1.0, DIRECT_BEAM_HEADROOM * heights[1:].max() / heights[0])) if gap > 0 else 1.0,
        attenuation_radii=(float(r + gap / 3), float(r + 2 * gap / 3)),
    )


def detect_disks(reader: DatasetReader, params: Parameters, workers: int = 0, progress: bool = True):
    """py4DSTEM Bragg disk detection over the whole scan, in row blocks, in parallel processes.

    Returns a py4DSTEM ``BraggVectors`` with the raw (uncalibrated) vectors.
    """
    import py4DSTEM
    from tqdm.auto import tqdm

    kernel = _kernel(reader.probe, params.kernel_radii, params.probe_centre)
    bvs = py4DSTEM.BraggVectors(reader.scan_shape, reader.pattern_shape)
    workers = workers or os.cpu_count() or 1
    rows = max(1, min(8, reader.scan_shape[0] // (2 * workers) or 1))
    bar = tqdm(total=int(np.prod(reader.scan_shape)), desc="py4DSTEM disk detection", unit="DP", disable=not progress)

    def collect(r0: int, fut) -> None:
        for drx, row in enumerate(fut.result()):
            for ry, peaks in enumerate(row):
                if peaks.shape[0]:
                    bvs._v_uncal[r0 + drx, ry].add_data_by_field((peaks[:, 0], peaks[:, 1], peaks[:, 2]))
            bar.update(reader.scan_shape[1])

    # a bounded number of blocks in flight: the patterns read but not yet detected stay within
    # BLOCKS_IN_FLIGHT_PER_WORKER x workers blocks, whatever the scan's size
    with ProcessPoolExecutor(workers) as pool:
        in_flight: deque = deque()
        for r0, block in reader.iter_blocks(rows):
            in_flight.append((r0, pool.submit(_find_disks_conditioned, block, kernel, params)))
            if len(in_flight) >= BLOCKS_IN_FLIGHT_PER_WORKER * workers:
                collect(*in_flight.popleft())
        while in_flight:
            collect(*in_flight.popleft())
    bar.close()
    return bvs


def calibrate_origin(bvs, params: Parameters) -> None:
    """Origin at every position: the direct beam (``measure_origin``), then a robust plane fit."""
    bvs.measure_origin(center_guess=params.probe_centre, score_method="intensity weighted distance")
    qx0, qy0, _, _ = bvs.fit_origin(fitfunction="plane", robust=True, plot=False, returncalc=True)
    bvs.calibration.set_origin((qx0, qy0))
    bvs.setcal(center=True, ellipse=False, pixel=False, rotate=False)


def orientation_map(bvs, params: Parameters) -> np.ndarray:
    """Orientation of each position modulo the symmetry, degrees, from its first-order disks.

    ``phi = arg(sum_p I_p exp(i n theta_p)) / n`` over the disks at ``0.85..1.2 |g1|`` from the
    origin, ``n = 360 / symmetry``. NaN where a position has no such disk.
    """
    n = 360.0 / params.symmetry_deg
    Rx, Ry = bvs.Rshape
    phi = np.full((Rx, Ry), np.nan)
    for rx in range(Rx):
        for ry in range(Ry):
            v = bvs.cal[rx, ry]
            q = np.hypot(v.qx, v.qy)
            ring = (q > 0.85 * params.g1_length) & (q < 1.2 * params.g1_length)
            if ring.any():
                z = np.sum(v.I[ring] * np.exp(1j * n * np.arctan2(v.qy[ring], v.qx[ring])))
                phi[rx, ry] = np.degrees(np.angle(z)) / n % params.symmetry_deg
    return phi


def _lattice_points(basis: np.ndarray, reach: float) -> np.ndarray:
    n = int(np.ceil(reach / np.min(np.linalg.svd(basis, compute_uv=False)))) + 1
    h, k = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    hk = np.stack([h.ravel(), k.ravel()], -1)
    hk = hk[np.argsort(np.abs(hk).sum(axis=1), kind="stable")]  # origin first
    g = hk @ basis.T
    return g[np.linalg.norm(g, axis=1) <= reach]


def index_and_fit(bvs, params: Parameters, phi: np.ndarray) -> np.ndarray:
    """Index each orientation cluster with py4DSTEM and fit ``g1, g2`` at every position.

    Returns ``B`` ``(Rx, Ry, 2, 2)`` with columns ``g1, g2`` in pixels, NaN where it failed.
    """
    from emdfile import PointListArray
    from py4DSTEM.process.strain.latticevectors import (
        add_indices_to_braggvectors,
        fit_lattice_vectors_all_DPs,
        index_bragg_directions,
    )

    ref = np.array(params.reference_basis).T
    phi_ref = _basis_orientation(ref, params.symmetry_deg)
    reach = float(np.hypot(*bvs.Qshape))
    dtype = [("qx", float), ("qy", float), ("intensity", float), ("g1_ind", int), ("g2_ind", int)]
    indexed = PointListArray(dtype=dtype, shape=bvs.Rshape)
    bins = np.floor(phi / params.orientation_bin_deg)
    for b in np.unique(bins[np.isfinite(bins)]):
        mask = bins == b
        centre = (b + 0.5) * params.orientation_bin_deg
        t = np.radians(centre - phi_ref)
        basis = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) @ ref
        g = _lattice_points(basis, reach)
        _, _, lattice = index_bragg_directions(0.0, 0.0, g[:, 0], g[:, 1], basis[:, 0], basis[:, 1])
        cluster = add_indices_to_braggvectors(bvs, lattice, params.max_peak_spacing, mask=mask)
        for rx, ry in zip(*np.nonzero(mask)):
            pl = cluster.get_pointlist(rx, ry)
            if pl.length:
                indexed.get_pointlist(rx, ry).add_data_by_field(tuple(pl.data[k] for k, _ in dtype))
    fit = fit_lattice_vectors_all_DPs(indexed, 0.0, 0.0, params.min_num_peaks)
    s = {k: fit.get_slice(k).data for k in ("g1x", "g1y", "g2x", "g2y", "mask")}
    B = np.stack([np.stack([s["g1x"], s["g2x"]], -1), np.stack([s["g1y"], s["g2y"]], -1)], -2)
    B[s["mask"] == 0] = np.nan
    return B


@numba.njit(nogil=True)
def _lattice_sums(patterns: np.ndarray, origin: np.ndarray, B: np.ndarray, r: float, outer: float) -> np.ndarray:
    """Per pattern of ``patterns (n, Qx, Qy)``: ``[n_on, sum_on, n_off, sum_off, sum_off^2]`` over
    the pixels within ``r`` (``on``) and between ``r + 1`` and ``outer`` (``off``) of their nearest
    point of the lattice ``origin + B hk`` other than the origin (``origin (n, 2)``, ``B (n, 2, 2)``
    columns ``g1, g2``, pixels). For a reduced basis the nearest point within ``|g1| / 2`` is a
    corner of the lattice cell holding the pixel: the four corners are searched."""
    n, Qx, Qy = patterns.shape
    sums = np.zeros((n, 5))
    for m in range(n):
        b00, b01, b10, b11 = B[m, 0, 0], B[m, 0, 1], B[m, 1, 0], B[m, 1, 1]
        det = b00 * b11 - b01 * b10
        i00, i01, i10, i11 = b11 / det, -b01 / det, -b10 / det, b00 / det
        for i in range(Qx):
            px = i - origin[m, 0]
            for j in range(Qy):
                py = j - origin[m, 1]
                u = i00 * px + i01 * py
                v = i10 * px + i11 * py
                u0, v0 = np.floor(u), np.floor(v)
                best, bh, bk = np.inf, 0.0, 0.0
                for h in (u0, u0 + 1.0):
                    for k in (v0, v0 + 1.0):
                        dx = b00 * (u - h) + b01 * (v - k)
                        dy = b10 * (u - h) + b11 * (v - k)
                        if dx * dx + dy * dy < best:
                            best, bh, bk = dx * dx + dy * dy, h, k
                if bh == 0.0 and bk == 0.0:
                    continue  # the direct beam
                d = np.sqrt(best)
                x = patterns[m, i, j]
                if d <= r:
                    sums[m, 0] += 1.0
                    sums[m, 1] += x
                elif r + 1.0 < d <= outer:
                    sums[m, 2] += 1.0
                    sums[m, 3] += x
                    sums[m, 4] += x * x
    return sums


def lattice_contrast(reader: DatasetReader, B: np.ndarray, origin: np.ndarray, params: Parameters, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Contrast of each position's fitted lattice in its own pattern, and its significance.

    ``on`` are the pixels within the probe radius ``r`` of the lattice points ``origin + B hk``
    other than the direct beam; ``off`` those between ``r + 1`` and ``min(2 r, |g1| / 2)`` of them
    (the neighbourhood, short of the next disk). The contrast is ``mean(on) - mean(off)``, in
    counts; its significance ``z`` is the contrast over its standard error under the hypothesis of
    no lattice, ``std(off) sqrt(1 / n_on + 1 / n_off)``. ``B (Rx, Ry, 2, 2)`` in pixels (NaN where
    no lattice was fitted: NaN out), ``origin (Rx, Ry, 2)`` in pixels. Where the disks leave no
    neighbourhood (``|g1| < 2 r + 2``) the test cannot be made and both are ``inf``. The cube is read in row
    blocks of about :data:`CONTRAST_CHUNK` patterns.
    """
    from tqdm.auto import tqdm

    r = params.probe_radius
    outer = min(2.0 * r, 0.5 * params.g1_length)
    Ry = reader.scan_shape[1]
    fitted = np.isfinite(B).all(axis=(2, 3))
    sums = np.zeros(reader.scan_shape + (5,))
    bar = tqdm(total=fitted.size, desc="py4DSTEM lattice contrast", unit="DP", disable=not progress)
    for r0, block in reader.iter_blocks(max(1, CONTRAST_CHUNK // Ry)):
        rows = slice(r0, r0 + block.shape[0])
        ok = fitted[rows]
        if ok.any():
            sums[rows][ok] = _lattice_sums(block[ok], origin[rows][ok], B[rows][ok], r, outer)
        bar.update(block.shape[0] * Ry)
    n_on, sum_on, n_off, sum_off, sumsq_off = np.moveaxis(sums, -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_on, mean_off = sum_on / n_on, sum_off / n_off
        spread = np.sqrt(np.maximum(sumsq_off / n_off - mean_off**2, 0.0) * n_off / (n_off - 1))
        contrast = mean_on - mean_off
        z = contrast / (np.maximum(spread, 1e-12) * np.sqrt(1 / n_on + 1 / n_off))
    untestable = fitted & ((n_off < 2) | (n_on < 1))  # disks that touch leave no neighbourhood: accepted
    contrast[untestable] = z[untestable] = np.inf
    contrast[~fitted] = z[~fitted] = np.nan
    bar.close()
    return contrast, z


def shows_crystal(contrast: np.ndarray, z: np.ndarray, reference_mask: np.ndarray) -> np.ndarray:
    """``(Rx, Ry)`` bool: the positions whose fitted lattice shows in the pattern: significance
    at least :data:`MIN_SIGNIFICANCE` (noisy data) and contrast at least :data:`MIN_CONTRAST` of
    the reference region's median (noise-free data, where any structure is significant)."""
    typical = np.nanmedian(contrast[reference_mask & np.isfinite(contrast)])
    with np.errstate(invalid="ignore"):
        return (z >= MIN_SIGNIFICANCE) & (contrast >= MIN_CONTRAST * typical)


@dataclass(frozen=True)
class LatticeMap:
    """The fitted lattice at every position and the test of whether it shows in the pattern.

    ``basis (Rx, Ry, 2, 2)``: columns ``g1, g2`` in pixels, NaN where no lattice was fitted or where
    it does not show (``crystal`` false); ``contrast`` (counts) and
    ``significance`` (standard errors) of :func:`lattice_contrast`; ``crystal`` of
    :func:`shows_crystal`.
    """

    basis: np.ndarray
    contrast: np.ndarray
    significance: np.ndarray
    crystal: np.ndarray


def map_lattice(reader: DatasetReader, bvs, params: Parameters, progress: bool = True) -> LatticeMap:
    """Steps 3 to 5 on detected disks ``bvs`` (of :func:`detect_disks`): origin, indexing and lattice
    fit, and the vacuum rule, which reads the cube of ``reader`` once more."""
    calibrate_origin(bvs, params)
    B = index_and_fit(bvs, params, orientation_map(bvs, params))
    origin = np.stack(bvs.calibration.get_origin(), -1)
    contrast, z = lattice_contrast(reader, B, origin, params, progress=progress)
    crystal = shows_crystal(contrast, z, reader.reference_mask)
    B[~crystal] = np.nan
    return LatticeMap(basis=B, contrast=contrast, significance=z, crystal=crystal)


def _basis_orientation(basis: np.ndarray, symmetry_deg: float) -> float:
    """Orientation of a basis by the same n-fold moment as :func:`orientation_map`."""
    n = 360.0 / symmetry_deg
    ring = _lattice_points(basis, 1.01 * np.linalg.norm(basis[:, 0]))[1:]
    z = np.sum(np.exp(1j * n * np.arctan2(ring[:, 1], ring[:, 0])))
    return float(np.degrees(np.angle(z)) / n % symmetry_deg)


def strain_maps(B: np.ndarray, reference_mask: np.ndarray, symmetry_deg: float = 360.0) -> dict[str, np.ndarray]:
    """Contract strain maps from fitted bases, relative to the median basis of the reference;
    ``theta`` (degrees) in ``[-symmetry_deg / 2, symmetry_deg / 2)``, the symmetry-equivalent
    rotation nearest the reference region's."""
    B_ref = np.nanmedian(B[reference_mask], axis=0)
    if not np.all(np.isfinite(B_ref)):
        raise ValueError("no lattice could be fitted in the reference region")
    F = deformation_from_reciprocal(B @ np.linalg.inv(B_ref))
    exx, eyy, exy, theta = strain_from_deformation(F)
    return {"exx": exx, "eyy": eyy, "exy": exy, "theta": wrap_angle_deg(theta, symmetry_deg)}
