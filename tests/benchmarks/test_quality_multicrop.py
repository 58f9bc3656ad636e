"""Multi-crop in the quality benchmark: local views reach every method's loss, the two-view losses are
averaged over MUSIC's pairs, a profile without local views is the two-view one the committed runs were
made with, and the multicrop study runs, resumes and compares each method with itself at two views."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import pytest
import torch

from benchmarks.quality.augment import AugmentConfig, BatchAugment
from benchmarks.quality.config import MULTI_CROP_SETTINGS, RESULTS, get_profile
from benchmarks.quality.ssl_methods import (
    DEFAULT_LOSS_PARAMS,
    GlobalPairsMean,
    build_loss,
    global_pairs,
    multi_view_loss,
)
from benchmarks.quality.study.catalogue import (
    LOCAL_VIEWS,
    MULTI_CROP,
    MULTI_CROP_EQUAL_TIME,
    MULTI_CROP_TIME_RATIO,
    STUDIES,
    TWO_VIEWS,
)
from benchmarks.quality.study.cli import main
from benchmarks.quality.study.report import write_report
from benchmarks.quality.study.store import run_path, run_settings, write_json
from benchmarks.quality.tuned import method_params
from tests.benchmarks.fashion_mnist import first_images, needs_fmnist

TINY = ["--data-limit", "256", "64", "--epochs", "1", "--subset", "64", "--batch-size", "32", "--no-progress"]
# Every pair with a global view among 2 global and 3 local views, written out: (global, global) once,
# each global view with each local one, never two local views.
PAIRS_2_PLUS_3 = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4)]


def _views(count: int, n: int = 64, dim: int = 32, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, dim, generator=g)
    return [(base + 0.5 * torch.randn(n, dim, generator=g)).requires_grad_() for _ in range(count)]


def test_local_views_are_crops_of_every_image_resampled_to_the_local_side_view_by_view():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    aug = BatchAugment(AugmentConfig(crop_scale=(0.25, 1.0)), [0.5], [0.25])
    local = aug.local(images, 3, 14, (0.05, 0.25), torch.Generator().manual_seed(0))
    assert local.shape == (12, 1, 14, 14) and local.dtype == torch.float32 and torch.isfinite(local).all()
    assert not torch.allclose(local[:4], local[4:8])  # each view its own crops
    assert aug(images, torch.Generator().manual_seed(0)).shape == (4, 1, 28, 28)  # the global views
    # A crop of the whole image without flip or jitter, at the image's side, is the image itself.
    plain = BatchAugment(AugmentConfig(crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0), [0.5], [0.25])
    whole = plain.local(images, 2, 28, (1.0, 1.0))
    torch.testing.assert_close(whole, plain.plain(images).repeat(2, 1, 1, 1), atol=1e-5, rtol=0)


def test_the_small_cnn_takes_local_views_of_any_side():
    from benchmarks.quality.models import build_backbone

    backbone = build_backbone("small_cnn", 1)
    for side in (28, 14, 12):
        assert backbone(torch.randn(2, 1, side, side)).shape == (2, 256)


@needs_fmnist
@pytest.mark.parametrize("method", ["music", "barlow_twins", "lejepa"])
def test_local_views_reach_the_loss_with_their_shapes(method, monkeypatch):
    """Each step gives the loss the two global views and the local ones, each (batch, width); the model
    sees the global views at 28 px and the local ones at their side, all in one forward."""
    import benchmarks.quality.train as train_module
    from benchmarks.quality.ssl_methods import projector_output_dim

    data = first_images(64, 16)
    profile = replace(
        get_profile("cpu"), epochs=1, batch_size=32, pretrain_subset=64, local_views=3, local_size=14
    )
    calls, inputs = [], []
    build_model, wrap = train_module.build_model, train_module.multi_view_loss

    def recording_model(*args, **kwargs):
        model = build_model(*args, **kwargs)
        model.backbone.register_forward_pre_hook(lambda module, x: inputs.append(tuple(x[0].shape)))
        return model

    def recording_loss(name, loss):
        inner = wrap(name, loss)

        def forward(*views):
            calls.append([tuple(v.shape) for v in views])
            return inner(*views)

        return type("Recording", (torch.nn.Module,), {"forward": lambda self, *v: forward(*v)})()

    monkeypatch.setattr(train_module, "build_model", recording_model)
    monkeypatch.setattr(train_module, "multi_view_loss", recording_loss)
    augment = BatchAugment(profile.augment, *data.channel_stats())
    params = {"lr": 0.01, **DEFAULT_LOSS_PARAMS[method]}
    trained = train_module.pretrain(method, params, data, profile, augment, monitor=False, progress=False)
    width = projector_output_dim(method, params, profile.projector_output_dim)
    assert not trained.diverged and trained.peak_step_bytes > 0
    # Two training steps, then the step whose memory is measured: each with 2 + 3 views.
    assert calls == [[(32, width)] * 5] * 3
    assert inputs == [(32, 1, 28, 28), (32, 1, 28, 28), (96, 1, 14, 14)] * 3


@pytest.mark.parametrize("method", ["barlow_twins", "vicreg"])
def test_a_two_view_loss_is_averaged_over_musics_pairs(method):
    two_view = build_loss(method, DEFAULT_LOSS_PARAMS[method])
    views = _views(5)
    assert global_pairs(5) == PAIRS_2_PLUS_3
    got = multi_view_loss(method, two_view)(*views)
    want = torch.stack([two_view(views[i], views[j]) for i, j in PAIRS_2_PLUS_3]).mean()
    torch.testing.assert_close(got, want)
    assert isinstance(multi_view_loss(method, two_view), GlobalPairsMean)
    # Two views: the two-view loss itself.
    torch.testing.assert_close(GlobalPairsMean(two_view)(*views[:2]), two_view(*views[:2]))


def test_music_takes_every_view_and_averages_over_the_same_pairs():
    from music_ssl import MUSICLoss

    core = MUSICLoss(segment_dim=8, temperature=0.25)
    views = _views(5)
    got = multi_view_loss("music", core)(*views)
    torch.testing.assert_close(got, core(views, num_global=2))
    # The core's multi-view loss is the two-view loss averaged over the pairs the peers' wrapper uses.
    pairwise = torch.stack([core(views[i], views[j]) for i, j in PAIRS_2_PLUS_3]).mean()
    torch.testing.assert_close(got, pairwise)


@pytest.mark.parametrize("method", ["lejepa", "visreg"])
def test_lejepa_and_visreg_get_the_global_views_as_global_and_the_local_ones_as_local(method):
    from lightly.loss import LeJEPALoss, VISRegLoss

    lightly_loss = {"lejepa": LeJEPALoss, "visreg": VISRegLoss}[method]
    params = DEFAULT_LOSS_PARAMS[method]
    views = _views(5)
    torch.manual_seed(1)  # the same random slices in both
    ours = multi_view_loss(method, build_loss(method, params))(*views)
    torch.manual_seed(1)
    theirs = lightly_loss(lambda_param=params["lambda_param"])(
        local_proj=torch.stack(views[2:]), global_proj=torch.stack(views[:2])
    )
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("method", ["simclr", "wmse"])
def test_a_loss_that_takes_two_views_refuses_local_ones(method):
    with pytest.raises(ValueError, match="takes two views"):
        multi_view_loss(method, build_loss(method, DEFAULT_LOSS_PARAMS[method]))


def test_without_local_views_the_settings_are_those_of_the_committed_runs():
    base = get_profile("cpu")
    assert base.local_views == 0 and not set(MULTI_CROP_SETTINGS) & set(base.to_dict())
    with_local = replace(base, local_views=LOCAL_VIEWS).to_dict()
    assert with_local["local_views"] == LOCAL_VIEWS and with_local["local_size"] == 14
    # The multicrop study's two-view runs are the field study's (and the seeds study's) committed runs:
    # the same settings, so copied, never retrained; its runs with local views differ, so never mixed in.
    params, _ = method_params(base, "fashion_mnist")
    args = argparse.Namespace(dataset="fashion_mnist", data_limit=None, max_steps=None, stop_epoch=None)
    study = STUDIES["multicrop"]
    for source in ("field", "seeds"):
        other = STUDIES[source]
        for method in (m for m in study.methods if m in other.methods):
            for seed in study.seeds:
                path = run_path(RESULTS / "studies", other, method, other.values[0], seed)
                committed = json.loads(path.read_text())["settings"]
                for value in (TWO_VIEWS, MULTI_CROP):
                    ours = run_settings(study.settings(value, base, params[method]), args)
                    assert (ours == committed) == (value == TWO_VIEWS), (source, method, seed, value)


def test_the_multicrop_study_compares_views_at_equal_epochs_and_at_equal_time():
    study = STUDIES["multicrop"]
    assert study.kind.name == "test" and len(study.seeds) >= 3 and study.per_method_table
    assert (
        study.values == (TWO_VIEWS, MULTI_CROP, MULTI_CROP_EQUAL_TIME) and study.reference_value == TWO_VIEWS
    )
    assert study.methods == ("music", "barlow_twins", "vicreg", "lejepa")
    base, params = get_profile("cpu"), {"lr": 0.1}
    two, multi, equal = (study.settings(v, base, params).profile for v in study.values)
    assert two == base and (multi.local_views, multi.epochs) == (LOCAL_VIEWS, base.epochs)
    assert equal.local_views == LOCAL_VIEWS and equal.epochs == round(base.epochs / MULTI_CROP_TIME_RATIO)
    assert 1 <= equal.epochs < base.epochs
    # Every method at two views and with the local views; MUSIC alone at equal time.
    assert all(study.trains(m, v) for m in study.methods for v in (TWO_VIEWS, MULTI_CROP))
    assert [m for m in study.methods if study.trains(m, MULTI_CROP_EQUAL_TIME)] == ["music"]
    assert all(STUDIES["projector_dim"].trains(m, 128) for m in ("music", "simclr"))  # others unchanged


@needs_fmnist
def test_the_multicrop_study_runs_resumes_and_copies_the_field_studys_two_view_runs(tmp_path):
    common = ["--out", str(tmp_path), *TINY]
    main(["seeds", *common, "--seeds", "0", "--methods", "music"])
    main(["field", *common, "--seeds", "0", "1", "--methods", "music"])
    args = ["multicrop", *common, "--seeds", "0", "1", "--methods", "music", "vicreg"]
    main([*args, "--max-runs", "2"])
    runs = tmp_path / "multicrop" / "runs"
    first = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")}
    assert len(first) == 3  # seed 0: MUSIC's two-view run copied, VICReg's and MUSIC's 2+6 trained
    summary = main(args)
    files = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")}
    # Per seed: MUSIC and VICReg at 2 views and at 2+6 views, MUSIC at equal time.
    assert len(files) == 10 and all(files[name] == mtime for name, mtime in first.items())
    assert not list(runs.glob("vicreg__2+6views_equaltime__*"))
    copied = json.loads((runs / "music__2views__seed0.json").read_text())
    assert copied["from"] == "field/runs/music__mainrun__seed0.json"  # the field study's, not the seeds'
    multi = json.loads((runs / "music__2+6views__seed0.json").read_text())
    assert multi["settings"]["profile"]["local_views"] == LOCAL_VIEWS and "from" not in multi

    by_value = {e["value"]: e for e in summary["values"]}
    assert set(by_value[MULTI_CROP_EQUAL_TIME]["methods"]) == {"music"}
    assert "versus_reference" not in by_value[TWO_VIEWS]
    for value in (MULTI_CROP, MULTI_CROP_EQUAL_TIME):
        versus = by_value[value]["versus_reference"]
        assert versus["music"]["linear_top1"]["seeds"] == [0, 1] and versus["music"]["time_ratio"] > 0
        assert versus["music"]["verdict"] in ("win", "tie", "loss")
    assert set(by_value[MULTI_CROP]["versus_reference"]) == {"music", "vicreg"}
    table = (tmp_path / "multicrop" / "table.md").read_text()
    assert "| 2+6views |" in table and "| 2+6views_equaltime |" in table
    assert "Each method minus itself at 2views" in table
    assert (tmp_path / "multicrop" / "multicrop.png").stat().st_size > 1000


def _write_multicrop_runs(out, copied_two_view_runs=()):
    """Three seeds of MUSIC (every value) and LeJEPA (no equal-time runs) with made-up scores; the
    two-view runs of the methods in ``copied_two_view_runs`` name the field study as their source."""
    study = STUDIES["multicrop"]
    # linear top-1 at (2 views, 2+6 views, equal time) and pretraining seconds, per method
    scores = {
        "music": ((87.0, 88.0, 87.5), (100.0, 300.0, 120.0)),
        "lejepa": ((85.0, 84.0, None), (200.0, 800.0, None)),
    }
    for method, (tops, seconds) in scores.items():
        for value, top1, s in zip(study.values, tops, seconds, strict=True):
            if top1 is None:
                continue
            for seed in (0, 1, 2):
                row = {
                    "seed": seed,
                    "linear_top1": top1 + 0.1 * seed * (value == MULTI_CROP),
                    "knn_top1": top1 - 1.0,
                    "seconds": s,
                    "seconds_per_epoch": s / 10,
                    "diverged": None,
                }
                record = {"study": study.name, "method": method, "value": value, "seed": seed}
                if value == TWO_VIEWS and method in copied_two_view_runs:
                    record["from"] = f"field/runs/{method}__mainrun__seed{seed}.json"
                write_json(
                    run_path(out, study, method, value, seed),
                    {**record, "row": row, "settings": {"params": {}}},
                )
    return study


def test_the_multicrop_report_compares_each_method_with_itself_at_two_views(tmp_path):
    study = _write_multicrop_runs(tmp_path)
    write_report(study, tmp_path / study.name, with_plot=False)
    table = (tmp_path / "multicrop" / "table.md").read_text()
    lejepa = "LeJEPA [global: the 2 global views, all: every view] (lightly)"
    assert f"| views | MUSIC (music-ssl) | {lejepa} |" in table
    assert (
        "| 2+6views | +1.10 [+0.85, +1.35] (win); kNN +1.00 [+0.98, +1.02]; time x3.00 "
        "| -0.90 [-1.15, -0.65] (loss); kNN -1.00 [-1.02, -0.98]; time x4.00 |" in table
    )
    assert (
        "| 2+6views_equaltime | +0.50 [+0.48, +0.52] (win); kNN +0.50 [+0.48, +0.52]; time x1.20 | – |"
        in table
    )
    assert f"| {lejepa} | 84.10 ± 0.10 (n=3) |" in table  # the method's row says which views are which


def test_a_time_ratio_against_runs_copied_from_another_study_is_marked(tmp_path):
    study = _write_multicrop_runs(tmp_path, copied_two_view_runs=("music",))
    summary = write_report(study, tmp_path / study.name, with_plot=False)
    versus = {e["value"]: e["versus_reference"] for e in summary["values"] if "versus_reference" in e}
    assert versus[MULTI_CROP]["music"]["time_across"] == ["field"]
    assert versus[MULTI_CROP_EQUAL_TIME]["music"]["time_across"] == ["field"]
    assert "time_across" not in versus[MULTI_CROP]["lejepa"]  # both sides trained by the study itself
    table = (tmp_path / "multicrop" / "table.md").read_text()
    assert "; time x3.00† | -0.90 [-1.15, -0.65] (loss); kNN -1.00 [-1.02, -0.98]; time x4.00 |" in table
    assert "time x1.20† |" in table
    assert "† One side's runs are copied from `field` (each run file names its source)" in table


def test_a_time_ratio_between_runs_of_the_study_itself_is_not_marked(tmp_path):
    write_report(_write_multicrop_runs(tmp_path), tmp_path / "multicrop", with_plot=False)
    assert "†" not in (tmp_path / "multicrop" / "table.md").read_text()
