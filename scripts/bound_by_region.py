"""How much of the Cramér-Rao limit each part of the detector carries: the bound recomputed from
the pixels of one region only (the same Poisson model and derivatives as ``strainbench bound``).

    python scripts/bound_by_region.py --dataset results/quick_spots/datasets/s1_w0.25.h5 \
        --clean results/quick_spots/cache/clean_s1.h5

Regions, by the distance from the pattern's centre in probe radii ``r`` (the probe's radius at
half maximum) and pattern widths ``Q``: the whole detector; without the direct beam (beyond
``1.3 r``, CC-ST-AE's inner ring edge); CC-ST-AE's ring (``1.3 r`` to ``0.48 Q``); and the
detector beyond that ring; and the whole detector with every disk's intensity unknown as well (a
scale factor per disk, as a method that fits each spot's intensity from the same counts faces;
multislice datasets only). For each, the MAE an efficient unbiased estimator would reach
(``sqrt(2 / pi) sigma``, averaged over the crystal outside the reference region like the table's
MAE), x 1e-3, exx / eyy / exy. A method that uses only some of the detector cannot do better than
that region's bound.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from strainbench.bound import disk_shares, engine_from_clean, grain_jacobian, grain_parameters, poisson_crlb
from strainbench.crystal import get_crystal
from strainbench.io import DatasetReader
from strainbench.radial import radial_profile
from strainbench.simulate import read_clean

KEYS = ("exx", "eyy", "exy")
UNKNOWN = "whole detector, every disk's intensity unknown"


def regions(shape: tuple[int, int], probe: np.ndarray) -> dict[str, np.ndarray]:
    """The detector regions of the module docstring, boolean ``(Qx, Qy)`` each."""
    centre = np.array([shape[0] // 2, shape[1] // 2], dtype=np.float64)
    radii, profile = radial_profile(probe, centre)
    r = radii[profile >= 0.5 * profile.max()].max()
    xx, yy = np.indices(shape)
    rho = np.hypot(xx - centre[0], yy - centre[1])
    ring = (rho >= 1.3 * r) & (rho <= 0.48 * shape[0])
    return {
        "whole detector": np.ones(shape, dtype=bool),
        "without the direct beam (> 1.3 r)": rho >= 1.3 * r,
        "CC-ST-AE's ring (1.3 r to 0.48 Q)": ring,
        "beyond the ring (> 0.48 Q)": rho > 0.48 * shape[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--clean", required=True, help="the seed's noise-free cache (strainbench clean)")
    args = parser.parse_args(argv)
    clean = read_clean(args.clean)
    with DatasetReader(args.dataset) as ds:
        attrs, labels, reference = ds.attrs, ds.labels(), ds.reference_mask
    w, counts, width = float(attrs["noise_level"]), float(attrs["counts_per_probe"]), float(attrs["background_width"])
    poly, shape = clean.polycrystal, clean.patterns.shape[1:]
    kinematic = clean.attrs["engine"] == "kinematic"
    engine = engine_from_clean(clean, shape) if kinematic else None
    G0 = get_crystal(clean.attrs["crystal"]).reciprocal
    centre = np.array([shape[0] // 2, shape[1] // 2], dtype=np.float64)
    masks = regions(shape, clean.probe)
    grains = labels["grain"][~reference & (labels["grain"] >= 0)].astype(int)
    sigma = {name: np.zeros((poly.n_grains, len(KEYS))) for name in (*masks, *([] if kinematic else [UNKNOWN]))}
    for g in np.unique(grains):
        J = grain_jacobian(clean, g, engine)
        for name, mask in masks.items():
            # the pixels outside the region carry no information: their derivatives are zero
            sigma[name][g] = poisson_crlb(clean.patterns[g], J * mask, w, counts, width)[: len(KEYS)]
        if not kinematic:
            share, _ = disk_shares(clean.patterns[g], clean.probe, grain_parameters(clean, g), G0, float(clean.attrs["sampling_inv_angstrom"]), centre)
            scale = (share * clean.patterns[g].reshape(-1, 1)).T.reshape((-1,) + shape)  # d I / d (disk k's scale)
            scale = scale[scale.sum(axis=(1, 2)) > 1e-4]  # disks that hold any intensity (the rest leave F singular)
            scale -= clean.patterns[g] * scale.sum(axis=(1, 2), keepdims=True)  # patterns keep sum 1
            sigma[UNKNOWN][g] = poisson_crlb(clean.patterns[g], np.concatenate([J, scale]), w, counts, width)[: len(KEYS)]
    print(f"Cramér-Rao MAE x 1e-3 (exx / eyy / exy), noise level {w:.0%}, {len(grains)} positions")
    print()
    print("| region | share of pixels | exx / eyy / exy |")
    print("|---|---|---|")
    for name in sigma:
        mae = math.sqrt(2 / math.pi) * sigma[name][grains].mean(0)
        share = f"{masks[name].mean():.0%}" if name in masks else "100%"
        print(f"| {name} | {share} | {' / '.join(f'{1e3 * v:.3f}' for v in mae)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
