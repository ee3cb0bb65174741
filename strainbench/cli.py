"""Command line: ``strainbench clean|simulate|import|validate|evaluate|bound|table|failures|compare|figures|bias|benchmark|run-method``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .config import ConfigError, load_config
from .io import DATASET_FORMAT, ContractError, check_output_path


def _cmd_clean(args: argparse.Namespace) -> None:
    from .simulate import CLEAN_FORMAT, simulate_clean, write_clean

    check_output_path(args.out, inputs=[args.config], replaces=CLEAN_FORMAT)
    cfg = load_config(args.config)
    write_clean(args.out, simulate_clean(cfg, args.seed, progress=not args.no_progress))


def _cmd_import(args: argparse.Namespace) -> None:
    from .importer import import_dataset

    check_output_path(args.out, inputs=[p for p in (args.input, args.reference_mask, args.probe) if p], replaces=DATASET_FORMAT)
    summary = import_dataset(
        args.input, args.out, key=args.key, axes=args.axes, scan_shape=args.scan_shape, reference_region=args.reference_region,
        reference_mask=args.reference_mask, crop=args.crop, binning=args.bin, probe=args.probe, probe_region=args.probe_region,
    )
    print(json.dumps(summary, indent=2))


def _cmd_simulate(args: argparse.Namespace) -> None:
    from .simulate import CLEAN_FORMAT, read_clean, simulate_clean, write_clean, write_noisy_dataset

    check_output_path(args.out, inputs=[p for p in (args.config, args.clean) if p], replaces=DATASET_FORMAT)
    if args.clean is not None and not Path(args.clean).exists():
        check_output_path(args.clean, inputs=[args.config, args.out], replaces=CLEAN_FORMAT)
    cfg = load_config(args.config)
    if args.clean is not None and Path(args.clean).exists():
        clean = read_clean(args.clean)
        if int(clean.attrs["seed"]) != args.seed:
            raise SystemExit(f"error: {args.clean} holds seed {clean.attrs['seed']}, not --seed {args.seed}")
    else:
        clean = simulate_clean(cfg, args.seed, progress=not args.no_progress)
        if args.clean is not None:
            write_clean(args.clean, clean)
    write_noisy_dataset(args.out, clean, cfg, args.noise_level, threads=args.threads, progress=not args.no_progress)


def _cmd_validate(args: argparse.Namespace) -> None:
    from .io import read_strain, validate_dataset
    from .io.dataset import file_format
    from .io.strain import STRAIN_FORMAT

    for path in args.files:
        if file_format(path) == STRAIN_FORMAT:
            maps = read_strain(path)
            print(f"{path}: valid strain file, scan {maps.shape}, method {maps.attrs['method']}")
        else:
            info = validate_dataset(path)
            note = f"; {info.empty_patterns} pattern(s) are zero everywhere" if info.empty_patterns else ""
            print(f"{path}: valid dataset, scan {info.scan_shape}, patterns {info.pattern_shape}, labels: {info.has_labels}{note}")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from .io.atomic import atomic_path
    from .metrics import evaluate, grain_table

    if args.out:
        check_output_path(args.out, inputs=[args.dataset, args.strain])
    result = evaluate(args.dataset, args.strain)
    text = json.dumps(result, indent=2)
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(text + "\n")
    if args.per_grain:
        print(grain_table(result["grains"]))
    else:
        print(json.dumps({k: v for k, v in result.items() if k != "grains"}, indent=2))


def _cmd_bound(args: argparse.Namespace) -> None:
    from .bound import dataset_bound
    from .io.atomic import atomic_path

    check_output_path(args.out, inputs=[args.dataset, args.clean])
    text = json.dumps(dataset_bound(args.dataset, args.clean), indent=2)
    with atomic_path(args.out) as tmp:
        tmp.write_text(text + "\n")
    print(text)


def _cmd_table(args: argparse.Namespace) -> None:
    from .table import write_tables

    mae, _ = write_tables(args.metrics, args.out, args.paper, args.bounds)
    print(mae.to_string(index=False))


def _cmd_compare(args: argparse.Namespace) -> None:
    from .compare import agreement, write_agreement
    from .figures import plot_method_maps

    strains = dict(pair.split("=", 1) for pair in args.strains)
    result = agreement(args.dataset, strains)
    write_agreement(result, args.out)
    plot_method_maps(args.dataset, strains, args.figure)
    print(json.dumps(result, indent=2))


def _cmd_failures(args: argparse.Namespace) -> None:
    from .failures import write_failures

    check_output_path(args.out, inputs=[*args.metrics, *args.logs])
    print(f"{write_failures(args.metrics, args.logs, args.out)} failed cell(s)")


def _cmd_figures(args: argparse.Namespace) -> None:
    from .figures import plot_ground_truth, plot_patterns

    if args.kind == "patterns":
        plot_patterns(args.datasets, args.out)
    elif args.kind == "ground-truth":
        plot_ground_truth(args.datasets[0], args.out)
    elif args.kind == "mae-vs-noise":
        from .figures import plot_mae_vs_noise

        plot_mae_vs_noise(args.metrics, args.out, args.bounds)
    elif args.kind == "grain-errors":
        from .figures import plot_grain_errors

        plot_grain_errors(args.metrics, args.out)
    else:
        from .figures import plot_strain_maps

        if len(args.datasets or []) != 2:
            raise ValueError("strain-maps needs --datasets NOISE_FREE NOISY")
        strains = dict(item.split("=", 1) for item in args.strains or [])
        plot_strain_maps(args.datasets[0], args.datasets[1], strains, args.out, args.errors_out)


def _cmd_benchmark(args: argparse.Namespace) -> None:
    from .benchmark import run_benchmark
    from .provenance import machine

    configs = {Path(p).stem: load_config(p) for p in args.config}
    here = machine()
    print(f"machine: {here['cpu']}, {here['cores']} cores, {here['memory_gib']} GiB, GPU {here['gpu'] or 'none'}, Python {here['python']}")
    rows = run_benchmark(configs, tuple(args.scan), args.grains)
    print(f"{'config':<10} {'detector':<9} {'engine':<11} {'noisy pat/s':>12} {'noise-free pat/s':>17} {'engine s/grain':>15}")
    for r in rows:
        print(
            f"{r['config']:<10} {r['detector']:<9} {r['engine']:<11} {r['noisy_patterns_per_s']:>12.0f} "
            f"{r['noise_free_patterns_per_s']:>17.0f} {r['engine_s_per_grain']:>15.3f}"
        )


def _cmd_bias(args: argparse.Namespace) -> None:
    from .bias import measure_bias

    cfg = load_config(args.config)
    rows = measure_bias(cfg, args.seed, progress=not args.no_progress)
    print(f"{'specimen':<36} {'fit':<5} {'MAE exx':>9} {'MAE eyy':>9} {'MAE exy':>9}")
    for r in rows:
        print(f"{r['setting']:<36} {r['fit']:<5} {r['mae_exx']:>9.2e} {r['mae_eyy']:>9.2e} {r['mae_exy']:>9.2e}")


def _cmd_run_method(args: argparse.Namespace) -> int:
    from .methods import run_method

    return run_method(args.method, args.command_template, args.dataset, args.out, args.threads)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strainbench", description="4D-STEM strain-mapping benchmark: simulate, evaluate, tabulate.")
    parser.add_argument("--version", action="version", version=f"strainbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("clean", help="simulate the polycrystal and its noise-free per-grain patterns (the per-seed cache)")
    p.add_argument("--config", required=True, help="run config YAML (config/tiny.yaml, config/config.yaml, config/paper.yaml)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True, help="cache file (HDF5)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_clean)

    p = sub.add_parser("simulate", help="write one dataset (contract v1) at one noise level")
    p.add_argument("--config", required=True, help="run config YAML")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--noise-level", type=float, required=True, help="w in [0, 1]: expected fraction of background counts")
    p.add_argument("--out", required=True, help="dataset file (HDF5)")
    p.add_argument("--clean", help="per-seed cache of noise-free patterns: read if present, else written")
    p.add_argument("--threads", type=int, default=0, help="noise threads (0 = one per core)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("import", help="a user's 4D-STEM file as a contract dataset without labels")
    p.add_argument("input", help=".npy, HDF5 (.h5, .hdf5), py4DSTEM .emd, Merlin .mib, .blo or .hspy file")
    p.add_argument("--out", required=True, help="dataset file to write")
    p.add_argument("--key", help="HDF5: path of the 4D dataset (e.g. output4D); py4DSTEM/EMD files need none")
    p.add_argument("--axes", default="RxRyQxQy", help="the file's axis order (default RxRyQxQy)")
    p.add_argument("--scan-shape", help=".mib without its .hdr file: ROWSxCOLUMNS of the scan")
    p.add_argument("--reference-region", help="scan rectangle x0:x1,y0:y1 (end exclusive) of the unstrained reference")
    p.add_argument("--reference-mask", help="boolean .npy mask of the scan (instead of, or with, a rectangle)")
    p.add_argument("--crop", help="detector crop qx0:qx1,qy0:qy1, before binning")
    p.add_argument("--bin", type=int, default=1, help="detector binning factor (default 1)")
    p.add_argument("--probe", help=".npy vacuum probe of the final pattern shape")
    p.add_argument("--probe-region", help="scan rectangle x0:x1,y0:y1 over vacuum: its mean pattern is the probe")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("validate", help="check dataset or strain files against the contract")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("evaluate", help="MAE and coverage of a strain file against its dataset's labels")
    p.add_argument("--dataset", required=True)
    p.add_argument("--strain", required=True)
    p.add_argument("--out", help="metrics JSON (with the per-grain errors)")
    p.add_argument("--per-grain", action="store_true", help="print the per-grain errors as a table instead of the summary JSON")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("table", help="the results table (csv, md, tex) beside the paper's Figure 3 values")
    p.add_argument("--metrics", nargs="+", required=True, help="metrics JSON files from 'evaluate'")
    p.add_argument("--out", required=True, help="output prefix, e.g. results/quick/table")
    p.add_argument("--paper", help="paper table CSV (default: the packaged Figure 3 transcription)")
    p.add_argument("--bounds", nargs="*", default=[], help="bound JSON files from 'bound' (adds the limit column)")
    p.set_defaults(func=_cmd_table)

    p = sub.add_parser("compare", help="methods side by side on data without labels: maps, coverage, agreement")
    p.add_argument("--dataset", required=True)
    p.add_argument("--strains", nargs="+", required=True, help="METHOD=strain.h5 pairs")
    p.add_argument("--out", required=True, help="agreement table (.md; a .json beside it)")
    p.add_argument("--figure", required=True, help="maps figure; .png and .pdf are written")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("failures", help="an HTML page of every failed fit with its error and log (for the report)")
    p.add_argument("--metrics", nargs="+", required=True, help="metrics JSON files from 'evaluate'")
    p.add_argument("--logs", nargs="+", required=True, help="each metrics file's fit log, in the same order")
    p.add_argument("--out", required=True, help="HTML file")
    p.set_defaults(func=_cmd_failures)

    p = sub.add_parser("bound", help="Cramér-Rao lower bound of strain and rotation for a simulated dataset")
    p.add_argument("--dataset", required=True)
    p.add_argument("--clean", required=True, help="the seed's noise-free cache (from 'clean')")
    p.add_argument("--out", required=True, help="bound JSON")
    p.set_defaults(func=_cmd_bound)

    p = sub.add_parser("figures", help="patterns, ground truth, MAE vs noise (Fig. 3), per-grain errors, strain maps (Fig. 2)")
    p.add_argument("kind", choices=["patterns", "ground-truth", "mae-vs-noise", "grain-errors", "strain-maps"])
    p.add_argument("--datasets", nargs="+", help="dataset files (one per column for 'patterns')")
    p.add_argument("--metrics", nargs="+", help="metrics JSON files (for 'mae-vs-noise' and 'grain-errors')")
    p.add_argument("--bounds", nargs="*", default=[], help="bound JSON files (for 'mae-vs-noise': the limit curve)")
    p.add_argument("--strains", nargs="+", help="METHOD=strain.h5 pairs (for 'strain-maps')")
    p.add_argument("--errors-out", help="error-map figure path (for 'strain-maps')")
    p.add_argument("--out", required=True, help="output path; .png and .pdf are written")
    p.set_defaults(func=_cmd_figures)

    p = sub.add_parser("benchmark", help="simulator throughput on this machine")
    p.add_argument("--config", nargs="+", default=["config/config.yaml", "config/paper.yaml"])
    p.add_argument("--scan", type=int, nargs=2, default=[64, 64], help="scan shape for the noise-stage timing")
    p.add_argument("--grains", type=int, default=2, help="grains timed for the engine (0: skip)")
    p.set_defaults(func=_cmd_benchmark)

    p = sub.add_parser("run-method", help="run a method's command; record a failure as a NaN strain file")
    p.add_argument("--method", required=True, help="method name (from its method.yaml)")
    p.add_argument("--command-template", required=True, help="command with {dataset}, {strain}, {threads}")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_cmd_run_method)

    p = sub.add_parser("bias", help="multiple-scattering bias of noise-free patterns (reference disk fits vs labels)")
    p.add_argument("--config", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_bias)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (ContractError, ConfigError, ValueError, FileNotFoundError) as err:
        print(f"strainbench {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
