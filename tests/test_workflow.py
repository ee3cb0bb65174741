"""The Snakemake DAG end to end on the tiny config, with method folders added on the fly."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from .conftest import copy_workflow

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
    wd = copy_workflow(tmp_path_factory.mktemp("wf"))
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


def _snakemake(wd, *args, configfile="config/tiny.yaml"):
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", configfile, *args]
    return subprocess.run(cmd, cwd=wd, capture_output=True, text=True)


def _planned(wd, *args, **kwargs) -> dict[str, int]:
    """The jobs a dry run plans, by rule (empty when nothing is to be done)."""
    res = _snakemake(wd, "-n", *args, **kwargs)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    text = res.stdout + res.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:")[1].split("\n\n")[0]
    return {r.split()[0]: int(r.split()[1]) for r in table.splitlines()[3:] if r.strip() and r.split()[0] != "total"}


def test_dry_run_has_a_rule_per_method_folder(workdir):
    res = _snakemake(workdir, "-n")
    assert res.returncode == 0, res.stderr
    for rule in ("fit_py4dstem", "fit_ccstae", "fit_zero", "fit_crash", "simulate", "clean", "evaluate", "bound", "table"):
        assert rule in res.stdout


def test_full_dag_runs_and_a_crash_does_not_stop_the_table(workdir):
    res = _snakemake(workdir)
    # every output is built, the failed fits are listed on the terminal, and the status says so
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    assert "3 of 12 fits FAILED" in res.stderr and "crash: results/tiny/strain/crash/s1_w0.70.h5: command exited with status 3" in res.stderr
    assert "--forcerun results/tiny/strain/crash/s1_w0.00.h5" in res.stderr
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
    # where the run ran, written when it ended
    machine = json.loads((out / "machine.json").read_text())
    assert machine["cores"] >= 1 and machine["packages"]["strainbench"] and machine["wall_seconds"] > 0
    # every rule leaves a log and a benchmark
    assert list((out / "benchmarks").rglob("*.tsv")) and list((out / "logs").rglob("*.log"))
    # the tiny config keeps its datasets (keep_datasets), so that one cell can be refitted alone
    assert len(list((out / "datasets").glob("*.h5"))) == 3
    # a rerun does nothing, and every output has its provenance
    again = _snakemake(workdir, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr and "missing provenance" not in again.stdout + again.stderr


AGGREGATES = {"table": 1, "failures": 1, "mae_vs_noise": 1, "grain_errors": 1, "all": 1}


def test_reruns_redo_only_what_changed(workdir):
    """After the complete run: one cell forced or one file deleted replans that cell and what reads it."""
    out = "results/tiny"
    assert _planned(workdir, "--forcerun", f"{out}/strain/zero/s1_w0.70.h5") == {"fit_zero": 1, "evaluate": 1, **AGGREGATES}
    assert _planned(workdir, "--forcerun", f"{out}/strain/ccstae/s1_w0.25.h5") == {"fit_ccstae": 1, "evaluate": 1, "strain_maps": 1, **AGGREGATES}
    metrics = workdir / out / "metrics" / "py4dstem" / "s1_w0.70.json"
    kept = metrics.read_bytes()
    metrics.unlink()
    try:
        assert _planned(workdir) == {"evaluate": 1, **AGGREGATES}
    finally:
        metrics.write_bytes(kept)
    # one method fewer: no dataset, fit or bound again
    assert set(_planned(workdir, "--config", "methods=[ccstae,py4dstem,zero]")) <= {"run_config", "strain_maps", *AGGREGATES}
    # a change of what the datasets depend on simulates them again
    changed = workdir / "config" / "tiny_more_grains.yaml"
    changed.write_text((workdir / "config" / "tiny.yaml").read_text().replace("grains: 6", "grains: 7"))
    plan = _planned(workdir, configfile=str(changed))
    assert plan["clean"] == 1 and plan["simulate"] == 3 and plan["fit_ccstae"] == 3


def test_user_data_run_compares_every_method(workdir, tiny_dataset):
    """``--config user_data=... reference_region=...``: import, every method, maps and agreement."""
    import numpy as np

    from strainbench.io import DatasetReader

    name = "my scan $(touch PWNED).npy"  # a space and a shell command: one argument, never run
    with DatasetReader(tiny_dataset) as ds:
        np.save(workdir / name, ds.read_rows(0, ds.scan_shape[0]))
    res = _snakemake(workdir, "--config", f"user_data={name}", "reference_region=0:4,0:4", "methods=[ccstae,py4dstem,zero,crash]")
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]  # the crashing method
    assert not (workdir / "PWNED").exists()
    out = workdir / "results" / "user_my_scan___touch_PWNED_"
    agreement = (out / "agreement.md").read_text()
    for text in ("py4dstem | 100.0%", "ccstae | 100.0%", "zero | 100.0%", "crash | 0.0%", "ccstae vs py4dstem", "n/a"):
        assert text in agreement, (text, agreement)
    with Image.open(out / "figures" / "method_maps.png") as im:
        im.verify()
    refused = _snakemake(workdir, "--config", f"user_data={name}", "--forceall")
    assert refused.returncode != 0 and "reference region is required" in (out / "logs" / "import_user.log").read_text()
    # a value that is not a rectangle never reaches a shell line
    bad = _snakemake(workdir, "-n", "--config", f"user_data={name}", "reference_region=0:4,0:4; touch PWNED2")
    assert bad.returncode != 0 and "reference_region" in bad.stdout + bad.stderr
    assert not (workdir / "PWNED2").exists()
