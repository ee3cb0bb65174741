"""Shared fixtures: the tiny config, simulated once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from strainbench.config import load_config
from strainbench.simulate import simulate_clean, write_noisy_dataset

ROOT = Path(__file__).resolve().parents[1]

WORKFLOW_PARTS = ("Snakefile", "workflow", "config", "profiles", "baselines", "ccstae", "strainbench", "containers", "constraints.txt")


def copy_workflow(dst: Path) -> Path:
    """A copy of the workflow (rules, configs, profiles, methods, container recipes) in ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_PARTS:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.sif"))
        else:
            shutil.copy(src, dst / name)
    return dst


APPTAINER_STAND_IN = r'''#!/usr/bin/env bash
# Stand-in for apptainer: records its arguments; build/pull create the image; exec runs on the host.
echo "$*" >> "$APPTAINER_LOG"
case "$1" in
  --version) echo "apptainer version 1.3.4"; exit 0 ;;
  build) touch "$2"; exit 0 ;;
  pull) shift; [ "$1" = "--name" ] && touch "$2"; exit 0 ;;
  exec)
    while [ $# -gt 0 ] && [ "$1" != "-c" ]; do shift; done
    shift; exec bash -c "$1" ;;
esac
echo "stand-in apptainer: unsupported: $*" >&2; exit 1
'''


@pytest.fixture
def stand_in(tmp_path, monkeypatch) -> Path:
    """A stand-in ``apptainer`` first on PATH; returns the file its calls are recorded in."""
    bin_dir = tmp_path / "apptainer-bin"
    bin_dir.mkdir()
    exe = bin_dir / "apptainer"
    exe.write_text(APPTAINER_STAND_IN)
    exe.chmod(0o755)
    log = tmp_path / "apptainer.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("APPTAINER_LOG", str(log))
    return log


@pytest.fixture(scope="session")
def tiny_cfg() -> dict:
    return load_config(ROOT / "config" / "tiny.yaml")


@pytest.fixture(scope="session")
def tiny_clean(tiny_cfg):
    return simulate_clean(tiny_cfg, seed=1, progress=False)


@pytest.fixture(scope="session")
def tiny_dataset(tiny_cfg, tiny_clean, tmp_path_factory) -> Path:
    """A tiny dataset at 25% noise (read-only: copy it before corrupting)."""
    path = tmp_path_factory.mktemp("data") / "tiny_w25.h5"
    write_noisy_dataset(path, tiny_clean, tiny_cfg, 0.25, progress=False)
    return path


@pytest.fixture(scope="session")
def tiny_dataset_clean(tiny_cfg, tiny_clean, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "tiny_w0.h5"
    write_noisy_dataset(path, tiny_clean, tiny_cfg, 0.0, progress=False)
    return path
