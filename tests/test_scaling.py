"""The scaling benchmark's memory measurement (scripts/scaling.py): the peak resident memory of a
command's whole process tree."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _scaling():
    spec = importlib.util.spec_from_file_location("scaling", ROOT / "scripts" / "scaling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peak_memory_counts_the_children_of_a_command(tmp_path):
    scaling = _scaling()
    hold = "import numpy as np, time; a = np.ones(300 * 2**20 // 8); time.sleep(1.5)"
    # the shell starts python, which starts a second python holding 300 MiB
    command = f"{sys.executable} -c \"import subprocess, sys; subprocess.run([sys.executable, '-c', '{hold}'])\""
    status, wall, peak = scaling.measure(command, tmp_path / "log", interval=0.05)
    assert status == 0 and wall >= 1.5
    assert 300 * 2**20 < peak < 600 * 2**20, peak / 2**20
    status, _, _ = scaling.measure(f"{sys.executable} -c 'raise SystemExit(3)'", tmp_path / "log", interval=0.05)
    assert status == 3


def test_scan_shapes_are_read_from_the_command_line():
    assert _scaling().scan_shape("256x128") == (256, 128)
