"""The command line: help on every subcommand, an end-to-end tiny run, clear errors."""

import subprocess
import sys

import pytest
from PIL import Image

from .conftest import ROOT

SUBCOMMANDS = ["clean", "simulate", "validate", "evaluate", "table", "figures", "benchmark", "bias", "run-method"]


def run(*args, cwd=None, check=True):
    return subprocess.run([sys.executable, "-m", "strainbench.cli", *args], capture_output=True, text=True, cwd=cwd, check=check)


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_help(sub):
    out = run(sub, "--help").stdout
    assert "usage: strainbench " + sub in out


def test_tiny_end_to_end(tmp_path):
    cfg = str(ROOT / "config" / "tiny.yaml")
    cache = tmp_path / "clean.h5"
    run("clean", "--config", cfg, "--seed", "1", "--out", str(cache), "--no-progress")
    for w in ("0", "0.7"):
        run("simulate", "--config", cfg, "--seed", "1", "--noise-level", w, "--clean", str(cache),
            "--out", str(tmp_path / f"d{w}.h5"), "--no-progress")
    assert "valid dataset" in run("validate", str(tmp_path / "d0.h5")).stdout
    run("figures", "patterns", "--datasets", str(tmp_path / "d0.h5"), str(tmp_path / "d0.7.h5"), "--out", str(tmp_path / "p.png"))
    run("figures", "ground-truth", "--datasets", str(tmp_path / "d0.h5"), "--out", str(tmp_path / "gt.png"))
    for name in ("p.png", "gt.png"):
        with Image.open(tmp_path / name) as im:
            im.verify()
        assert (tmp_path / name).with_suffix(".pdf").stat().st_size > 0


def test_errors_name_the_file(tmp_path):
    bogus = tmp_path / "bogus.h5"
    bogus.write_bytes(b"not hdf5 at all")
    res = run("validate", str(bogus), check=False)
    assert res.returncode == 2 and "bogus.h5" in res.stderr and "not a readable HDF5 file" in res.stderr
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text((ROOT / "config" / "tiny.yaml").read_text().replace("grains: 6", "grains: -3"))
    res = run("simulate", "--config", str(bad_cfg), "--seed", "1", "--noise-level", "0", "--out", str(tmp_path / "x.h5"), check=False)
    assert res.returncode == 2 and "bad.yaml" in res.stderr and "polycrystal/grains" in res.stderr
    assert not (tmp_path / "x.h5").exists()


def test_validate_tells_datasets_from_strain_files(tiny_dataset, tmp_path):
    import numpy as np

    from strainbench.io import write_strain

    strain = tmp_path / "s.h5"
    z = np.zeros((24, 24), np.float32)
    write_strain(strain, {k: z for k in ("exx", "eyy", "exy", "theta")}, method="m", method_version="0", device="cpu", wall_seconds=0, params={})
    out = run("validate", str(tiny_dataset), str(strain)).stdout
    assert "valid dataset" in out and "valid strain file" in out
