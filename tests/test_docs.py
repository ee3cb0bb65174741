"""The documentation keeps to the project as it is: its links and paths exist, its configs validate,
its commands are real, the config reference is the schema's, and no line recounts the work's history."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from strainbench.config import load_config, reference_markdown

from .conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "config" / "README.md"]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
PATH = re.compile(r"`((?:config|docs|scripts|strainbench|ccstae|baselines|workflow|containers|profiles|results/reference|tests)/[A-Za-z0-9_./-]*[A-Za-z0-9_])`")


def _text(path: Path) -> str:
    return path.read_text()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_and_paths_exist(doc):
    text = _text(doc)
    missing = []
    for target in LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        if not (doc.parent / target).exists():
            missing.append(target)
    for path in PATH.findall(text):
        if "<" in path or "*" in path:
            continue
        if not (ROOT / path).exists():
            missing.append(path)
    assert not missing, f"{doc.name} names paths that do not exist: {sorted(set(missing))}"


def test_every_config_the_readme_names_validates():
    names = set(re.findall(r"config/[A-Za-z0-9_]+\.yaml", _text(ROOT / "README.md")))
    assert "config/config.yaml" in names and len(names) >= 3
    for name in sorted(names):
        load_config(ROOT / name)


def test_every_config_sets_every_key_of_the_default():
    """The workflow loads config/config.yaml under any --configfile, key by key: a config that
    leaves a key out silently inherits the default's."""

    def keys(d, prefix=""):
        out = set()
        for k, v in d.items():
            if isinstance(v, dict) and k != "engine":
                out |= keys(v, f"{prefix}{k}/")
            else:
                out.add(f"{prefix}{k}")
        return out

    default = keys(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    for path in sorted((ROOT / "config").glob("*.yaml")):
        missing = default - keys(yaml.safe_load(path.read_text()))
        assert not missing, f"{path.name} leaves out {sorted(missing)}, which it would take from config.yaml"


def test_config_reference_is_the_schemas():
    assert (ROOT / "config" / "README.md").read_text() == reference_markdown(), "run: python scripts/config_reference.py"


def _commands() -> list[str]:
    """The commands of the README's shell code blocks (one per line, comments and pip left out)."""
    blocks = [body for lang, body in re.findall(r"^```(\w*)\n(.*?)^```$", _text(ROOT / "README.md"), flags=re.S | re.M) if lang in ("", "bash", "sh", "shell")]
    out = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part and not part.startswith(("#", "pip ", "python -m pip", "cd ", "git ", "export ", "pytest", "apptainer ", "docker ")):
                    out.append(part)
    return out


def test_every_readme_command_is_a_real_entry_point():
    commands = _commands()
    assert any(c.startswith("snakemake --cores all") for c in commands)
    for command in commands:
        args = shlex.split(command)
        if args[0] == "snakemake":
            args = [a for a in args if a not in ("--use-singularity", "--sdm", "apptainer")]
            if any(a.startswith(("--profile", "user_data=")) for a in args) or "--report" in args:
                continue  # a cluster profile needs sbatch, a user's run the user's file, the report a finished run
            res = subprocess.run([sys.executable, "-m", "snakemake", *args[1:], "-n", "--quiet", "rules"], cwd=ROOT, capture_output=True, text=True)
            assert res.returncode == 0, (command, res.stderr[-1500:])
        elif args[0] in ("strainbench", "ccstae"):
            sub = [a for a in args[1:3] if not a.startswith("-")][:1 if args[0] == "strainbench" else 1]
            res = subprocess.run([args[0], *sub, "--help"], capture_output=True, text=True)
            assert res.returncode == 0, (command, res.stderr[-500:])
        elif args[:2] == ["python", "-m"]:
            res = subprocess.run([sys.executable, "-m", args[2], "--help"], cwd=ROOT, capture_output=True, text=True)
            assert res.returncode == 0, (command, res.stderr[-500:])
        elif args[0] in ("python", "bash"):
            assert (ROOT / args[1]).exists(), command
        else:
            raise AssertionError(f"the README runs {command!r}, which this test does not know how to check")


HISTORY = re.compile(r"\bsession\b|exploratory|\b20\d\d-\d\d-\d\d\b|\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth) (run|session)\b|issue #?\d", re.I)


def test_no_line_recounts_the_history_of_the_work():
    files = [*DOCS, *ROOT.glob("strainbench/**/*.py"), *ROOT.glob("ccstae/*.py"), *ROOT.glob("baselines/**/*.py"), *ROOT.glob("workflow/**/*.smk"), ROOT / "Snakefile", *ROOT.glob("scripts/*")]
    hits = []
    for path in files:
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if HISTORY.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits)
