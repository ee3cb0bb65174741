"""Run configuration: load, validate against the schema, and build the simulator's parts.

The schema, ``strainbench/schemas/config.schema.yaml``, is the one the workflow validates with.
"""

from __future__ import annotations

import copy
import os
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from .crystal import get_crystal
from .noise import NoiseModel
from .optics import DetectorGeometry

SCHEMA_FILE = resources.files("strainbench") / "schemas" / "config.schema.yaml"


SIMULATION_KEYS = ("run", "scan", "polycrystal", "crystal", "optics", "detector", "engine", "noise")
"""The parts of a run's config that its datasets depend on (with the seed and the noise level)."""


def simulation_config(config: Mapping) -> dict:
    """The parts of ``config`` that its datasets depend on (:data:`SIMULATION_KEYS`): a config that
    ``strainbench clean`` and ``simulate`` accept, unchanged when only methods, seeds, noise levels
    or figures change."""
    return {k: copy.deepcopy(config[k]) for k in SIMULATION_KEYS if k in config}


COMMAND_LINE_TYPES = {"seeds": int, "noise_levels": float, "methods": str}
"""List keys whose items Snakemake's ``--config key=[a,b]`` passes as strings, and their types."""


def coerce_command_line(config: dict) -> dict:
    """``config`` with the items of :data:`COMMAND_LINE_TYPES`' lists converted (in place; also
    returned): ``--config seeds=[2,3] noise_levels=[0,0.5]`` reaches the workflow as lists of
    strings. An item that does not convert is left for the schema to report."""
    for key, kind in COMMAND_LINE_TYPES.items():
        values = config.get(key)
        if isinstance(values, list):
            converted = []
            for v in values:
                try:
                    converted.append(kind(v))
                except (TypeError, ValueError):
                    converted.append(v)
            config[key] = converted
    return config


class ConfigError(ValueError):
    """A configuration does not follow the schema; the message names the file and the key."""


def schema() -> dict:
    return yaml.safe_load(SCHEMA_FILE.read_text())


def _fill_defaults(instance: Any, sch: Mapping) -> None:
    """Insert schema ``default`` values for absent properties, recursively (in place)."""
    if not isinstance(instance, dict):
        return
    for key, sub in sch.get("properties", {}).items():
        if key not in instance:
            if "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            elif sub.get("type") == "object" and "properties" in sub and not sub.get("required"):
                instance[key] = {}
        _fill_defaults(instance.get(key), sub)


def validate_config(config: Mapping, source: str = "<config>") -> dict:
    """Validate a config mapping, fill its defaults, and return the completed copy."""
    cfg = copy.deepcopy(dict(config))
    sch = schema()
    try:
        jsonschema.validate(cfg, sch)
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ConfigError(f"{source}: invalid config at '{where}': {err.message}") from None
    _fill_defaults(cfg, sch)
    if cfg["polycrystal"]["layers"][0] > cfg["polycrystal"]["layers"][1]:
        raise ConfigError(f"{source}: polycrystal/layers must be [min, max], got {cfg['polycrystal']['layers']}")
    return cfg


def load_config(path: str | os.PathLike) -> dict:
    """Read a YAML config file and validate it (see :func:`validate_config`)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: no such config file")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: a config must be a mapping of keys to values")
    return validate_config(raw, str(p))


def detector_geometry(cfg: Mapping) -> DetectorGeometry:
    return DetectorGeometry(
        shape=tuple(cfg["detector"]["shape"]),
        sampling=float(cfg["detector"]["sampling"]),
        energy_ev=float(cfg["optics"]["energy_ev"]),
        semiangle_mrad=float(cfg["optics"]["semiangle_mrad"]),
    )


def noise_model(cfg: Mapping, level: float) -> NoiseModel:
    n = cfg["noise"]
    return NoiseModel(
        level=float(level),
        counts_per_probe=float(n["counts_per_probe"]),
        intensity_coefficient=float(n["intensity_coefficient"]),
        background_width=float(n["background_width"]),
    )


def make_engine(cfg: Mapping):
    """The simulation engine named in ``engine/name``, built from its section of the config."""
    crystal = get_crystal(cfg["crystal"]["name"])
    geometry = detector_geometry(cfg)
    name = cfg["engine"]["name"]
    section = cfg["engine"].get(name, {})
    if name == "kinematic":
        from .engines.kinematic import KinematicEngine

        return KinematicEngine(crystal, geometry, **section)
    from .engines.multislice import MultisliceEngine

    return MultisliceEngine(crystal, geometry, **section)


def _schema_rows(properties: Mapping, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """``(key, type, default, description)`` of every property, nested keys as ``a/b``."""
    rows = []
    for key, sub in properties.items():
        name = f"{prefix}{key}"
        kind = sub.get("type") or ("one of " + ", ".join(map(str, sub["enum"])) if "enum" in sub else "")
        if kind == "array" and "items" in sub:
            kind = f"list of {sub['items'].get('type', 'values')}"
        default = "" if "default" not in sub else str(sub["default"]).lower() if isinstance(sub["default"], bool) else str(sub["default"])
        description = " ".join(str(sub.get("description", "")).split())
        rows.append((name, kind, default, description))
        if sub.get("type") == "object" and "properties" in sub:
            rows.extend(_schema_rows(sub["properties"], f"{name}/"))
    return rows


def reference_markdown() -> str:
    """``config/README.md``: every config key of the schema, its type, default and meaning."""
    sch = schema()
    lines = [
        "# Configuration reference",
        "",
        "Generated from `strainbench/schemas/config.schema.yaml` by `python scripts/config_reference.py`",
        "(a test keeps the two equal). " + " ".join(sch["description"].split()),
        "",
        "Required at the top level: " + ", ".join(f"`{k}`" for k in sch["required"]) + ". The workflow",
        "always loads `config/config.yaml` first and a `--configfile` on top of it, key by key, so",
        "every config of this folder sets every key.",
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{k}` | {t} | {d} | {m} |" for k, t, d, m in _schema_rows(sch["properties"])]
    return "\n".join(lines) + "\n"
