"""How the py4DSTEM baseline's vacuum rule sees a labelled dataset: at every position with a
fitted lattice, the lattice contrast's significance ``z`` and its contrast relative to the
reference region's (``baselines.py4dstem.pipeline.lattice_contrast``), split into crystal and
vacuum by the labels, and how many of each the rule (``shows_crystal``) keeps.

    python scripts/py4dstem_vacuum.py results/quick_spots/datasets/s1_w0.70.h5
"""

from __future__ import annotations

import argparse

import numpy as np

from baselines.py4dstem import pipeline as P
from strainbench.io import DatasetReader

QUANTILES = (0.0, 0.01, 0.05, 0.5, 0.95, 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--workers", type=int, default=0, help="processes for disk detection (0 = one per core)")
    args = parser.parse_args(argv)
    with DatasetReader(args.dataset) as reader:
        params = P.derive_parameters(reader)
        bvs = P.detect_disks(reader, params, workers=args.workers, progress=False)
        lattice = P.map_lattice(reader, bvs, params, progress=False)
        grain = reader.labels()["grain"]
        reference = reader.reference_mask
    fitted = np.isfinite(lattice.significance)
    relative = lattice.contrast / np.nanmedian(lattice.contrast[reference])
    print(f"| positions | n | lattice fitted | kept | z at quantiles {QUANTILES} | contrast / reference's at the same quantiles |")
    print("|---|---|---|---|---|---|")
    for name, where in (("crystal", grain >= 0), ("vacuum", grain < 0)):
        if not where.any():
            continue
        tested = where & fitted
        zq = " / ".join(f"{v:.1f}" for v in np.quantile(lattice.significance[tested], QUANTILES)) if tested.any() else "-"
        cq = " / ".join(f"{v:.3f}" for v in np.quantile(relative[tested], QUANTILES)) if tested.any() else "-"
        print(f"| {name} | {where.sum()} | {fitted[where].mean():.1%} | {lattice.crystal[where].mean():.1%} | {zq} | {cq} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
