"""``ccstae fit --dataset d.h5 --out strain.h5 [--config c.yaml] [--device cpu|cuda]``."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import yaml

from strainbench.io import ContractError, write_strain

from . import __version__


def choose_device(requested: str | None) -> torch.device:
    """``cuda`` if available, else ``cpu``; an explicit request wins (and must be available)."""
    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("--device cuda requested but CUDA is not available")
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def run_fit(dataset: str, out: str, config: str | None, device: str | None, threads: int, progress: bool) -> None:
    from .data import load_patterns
    from .strain import strain_maps
    from .train import FitConfig, fit

    t0 = time.perf_counter()
    if threads > 0:
        torch.set_num_threads(threads)
    cfg = FitConfig.from_dict(yaml.safe_load(Path(config).read_text()) or {}) if config else FitConfig()
    dev = choose_device(device)
    data = load_patterns(dataset)
    checkpoint = Path(out).with_name(Path(out).name + ".ckpt")
    result = fit(data, cfg, dev, progress=progress, checkpoint=checkpoint)
    maps = strain_maps(result.A, data.scan_shape, data.reference_mask)
    wall = time.perf_counter() - t0
    write_strain(
        out, maps, method="ccstae", method_version=__version__, device=str(dev), wall_seconds=wall,
        params={**asdict(cfg), "probe_radius": data.probe_radius, "probe_centre": data.probe_centre},
        extra_attrs={
            "train_patterns_per_s": result.train_patterns_per_s,
            "inference_patterns_per_s": result.inference_patterns_per_s,
            "refine_patterns_per_s": result.refine_patterns_per_s,
            "base_frame_stretch": list(result.base_frame_stretch),
        },
    )
    checkpoint.unlink(missing_ok=True)
    print(
        f"ccstae: {data.patterns.shape[0]} patterns on {dev}, {result.parameters} parameters, training {result.train_patterns_per_s:.0f} patterns/s, "
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
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    p.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        run_fit(args.dataset, args.out, args.config, args.device, args.threads, not args.no_progress)
    except (ContractError, ValueError, FloatingPointError) as err:
        print(f"ccstae: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
