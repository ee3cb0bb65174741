"""How CC-ST-AE's vacuum rule sees a labelled dataset: the spot contrast's significance ``z`` of
every pattern at its fitted transform, split into crystal and vacuum by the labels.

    python scripts/vacuum_contrast.py results/quick_disks/datasets/s1_w0.70.h5

Fits the dataset with the default settings (as ``ccstae fit``), then prints, for the crystal and
for the vacuum positions, the quantiles of ``z`` and of the contrast relative to the reference
region's, and how many of each the rule (``ccstae.vacuum``) calls crystal.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ccstae import train, vacuum
from ccstae.data import load_patterns
from strainbench.io import DatasetReader


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    args = parser.parse_args(argv)
    seen = {}

    def recording(patterns, A, t, mask, margin, reference):
        contrast, z = vacuum.spot_contrast(patterns, A, t, mask, margin)
        seen["contrast"] = (contrast / contrast[reference].median()).cpu().numpy()
        seen["z"] = z.cpu().numpy()
        return vacuum.crystal_positions(patterns, A, t, mask, margin, reference)

    train.crystal_positions = recording
    cfg = train.FitConfig()
    result = train.fit(load_patterns(args.dataset), cfg, torch.device("cpu"), progress=False)
    with DatasetReader(args.dataset) as reader:
        grain = reader.labels()["grain"].ravel()
    quantiles = (0.0, 0.01, 0.05, 0.5, 0.95, 1.0)
    print(f"| positions | n | called crystal | z at quantiles {quantiles} | contrast / reference's at the same quantiles |")
    print("|---|---|---|---|---|")
    for name, where in (("crystal", grain >= 0), ("vacuum", grain < 0)):
        if where.any():
            zq = " / ".join(f"{v:.1f}" for v in np.quantile(seen["z"][where], quantiles))
            cq = " / ".join(f"{v:.3f}" for v in np.quantile(seen["contrast"][where], quantiles))
            print(f"| {name} | {where.sum()} | {result.crystal[where].mean():.1%} | {zq} | {cq} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
