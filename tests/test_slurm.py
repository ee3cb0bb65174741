"""Cluster runs: the profiles' effective settings, and the whole tiny DAG through a recording fake
SLURM (tests/fake_slurm.py) under each profile, every sbatch line checked rule by rule."""

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from . import fake_slurm
from .conftest import ROOT, copy_workflow

pytest.importorskip("snakemake_executor_plugin_slurm")

from snakemake.cli import parse_args  # noqa: E402

from strainbench.methods import discover_methods  # noqa: E402

GPU_METHODS = sorted(name for name, spec in discover_methods(ROOT).items() if int(spec["resources"].get("gpu", 0)))
SUBMITTED = {"clean", "simulate", "fit_ccstae", "fit_py4dstem", "strain_maps"}  # every other rule is local


def _effective(monkeypatch, *argv):
    monkeypatch.chdir(ROOT)
    return parse_args(list(argv))[1]


def _profile(name: str) -> dict:
    return yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())


@pytest.mark.parametrize("name", ["slurm", "slurm-gpu"])
def test_cluster_settings_survive_the_local_workflow_profile(monkeypatch, name):
    args = _effective(monkeypatch, "--profile", f"profiles/{name}")
    assert args.executor == "slurm" and args.latency_wait == 60 and args.jobs == 100
    assert set(args.default_resources) >= {"slurm_partition"}
    local = _profile("default")
    assert not {"cores", "latency-wait", "executor", "default-resources", "set-resources", "jobs"} & set(local)


def test_gpus_are_the_gpu_profiles_choice_made_one_way():
    assert GPU_METHODS == ["ccstae"]
    cpu, gpu = _profile("slurm"), _profile("slurm-gpu")
    assert "gpu" not in json.dumps(cpu) and "gres" not in json.dumps(cpu)
    requested = gpu["set-resources"]
    assert sorted(rule.removeprefix("fit_") for rule, res in requested.items() if res.get("gpu")) == GPU_METHODS
    for res in requested.values():
        assert res.get("gpu") == 1 and "gres" not in res and res["slurm_partition"] != gpu["default-resources"]["slurm_partition"]
    assert "gpu" not in (ROOT / "workflow" / "rules" / "methods.smk").read_text().split("resources:")[1].split("params:")[0]


def _sbatch_by_rule(state) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for call in fake_slurm.calls(state):
        if call["command"] == "sbatch":
            rule = re.match(r"rule_(\w+?)(?:_wildcards_|$)", call["options"]["--comment"]).group(1)
            out.setdefault(rule, []).append(call["options"])
    return out


RULE_RESOURCES = {  # (threads, mem_mb, runtime): the rules' own, method.yaml's for the fits
    "clean": (8, 8000, 240),
    "simulate": (2, 4000, 60),
    "fit_ccstae": (2, 32000, 60),
    "fit_py4dstem": (2, 4000, 60),
    "strain_maps": (1, 4000, 30),
}


@pytest.mark.parametrize("profile", ["slurm", "slurm-gpu"])
def test_the_tiny_dag_runs_through_a_fake_slurm(tmp_path, monkeypatch, stand_in, profile):
    wd = copy_workflow(tmp_path / "wf")
    state = tmp_path / "slurm"
    fake_slurm.install(tmp_path / "slurm-bin", state)
    monkeypatch.setenv("PATH", f"{tmp_path / 'slurm-bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(state))
    monkeypatch.setenv("FAKE_SLURM_PARTITIONS", "cpu,short,gpu:gpu")
    monkeypatch.setenv("FAKE_SLURM_ACCOUNTS", "proj42")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    args = ["--profile", f"profiles/{profile}", "--configfile", "config/tiny.yaml", "--slurm-init-seconds-before-status-checks", "1"]
    if profile == "slurm-gpu":
        # the site's partition and account from the command line; every rule in its image
        args += ["--default-resources", "slurm_partition=short", "slurm_account=proj42", "--sdm", "apptainer"]
        subprocess.run(["bash", "containers/build.sh"], cwd=wd, check=True, capture_output=True)
    res = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=wd, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (wd / "results" / "tiny" / "table.md").exists()

    submitted = _sbatch_by_rule(state)
    assert set(submitted) == SUBMITTED, sorted(submitted)
    assert len(submitted["fit_ccstae"]) == len(submitted["fit_py4dstem"]) == 3
    for rule, lines in submitted.items():
        threads, mem_mb, runtime = RULE_RESOURCES[rule]
        gpu_rule = profile == "slurm-gpu" and rule == "fit_ccstae"
        for line in lines:
            assert line["-p"] == ("gpu" if gpu_rule else "cpu" if profile == "slurm" else "short"), (rule, line)
            assert line.get("-A") == (None if profile == "slurm" else "proj42"), (rule, line)
            assert line["-t"] == str(runtime) and line["--mem"] == str(mem_mb), (rule, line)
            assert line["--cpus-per-task"] == str(threads), (rule, line)
            assert ("--gpus" in line) == gpu_rule and "--gres" not in line, (rule, line)
            if gpu_rule:
                assert line["--gpus"] == "1"
    states = [job["state"] for job in fake_slurm.jobs(state).values()]
    assert states and set(states) == {"COMPLETED"}, states
    steps = [c for c in fake_slurm.calls(state) if c["command"] == "srun"]
    assert len(steps) == len(states) and sum(c["gpu"] for c in steps) == (3 if profile == "slurm-gpu" else 0)

    if profile == "slurm-gpu":
        execs = [line for line in stand_in.read_text().splitlines() if line.startswith("exec")]
        with_gpu = [line for line in execs if "--nv" in line.split(" -c ")[0]]
        assert len(with_gpu) == 3 and all("containers/ccstae.sif" in line for line in with_gpu), with_gpu
        assert any("containers/py4dstem.sif" in line for line in execs)
