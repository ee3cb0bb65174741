import json

import numpy as np
import pytest

from strainbench.io import DatasetReader, write_strain
from strainbench.figures import plot_grain_errors
from strainbench.metrics import evaluate, grain_table
from strainbench.table import write_tables


def _write(path, maps, method="oracle"):
    write_strain(path, maps, method=method, method_version="0", device="cpu", wall_seconds=2.0, params={})
    return path


@pytest.fixture
def truth(tiny_dataset):
    with DatasetReader(tiny_dataset) as ds:
        return ds.labels(), ds.reference_mask


def _relative(labels, mask):
    ref = float(np.median(labels["theta"][mask]))
    return {"exx": labels["exx"], "eyy": labels["eyy"], "exy": labels["exy"], "theta": labels["theta"] - ref}


def test_perfect_answer_scores_zero(tiny_dataset, truth, tmp_path):
    labels, mask = truth
    m = evaluate(tiny_dataset, _write(tmp_path / "s.h5", _relative(labels, mask)))
    assert m["coverage"] == 1.0
    assert m["mae"]["exx"] == m["mae"]["eyy"] == m["mae"]["exy"] == 0.0
    assert m["mae"]["theta"] == pytest.approx(0.0, abs=1e-4)  # float32 degrees
    assert m["n_positions"] == int((~mask).sum())
    assert m["noise_level"] == 0.25 and m["method"] == "oracle"


def test_offset_nan_and_symmetry(tiny_dataset, truth, tmp_path):
    labels, mask = truth
    est = _relative(labels, mask)
    est["exx"] = est["exx"] + 1e-3          # a constant offset counts in full: nothing is removed
    est["theta"] = est["theta"] + 60.0      # a symmetry-equivalent rotation is no error
    est["eyy"] = est["eyy"].copy()
    outside = np.argwhere(~mask)
    est["eyy"][tuple(outside[:10].T)] = np.nan
    est["exx"][mask] = 5.0                   # the reference region is not scored
    m = evaluate(tiny_dataset, _write(tmp_path / "s.h5", est))
    assert m["mae"]["exx"] == pytest.approx(1e-3, rel=1e-3)
    assert m["mae"]["theta"] == pytest.approx(0.0, abs=1e-4)
    assert m["coverage"] == pytest.approx(1 - 10 / outside.shape[0])


def test_per_grain_errors_find_the_grain_with_the_offset(tiny_dataset, truth, tmp_path):
    labels, mask = truth
    est = _relative(labels, mask)
    grains = np.unique(labels["grain"][~mask])
    g = int(grains[-1])
    on = labels["grain"] == g
    est["exx"] = np.where(on, est["exx"] + 2e-3, est["exx"])
    est["eyy"] = est["eyy"].copy()
    first = tuple(np.argwhere(on & ~mask)[0])
    est["eyy"][first] = np.nan
    m = evaluate(tiny_dataset, _write(tmp_path / "s.h5", est))
    rows = {r["grain"]: r for r in m["grains"]}
    assert set(rows) == set(grains.tolist())
    assert rows[g]["median_error"]["exx"] == pytest.approx(2e-3, rel=1e-3)
    assert rows[g]["mae"]["exx"] == pytest.approx(2e-3, rel=1e-3)
    assert rows[g]["coverage"] == pytest.approx(1 - 1 / rows[g]["positions"])
    assert rows[g]["positions"] == int((on & ~mask).sum())
    others = [r for k, r in rows.items() if k != g]
    assert all(abs(r["median_error"]["exx"]) < 1e-9 and r["coverage"] == 1.0 for r in others)
    assert all(r["layers"] == 1 for r in rows.values())  # tiny: single-layer grains, from the provenance
    with DatasetReader(tiny_dataset) as ds:
        assert m["reference_grain"] == int(ds.attrs["reference_grain"]) and m["reference_layers"] == 1
    table = grain_table(m["grains"])
    assert f"| {g} | 1 |" in table and "+2.00" in table


def test_grain_errors_figure(tiny_dataset, truth, tmp_path):
    labels, mask = truth
    est = _relative(labels, mask)
    paths = []
    for method in ("a", "b"):
        metrics = evaluate(tiny_dataset, _write(tmp_path / f"{method}.h5", est, method=method))
        paths.append(tmp_path / f"{method}.json")
        paths[-1].write_text(json.dumps(metrics))
    plot_grain_errors(paths, tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 0 and (tmp_path / "g.pdf").stat().st_size > 0
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({k: v for k, v in metrics.items() if k != "grains"}))
    with pytest.raises(ValueError, match="per-grain"):
        plot_grain_errors([bare], tmp_path / "h.png")


def test_zero_predictor_scores_mean_abs_label(tiny_dataset, truth, tmp_path):
    labels, mask = truth
    zeros = {k: np.zeros_like(labels["exx"]) for k in ("exx", "eyy", "exy", "theta")}
    m = evaluate(tiny_dataset, _write(tmp_path / "z.h5", zeros))
    assert m["mae"]["exy"] == pytest.approx(np.abs(labels["exy"][~mask]).mean(), rel=1e-5)


def test_shape_mismatch_is_refused(tiny_dataset, tmp_path):
    maps = {k: np.zeros((3, 3), np.float32) for k in ("exx", "eyy", "exy", "theta")}
    with pytest.raises(ValueError, match="but its dataset's scan is"):
        evaluate(tiny_dataset, _write(tmp_path / "s.h5", maps))


def test_table_beside_paper(tiny_dataset, truth, tmp_path):
    labels, mask = truth
    files = []
    for seed_offset, method in [(0, "a"), (1, "a"), (0, "b")]:
        est = _relative(labels, mask)
        est["exx"] = est["exx"] + 1e-3 * (1 + seed_offset)
        m = evaluate(tiny_dataset, _write(tmp_path / f"s{seed_offset}{method}.h5", est, method))
        m["seed"] = seed_offset
        files.append(tmp_path / f"m{seed_offset}{method}.json")
        files[-1].write_text(json.dumps(m))
    mae, extras = write_tables(files, tmp_path / "table")
    md = (tmp_path / "table.md").read_text()
    assert "paper CC-ST-AE" in md and "1.9" in md  # the paper's CC-ST-AE Strain Y at 25%
    assert "1.50 ± 0.71" in md                      # two seeds of method a: mean ± sd, x 1e-3
    assert (tmp_path / "table.csv").exists() and (tmp_path / "table.tex").exists()
    assert mae.shape[0] == 1
