"""``ccstae fit --dataset d.h5 --out strain.h5 [--config c.yaml] [--device cpu|cuda]``.

On the CPU the fit runs the number of threads its settings name (``threads`` in
:class:`ccstae.train.FitConfig`, default 2), whatever the cores given: the result depends on the
settings and the dataset only, not on the machine's load or Snakemake's ``--cores``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import yaml

from strainbench.io import STRAIN_FORMAT, ContractError, check_output_path, write_strain

from . import __version__
from .train import FitConfig, fit


def choose_device(requested: str | None) -> torch.device:
    """``cuda`` if available, else ``cpu``; an explicit request wins (and must be available)."""
    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("--device cuda requested but CUDA is not available")
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def read_fit_config(path: str | None) -> FitConfig:
    """The fit's settings: the defaults, overridden by the YAML file ``path`` (ValueError naming it)."""
    if not path:
        return FitConfig()
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError("it must be a mapping of FitConfig fields to values")
        return FitConfig.from_dict(values)
    except (OSError, yaml.YAMLError, ValueError, TypeError) as err:
        raise ValueError(f"{path}: not a usable ccstae config: {err}") from None


def run_fit(dataset: str, out: str, config: str | None, device: str | None, progress: bool) -> None:
    from .checkpoint import checkpoint_path
    from .data import load_patterns
    from .strain import strain_maps

    t0 = time.perf_counter()
    check_output_path(out, inputs=[dataset] + ([config] if config else []), replaces=STRAIN_FORMAT)
    cfg = read_fit_config(config)
    dev = choose_device(device)
    data = load_patterns(dataset)
    checkpoint = checkpoint_path(out)
    result = fit(data, cfg, dev, progress=progress, checkpoint=checkpoint)
    maps = strain_maps(result.A, data.scan_shape, data.reference_mask, result.symmetry_deg)
    vacuum = ~result.crystal.reshape(data.scan_shape)
    for key in maps:
        maps[key][vacuum] = np.nan
    wall = time.perf_counter() - t0
    write_strain(
        out, maps, method="ccstae", method_version=__version__, device=str(dev), wall_seconds=wall,
        params={**asdict(cfg), "probe_radius": data.probe_radius, "probe_centre": data.probe_centre, "lattice_symmetry_deg": result.symmetry_deg},
        extra_attrs={
            "train_patterns_per_s": result.train_patterns_per_s,
            "inference_patterns_per_s": result.inference_patterns_per_s,
            "refine_patterns_per_s": result.refine_patterns_per_s,
            "base_frame_stretch": list(result.base_frame_stretch),
        },
    )
    checkpoint.unlink(missing_ok=True)
    print(
        f"ccstae: {data.patterns.shape[0]} patterns on {dev} ({int(vacuum.sum())} without crystal), {result.parameters} parameters, training {result.train_patterns_per_s:.0f} patterns/s, "
        f"inference {result.inference_patterns_per_s:.0f} patterns/s, refinement {result.refine_patterns_per_s:.0f} patterns/s, final loss {result.history[-1]['loss']:.4g}, total {wall:.1f} s; "
        f"the reference region against the learned base: principal stretches {result.base_frame_stretch[0]:.4f} / {result.base_frame_stretch[1]:.4f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccstae", description="CC-ST-AE strain mapping (data contract v1)")
    parser.add_argument("--version", action="version", version=f"ccstae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fit", help="train on a dataset and write its strain file")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--config", help="YAML of ccstae.train.FitConfig fields to override (default: its defaults)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        run_fit(args.dataset, args.out, args.config, args.device, not args.no_progress)
    except (ContractError, ValueError, FloatingPointError) as err:
        print(f"ccstae: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
