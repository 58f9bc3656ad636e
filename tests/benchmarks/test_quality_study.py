"""Studies run in resumable pieces: a file per finished run, skipped when it exists, reported from disk."""

from __future__ import annotations

import json

import pytest

from benchmarks.quality.data import DEBIAN_FASHION_MNIST
from benchmarks.quality.study import STUDIES, main, music_option_grid
from tests.benchmarks.test_quality_divergence import inject_nan

needs_fmnist = pytest.mark.skipif(
    not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST idx files missing: apt-get install -y dataset-fashion-mnist",
)

TINY = ["--data-limit", "256", "64", "--epochs", "1", "--subset", "64", "--batch-size", "32", "--no-progress"]


def test_studies_cover_the_claims_with_enough_seeds():
    assert STUDIES["seeds"].seeds == (0, 1, 2, 3, 4)
    assert len(STUDIES["long"].seeds) >= 3
    assert STUDIES["projector_dim"].values == (128, 256, 512, 1024, 2048, 4096)
    assert STUDIES["projector_depth"].values == (0, 1, 2)
    assert all(len(STUDIES[s].seeds) >= 2 for s in ("projector_dim", "projector_depth", "music_options"))
    assert STUDIES["stability"].values == (1, 2) and STUDIES["stability"].seeds == (0, 1, 2, 3, 4)
    grid = music_option_grid((128, 4096))
    assert {g["segment_dim"] for g in grid if g["dim"] == 128 and "segment_dim" in g} == {8, 16, 32, 64}
    # Same effort as each peer's search: seven candidates per projection size.
    assert sum(g["dim"] == 4096 for g in grid) == 7


@needs_fmnist
def test_projector_dim_study_resumes_and_reports(tmp_path):
    args = ["projector_dim", "--out", str(tmp_path), "--values", "128", "256", "--seeds", "0", "1", *TINY]
    args += ["--methods", "music", "vicreg"]
    main([*args, "--max-runs", "4"])
    runs = tmp_path / "projector_dim" / "runs"
    first = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")}
    assert len(first) == 4
    assert all(name.endswith("__seed0.json") for name in first)  # seed-major: whole seeds first

    summary = main(args)
    files = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")}
    assert len(files) == 8  # 2 dims x 2 methods x 2 seeds
    assert all(files[name] == mtime for name, mtime in first.items())  # finished runs were skipped
    for entry in summary["values"]:
        for method in ("music", "vicreg"):
            stats = entry["methods"][method]
            assert stats["seeds"] == [0, 1] and 0 <= stats["linear_top1"] <= 100
        assert entry["comparison"]["peers"]["vicreg"]["verdict"] in ("win", "tie", "loss")
    table = (tmp_path / "projector_dim" / "table.md").read_text()
    assert "| 128 |" in table and "| 256 |" in table and "(n=2)" in table
    assert (tmp_path / "projector_dim" / "projector_dim.png").stat().st_size > 1000

    # A run file made with other settings is never mixed in.
    with pytest.raises(ValueError, match="other settings"):
        main([*args, "--batch-size", "16"])


@needs_fmnist
def test_stability_study_records_divergence(monkeypatch, tmp_path):
    inject_nan(monkeypatch, "vicreg", after=1)
    args = ["stability", "--out", str(tmp_path), "--values", "1", "--seeds", "0", *TINY]
    summary = main([*args, "--methods", "music", "vicreg"])
    methods = summary["values"][0]["methods"]
    assert methods["vicreg"]["diverged"][0]["step"] == 2 and not methods["music"]["diverged"]
    run = json.loads((tmp_path / "stability" / "runs" / "vicreg__1__seed0.json").read_text())
    assert run["settings"]["threads"] == 1
    assert (
        "Diverged: VICReg (lightly) at 1: seed 0 (epoch 1, step 2"
        in (tmp_path / "stability" / "table.md").read_text()
    )
