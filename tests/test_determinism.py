"""Same config and seed: same bytes. Different seeds: different grains."""

import hashlib
import subprocess
import sys

import numpy as np

from strainbench.io import DatasetReader
from strainbench.simulate import write_noisy_dataset

from .conftest import ROOT


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _simulate(tmp_path, name, seed, level=0.3, threads=0):
    out = tmp_path / name
    cmd = [sys.executable, "-m", "strainbench.cli", "simulate", "--config", str(ROOT / "config" / "tiny.yaml"),
           "--seed", str(seed), "--noise-level", str(level), "--out", str(out), "--threads", str(threads), "--no-progress"]
    subprocess.run(cmd, check=True, cwd=tmp_path)
    return out


def test_same_seed_same_bytes_whatever_the_threads(tmp_path):
    a = _simulate(tmp_path, "a.h5", seed=7, threads=1)
    b = _simulate(tmp_path, "b.h5", seed=7, threads=2)
    assert _sha(a) == _sha(b)


def test_different_seeds_give_different_grains(tmp_path):
    a = _simulate(tmp_path, "a.h5", seed=7, level=0.0)
    b = _simulate(tmp_path, "b.h5", seed=8, level=0.0)
    with DatasetReader(a) as da, DatasetReader(b) as db:
        la, lb = da.labels(), db.labels()
    assert not np.array_equal(la["grain"], lb["grain"])
    assert not np.array_equal(la["exx"], lb["exx"])


def test_noise_levels_share_grains_but_not_noise(tiny_cfg, tiny_clean, tmp_path):
    paths = []
    for w in (0.1, 0.2):
        paths.append(tmp_path / f"w{w}.h5")
        write_noisy_dataset(paths[-1], tiny_clean, tiny_cfg, w, progress=False)
    with DatasetReader(paths[0]) as d1, DatasetReader(paths[1]) as d2:
        np.testing.assert_array_equal(d1.labels()["grain"], d2.labels()["grain"])
        assert not np.array_equal(d1.read_rows(0, 1), d2.read_rows(0, 1))
