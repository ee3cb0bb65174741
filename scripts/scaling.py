"""How each method's time and memory grow with the scan: wall time, patterns per second and peak
resident memory per method and dataset size, as a Markdown and a CSV table.

    python scripts/scaling.py --config config/paper.yaml --scans 64x64 128x128 256x256 \
        --methods py4dstem ccstae --out results/scaling

For each scan shape a dataset of the config (its detector, optics and engine; seed ``--seed``,
noise level ``--noise-level``) is simulated once into ``OUT/datasets/`` (``strainbench clean`` and
``strainbench simulate``; kept for the next call), then each method's command from its
``method.yaml`` runs on it. The peak memory is the largest sum of the resident set sizes of the
method's process and all its children (a process pool's workers included), sampled every
``--interval`` seconds: shared pages count once per process, so it is an upper bound. A method
that fails (killed for memory, for instance) gets its exit status in the table. Needs psutil (a
dependency of snakemake: the ``workflow`` extra).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import time
from pathlib import Path

import psutil
import yaml

from strainbench.io import DatasetReader
from strainbench.methods import discover_methods, render_command
from strainbench.provenance import machine

COLUMNS = ("method", "scan", "patterns", "pattern_px", "status", "wall_s", "patterns_per_s", "peak_rss_gib")


def scan_shape(text: str) -> tuple[int, int]:
    """``"256x256"`` -> ``(256, 256)``."""
    rows, cols = (int(v) for v in text.lower().split("x"))
    return rows, cols


def make_dataset(config: Path, scan: tuple[int, int], seed: int, noise_level: float, folder: Path) -> Path:
    """The config's dataset at ``scan`` (simulated once, then reused)."""
    name = f"{scan[0]}x{scan[1]}_s{seed}_w{noise_level:.2f}"
    out = folder / f"{name}.h5"
    if out.exists():
        return out
    folder.mkdir(parents=True, exist_ok=True)
    cfg = yaml.safe_load(config.read_text())
    cfg["scan"] = {**cfg.get("scan", {}), "shape": list(scan)}
    cfg_path = folder / f"{name}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    clean = folder / f"{name}_clean.h5"
    subprocess.run(["strainbench", "clean", "--config", str(cfg_path), "--seed", str(seed), "--out", str(clean), "--no-progress"], check=True)
    subprocess.run(
        ["strainbench", "simulate", "--config", str(cfg_path), "--seed", str(seed), "--noise-level", str(noise_level),
         "--clean", str(clean), "--out", str(out), "--no-progress"],
        check=True,
    )
    clean.unlink()
    return out


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of ``process`` and all its descendants now (0 for those gone)."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(command: str, log: Path, interval: float) -> tuple[int, float, int]:
    """Run ``command`` in a shell, its output to ``log``; ``(exit status, wall seconds, peak
    resident bytes of its process tree)``."""
    with open(log, "w") as out:
        t0 = time.perf_counter()
        child = subprocess.Popen(command, shell=True, stdout=out, stderr=subprocess.STDOUT)
        process = psutil.Process(child.pid)
        peak = 0
        while child.poll() is None:
            peak = max(peak, tree_rss(process))
            time.sleep(interval)
        wall = time.perf_counter() - t0
    return child.returncode, wall, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="simulation config (detector, optics, engine)")
    parser.add_argument("--scans", nargs="+", type=scan_shape, required=True, help="scan shapes, e.g. 64x64 256x256")
    parser.add_argument("--methods", nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--noise-level", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2, help="the methods' {threads}")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between memory samples")
    args = parser.parse_args(argv)
    methods = discover_methods(".")
    unknown = [m for m in args.methods if m not in methods]
    if unknown:
        parser.error(f"unknown methods {unknown}; known: {sorted(methods)}")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for scan in args.scans:
        dataset = make_dataset(args.config, scan, args.seed, args.noise_level, args.out / "datasets")
        with DatasetReader(dataset) as reader:
            n, px = scan[0] * scan[1], reader.pattern_shape[0]
        for name in args.methods:
            strain = args.out / "strain" / f"{name}_{dataset.stem}.h5"
            strain.parent.mkdir(exist_ok=True)
            strain.unlink(missing_ok=True)
            command = render_command(methods[name]["command"], str(dataset), str(strain), args.threads)
            status, wall, peak = measure(command, args.out / f"{name}_{dataset.stem}.log", args.interval)
            rows.append({
                "method": name, "scan": f"{scan[0]}x{scan[1]}", "patterns": n, "pattern_px": px,
                "status": "ok" if status == 0 else f"failed ({status})", "wall_s": round(wall, 1),
                "patterns_per_s": round(n / wall, 1) if status == 0 else "", "peak_rss_gib": round(peak / 2**30, 2),
            })
            print(rows[-1], flush=True)
    with open(args.out / "scaling.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r[c]) for c in COLUMNS) + " |" for r in rows]
    (args.out / "scaling.md").write_text("\n".join(lines) + "\n")
    (args.out / "machine.json").write_text(json.dumps(machine(), indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
