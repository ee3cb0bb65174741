"""The Snakemake DAG end to end on the tiny config, with method folders added on the fly."""

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from .conftest import ROOT

pytest.importorskip("snakemake")

ZERO_PREDICTOR = '''"""A throw-away method: predicts zero strain everywhere."""
import argparse

import numpy as np

from strainbench.io import DatasetReader, write_strain

p = argparse.ArgumentParser()
p.add_argument("--dataset")
p.add_argument("--out")
a = p.parse_args()
with DatasetReader(a.dataset) as ds:
    shape = ds.scan_shape
zeros = np.zeros(shape, np.float32)
write_strain(a.out, {k: zeros for k in ("exx", "eyy", "exy", "theta")}, method="zero",
             method_version="0", device="cpu", wall_seconds=0.0, params={})
'''


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A copy of the workflow with two extra method folders: a zero predictor and a crasher."""
    wd = tmp_path_factory.mktemp("wf")
    for name in ("Snakefile", "workflow", "config", "baselines", "ccstae", "strainbench"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, wd / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, wd / name)
    zero = wd / "baselines" / "zero"
    zero.mkdir()
    (zero / "predict.py").write_text(ZERO_PREDICTOR)
    (zero / "method.yaml").write_text(
        "name: zero\ncommand: python baselines/zero/predict.py --dataset {dataset} --out {strain}\n"
        "resources: {threads: 1}\n"
    )
    crash = wd / "baselines" / "crash"
    crash.mkdir()
    (crash / "method.yaml").write_text(
        "name: crash\ncommand: python -c 'import sys; sys.exit(3)' {dataset} {strain}\nresources: {threads: 1}\n"
    )
    return wd


def _snakemake(wd, *args):
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config/tiny.yaml", *args]
    return subprocess.run(cmd, cwd=wd, capture_output=True, text=True)


def test_dry_run_has_a_rule_per_method_folder(workdir):
    res = _snakemake(workdir, "-n")
    assert res.returncode == 0, res.stderr
    for rule in ("fit_py4dstem", "fit_ccstae", "fit_zero", "fit_crash", "simulate", "clean", "evaluate", "bound", "table"):
        assert rule in res.stdout


def test_full_dag_runs_and_a_crash_does_not_stop_the_table(workdir):
    res = _snakemake(workdir)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = workdir / "results" / "tiny"
    md = (out / "table.md").read_text()
    for col in ("py4dstem (ours)", "ccstae (ours)", "zero (ours)", "crash (ours)", "paper CC-ST-AE", "limit (CRLB)", "MAE / limit"):
        assert col in md
    assert "no noise" in md  # the limit at 0% noise is zero, not divided by
    table = pd.read_csv(out / "table.csv", header=[0, 1, 2])
    assert len(table) == 3  # the tiny config's three noise levels
    assert "failed" in md  # the crashing method's cells
    crash_log = (out / "logs" / "crash" / "s1_w0.00.log").read_text()
    assert "failed" in crash_log and "status 3" in crash_log
    for fmt in ("png", "pdf"):
        assert (out / "figures" / f"mae_vs_noise.{fmt}").stat().st_size > 0
    with Image.open(out / "figures" / "mae_vs_noise.png") as im:
        im.verify()
    with Image.open(out / "figures" / "grain_errors.png") as im:  # per-grain offsets, every method
        im.verify()
    failures = (out / "failures.html").read_text()
    assert "crash, noise 0%" in failures and "status 3" in failures and "zero," not in failures
    # the HTML report holds the table, the figures and the failures page
    rep = _snakemake(workdir, "--report", "report.html")
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert (workdir / "report.html").stat().st_size > 10_000
    # every rule leaves a log and a benchmark
    assert list((out / "benchmarks").rglob("*.tsv")) and list((out / "logs").rglob("*.log"))
    # noisy datasets are temporary at this scale
    datasets = out / "datasets"
    assert not datasets.exists() or not list(datasets.glob("*.h5"))
    # a rerun does nothing
    again = _snakemake(workdir, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_user_data_run_compares_every_method(workdir, tiny_dataset):
    """``--config user_data=... reference_region=...``: import, every method, maps and agreement."""
    import numpy as np

    from strainbench.io import DatasetReader

    with DatasetReader(tiny_dataset) as ds:
        np.save(workdir / "scan.npy", ds.read_rows(0, ds.scan_shape[0]))
    res = _snakemake(workdir, "--config", "user_data=scan.npy", "reference_region=0:4,0:4")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = workdir / "results" / "user_scan"
    agreement = (out / "agreement.md").read_text()
    for text in ("py4dstem | 100.0%", "ccstae | 100.0%", "zero | 100.0%", "crash | 0.0%", "ccstae vs py4dstem", "n/a"):
        assert text in agreement, (text, agreement)
    with Image.open(out / "figures" / "method_maps.png") as im:
        im.verify()
    refused = _snakemake(workdir, "--config", "user_data=scan.npy", "--forceall")
    assert refused.returncode != 0 and "reference region is required" in (workdir / "results" / "user_scan" / "logs" / "import_user.log").read_text()
