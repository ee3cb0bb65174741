"""How the py4DSTEM baseline's vacuum rule sees a labelled dataset: at every position, the
detected diffracted peaks, how many indexed, and the chance of that many indexing by accident
(``baselines.py4dstem.pipeline.chance_of_lattice``), split into crystal and vacuum by the labels.

    python scripts/py4dstem_chance.py results/quick_disks_s2/datasets/s2_w0.70.h5
"""

from __future__ import annotations

import sys

import numpy as np

from baselines.py4dstem import pipeline as P
from strainbench.io import DatasetReader


def main(path: str) -> int:
    with DatasetReader(path) as reader:
        params = P.derive_parameters(reader)
        bvs = P.detect_disks(reader, params, workers=2, progress=False)
        grain = reader.labels()["grain"]
    P.calibrate_origin(bvs, params)
    B, counts = P.index_and_fit(bvs, params, P.orientation_map(bvs, params), progress=False)
    chance = P.chance_of_lattice(bvs, counts, params)
    detected = np.array([[int(P.diffracted(bvs.cal[rx, ry].qx, bvs.cal[rx, ry].qy, params).sum()) for ry in range(bvs.Rshape[1])] for rx in range(bvs.Rshape[0])])
    fitted = np.isfinite(B).all(axis=(2, 3))
    quantiles = (0, 0.05, 0.5, 0.95, 1)
    print(f"| positions | n | lattice fitted | accepted | log10 chance at {quantiles} | detected | indexed |")
    print("|---|---|---|---|---|---|---|")
    for name, where in (("crystal", grain >= 0), ("vacuum", grain < 0)):
        if where.any():
            logp = np.log10(np.maximum(chance[where & fitted], 1e-300)) if (where & fitted).any() else np.array([np.nan])
            q = lambda a: " / ".join(f"{v:.1f}" for v in np.quantile(a, quantiles))  # noqa: E731
            print(
                f"| {name} | {where.sum()} | {fitted[where].mean():.1%} | {(fitted & (chance <= P.MAX_CHANCE))[where].mean():.1%} | "
                f"{q(logp)} | {q(detected[where])} | {q(counts[where])} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
