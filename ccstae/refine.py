"""Per-pattern refinement of the learned affine transforms (beyond the paper; ``refine_iterations``).

The encoder's transforms are an amortised guess: one network maps every pattern to its affine,
with the precision of a regression on a pooled image. The refinement keeps what the training
learned (the base, the spot mask, each pattern's transform as the starting point) and fits, for
each pattern on its own, the base's spots to the pattern by damped Gauss-Newton (Levenberg-
Marquardt with a fixed damping), minimising ``|mask (a * model - x)|^2``:

- **the spots move, they are not strained**: the affine ``(A, t)`` (the inverse of ``(B, s)``)
  carries each spot's disk centre ``c_k`` (:func:`disk_centres`) to ``p_k = A c_k + t``, and the
  spot's content comes along turned by the grain's rotation ``R`` (that of ``B``) but not
  stretched: a disk's radius is the convergence angle whatever the strain;
- **in the base's frame**: each spot is sampled at ``c_k + V R (p - p_k)``, ``V`` the left stretch
  of the map from the reference region's patterns into the base (:func:`base_frame`), so that the
  base's disks keep the data's size whatever scale the training gave the base;
- **one amplitude per spot** ``a_k``, solved in closed form at every step (the disks' intensities
  change with thickness and tilt, their positions carry the strain), and with ``gradients`` one
  radial intensity gradient per shell of spots (``1 + h u``, :func:`spot_ramps`, within
  ``RAMP_LIMIT``): the disks' dynamical contrast;
- **high-passed** patterns and base (``highpass_sigma``, a Gaussian blur of that width
  subtracted): whatever varies slowly under a spot (the noise background, diffuse scattering, the
  direct beam's tails) is taken out of both sides; optionally a fitted diffuse background instead
  (``background``, :func:`diffuse_background`);
- **two rounds** (``rebuild``): the second against a base rebuilt from every pattern warped by the
  first round's transforms (:func:`rebuilt_base`: the learned base keeps the noise of its start)
  and sampled on a grid twice as fine (:func:`upsample_spectrum`), from the encoder's start again;
- the Jacobian is the base's image gradient at the moved positions, turned back by ``V R``, times
  the spot centre's coordinates: the step is taken in ``(A, t)``, where the spots' positions are
  linear; the mask moves with the spots (sampled at every step, not differentiated).

Rotation guard: each pattern's rotation is also estimated by circular cross-correlation of its
azimuthal profile with the base's; where that start and the encoder's lie more than 2 degrees
apart (modulo the base's rotational symmetry, :func:`profile_symmetry`), or the encoder's start
left the strain bound, both are refined for ``TRIAL_ITERATIONS`` steps and, if they end in
different basins, the start whose mask holds the brighter pattern is kept. Strain guard: a start
or result whose principal strains relative to the base exceed ``strain_limit`` (a false basin, or
a pattern with too little signal) falls back to the encoder's transform.

Coordinates: normalised ``(x, y)`` = (row, column) as in :mod:`ccstae.affine`. What each part
buys, measured, is in ``docs/ccstae.md``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .affine import invert, normalised, rotation, rotation_angle, sample_at, sample_points, warp, wrap_angle
from .data import gaussian_blur, shells


def spot_labels(mask: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Integer image of the mask's connected spots (0 outside, 1..K inside) and K.

    Each spot's label reaches one pixel beyond the mask, so that every pixel the bilinearly
    warped mask touches carries its spot's label (and amplitude).
    """
    labels, count = ndi.label(mask[0, 0].cpu().numpy() > 0)
    labels = np.where(labels > 0, labels, ndi.grey_dilation(labels, size=3))
    return torch.from_numpy(labels).to(mask.device), int(count)


def spot_ramps(labels: torch.Tensor, count: int, centre: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each spot's radial ramp and shell.

    ``ramp (Q, Q)``: on the pixels of spot ``k`` (``labels == k``), the distance from the spot's
    centroid along the outward radial direction (from ``centre``), divided by the spot's largest
    such distance (so -1 at its inner edge, +1 at its outer edge); 0 elsewhere. ``shell (count + 1,)``:
    the index of the spot's shell, spots whose distances from ``centre`` lie within a spot radius
    (from the spots' mean area) of each other sharing one (label 0, outside every spot: -1).
    """
    lab = labels.cpu().numpy()
    disk_radius = float(np.sqrt((lab > 0).sum() / max(count, 1) / np.pi))
    xx, yy = np.indices(lab.shape)
    ramp = np.zeros(lab.shape, dtype=np.float32)
    distance = np.zeros(count)
    for k in range(1, count + 1):
        on = lab == k
        cx, cy = xx[on].mean(), yy[on].mean()
        u = np.array([cx - centre[0], cy - centre[1]])
        distance[k - 1] = np.linalg.norm(u)
        u = u / max(distance[k - 1], 1e-9)
        v = (xx[on] - cx) * u[0] + (yy[on] - cy) * u[1]
        ramp[on] = v / max(np.abs(v).max(), 1e-9)
    shell = np.concatenate([[-1], shells(distance, disk_radius)])
    return torch.from_numpy(ramp).to(labels.device), torch.from_numpy(shell).to(labels.device)


def disk_centres(base: torch.Tensor, labels: torch.Tensor, count: int, radius: float) -> torch.Tensor:
    """The centre (pixels, ``(count, 2)``, ``(x, y)``) of the disk in each spot ``1..count`` of
    ``labels`` ``(Q, Q)``, in the base ``(1, 1, Q, Q)``: the peak of the base's correlation with a
    flat disk of ``radius`` pixels (a half-pixel soft edge) within the spot, to a fraction of a
    pixel by a parabola through the peak and its neighbours along each axis.

    A disk's edge is a circle of the convergence angle whatever its contents, and the disk moves
    with its lattice point, so this is the point of the spot that the lattice's affine moves.
    Biases here scale the measured strain: centres found 1% too close to the pattern centre read
    every strain 1% too large."""
    q = labels.shape[-1]
    if count == 0:
        return torch.zeros(0, 2, device=base.device)
    k = int(math.ceil(radius + 1))
    offsets = torch.arange(-k, k + 1.0, device=base.device)
    disk = torch.sigmoid((radius - torch.hypot(offsets[:, None], offsets[None, :])) / 0.5)
    response = torch.nn.functional.conv2d(base, disk[None, None], padding=k)[0, 0]
    peaks = torch.where(labels[None] == torch.arange(1, count + 1, device=labels.device)[:, None, None], response, -math.inf)
    flat = peaks.reshape(count, -1).argmax(-1)
    x, y = (flat // q).clamp(1, q - 2), (flat % q).clamp(1, q - 2)

    def vertex(before: torch.Tensor, at: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        curvature = before - 2 * at + after
        return torch.where(curvature < 0, 0.5 * (before - after) / curvature.clamp_max(-1e-12), torch.zeros_like(at)).clamp(-0.5, 0.5)

    dx = vertex(response[x - 1, y], response[x, y], response[x + 1, y])
    dy = vertex(response[x, y - 1], response[x, y], response[x, y + 1])
    return torch.stack([x + dx, y + dy], -1)


def azimuthal_profiles(images: torch.Tensor, centre: tuple[float, float], radii: tuple[float, float], bins: int = 360) -> torch.Tensor:
    """Mean of ``images (B, 1, Q, Q)`` over radii ``radii`` (pixels) in ``bins`` angle bins, ``(B, bins)``.

    Angle ``phi`` counter-clockwise from +x on ``(x, y)``: the point ``centre + r (cos phi, sin phi)``.
    """
    q = images.shape[-1]
    phi = torch.arange(bins, device=images.device, dtype=torch.float32) * (2 * math.pi / bins)
    r = torch.linspace(radii[0], radii[1], 8, device=images.device)
    px = centre[0] + r[:, None] * torch.cos(phi)[None]
    py = centre[1] + r[:, None] * torch.sin(phi)[None]
    # grid_sample wants (column, row) in [-1, 1], pixel-centred
    grid = torch.stack([normalised(py, q), normalised(px, q)], -1)[None].expand(images.shape[0], -1, -1, -1)
    samples = torch.nn.functional.grid_sample(images, grid, mode="bilinear", align_corners=False)
    return samples.mean(dim=2)[:, 0]


def rotation_by_correlation(profiles: torch.Tensor, base_profile: torch.Tensor) -> torch.Tensor:
    """Angle (radians) by which each pattern is the base rotated counter-clockwise, by circular cross-correlation."""
    p = profiles - profiles.mean(-1, keepdim=True)
    b = base_profile - base_profile.mean()
    corr = torch.fft.irfft(torch.fft.rfft(p, dim=-1) * torch.conj(torch.fft.rfft(b)), n=p.shape[-1], dim=-1)
    return corr.argmax(dim=-1).float() * (2 * math.pi / p.shape[-1])


def profile_symmetry(profile: torch.Tensor, similarity: float = 0.9) -> float:
    """Smallest rotation (radians, at most pi) under which a ``(bins,)`` azimuthal profile's circular
    autocorrelation reaches ``similarity`` of its zero-shift value: the base's rotational symmetry."""
    p = profile - profile.mean()
    auto = torch.fft.irfft(torch.fft.rfft(p).abs() ** 2, n=p.shape[-1])
    bins = p.shape[-1]
    below = (auto[: bins // 2 + 1] < similarity * auto[0]).nonzero()
    if below.numel() == 0:
        return 2 * math.pi / bins  # a featureless profile
    for k in range(int(below[0]), bins // 2 + 1):  # past the central peak
        if auto[k] >= similarity * auto[0] and (k == bins // 2 or auto[k] >= auto[k + 1]):
            return k * 2 * math.pi / bins
    return math.pi


def grow(mask: torch.Tensor, margin: int) -> torch.Tensor:
    """1 on the pixels within ``margin`` pixels (Euclidean) of the non-zero pixels of ``mask``
    ``(1, 1, Q, Q)``, else 0; same shape."""
    offsets = torch.arange(-margin, margin + 1.0, device=mask.device)
    disk = (torch.hypot(offsets[:, None], offsets[None, :]) <= margin).to(mask.dtype)
    return (torch.nn.functional.conv2d((mask > 0).to(mask.dtype), disk[None, None], padding=margin) > 0.5).to(mask.dtype)


def near_spots(grown: torch.Tensor, B: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The :func:`grow`-n spot mask carried into each pattern's frame by ``(B, s)``,
    ``(n, 1, Q, Q)``: non-zero on and near the spots."""
    return warp(grown.expand(B.shape[0], -1, -1, -1), B, s)


def span_gaps(valid: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """``profile`` (per 1-pixel radial bin, bin ``k`` at radius ``k + 0.5``) with its bins where
    ``valid`` is False interpolated from the valid ones: as a power law of the radius (linear in
    log-log) where the valid values are all positive, as a diffuse background falling off from the
    centre is (a Lorentzian's tail goes as radius^-2), else linearly; constant beyond the ends."""
    r = np.arange(len(profile)) + 0.5
    known = profile[valid]
    if (known > 0).all():
        return np.exp(np.interp(np.log(r), np.log(r[valid]), np.log(known)))
    return np.interp(r, r[valid], known)


MIN_BACKGROUND_FRACTION = 0.05  # of a radial bin's pixels, away from the spots, for a background measurement there


def diffuse_background(
    patterns: torch.Tensor,
    B: torch.Tensor,
    s: torch.Tensor,
    mask: torch.Tensor,
    radius: torch.Tensor,
    margin: int = 3,
    batch_size: int = 256,
) -> torch.Tensor:
    """The shape of the diffuse background, an image ``(1, 1, Q, Q)`` that depends only on the
    distance ``radius`` (pixels, ``(Q, Q)``) to the pattern centre: per 1-pixel radial bin, the
    mean over every pattern of its pixels farther than ``margin`` pixels from the spot mask carried
    into its frame by ``(B, s)`` (inverse affines), across bins where such pixels cover less than
    ``MIN_BACKGROUND_FRACTION`` of the circle from the bins on either side (:func:`span_gaps`);
    linear in radius between bin centres. Zero everywhere if no bin has enough."""
    bins = radius.reshape(-1).floor().long()
    grown = grow(mask, margin)
    sums = torch.zeros(int(bins.max()) + 1, device=patterns.device, dtype=torch.float64)
    counts = torch.zeros_like(sums)
    for i in range(0, patterns.shape[0], batch_size):
        x = patterns[i : i + batch_size]
        n = x.shape[0]
        off = (near_spots(grown, B[i : i + batch_size], s[i : i + batch_size]) == 0).reshape(n, -1).double()
        sums.index_add_(0, bins, (off * x.reshape(n, -1).double()).sum(0))
        counts.index_add_(0, bins, off.sum(0))
    # a radius where the spots leave too little of the circle (none of it, where a ring of disks
    # touch) takes the profile from the nearest radii that have enough
    area = torch.bincount(bins, minlength=len(sums)).double() * patterns.shape[0]
    valid = counts >= MIN_BACKGROUND_FRACTION * area
    if not valid.any():
        return torch.zeros_like(radius)[None, None]
    profile = torch.from_numpy(span_gaps(valid.cpu().numpy(), (sums / counts.clamp_min(1)).cpu().numpy())).to(sums)
    at = (radius - 0.5).clamp(0, len(profile) - 1.001)  # bin k's mean sits at radius k + 0.5
    k0, frac = at.floor().long(), (at - at.floor()).double()
    return (profile[k0] * (1 - frac) + profile[k0 + 1] * frac).float()[None, None]


def highpass(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """``images (N, 1, Q, Q)`` less their Gaussian blur of ``sigma`` pixels (edges replicated); 0:
    unchanged."""
    return images - gaussian_blur(images, sigma) if sigma > 0 else images


def upsample_spectrum(image: torch.Tensor, factor: int) -> torch.Tensor:
    """``image (1, C, Q, Q)`` on a grid ``factor`` times finer, ``(1, C, factor Q, factor Q)``, by
    zero-padding its spectrum: exact for a band-limited periodic image. The grids share the
    normalised coordinates of ``grid_sample(align_corners=False)``: fine pixel ``j`` sits at coarse
    pixel ``j / factor + (1 / factor - 1) / 2``."""
    size = image.shape[-1]
    fine = factor * size
    spectrum = torch.fft.fftshift(torch.fft.fft2(image.double()), dim=(-2, -1))
    padded = torch.zeros(image.shape[:-2] + (fine, fine), dtype=spectrum.dtype, device=image.device)
    start = (fine - size) // 2
    padded[..., start : start + size, start : start + size] = spectrum
    frequency = torch.fft.fftshift(torch.fft.fftfreq(fine, device=image.device, dtype=torch.float64))  # cycles per fine pixel
    phase = torch.exp(2j * math.pi * frequency * (1 - factor) / 2)  # the half-pixel offset of the grids
    padded = padded * phase[:, None] * phase[None, :]
    return (torch.fft.ifft2(torch.fft.ifftshift(padded, dim=(-2, -1))).real * factor**2).to(image.dtype)


def base_frame(A_ref: torch.Tensor) -> torch.Tensor:
    """``V`` ``(2, 2)``: the left stretch of ``A_ref^-1`` (``A_ref^-1 = V R``), ``A_ref`` the reference
    region's affine against the base (:func:`ccstae.strain.reference_affine` of the encoder's
    transforms). A distance ``d`` in the reference region's patterns is ``V d`` in the base: the
    base's disks are ``V`` times the data's."""
    B = torch.linalg.inv(A_ref)
    w, v = torch.linalg.eigh(B @ B.T)
    return v @ torch.diag(w.sqrt()) @ v.T


def stretch_within(B: torch.Tensor, limit: float) -> torch.Tensor:
    """``(n,)`` True where both principal stretches of ``B`` ``(n, 2, 2)`` (its singular values)
    lie within ``1 +- limit``."""
    return ((torch.linalg.svdvals(B) - 1.0).abs() <= limit).all(-1)


class Support(NamedTuple):
    """A batch's output pixels near the warped mask: their normalised coordinates ``points``
    ``(n, M, 2)``, the patterns' values there ``data`` ``(n, M)`` and the diffuse background's
    shape there ``background`` ``(n, M)`` (None without a background term)."""

    points: torch.Tensor
    data: torch.Tensor
    background: torch.Tensor | None


MIN_AMPLITUDE = 0.1  # a spot's fitted amplitude is kept within [0.1, 10] times the base's
RAMP_LIMIT = 0.5  # a shell's fitted radial gradient, as a fraction of the spots' intensity at their edges
TRIAL_ITERATIONS = 3  # Gauss-Newton steps from each start point before the better one is kept
SETTLED_MARGIN = 1  # pixels around the warped mask evaluated after the trial steps (they move it by less)
REBUILT_UPSAMPLE = 2  # the rebuilt base's sampling grid, times finer than the patterns' (refine(..., rebuild=True))


class Refiner:
    """Damped Gauss-Newton refinement of ``(B, s)`` per pattern against a fixed base and spot mask,
    the base's spots moved rigidly to where the affine puts their disk centres (module docstring).

    Only the output pixels near the mask (where the start transform puts it, dilated by
    ``margin`` pixels; ``SETTLED_MARGIN`` once the trial steps have run) are evaluated: the mask
    covers a small part of the pattern.
    """

    def __init__(self, base: torch.Tensor, mask: torch.Tensor, background: torch.Tensor | None = None, centre: tuple[float, float] | None = None, damping: float = 0.1, margin: int = 3, disk_radius: float | None = None, frame: torch.Tensor | None = None, upsample: int = 1):
        """``background``: the diffuse background's shape in the patterns' frame ``(1, 1, Q, Q)``,
        fitted with one non-negative level per pattern; None: no background term. ``centre``: the
        pattern centre (pixels); with it, each shell of spots gets a radial intensity gradient
        across its disks (:func:`spot_ramps`); None: no gradient. ``disk_radius``: the disks'
        radius (pixels) for finding their centres in the base (:func:`disk_centres`); None: the
        radius of the mask's spots (from their mean area). ``frame``: the base's :func:`base_frame`
        ``V`` ``(2, 2)``, each spot sampled at ``c_k + V R (p - p_k)``; None: the identity.
        ``upsample``: the base is sampled bilinearly on a grid this many times finer, made by
        :func:`upsample_spectrum` (its gradient taken there, the mask and ramps interpolated
        bilinearly), so that the model's interpolation smooths it about equally at every sub-pixel
        phase; 1: the base's own grid."""
        self.base = base
        self.frame = torch.eye(2, device=base.device) if frame is None else frame.to(base.device, torch.float32)
        self.background = None if background is None else background.reshape(-1)
        self.mask = mask
        self.margin = margin
        self.damping = damping
        size = base.shape[-1]
        self.labels, self.spots = spot_labels(mask)
        if centre is None:
            ramp, self.shell, self.shells = None, None, 0
        else:
            ramp, self.shell = spot_ramps(self.labels, self.spots, centre)
            self.shells = int(self.shell.max()) + 1
        # the images sampled bilinearly at every step, as channels of one: base, mask, the base's
        # gradient along x and y (taken on the sampled grid), and (with gradients) the spots'
        # radial ramp; the mask and ramp interpolated onto a finer grid, the base from its spectrum
        sampled = upsample_spectrum(base, upsample) if upsample > 1 else base
        gx, gy = torch.gradient(sampled[0, 0])
        gradients = torch.stack([gx, gy])[None] * (sampled.shape[-1] / 2)  # per normalised unit
        weights = torch.cat([mask] + ([] if ramp is None else [ramp[None, None]]), 1)
        if upsample > 1:
            weights = F.interpolate(weights, scale_factor=upsample, mode="bilinear", align_corners=False)
        self.fields = torch.cat([sampled, weights[:, :1], gradients, weights[:, 1:]], 1)
        c = normalised(torch.arange(size, device=base.device, dtype=torch.float32), size)
        self.coordinates = torch.stack(torch.meshgrid(c, c, indexing="ij"), -1).reshape(-1, 2)
        # each spot's disk centre in the base (normalised (x, y); row 0: outside every spot)
        if disk_radius is None:
            disk_radius = math.sqrt(float((mask > 0).sum()) / max(self.spots, 1) / math.pi)
        self.centres = torch.cat([torch.zeros(1, 2, device=base.device), normalised(disk_centres(base, self.labels, self.spots, disk_radius), size)])

    def support(self, x: torch.Tensor, B: torch.Tensor, s: torch.Tensor, margin: int | None = None) -> Support:
        """The output pixels within ``margin`` pixels (default: the refiner's) of the mask warped by
        ``(B, s)``, with what the steps need there that does not change with the transform."""
        n = B.shape[0]
        near = near_spots(grow(self.mask, self.margin if margin is None else margin), B, s).reshape(n, -1)
        m = max(int((near > 0).sum(-1).max()), 1)
        pixels = near.topk(m, dim=-1).indices
        data = x.reshape(n, -1).gather(1, pixels)
        return Support(self.coordinates[pixels], data, None if self.background is None else self.background[pixels])

    def _model(self, support: Support, B: torch.Tensor, s: torch.Tensor, A: torch.Tensor, t: torch.Tensor, h: torch.Tensor):
        """At the support pixels of the transform ``(B, s)``, whose inverse is ``(A, t)``, each ``(n, M)``:
        the base (its spots moved rigidly), the base shaped by each shell's radial
        gradient ``h (n, shells)`` (the factor ``1 + h ramp``), that factor, the ramp and the shell
        (-1 outside the spots; both None without gradients), the per-spot amplitude, the mask
        weight, the data less the fitted background; the base's gradient turned into the pattern's
        frame ``(n, 2, M)``; and each pixel's spot label (0: none) ``(n, M)``."""
        points, xf, b = support
        n = xf.shape[0]
        spot = sample_points(self.labels.float()[None, None].expand(n, -1, -1, -1), B, s, points, mode="nearest")[:, 0].long()
        # each spot moved to where the affine puts its centre, turned with the grain, not strained:
        # q = c_k + V R (p - p_k), p_k = A c_k + t (A, t: the inverse of B, s), R: the rotation of B,
        # V: the base's frame (its disks V times the data's)
        turn = self.frame @ rotation(rotation_angle(B))
        at = (self.centres[None] @ A.transpose(1, 2) + t[:, None]).gather(1, spot[..., None].expand(-1, -1, 2))
        sampled = sample_at(self.fields.expand(n, -1, -1, -1), (points - at) @ turn.transpose(1, 2) + self.centres[spot])
        sampled[:, 1] = torch.where(spot == 0, torch.zeros_like(sampled[:, 1]), sampled[:, 1])  # no spot, no weight
        pred, weight, G = sampled[:, 0], sampled[:, 1], sampled[:, 2:4]
        if self.shell is None:
            ramp, shell, factor = None, None, torch.ones_like(pred)
        else:
            ramp = sampled[:, 4]
            shell = self.shell[spot]
            factor = 1 + torch.where(shell >= 0, h.gather(1, shell.clamp_min(0)) * ramp, torch.zeros_like(ramp))
        shaped = pred * factor
        k = self.spots + 1
        P = torch.zeros(n, k, device=xf.device).scatter_add_(1, spot, weight * shaped * shaped).clamp_min(1e-12)
        R = torch.zeros(n, k, device=xf.device).scatter_add_(1, spot, weight * shaped * xf)
        if b is None:
            level = torch.zeros_like(xf)
            a = R / P
        else:  # joint least squares: a_k per spot and one background scale c, a_k eliminated
            Q = torch.zeros(n, k, device=xf.device).scatter_add_(1, spot, weight * shaped * b)
            Q[:, 0], R[:, 0] = 0.0, 0.0  # label 0: outside every spot, no amplitude
            S = (weight * b * b).sum(-1) - (Q * Q / P).sum(-1)
            T = (weight * b * xf).sum(-1) - (Q * R / P).sum(-1)
            c = (T / S.clamp_min(1e-12)).clamp_min(0.0)
            a = (R - c[:, None] * Q) / P
            level = c[:, None] * b
        amplitude = a.clamp(MIN_AMPLITUDE, 1 / MIN_AMPLITUDE).gather(1, spot)
        amplitude = torch.where(spot == 0, torch.ones_like(amplitude), amplitude)
        return pred, shaped, factor, ramp, shell, amplitude, weight, xf - level, turn.transpose(1, 2) @ G, spot

    def mask_mean(self, x: torch.Tensor, B: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Mean of each pattern over the mask carried into its frame, ``(n,)``: high when the
        mask sits on the pattern's disks."""
        n = x.shape[0]
        weight = warp(self.mask.expand(n, -1, -1, -1), B, s)
        return (weight * x).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3)).clamp_min(1.0)

    def step(self, support: Support, B: torch.Tensor, s: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One damped Gauss-Newton step of ``(B, s, h)`` for every pattern of the batch, on its :meth:`support`."""
        # the step is taken in (A, t) = the inverse of (B, s), in which a spot's centre p_k = A c_k + t
        # is linear: d model / d A_ij = -G_i c_kj, d model / d t_i = -G_i (the spot centre's lever,
        # not the pixel's)
        A, t = invert(B, s)
        pred, shaped, factor, ramp, shell, amplitude, weight, xf, G, spot = self._model(support, B, s, A, t, h)
        centres = self.centres[spot]
        px, py = centres[..., 0], centres[..., 1]
        n = px.shape[0]
        # rows of the Jacobian times the square root of the mask weight: H = J W J^T = Jw Jw^T
        root = weight.sqrt()
        scale = -amplitude * factor * root
        gx, gy = G[:, 0] * scale, G[:, 1] * scale
        Jw = torch.empty(n, 6 + self.shells, px.shape[1], device=px.device)
        torch.mul(gx, px, out=Jw[:, 0])
        torch.mul(gx, py, out=Jw[:, 1])
        torch.mul(gy, px, out=Jw[:, 2])
        torch.mul(gy, py, out=Jw[:, 3])
        Jw[:, 4], Jw[:, 5] = gx, gy
        if ramp is not None:
            on = shell[:, None, :] == torch.arange(self.shells, device=px.device)[:, None]  # (n, shells, M); shell -1: none
            torch.mul((amplitude * pred * ramp * root)[:, None], on, out=Jw[:, 6:])
        rw = (amplitude * shaped - xf) * root
        H = Jw @ Jw.transpose(1, 2)
        g = (Jw @ rw.unsqueeze(-1)).squeeze(-1)
        H = H + self.damping * torch.diag_embed(torch.diagonal(H, dim1=1, dim2=2)) + 1e-9 * torch.eye(H.shape[-1], device=px.device)
        d = -torch.linalg.solve(H, g)
        return (*invert(A + d[:, :4].reshape(n, 2, 2), t + d[:, 4:6]), (h + d[:, 6:]).clamp(-RAMP_LIMIT, RAMP_LIMIT))

    def trial(self, x: torch.Tensor, B: torch.Tensor, s: torch.Tensor, iterations: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``iterations`` steps of ``(B, s)`` and of the shells' gradients (from zero) on the support of the start."""
        support = self.support(x, B, s)
        h = torch.zeros(x.shape[0], self.shells, device=x.device)
        for _ in range(iterations):
            B, s, h = self.step(support, B, s, h)
        return B, s, h


def apart(B1: torch.Tensor, B2: torch.Tensor, symmetry: float) -> torch.Tensor:
    """Rotation of ``B1`` less that of ``B2`` (radians, ``(n,)``), wrapped into +- half the base's
    rotational ``symmetry``."""
    return wrap_angle(rotation_angle(B1) - rotation_angle(B2), symmetry)


def rebuilt_base(patterns: torch.Tensor, A: torch.Tensor, t: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The mean of every pattern warped into the base's frame by its transform ``(A, t)``,
    ``(1, 1, Q, Q)``: a base from all ``N`` patterns, with ``1 / N`` of one pattern's noise
    variance (the learned base keeps more: it moves little from its start in a few epochs)."""
    total = torch.zeros_like(patterns[:1])
    for i in range(0, patterns.shape[0], batch_size):
        total += warp(patterns[i : i + batch_size], A[i : i + batch_size], t[i : i + batch_size]).sum(0, keepdim=True)
    return total / patterns.shape[0]


def refine(
    patterns: torch.Tensor,
    A: torch.Tensor,
    t: torch.Tensor,
    base: torch.Tensor,
    mask: torch.Tensor,
    centre: tuple[float, float],
    iterations: int,
    batch_size: int = 256,
    progress: bool = True,
    background: bool = False,
    strain_limit: float = 0.1,
    gradients: bool = True,
    highpass_sigma: float = 0.0,
    disk_radius: float | None = None,
    frame: torch.Tensor | None = None,
    rebuild: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Refined ``(A, t)`` for every pattern (``patterns (N, 1, Q, Q)``, ``A (N, 2, 2)``, ``t (N, 2)``).

    With ``background``, the :func:`diffuse_background` shape is taken out of the base and fitted,
    with a level of its own, into every pattern (see the module docstring). ``strain_limit``: the
    largest principal strain relative to the base that a start point or a result may have; one
    beyond it is a false basin (see the module docstring). ``highpass_sigma``
    (pixels): the patterns and the base are fitted less their Gaussian blur of this width
    (:func:`highpass`; 0: as they are). ``disk_radius`` (pixels, the probe's) and ``frame`` (the
    base's :func:`base_frame`; None: the identity): see :class:`Refiner`. With ``rebuild``, a
    second round follows, from the same start: the base rebuilt from every pattern by the first
    round's transforms (:func:`rebuilt_base`) and sampled on a grid twice as fine (the module
    docstring)."""
    rounds = 2 if rebuild else 1
    batches = range(0, patterns.shape[0], batch_size)
    bar = tqdm(total=2 * rounds * len(batches), desc="ccstae refine", unit="batch", disable=not progress)
    options = dict(batch_size=batch_size, bar=bar, background=background, strain_limit=strain_limit, gradients=gradients, highpass_sigma=highpass_sigma, disk_radius=disk_radius, frame=frame)
    A_out, t_out = _refine_round(patterns, A, t, base, mask, centre, iterations, upsample=1, **options)
    if rebuild:
        A_out, t_out = _refine_round(patterns, A, t, rebuilt_base(patterns, A_out, t_out, batch_size), mask, centre, iterations, upsample=REBUILT_UPSAMPLE, **options)
    bar.close()
    return A_out, t_out


def _refine_round(
    patterns: torch.Tensor,
    A: torch.Tensor,
    t: torch.Tensor,
    base: torch.Tensor,
    mask: torch.Tensor,
    centre: tuple[float, float],
    iterations: int,
    batch_size: int,
    bar: tqdm,
    background: bool,
    strain_limit: float,
    gradients: bool,
    highpass_sigma: float,
    disk_radius: float | None,
    frame: torch.Tensor | None,
    upsample: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One round of :func:`refine` from the start ``(A, t)`` against ``base`` sampled on a grid
    ``upsample`` times finer (:class:`Refiner`)."""
    size = base.shape[-1]
    xx, yy = torch.meshgrid(torch.arange(size, device=base.device), torch.arange(size, device=base.device), indexing="ij")
    radius = torch.hypot(xx - centre[0], yy - centre[1])
    spot_radius = radius[spot_labels(mask)[0] > 0]
    radii = (float(spot_radius.min()), float(spot_radius.max())) if spot_radius.numel() else (0.2 * size, 0.45 * size)
    B_start, s_start = invert(A, t)
    base = highpass(base, highpass_sigma)
    diffuse = highpass(diffuse_background(patterns, B_start, s_start, mask, radius, batch_size=batch_size), highpass_sigma) if background else None
    refiner = Refiner(base if diffuse is None else base - diffuse, mask, diffuse, centre if gradients else None, disk_radius=disk_radius, frame=frame, upsample=upsample)
    base_profile = azimuthal_profiles(refiner.base, centre, radii)[0]
    symmetry = profile_symmetry(base_profile)
    centre_n = torch.tensor([normalised(c, size) for c in centre], device=base.device).unsqueeze(-1)
    B_all, s_all = B_start.clone(), s_start.clone()
    h_all = torch.zeros(patterns.shape[0], refiner.shells, device=base.device)
    trial = min(TRIAL_ITERATIONS, iterations)
    batches = range(0, patterns.shape[0], batch_size)
    # pass 1: the trial steps from the encoder's start, and the rotation guard
    for i in batches:
        x = highpass(patterns[i : i + batch_size], highpass_sigma)
        B0, s0 = B_start[i : i + batch_size], s_start[i : i + batch_size]
        B, s, h = refiner.trial(x, B0, s0, trial)
        # rotation guard: a pure rotation by the correlation angle, tried where it starts in
        # another basin than the encoder's (more than 2 degrees apart modulo the base's symmetry)
        # or where the encoder's start left the strain bound; there the start whose mask holds
        # the brighter pattern wins if the two end in different basins
        angle = rotation_by_correlation(azimuthal_profiles(x, centre, radii), base_profile)
        B_alt = rotation(-angle)
        s_alt = (centre_n - B_alt @ centre_n).squeeze(-1)  # a rotation about the pattern centre
        sane = stretch_within(B, strain_limit)
        other = ((apart(B_alt, B0, symmetry).abs() > math.radians(2.0)) | ~sane).nonzero().squeeze(-1)
        if other.numel():
            Ba, sa, ha = refiner.trial(x[other], B_alt[other], s_alt[other], trial)
            brighter = refiner.mask_mean(x[other], Ba, sa) > refiner.mask_mean(x[other], B[other], s[other])
            other_basin = apart(Ba, B[other], symmetry).abs() > math.radians(2.0)
            better = stretch_within(Ba, strain_limit) & ((other_basin & brighter) | ~sane[other])
            chosen = other[better]
            B[chosen], s[chosen], h[chosen] = Ba[better], sa[better], ha[better]
        B_all[i : i + batch_size], s_all[i : i + batch_size], h_all[i : i + batch_size] = B, s, h
        bar.update()
    # the background measured again, away from the spots where pass 1 put them: a start in a
    # false basin (which the guard has now corrected) puts its disks into the background
    if diffuse is not None and iterations > trial:
        diffuse = highpass(diffuse_background(patterns, B_all, s_all, mask, radius, batch_size=batch_size), highpass_sigma)
        refiner = Refiner(base - diffuse, mask, diffuse, centre if gradients else None, disk_radius=disk_radius, frame=frame, upsample=upsample)
    # pass 2: the remaining steps, then the strain guard
    A_out, t_out = torch.empty_like(A), torch.empty_like(t)
    for i in batches:
        x = highpass(patterns[i : i + batch_size], highpass_sigma)
        B, s, h = B_all[i : i + batch_size], s_all[i : i + batch_size], h_all[i : i + batch_size]
        support = refiner.support(x, B, s, SETTLED_MARGIN)
        for _ in range(iterations - trial):
            B, s, h = refiner.step(support, B, s, h)
        kept = stretch_within(B, strain_limit)  # else back to the encoder's transform
        B = torch.where(kept[:, None, None], B, B_start[i : i + batch_size])
        s = torch.where(kept[:, None], s, s_start[i : i + batch_size])
        A_out[i : i + batch_size], t_out[i : i + batch_size] = invert(B, s)
        bar.update()
    return A_out, t_out
