"""The field study's peers: each lightly loss trains through the shared loop as lightly ships it, and the
search writes every finished candidate, so a stopped search resumes."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.quality.config import get_profile
from benchmarks.quality.search import LOSS_ALTERNATIVES, LOSS_FURTHER, tune
from benchmarks.quality.ssl_methods import (
    DEFAULT_LOSS_PARAMS,
    FIELD_METHODS,
    PEER_METHODS,
    build_loss,
    projector_output_dim,
)
from benchmarks.quality.study.catalogue import STUDIES
from tests.benchmarks.test_quality_protocol import fake_data


@pytest.mark.parametrize("method", FIELD_METHODS)
def test_every_field_method_gives_a_finite_loss_and_gradient_for_two_views(method):
    torch.manual_seed(0)
    width = projector_output_dim(method, {}, 256)
    z_a = torch.randn(256, width, requires_grad=True)
    z_b = (z_a.detach() + 0.1 * torch.randn(256, width)).requires_grad_()
    loss = build_loss(method, DEFAULT_LOSS_PARAMS[method])(z_a, z_b)
    loss.backward()
    assert loss.shape == () and torch.isfinite(loss)
    assert torch.isfinite(z_a.grad).all() and z_a.grad.abs().sum() > 0 and z_b.grad.abs().sum() > 0


def test_methods_with_their_own_head_width_get_it_and_the_others_the_shared_one():
    assert projector_output_dim("simclr", {}, 1024) == 128
    assert projector_output_dim("lejepa", {}, 1024) == 64
    assert projector_output_dim("wmse", {"embedding_dim": 32}, 1024) == 32
    for method in ("music", "barlow_twins", "vicreg", "visreg"):
        assert projector_output_dim(method, {}, 1024) == 1024


def test_lejepa_with_two_views_is_its_loss_over_two_global_views():
    from lightly.loss import LeJEPALoss
    from lightly.loss.lejepa_loss import lejepa_invariance_loss

    torch.manual_seed(0)
    z_a, z_b = torch.randn(64, 16), torch.randn(64, 16)
    views = torch.stack([z_a, z_b])
    torch.manual_seed(1)  # the same random slices in both
    ours = build_loss("lejepa", {"lambda_param": 0.2})(z_a, z_b)
    torch.manual_seed(1)
    loss = LeJEPALoss(lambda_param=0.2)
    theirs = 0.2 * loss.sigreg(views) + 0.8 * lejepa_invariance_loss(all_proj=views, global_proj=views)
    torch.testing.assert_close(ours, theirs)


def test_visreg_with_two_views_passes_them_as_global_views_and_no_local_ones():
    from lightly.loss import VISRegLoss

    torch.manual_seed(0)
    z_a, z_b = torch.randn(64, 16), torch.randn(64, 16)
    torch.manual_seed(1)
    ours = build_loss("visreg", {"lambda_param": 0.6})(z_a, z_b)
    torch.manual_seed(1)
    theirs = VISRegLoss(lambda_param=0.6)(
        local_proj=torch.empty(0, 64, 16), global_proj=torch.stack([z_a, z_b])
    )
    torch.testing.assert_close(ours, theirs)


def test_every_peer_has_the_same_search_budget_as_music():
    for method in PEER_METHODS:
        assert len(LOSS_ALTERNATIVES[method]) == len(LOSS_ALTERNATIVES["music"]) == 2
        assert len(LOSS_FURTHER[method]) == len(LOSS_FURTHER["music"]) == 2
        for options in (*LOSS_ALTERNATIVES[method], *LOSS_FURTHER[method]):
            assert set(options) == set(DEFAULT_LOSS_PARAMS[method])
            build_loss(method, options)  # every candidate is a valid loss


def test_the_field_study_compares_every_method_on_three_seeds_at_the_main_runs_settings():
    study = STUDIES["field"]
    assert study.methods == FIELD_METHODS and len(study.seeds) >= 3 and study.kind.name == "test"
    assert study.values == STUDIES["seeds"].values
    # Every method trains here, cost measured in the same runs and every pair of seeds on one machine.
    assert not study.reuses_runs and study.per_method_table


class Stopped(Exception):
    """The search's process ends (a session, a machine) in the middle of a candidate."""


def test_a_search_stopped_after_a_candidate_resumes_from_the_written_file(monkeypatch, tmp_path):
    import benchmarks.quality.search as search_module

    scored, stop_at = [], [5]

    def fake_score(method, params, split, profile, augment, seed, device, progress):
        if stop_at and len(scored) == stop_at[0]:  # the third candidate's second seed: the process stops
            stop_at.clear()
            raise Stopped
        scored.append((method, json.dumps(params, sort_keys=True), seed))
        acc = 80.0 + params["lr"]
        return {"seed": seed, "linear_top1": acc, "knn_top1": acc, "diverged": None, "seconds": 1.0}

    monkeypatch.setattr(search_module, "score_config", fake_score)
    monkeypatch.setattr(search_module, "validation_split", lambda data, n, seed: data)
    path = tmp_path / "tuned.json"
    profile = get_profile("cpu")
    with pytest.raises(Stopped):
        tune(fake_data(), profile, "fake", ("simclr",), path=path, progress=False, log=lambda *_: None)
    entry = json.loads(path.read_text())["cpu/fake"]
    assert [r["params"]["lr"] for r in entry["trials"]["simclr"]] == [0.03, 0.1]
    assert "simclr" not in entry["chosen"]

    before = len(scored)
    tune(
        fake_data(), profile, "fake", ("simclr",), path=path, progress=False, log=lambda *_: None, reuse=True
    )
    rescored = {json.loads(params)["lr"] for _, params, _ in scored[before:] if "0.5" in params}
    assert rescored.isdisjoint({0.03, 0.1})  # the two written candidates are reused, not trained again
    entry = json.loads(path.read_text())["cpu/fake"]
    assert entry["chosen"]["simclr"]["lr"] == max(r["params"]["lr"] for r in entry["trials"]["simclr"])


def test_the_field_report_gives_each_methods_probes_cost_and_difference_to_music(tmp_path):
    from benchmarks.quality.study.report import write_report
    from benchmarks.quality.study.store import run_path, write_json

    study = STUDIES["field"]
    value = study.values[0]
    scores = {"music": (88.0, 84.0, 30.0, 29.0, 80.0), "simclr": (87.0, 85.0, 20.0, 19.0, 70.0)}
    for method, (linear, knn, seconds, cpu_seconds, mib) in scores.items():
        for seed in (0, 1, 2):
            row = {
                "seed": seed,
                "linear_top1": linear + 0.1 * seed,
                "knn_top1": knn - 0.1 * seed * (method == "simclr"),
                "seconds_per_epoch": seconds,
                "cpu_seconds_per_epoch": cpu_seconds,
                "peak_step_mib": mib,
                "diverged": None,
            }
            record = {
                "study": "field",
                "method": method,
                "value": value,
                "seed": seed,
                "row": row,
                "settings": {"params": {}},
            }
            write_json(run_path(tmp_path, study, method, value, seed), record)
    write_report(study, tmp_path / study.name, with_plot=False)
    table = (tmp_path / "field" / "table.md").read_text()
    assert (
        "| MUSIC (music-ssl) | 88.10 ± 0.10 (n=3) | 84.00 ± 0.00 (n=3) | 30.0 | 29.0 | 80.0 | – | – |"
        in table
    )
    assert (
        "| SimCLR (lightly) | 87.10 ± 0.10 (n=3) | 84.90 ± 0.10 (n=3) | 20.0 | 19.0 | 70.0 | +1.00 " in table
    )
    assert "(win) | -0.90 [" in table  # MUSIC ahead on the linear probe, behind on kNN


def test_the_field_plot_draws_every_method(tmp_path):
    from benchmarks.quality.study.plots import SeedsPlot

    study = STUDIES["field"]
    runs = [
        {"method": m, "seed": seed, "row": {"linear_top1": 80.0 + i, "knn_top1": 78.0 + i, "diverged": None}}
        for i, m in enumerate(study.methods)
        for seed in (0, 1, 2)
    ]
    assert SeedsPlot().draw({}, study, tmp_path / "field.png", runs)
    assert (tmp_path / "field.png").stat().st_size > 0


@pytest.mark.parametrize("method", PEER_METHODS)
def test_every_candidate_of_the_search_trains_a_step(method):
    """Each candidate's head and loss, through the shared loop (a W-MSE embedding of 16 is narrower than
    MUSIC's segments: the head of a method without segments reads its output as one segment)."""
    from dataclasses import replace

    from benchmarks.quality.augment import BatchAugment
    from benchmarks.quality.train import pretrain
    from tests.benchmarks.fashion_mnist import first_images

    data = first_images(256, 16)
    profile = replace(get_profile("cpu"), pretrain_subset=256, epochs=1)  # batch 256, as searched
    augment = BatchAugment(profile.augment, *data.channel_stats())
    for options in (DEFAULT_LOSS_PARAMS[method], *LOSS_ALTERNATIVES[method], *LOSS_FURTHER[method]):
        params = {"lr": 0.01, **options}
        trained = pretrain(method, params, data, profile, augment, max_steps=1, monitor=False, progress=False)
        width = projector_output_dim(method, params, profile.projector_output_dim)
        assert not trained.diverged and trained.model.projector.output_dim == width, (method, options)


def test_the_sensitivity_table_reads_each_methods_search():
    from benchmarks.quality.study.main_report import sensitivity_table

    def trial(stage, lr, score, diverged=False, **options):
        return {
            "stage": stage,
            "params": {"lr": lr, **options},
            "linear_top1": None if diverged else score,
            "diverged": [{"seed": 0}] if diverged else [],
        }

    entry = {
        "trials": {
            "simclr": [
                trial(1, 0.03, 84.0, temperature=0.5),
                trial(1, 0.1, 85.0, temperature=0.5),
                trial(1, 0.3, 0.0, diverged=True, temperature=0.5),
                trial(2, 0.1, 84.5, temperature=0.2),
            ]
        }
    }
    table = sensitivity_table(entry)
    assert "| SimCLR (lightly) | 0.03, 0.1, 0.3 | 1.00 | 2 | 0.50 | 1 of 4 |" in table


@pytest.mark.parametrize("method", ["music", "wmse", "visreg"])
def test_measuring_a_steps_memory_changes_nothing_the_run_gives(method, monkeypatch):
    """The measured step runs on copies inside a fork of torch's random state: the trained model (its
    BatchNorm statistics included), and the random numbers drawn after it, are those of a run without it."""
    from dataclasses import replace

    import benchmarks.quality.train as train_module
    from benchmarks.quality.augment import BatchAugment
    from tests.benchmarks.fashion_mnist import first_images

    data = first_images(256, 16)
    profile = replace(get_profile("cpu"), pretrain_subset=256, epochs=1)
    augment = BatchAugment(profile.augment, *data.channel_stats())
    params = {"lr": 0.01, **DEFAULT_LOSS_PARAMS[method]}

    def run():
        trained = train_module.pretrain(method, params, data, profile, augment, monitor=False, progress=False)
        return trained, torch.rand(3)

    measured, after_measured = run()
    monkeypatch.setattr(train_module, "step_memory", lambda *args: None)
    plain, after_plain = run()
    assert measured.peak_step_bytes > 0 and plain.peak_step_bytes is None
    assert measured.cpu_seconds > 0 and plain.cpu_seconds > 0
    want = plain.model.state_dict()
    for name, got in measured.model.state_dict().items():
        assert torch.equal(got, want[name]), name
    assert torch.equal(after_measured, after_plain)
