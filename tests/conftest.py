"""Shared fixtures: the tiny config, simulated once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from strainbench.config import load_config
from strainbench.simulate import simulate_clean, write_noisy_dataset

ROOT = Path(__file__).resolve().parents[1]


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
