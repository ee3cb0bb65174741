# Names shared by the rules: the run's output folder, methods, seeds and noise levels.
import os
import re

import yaml

from strainbench.methods import discover_methods

USER_DATA = config.get("user_data")  # a user's file: run every method on it (user.smk)
RUN = (
    "user_"
    + re.sub(r"[^A-Za-z0-9_-]", "_", os.path.splitext(os.path.basename(USER_DATA))[0])
    if USER_DATA
    else config["run"]
)
OUT = f"results/{RUN}"
SEEDS = [int(s) for s in config["seeds"]]
LEVELS = [f"{float(w):.2f}" for w in config["noise_levels"]]
_FOUND = discover_methods(workflow.basedir)
_UNKNOWN = [m for m in config.get("methods", []) if m not in _FOUND]
if _UNKNOWN:
    raise ValueError(
        f"config 'methods' names {_UNKNOWN}, which no method folder defines (found: {sorted(_FOUND)})"
    )
METHODS = {name: _FOUND[name] for name in config.get("methods", sorted(_FOUND))}
SAMPLES = (
    ["user"]
    if USER_DATA
    else [f"s{seed}_w{level}" for seed in SEEDS for level in LEVELS]
)
# Images for --sdm apptainer: the harness's and each method's (method.yaml, overridable in config).
IMAGES = {"strainbench": "containers/strainbench.sif"}
IMAGES.update({name: spec["container"] for name, spec in METHODS.items()})
IMAGES.update(config.get("containers", {}))


wildcard_constraints:
    seed=r"\d+",
    level=r"\d\.\d\d",
    sample=r"[A-Za-z0-9_.-]+",


def dataset_output(path):
    """A dataset: kept if the config says so, else temporary (a paper-scale cube is ~10 GB)."""
    return path if config.get("keep_datasets", False) else temp(path)


def cell_files(kind, ext, samples=None):
    """One file per (method, sample) under results/<run>/<kind>/<method>/<sample>.<ext>, in
    method-major order (the order of every list of cells the rules pass)."""
    return [
        f"{OUT}/{kind}/{method}/{sample}.{ext}"
        for method in METHODS
        for sample in (SAMPLES if samples is None else samples)
    ]


def figure_level():
    """The configured Fig. 2 noise level, or the run's level nearest to it."""
    wanted = float(config.get("figure_noise_level", 0.25))
    return min(LEVELS, key=lambda w: abs(float(w) - wanted))


def import_options(wildcards):
    """The import's options from the config (user_* keys and the reference region), as a list
    of arguments (quoted one by one in the shell line)."""
    flags = {
        "--key": config.get("user_key"),
        "--axes": config.get("user_axes"),
        "--scan-shape": config.get("user_scan_shape"),
        "--reference-region": config.get("reference_region"),
        "--reference-mask": config.get("reference_mask"),
        "--crop": config.get("user_crop"),
        "--bin": config.get("user_bin"),
        "--probe": config.get("user_probe"),
        "--probe-region": config.get("user_probe_region"),
    }
    return [str(a) for k, v in flags.items() if v not in (None, "") for a in (k, v)]
