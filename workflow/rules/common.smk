# Names shared by the rules: the run's output folder, methods, seeds and noise levels.
import yaml

from strainbench.methods import discover_methods

RUN = config["run"]
OUT = f"results/{RUN}"
SEEDS = [int(s) for s in config["seeds"]]
LEVELS = [f"{float(w):.2f}" for w in config["noise_levels"]]
_FOUND = discover_methods(workflow.basedir)
METHODS = {name: _FOUND[name] for name in config.get("methods", sorted(_FOUND))}


wildcard_constraints:
    seed=r"\d+",
    level=r"\d\.\d\d",
