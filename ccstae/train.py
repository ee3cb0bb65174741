"""Training CC-ST-AE on one dataset, then reading each pattern's affine transform.

Two stages in one fit, with one configuration for every noise level:

1. **Rotation** (``rotation_epochs``): strain and shear held at zero, the ring mask (the direct
   beam and the outer boundary excluded); the rotation and translation are learned against the
   dictionary base, initialised as the mean pattern of the reference region and held fixed in
   this stage.
2. **Strain** (``strain_epochs``): every parameter free; the mask becomes one disk around each
   diffraction spot of the reference pattern (the base's start, :func:`ccstae.data.spot_centres`:
   maxima on one lattice, those within reach of the direct beam left out), its radius the probe's
   outer edge plus a margin that shrinks from ``spot_margin_start`` to ``spot_margin_end`` pixels
   over the stage (the disk with its edge blur, whatever the disk's size), so the model stops
   fitting background noise.

Loss: masked MSE of the input warped onto the base; masked MSE of the base warped back by the
inverse affine onto the input (the cycle term, over every pixel of the mask carried into the
input's frame); ``l1_weight`` x L1 of the bases; ``range_weight`` x relu(|strain| - 0.03) and
relu(|shear| - 0.03), and in the strain stage relu(|rotation - its rotation-stage value| -
``rotation_tolerance_deg``): rotation is found first, strain refined from it; a free rotation
could walk into a false basin the strain stage's spot masks allow (30 degrees off, where a
hexagonal lattice's third-order disks fall into its second-order masks).

Then, unless ``refine_iterations`` is 0, each pattern's transform is refined on its own against the
learned base and spot mask, in the base's frame (:mod:`ccstae.refine`, beyond the paper), and the
patterns that show no crystal at their transform are found (:mod:`ccstae.vacuum`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import __version__
from .affine import invert, rotation_angle, warp, wrap_angle
from .checkpoint import load_checkpoint, save_checkpoint
from .data import PatternSet, clear_of_direct_beam, encoder_input, gaussian_blur, ring_mask, spot_centres, spot_mask
from .model import CCSTAE, ENCODER_CHANNELS, AffineLimits, count_parameters
from .refine import base_frame, refine
from .strain import reference_affine
from .vacuum import crystal_positions


HALO_SIGMAS = 3.0  # a Gaussian blur's reach, in its widths: spots within it of the direct beam are left out


@dataclass(frozen=True)
class FitConfig:
    """Hyperparameters of a fit (one set for every dataset and noise level)."""

    encoder_size: int = 32  # pixels of the encoder's (pooled) input
    encoder_channels: tuple[int, ...] = ENCODER_CHANNELS  # per residual stage; each halves the size
    num_bases: int = 1
    batch_size: int = 32
    rotation_epochs: int = 2
    strain_epochs: int = 4
    learning_rate: float = 2e-3
    base_learning_rate: float = 1e-3
    ring_inner: float = 1.3  # probe radii
    ring_outer: float = 0.48  # fraction of the pattern width
    spot_margin_start: float = 4.0  # pixels beyond the probe's edge: the strain stage's spot masks, first epoch
    spot_margin_end: float = 1.0  # ... last epoch and the refinement
    rotation_blur: float = 0.5  # probe radii
    forward_weight: float = 1.0  # the cycle term's weight is 1
    l1_weight: float = 1e-4
    range_weight: float = 10.0
    rotation_tolerance_deg: float = 5.0  # strain stage: a rotation this far from the rotation stage's is penalised
    refine_iterations: int = 6  # per-pattern Gauss-Newton steps after training (0: the paper's method only)
    refine_highpass: float = 0.17  # lattice spacings: the refinement fits patterns and base less their blur of this width (0: off; ccstae.refine)
    refine_background: bool = False  # fit a diffuse radial background in the refinement (ccstae.refine)
    refine_gradients: bool = True  # fit a radial intensity gradient across each shell's disks (ccstae.refine)
    refine_strain_limit: float = 0.1  # a refined transform's largest principal strain relative to the base (ccstae.refine)
    refine_rebuild: bool = True  # a second refinement round against a base rebuilt from every pattern, sampled 2x finer (ccstae.refine)
    seed: int = 0
    threads: int = 2  # PyTorch's CPU threads: the order of its floating-point sums, so the result, depends on it

    def __post_init__(self):
        if self.refine_highpass < 0:
            raise ValueError(f"refine_highpass must be >= 0 lattice spacings (0: off), got {self.refine_highpass}")
        if self.refine_strain_limit <= 0:
            raise ValueError(f"refine_strain_limit must be > 0, got {self.refine_strain_limit}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")

    @classmethod
    def from_dict(cls, values: dict) -> "FitConfig":
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown ccstae config keys: {sorted(unknown)}")
        if "encoder_channels" in values:
            values = {**values, "encoder_channels": tuple(values["encoder_channels"])}
        return cls(**values)


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``sum(mask (a - b)^2) / sum(mask)`` per pattern."""
    num = (mask * (a - b) ** 2).sum(dim=(1, 2, 3))
    return (num / mask.sum(dim=(1, 2, 3)).clamp_min(1.0)).mean()


def loss_terms(model: CCSTAE, x: torch.Tensor, x_small: torch.Tensor, mask: torch.Tensor, cfg: FitConfig, freeze_strain: bool, fixed_base: torch.Tensor | None = None, anchor: torch.Tensor | None = None):
    """The training loss of a batch; ``fixed_base`` replaces the dictionary's base (rotation stage);
    ``anchor``: the batch's rotations (radians) from the rotation stage, which the range penalty
    keeps each rotation within ``rotation_tolerance_deg`` of (strain stage)."""
    A, t, base, params = model(x_small, freeze_strain=freeze_strain)
    if fixed_base is not None:
        base = fixed_base.expand_as(base)
    forward = masked_mse(warp(x, A, t), base, mask.expand_as(base))
    A_inv, t_inv = invert(A, t)
    mask_in = warp(mask.expand_as(base), A_inv, t_inv)
    cycle = masked_mse(warp(base, A_inv, t_inv), x, mask_in)
    l1 = model.bases().abs().mean()
    limit = torch.relu(params.abs() - 0.03).mean()
    if anchor is not None:
        drift = wrap_angle(rotation_angle(A) - anchor, 2 * math.pi)
        limit = limit + torch.relu(drift.abs() - math.radians(cfg.rotation_tolerance_deg)).mean()
    total = cfg.forward_weight * forward + cycle + cfg.l1_weight * l1 + cfg.range_weight * limit
    return total, {"forward": float(forward.detach()), "cycle": float(cycle.detach())}


def transforms(model: CCSTAE, small: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pattern's affine ``(A (N, 2, 2), t (N, 2))`` from the encoder's inputs ``small``, on the
    CPU; the model is left in eval mode."""
    model.eval()
    As, ts = [], []
    with torch.no_grad():
        for i in range(0, small.shape[0], batch_size):
            A, t, _, _ = model(small[i : i + batch_size])
            As.append(A.cpu())
            ts.append(t.cpu())
    return torch.cat(As), torch.cat(ts)


@dataclass
class FitResult:
    A: np.ndarray  # (N, 2, 2), contract (x, y) axes, normalised coordinates
    t: np.ndarray  # (N, 2)
    crystal: np.ndarray  # (N,) bool: the patterns that show the crystal (ccstae.vacuum); the rest are vacuum
    history: list[dict]
    train_patterns_per_s: float
    inference_patterns_per_s: float
    refine_patterns_per_s: float
    parameters: int
    base_frame_stretch: tuple[float, float]  # principal stretches of the reference region's median encoder transform
    symmetry_deg: float  # the reference lattice's rotational symmetry (360: none found); rotations differing by it are equivalent


def fit(data: PatternSet, cfg: FitConfig, device: torch.device, progress: bool = True, checkpoint: Path | None = None) -> FitResult:
    """Train on every pattern of ``data`` and return each pattern's affine transform.

    ``checkpoint``: a file saved after every epoch and resumed from if it belongs to this fit
    (:mod:`ccstae.checkpoint`). On the CPU, PyTorch runs ``cfg.threads`` threads.
    """
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    size = data.patterns.shape[-1]
    ring = ring_mask(size, data.probe_centre, cfg.ring_inner * data.probe_radius, cfg.ring_outer * size).to(device)
    patterns = data.patterns.to(device)
    # rotation stage: patterns and base blurred by half a probe radius (less noise, wider basins)
    blurred = gaussian_blur(patterns, cfg.rotation_blur * data.probe_radius)
    small = encoder_input(patterns, ring, data.probe_centre, cfg.encoder_size)
    ref_idx = torch.from_numpy(np.flatnonzero(data.reference_mask.ravel()))
    init_base = patterns[ref_idx.to(device)].mean(dim=0)[0].cpu()
    # the spots of the strain stage's masks and the refinement's, found once, in the reference
    # pattern (found again in the learned base at every epoch, a spot near the threshold came and
    # went), less those the refinement's high-pass spreads the direct beam over (HALO_SIGMAS of its
    # width)
    lattice = spot_centres(init_base[None, None], ring.cpu(), data.probe_centre, data.probe_radius, 2 * data.probe_radius)
    highpass_sigma = cfg.refine_highpass * lattice.spacing
    spots = clear_of_direct_beam(lattice, data.probe_centre, data.probe_radius, HALO_SIGMAS * highpass_sigma).centres
    blurred_base = blurred[ref_idx.to(device)].mean(dim=0, keepdim=True)
    model = CCSTAE(size, cfg.encoder_size, cfg.num_bases, AffineLimits(), init_base, cfg.encoder_channels).to(device)
    net_params = [p for n, p in model.named_parameters() if n != "base_logits"]
    opt = torch.optim.Adam([{"params": net_params, "lr": cfg.learning_rate}, {"params": [model.base_logits], "lr": cfg.base_learning_rate}])
    epochs = cfg.rotation_epochs + cfg.strain_epochs
    start_epoch, history, anchor = 0, [], None
    binding = {"dataset": data.fingerprint, "config": asdict(cfg), "device": device.type, "version": __version__}
    state = load_checkpoint(checkpoint, binding, device) if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        start_epoch, history, anchor = state["epoch"], state["history"], state["anchor"]
    n = patterns.shape[0]
    bar = tqdm(range(start_epoch, epochs), desc="ccstae fit", unit="epoch", disable=not progress, initial=start_epoch, total=epochs)
    t_train = 0.0
    for epoch in bar:
        rotation_stage = epoch < cfg.rotation_epochs
        if rotation_stage:
            mask = ring
        else:
            frac = (epoch - cfg.rotation_epochs) / max(cfg.strain_epochs - 1, 1)
            margin = cfg.spot_margin_start + frac * (cfg.spot_margin_end - cfg.spot_margin_start)
            mask = spot_mask(spots, ring, data.probe_edge + margin)
            if anchor is None and cfg.rotation_epochs > 0:  # the rotations the rotation stage found
                anchor = rotation_angle(transforms(model, small, 4 * cfg.batch_size)[0]).to(device)
        # the base stays the reference pattern while rotations are found: a base that learned from
        # still-unaligned patterns would blur into a ring and erase the rotation signal
        opt.param_groups[1]["lr"] = 0.0 if rotation_stage else cfg.base_learning_rate
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=gen).to(device)
        sums = {"loss": 0.0, "forward": 0.0, "cycle": 0.0}
        for i in range(0, n, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            if rotation_stage:
                loss, parts = loss_terms(model, blurred[idx], small[idx], mask, cfg, True, blurred_base)
            else:
                loss, parts = loss_terms(model, patterns[idx], small[idx], mask, cfg, False, anchor=None if anchor is None else anchor[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            w = idx.numel() / n
            sums["loss"] += float(loss.detach()) * w
            for k, v in parts.items():
                sums[k] += v * w
        if not math.isfinite(sums["loss"]):
            raise FloatingPointError(f"the training diverged: loss {sums['loss']} in epoch {epoch + 1} of {epochs} (non-finite patterns?)")
        dt = time.perf_counter() - t0
        t_train += dt
        history.append({"epoch": epoch, "stage": "rotation" if rotation_stage else "strain", **sums, "patterns_per_s": n / dt})
        bar.set_postfix(loss=f"{sums['loss']:.4g}", stage=history[-1]["stage"], pps=f"{n / dt:.0f}")
        if checkpoint is not None:
            save_checkpoint(
                checkpoint, binding,
                {"model": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(), "epoch": epoch + 1, "history": history, "anchor": anchor},
            )
    t0 = time.perf_counter()
    A, t = transforms(model, small, 4 * cfg.batch_size)
    t_infer = time.perf_counter() - t0
    # where the learned base's frame sits: the base starts as the reference region's mean pattern,
    # and its scale is free in training (a uniform strain of every pattern is matched by the base's);
    # at high noise it can drift by several percent (docs/ccstae.md, "the base's frame"); the
    # refinement gives the base's disks back the data's size with it (ccstae.refine.base_frame)
    A_ref = torch.from_numpy(reference_affine(A[ref_idx].double().numpy()))
    frame = torch.linalg.svdvals(A_ref).tolist()
    t0 = time.perf_counter()
    final_mask = spot_mask(spots, ring, data.probe_edge + cfg.spot_margin_end)
    if cfg.refine_iterations > 0:
        base = model.bases()[:1, None].detach()
        A, t = refine(patterns, A.to(device), t.to(device), base, final_mask, data.probe_centre, cfg.refine_iterations, progress=progress, background=cfg.refine_background, gradients=cfg.refine_gradients, strain_limit=cfg.refine_strain_limit, highpass_sigma=highpass_sigma, disk_radius=data.probe_radius, frame=base_frame(A_ref).float(), rebuild=cfg.refine_rebuild)
    t_refine = time.perf_counter() - t0
    crystal = crystal_positions(patterns, A.to(device), t.to(device), final_mask, data.probe_edge, ref_idx.to(device))
    trained = max(epochs - start_epoch, 1)
    return FitResult(
        A=A.cpu().double().numpy(),
        t=t.cpu().double().numpy(),
        crystal=crystal.cpu().numpy(),
        history=history,
        train_patterns_per_s=n * trained / t_train if t_train > 0 else math.nan,
        inference_patterns_per_s=n / t_infer,
        refine_patterns_per_s=n / t_refine if cfg.refine_iterations > 0 else math.nan,
        parameters=count_parameters(model),
        base_frame_stretch=(frame[0], frame[1]),
        symmetry_deg=lattice.symmetry_deg,
    )
