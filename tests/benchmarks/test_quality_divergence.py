"""A method whose loss turns non-finite is recorded as diverged; the others finish and the run reports."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from benchmarks.quality.augment import BatchAugment
from benchmarks.quality.config import get_profile
from benchmarks.quality.data import ImageData
from benchmarks.quality.evaluate import knn_classify, linear_probe
from benchmarks.quality.study.cli import main as cli
from benchmarks.quality.train import pretrain
from tests.benchmarks.fashion_mnist import first_images, needs_fmnist
from tests.benchmarks.nan_injection import inject_nan


def main(argv: list[str]) -> dict:
    """The main run, as ``python -m benchmarks.quality`` runs it."""
    return cli(["main", *argv])


@pytest.fixture(scope="module")
def tiny() -> ImageData:
    return first_images(256, 64)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_probes_refuse_non_finite_features(bad):
    x = torch.randn(40, 8)
    y = torch.arange(40) % 4
    poisoned = x.clone()
    poisoned[3, 5] = bad
    with pytest.raises(ValueError, match="train_x.*non-finite"):
        linear_probe(poisoned[:30], y[:30], x[30:], y[30:], 4)
    with pytest.raises(ValueError, match="test_x.*non-finite"):
        linear_probe(x[:30], y[:30], poisoned[:10], y[:10], 4)
    with pytest.raises(ValueError, match="train_x.*non-finite"):
        knn_classify(poisoned[:30], y[:30], x[30:], y[30:], 4, ks=(5,))


@needs_fmnist
def test_pretrain_stops_at_the_first_non_finite_loss(monkeypatch, tiny):
    profile = replace(get_profile("cpu"), epochs=2, batch_size=64, pretrain_subset=256, monitor_bank=64)
    inject_nan(monkeypatch, "vicreg", after=5)  # 4 steps per epoch: the 6th step is epoch 2's 2nd
    augment = BatchAugment(profile.augment, *tiny.channel_stats())
    result = pretrain("vicreg", {"lr": 0.01}, tiny, profile, augment, monitor=False, progress=False)
    assert result.diverged
    assert result.divergence["epoch"] == 2 and result.divergence["step"] == 6
    assert math.isfinite(result.divergence["last_finite_loss"])
    assert result.divergence["reason"] == "non-finite loss"
    # The step with the NaN loss was not applied: the weights are still finite.
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


@needs_fmnist
def test_main_run_survives_a_diverging_method(monkeypatch, tmp_path, capsys):
    inject_nan(monkeypatch, "vicreg", after=1)
    out = tmp_path / "out"
    main(
        [
            "--out",
            str(out),
            "--batch-size",
            "32",
            "--subset",
            "64",
            "--epochs",
            "1",
            "--seeds",
            "0",
            "1",
            "--no-progress",
            "--workers",
            "1",  # the injected loss lives in this process
            "--untuned",
            "--data-limit",
            "200",
            "100",
        ]
    )
    results = json.loads((out / "results.json").read_text())
    vicreg = results["methods"]["vicreg"]
    assert [d["seed"] for d in vicreg["diverged"]] == [0, 1]
    assert all(
        d["epoch"] == 1 and d["step"] == 2 and math.isfinite(d["last_finite_loss"])
        for d in vicreg["diverged"]
    )
    assert vicreg["linear_top1"] is None
    for method in ("music", "barlow_twins", "raw_pixels", "random_init"):
        assert 0 <= results["methods"][method]["linear_top1"] <= 100, method
    comparison = results["comparison"]
    assert comparison["diverged"] == ["vicreg"]
    assert comparison["peers"]["vicreg"]["verdict"] == "diverged"
    assert comparison["peers"]["barlow_twins"]["verdict"] in ("win", "tie", "loss")
    assert "VICReg" in comparison["summary"] and "diverged" in comparison["summary"]
    table = (out / "table.md").read_text()
    assert "diverged" in table
    assert (out / "accuracy_over_epochs.png").stat().st_size > 1000

    # The main run's seeds count towards the seeds study: taken as run files, then skipped by the study.
    from benchmarks.quality.study.cli import main as study

    studies = tmp_path / "studies"
    tiny = [
        "--data-limit",
        "200",
        "100",
        "--subset",
        "64",
        "--batch-size",
        "32",
        "--epochs",
        "1",
        "--untuned",
    ]
    summary = study(
        ["seeds", "--out", str(studies), "--from-results", str(out / "results.json"), "--report-only"]
    )
    methods = summary["values"][0]["methods"]
    assert methods["music"]["seeds"] == [0, 1] and "linear_top1" in methods["music"]
    assert [d["seed"] for d in methods["vicreg"]["diverged"]] == [0, 1]
    before = sorted(p.name for p in (studies / "seeds" / "runs").glob("*.json"))
    assert len(before) == 6
    capsys.readouterr()
    main_table = [
        "--methods",
        "music",
        "barlow_twins",
        "vicreg",
    ]  # the study's others (the ceiling) are its own
    study(
        [
            "seeds",
            "--out",
            str(studies),
            "--seeds",
            "0",
            "1",
            "--max-runs",
            "0",
            "--no-progress",
            *main_table,
            *tiny,
        ]
    )
    assert "stopped after 0 new runs" not in capsys.readouterr().out  # nothing was left to run
    assert sorted(p.name for p in (studies / "seeds" / "runs").glob("*.json")) == before
