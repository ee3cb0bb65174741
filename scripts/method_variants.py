"""MAE of a method's defaults against variants of its settings, on datasets you name.

    python scripts/method_variants.py --method ccstae --datasets d0.h5 d25.h5 \
        --variant default --variant "refine_gradients=false" --variant "refine_highpass=0.05"

Each variant is ``default`` or ``key=value[,key=value...]`` (CC-ST-AE: fields of
``ccstae.train.FitConfig``, given to ``ccstae fit --config``; py4DSTEM: module constants of
``baselines.py4dstem.pipeline``, set before the run). Every dataset is fitted once per variant, the
strain file evaluated against its labels (and the Cramér-Rao bound, with ``--clean``), and one
Markdown table printed: MAE x 1e-3 of exx / eyy / exy, rotation MAE in degrees, coverage, and the
share of vacuum positions answered. Evidence for ``docs/ccstae.md`` and ``docs/py4dstem.md``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from strainbench.bound import dataset_bound
from strainbench.metrics import evaluate


def parse_variant(text: str) -> dict:
    """``"a=1,b=false"`` -> ``{"a": 1, "b": False}`` (values read as YAML); ``default`` -> ``{}``."""
    if text == "default":
        return {}
    pairs = [item.split("=", 1) for item in text.split(",")]
    return {key.strip(): yaml.safe_load(value) for key, value in pairs}


def run_variant(method: str, dataset: Path, settings: dict, out: Path) -> None:
    """Fit ``dataset`` with ``method`` and ``settings`` into the strain file ``out``."""
    if method == "ccstae":
        config = out.with_suffix(".yaml")
        config.write_text(yaml.safe_dump(settings))
        cmd = ["ccstae", "fit", "--dataset", str(dataset), "--out", str(out), "--config", str(config), "--no-progress"]
    else:
        # each constant is set in the pipeline module and wherever the entry point imported it
        code = (
            "import sys, yaml; from baselines.py4dstem import pipeline as P, __main__ as M\n"
            f"for k, v in yaml.safe_load({yaml.safe_dump(settings)!r}).items():\n"
            "    setattr(P, k, v)\n"
            "    if hasattr(M, k): setattr(M, k, v)\n"
            "sys.exit(M.main(sys.argv[1:]))"
        )
        cmd = [sys.executable, "-c", code, "--dataset", str(dataset), "--out", str(out), "--no-progress"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=["ccstae", "py4dstem"], required=True)
    parser.add_argument("--datasets", nargs="+", required=True, help="contract datasets with labels")
    parser.add_argument("--clean", help="the datasets' noise-free cache (strainbench clean): adds the bound")
    parser.add_argument("--variant", action="append", required=True, help="default, or key=value[,key=value]")
    args = parser.parse_args(argv)
    bounds = {d: dataset_bound(d, args.clean) if args.clean else None for d in args.datasets}
    print("| dataset | variant | exx / eyy / exy (x 1e-3) | MAE / limit | rotation (deg) | coverage | vacuum answered |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        for dataset in args.datasets:
            bound = bounds[dataset]
            for i, variant in enumerate(args.variant):
                out = Path(work) / f"v{i}_{Path(dataset).stem}.h5"
                run_variant(args.method, Path(dataset), parse_variant(variant), out)
                m = evaluate(dataset, out)
                mae = [m["mae"][k] for k in ("exx", "eyy", "exy")]
                ratio = "-" if bound is None or bound["noise_level"] == 0 else " / ".join(f"{v / bound['mae_bound'][k]:.2f}" for v, k in zip(mae, ("exx", "eyy", "exy")))
                vacuum = "-" if m["vacuum_false_answers"] is None else f"{m['vacuum_false_answers']:.1%}"
                print(
                    f"| {Path(dataset).name} | {variant} | {' / '.join(f'{v * 1e3:.3f}' for v in mae)} | {ratio} | "
                    f"{m['mae']['theta']:.4f} | {m['coverage']:.1%} | {vacuum} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
