"""Nothing wrong in silence, nothing lost: checkpoints, failed seeds, outputs, messages.

Each case is one a user met: a checkpoint of another dataset resumed, a failed seed averaged away,
a dataset overwritten by a strain file, work lost to an output path that could not be written,
tracebacks instead of messages.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from strainbench.io import ContractError, DatasetReader, DatasetWriter, read_strain, validate_dataset, write_strain
from strainbench.metrics import evaluate
from strainbench.methods import load_method, render_command, run_method
from strainbench.table import write_tables

from .conftest import ROOT

torch = pytest.importorskip("torch")

KEYS = ("exx", "eyy", "exy", "theta")


def _strain(path, shape, value=0.0, method="m"):
    maps = {k: np.full(shape, value, np.float32) for k in KEYS}
    write_strain(path, maps, method=method, method_version="0", device="cpu", wall_seconds=1.0, params={})
    return path


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, env=env)


# --- checkpoints -------------------------------------------------------------------------------

SHORT_FIT = dict(rotation_epochs=1, strain_epochs=1, refine_iterations=0)


def test_a_checkpoint_of_another_dataset_is_ignored(tiny_dataset, tiny_dataset_clean, tmp_path, capsys):
    from ccstae.data import load_patterns
    from ccstae.train import FitConfig, fit

    cfg = FitConfig(**SHORT_FIT)
    cpu = torch.device("cpu")
    ckpt = tmp_path / "s.h5.ckpt"
    fit(load_patterns(str(tiny_dataset_clean)), cfg, cpu, progress=False, checkpoint=ckpt)
    assert ckpt.exists()  # left by a fit whose strain file was never written (as after Ctrl-C)
    other = load_patterns(str(tiny_dataset))
    fresh = fit(other, cfg, cpu, progress=False)
    resumed = fit(other, cfg, cpu, progress=False, checkpoint=ckpt)
    assert "belongs to another fit (differs in dataset)" in capsys.readouterr().err
    np.testing.assert_array_equal(resumed.A, fresh.A)  # trained from the start, not from the other dataset's model
    assert len(resumed.history) == 2


def test_a_truncated_checkpoint_is_ignored_and_replaced(tiny_dataset_clean, tmp_path, capsys):
    from ccstae.data import load_patterns
    from ccstae.train import FitConfig, fit

    data = load_patterns(str(tiny_dataset_clean))
    cfg = FitConfig(**SHORT_FIT)
    ckpt = tmp_path / "s.h5.ckpt"
    fit(data, cfg, torch.device("cpu"), progress=False, checkpoint=ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    result = fit(data, cfg, torch.device("cpu"), progress=False, checkpoint=ckpt)
    assert "ignoring the unreadable checkpoint" in capsys.readouterr().err
    assert len(result.history) == 2
    assert torch.load(ckpt, weights_only=False)["epoch"] == 2  # a whole checkpoint again
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5.ckpt"]  # no temporary file left


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    from ccstae.checkpoint import save_checkpoint

    path = tmp_path / "c.ckpt"
    save_checkpoint(path, {"dataset": "a"}, {"epoch": 1})

    def crash(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"dataset": "a"}, {"epoch": 2})
    monkeypatch.undo()
    assert torch.load(path, weights_only=False)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.ckpt"]


def test_fit_result_does_not_depend_on_the_machines_thread_count(tiny_dataset_clean, tmp_path):
    """PyTorch's default thread count follows OMP_NUM_THREADS (Snakemake sets it to the job's
    threads); the fit pins its own, so the strain maps are the same bytes."""
    cfg = tmp_path / "short.yaml"
    cfg.write_text(json.dumps({**SHORT_FIT, "refine_iterations": 1}))
    maps = []
    for threads in ("1", "2"):
        out = tmp_path / f"t{threads}.h5"
        env = {**os.environ, "OMP_NUM_THREADS": threads}
        res = _cli("ccstae.cli", "fit", "--dataset", str(tiny_dataset_clean), "--out", str(out), "--config", str(cfg), "--device", "cpu", "--no-progress", env=env)
        assert res.returncode == 0, res.stderr[-2000:]
        maps.append(read_strain(out))
    for key in KEYS:
        np.testing.assert_array_equal(maps[0][key], maps[1][key])


# --- failed seeds in the table -----------------------------------------------------------------


def test_a_failed_seed_is_counted_not_averaged_away(tiny_dataset, tmp_path):
    with DatasetReader(tiny_dataset) as ds:
        labels, mask = ds.labels(), ds.reference_mask
    ref = float(np.median(labels["theta"][mask]))
    files = []
    for seed in range(3):
        path = tmp_path / f"s{seed}.h5"
        if seed == 2:  # the failure record run_method writes
            nan = np.full(labels["exx"].shape, np.nan, np.float32)
            write_strain(path, {k: nan for k in KEYS}, method="m", method_version="0", device="cpu", wall_seconds=0.0, params={}, extra_attrs={"error": "command exited with status 1"})
        else:
            est = {"exx": labels["exx"] + 1e-3 * (seed + 1), "eyy": labels["eyy"], "exy": labels["exy"], "theta": labels["theta"] - ref}
            write_strain(path, est, method="m", method_version="0", device="cpu", wall_seconds=1.0, params={})
        metrics = evaluate(tiny_dataset, path)
        metrics["seed"] = seed
        files.append(tmp_path / f"m{seed}.json")
        files[-1].write_text(json.dumps(metrics))
    write_tables(files, tmp_path / "table")
    md = (tmp_path / "table.md").read_text()
    assert "1.50 ± 0.71 (2/3 seeds)" in md
    assert "3 seed(s) per cell" in md and "1 of 3 fits failed" in md


# --- run-method: never destroy, never credit ---------------------------------------------------


def test_run_method_keeps_a_valid_output_when_the_method_fails(tiny_dataset, tmp_path):
    out = _strain(tmp_path / "s.h5", (24, 24), value=0.5)
    before = out.read_bytes()
    assert run_method("m", "exit 3 {dataset} {strain}", str(tiny_dataset), str(out), 1) == 1
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def test_run_method_never_credits_a_file_it_did_not_write(tiny_dataset, tmp_path):
    out = _strain(tmp_path / "s.h5", (24, 24), value=0.5)  # from another dataset of the same scan shape
    status = run_method("m", "true {dataset} {strain}", str(tiny_dataset), str(out), 1)
    assert status == 1  # reported as the failure it is
    missing = tmp_path / "new.h5"
    assert run_method("m", "true {dataset} {strain}", str(tiny_dataset), str(missing), 1) == 0
    record = read_strain(missing)
    assert "wrote no strain file" in record.attrs["error"] and np.isnan(record.exx).all()


def test_run_method_records_a_crash_and_replaces_only_on_success(tiny_dataset, tmp_path):
    out = tmp_path / "s.h5"
    assert run_method("m", "exit 3 {dataset} {strain}", str(tiny_dataset), str(out), 1) == 0
    assert "status 3" in read_strain(out).attrs["error"]
    writer = tmp_path / "w.py"
    writer.write_text(
        "import sys, numpy as np\nfrom strainbench.io import write_strain\n"
        "write_strain(sys.argv[2], {k: np.zeros((24, 24), np.float32) for k in ('exx', 'eyy', 'exy', 'theta')}, "
        "method='m', method_version='0', device='cpu', wall_seconds=0.0, params={})\n"
    )
    assert run_method("m", f"{sys.executable} {writer} {{dataset}} {{strain}}", str(tiny_dataset), str(out), 1) == 0
    assert "error" not in read_strain(out).attrs and (read_strain(out).exx == 0).all()


@pytest.mark.parametrize("program", ["run-method", "py4dstem", "ccstae"])
def test_the_output_may_not_be_the_dataset(tiny_dataset, tmp_path, program):
    dataset = tmp_path / "d.h5"
    shutil.copy(tiny_dataset, dataset)
    before = dataset.read_bytes()
    args = {
        "run-method": ("strainbench.cli", "run-method", "--method", "m", "--command-template", "true {dataset} {strain}", "--dataset", str(dataset), "--out", str(dataset)),
        "py4dstem": ("baselines.py4dstem", "--dataset", str(dataset), "--out", str(dataset)),
        "ccstae": ("ccstae.cli", "fit", "--dataset", str(dataset), "--out", str(dataset)),
    }[program]
    res = _cli(*args)
    assert res.returncode == 2 and "is also an input" in res.stderr, res.stderr[-2000:]
    assert dataset.read_bytes() == before


def test_an_existing_file_of_another_kind_is_not_overwritten(tiny_dataset, tmp_path):
    other = tmp_path / "other.h5"
    shutil.copy(tiny_dataset, other)
    res = _cli("baselines.py4dstem", "--dataset", str(tiny_dataset), "--out", str(other))
    assert res.returncode == 2 and "refusing to overwrite" in res.stderr and "strainbench.dataset" in res.stderr
    assert validate_dataset(other).scan_shape == (24, 24)


def test_output_paths_are_checked_before_the_work(tiny_dataset, tmp_path, monkeypatch, capsys):
    import ccstae.data
    from ccstae.cli import main

    def never(*args, **kwargs):
        raise AssertionError("the dataset was read before the output path was checked")

    monkeypatch.setattr(ccstae.data, "load_patterns", never)
    folder = tmp_path / "folder"
    folder.mkdir()
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for out, message in ((folder, "is a folder"), (blocker / "s.h5", "cannot write in its folder")):
        assert main(["fit", "--dataset", str(tiny_dataset), "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    from baselines.py4dstem.__main__ import main as py4dstem_main

    assert py4dstem_main(["--dataset", str(tiny_dataset), "--out", str(folder)]) == 2
    assert "is a folder" in capsys.readouterr().err
    # a missing folder is created, as Snakemake does for its outputs
    from strainbench.io import check_output_path

    assert check_output_path(tmp_path / "new" / "deeper" / "s.h5").parent.is_dir()


# --- method folders and commands ---------------------------------------------------------------


def test_method_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "method.yaml"
    for text, message in (
        ("name: m\ncommand: false\nresources: {}\n", "'command' must be a string"),
        ("name: m\ncommand: run {dataset}\nresources: {}\n", "must contain {strain}"),
        ("name: 'my method'\ncommand: x {dataset} {strain}\nresources: {}\n", "'name' must be"),
        ("name: m\ncommand: x {dataset} {strain}\nresources: {gpus: 1}\n", "unknown resource 'gpus'"),
        ("- a list\n", "must be a mapping"),
    ):
        bad.write_text(text)
        with pytest.raises(ValueError, match=message) as err:
            load_method(bad)
        assert str(bad) in str(err.value)


def test_command_templates_keep_other_braces():
    cmd = render_command("awk '{print $1}' {dataset} > {strain} # {threads} {other}", "my scan.h5", "out.h5", 2)
    assert cmd == "awk '{print $1}' 'my scan.h5' > out.h5 # 2 {other}"


# --- clear messages ----------------------------------------------------------------------------


def test_an_all_zero_datacube_is_not_valid(tmp_path):
    path = tmp_path / "zeros.h5"
    mask = np.zeros((4, 5), bool)
    mask[0, 0] = True
    with DatasetWriter(path, (4, 5), (16, 16), np.ones((16, 16)), mask, {}) as w:
        w.write_rows(0, np.zeros((4, 5, 16, 16), np.float32))
    with pytest.raises(ContractError, match="every pattern of 'datacube' is zero") as err:
        validate_dataset(path)
    assert "zeros.h5" in str(err.value)
    from ccstae.data import load_patterns

    with pytest.raises(ContractError, match="zeros.h5: every pattern of the datacube is zero"):
        load_patterns(str(path))


def test_binning_too_far_is_a_message_not_a_traceback(tiny_dataset, tmp_path):
    from strainbench.importer import import_dataset

    with DatasetReader(tiny_dataset) as ds:
        np.save(tmp_path / "scan.npy", ds.read_rows(0, 24))
    for binning in (16, 24, 32, 48, 96):
        with pytest.raises(ContractError, match="too small: at least 16 px"):
            import_dataset(tmp_path / "scan.npy", tmp_path / "d.h5", reference_region="0:4,0:4", binning=binning)
    assert not (tmp_path / "d.h5").exists()
