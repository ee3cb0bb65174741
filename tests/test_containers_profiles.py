"""Containers and profiles: a stand-in apptainer runs the DAG; recipes are pinned; profiles dry-run."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, copy_workflow
from .test_workflow import _snakemake

pytest.importorskip("snakemake")

def test_every_rule_runs_in_its_own_image(tmp_path, stand_in):
    wd = copy_workflow(tmp_path / "wf")
    subprocess.run(["bash", "containers/build.sh", "strainbench", "py4dstem", "ccstae"], cwd=wd, check=True)
    assert (wd / "containers" / "py4dstem.sif").exists() and (wd / "containers" / "ccstae.sif").exists()
    res = _snakemake(wd, "--sdm", "apptainer")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    calls = [line for line in stand_in.read_text().splitlines() if line.startswith("exec")]
    fits = [c for c in calls if "run-method" in c]
    for method in ("py4dstem", "ccstae"):
        mine = [c for c in fits if f"--method {method}" in c]
        assert len(mine) == 3, mine  # one per noise level of the tiny config
        assert all(f"containers/{method}.sif" in c for c in mine)
    harness = [c for c in calls if c not in fits]
    assert harness and all("containers/strainbench.sif" in c for c in harness)
    assert any("strainbench simulate" in c for c in harness) and any("strainbench evaluate" in c for c in harness)
    assert any("strainbench bound" in c for c in harness)
    assert (wd / "results" / "tiny" / "table.md").exists()


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*-?\s*([A-Za-z0-9_.-]+)==([^\s#]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_recipes_install_pinned_packages():
    constraints = _pins(ROOT / "constraints.txt")
    environment = _pins(ROOT / "environment.yml")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    recipes = sorted((ROOT / "containers").glob("*.def")) + sorted((ROOT / "containers").glob("*.Dockerfile"))
    assert {p.stem for p in recipes} == {"strainbench", "py4dstem", "ccstae"}
    for recipe in recipes:
        text = recipe.read_text()
        base = re.search(r"^(?:From:|FROM)\s+(\S+)", text, re.M).group(1)
        assert ":" in base and not base.endswith(":latest"), f"{recipe.name}: base image {base} must carry a version tag"
        installs = re.findall(r"pip install (.*)", text)
        assert installs and all("-c constraints.txt" in i for i in installs), f"{recipe.name}: pip must use -c constraints.txt"
        for chosen in re.findall(r"\.\[([a-z0-9,]+)\]", text):
            for extra in chosen.split(",") + ["(core)"]:
                for req in project["dependencies"] if extra == "(core)" else extras[extra]:
                    name = re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower()
                    if name == "strainbench":
                        continue
                    assert name in constraints, f"{recipe.name}: {name} (extra {extra}) is not pinned in constraints.txt"
                    assert environment.get(name) == constraints[name], f"{name}: environment.yml and constraints.txt differ"


@pytest.mark.parametrize("profile", ["default", "slurm", "slurm-gpu"])
def test_profiles_dry_run(profile):
    cfg = yaml.safe_load((ROOT / "profiles" / profile / "config.yaml").read_text())
    if profile != "default":
        assert cfg["executor"] == "slurm"
    if profile == "slurm-gpu":
        assert "--nv" in cfg["apptainer-args"]
    cmd = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--profile", f"profiles/{profile}", "--configfile", "config/tiny.yaml"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "fit_py4dstem" in res.stdout and "simulate" in res.stdout


def test_workflow_lint_and_format():
    lint = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=ROOT, capture_output=True, text=True)
    assert lint.returncode == 0 and "good condition" in lint.stdout + lint.stderr, lint.stdout[-2000:]
    fmt = subprocess.run(["snakefmt", "--check", "Snakefile", "workflow/"], cwd=ROOT, capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stderr[-2000:]
