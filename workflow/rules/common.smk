# Names shared by the rules: the run's output folder, methods, seeds and noise levels.
import os

import yaml

from strainbench.methods import discover_methods

USER_DATA = config.get("user_data")  # a user's file: run every method on it (user.smk)
RUN = (
    f"user_{os.path.splitext(os.path.basename(USER_DATA))[0]}"
    if USER_DATA
    else config["run"]
)
OUT = f"results/{RUN}"
SEEDS = [int(s) for s in config["seeds"]]
LEVELS = [f"{float(w):.2f}" for w in config["noise_levels"]]
_FOUND = discover_methods(workflow.basedir)
METHODS = {name: _FOUND[name] for name in config.get("methods", sorted(_FOUND))}
# Images for --sdm apptainer: the harness's and each method's (method.yaml, overridable in config).
IMAGES = {"strainbench": "containers/strainbench.sif"}
IMAGES.update({name: spec["container"] for name, spec in METHODS.items()})
IMAGES.update(config.get("containers", {}))


wildcard_constraints:
    seed=r"\d+",
    level=r"\d\.\d\d",
    sample=r"[A-Za-z0-9_.-]+",


def noisy_output(path):
    """A noisy dataset: temporary unless the config keeps them (a paper-scale cube is ~10 GB)."""
    return path if config.get("keep_noisy", False) else temp(path)


def figure_level():
    """The configured Fig. 2 noise level, or the run's level nearest to it."""
    wanted = float(config.get("figure_noise_level", 0.25))
    return min(LEVELS, key=lambda w: abs(float(w) - wanted))


def import_options(wildcards):
    """The import's options from the config (user_* keys and the reference region)."""
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
    return " ".join(f"{k} {v}" for k, v in flags.items() if v not in (None, ""))
