"""``python -m baselines.py4dstem --dataset d.h5 --out strain.h5``: py4DSTEM strain mapping."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from strainbench.io import STRAIN_FORMAT, ContractError, DatasetReader, check_output_path, write_strain

from . import PIPELINE_VERSION
from .pipeline import derive_parameters, detect_disks, map_lattice, strain_maps


def run(dataset: str, out: str, workers: int = 0, progress: bool = True) -> dict[str, np.ndarray]:
    """Map strain in ``dataset`` and write the contract strain file ``out``; returns the maps."""
    import py4DSTEM

    t0 = time.perf_counter()
    check_output_path(out, inputs=[dataset], replaces=STRAIN_FORMAT)
    with DatasetReader(dataset) as reader:
        params = derive_parameters(reader)
        t_detect = time.perf_counter()
        bvs = detect_disks(reader, params, workers=workers, progress=progress)
        t_fit = time.perf_counter()
        mask = reader.reference_mask
        lattice = map_lattice(reader, bvs, params, progress=progress)
    maps = strain_maps(lattice.basis, mask, params.symmetry_deg)
    t_end = time.perf_counter()
    n = int(np.prod(mask.shape))
    speeds = {
        "detection_patterns_per_s": n / (t_fit - t_detect),
        "fitting_patterns_per_s": n / (t_end - t_fit),
        "fitted_fraction": float(np.isfinite(maps["exx"]).mean()),
    }
    write_strain(
        out,
        maps,
        method="py4dstem",
        method_version=f"{PIPELINE_VERSION} (py4DSTEM {py4DSTEM.__version__})",
        device="cpu",
        wall_seconds=t_end - t0,
        params=params.as_dict(),
        extra_attrs=speeds,
    )
    print(
        f"py4dstem: {n} patterns, disk detection {speeds['detection_patterns_per_s']:.0f} patterns/s "
        f"({workers or 'all'} workers), indexing and fitting {speeds['fitting_patterns_per_s']:.0f} patterns/s, "
        f"fitted {speeds['fitted_fraction']:.1%}, total {t_end - t0:.1f} s"
    )
    return maps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m baselines.py4dstem", description=__doc__)
    parser.add_argument("--dataset", required=True, help="contract dataset file (HDF5)")
    parser.add_argument("--out", required=True, help="strain file to write (HDF5)")
    parser.add_argument("--workers", type=int, default=0, help="processes for disk detection (0 = one per core)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        run(args.dataset, args.out, args.workers, progress=not args.no_progress)
    except (ContractError, ValueError) as err:
        print(f"py4dstem: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
