"""Studies run in resumable pieces: a file per finished run, skipped when it exists, reported from disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks.quality.config import get_profile
from benchmarks.quality.study.catalogue import LARS_LRS, STUDIES, music_option_grid
from benchmarks.quality.study.cli import main
from benchmarks.quality.study.report import write_report
from benchmarks.quality.study.runner import chosen_values
from benchmarks.quality.study.store import RunLock
from tests.benchmarks.fashion_mnist import needs_fmnist
from tests.benchmarks.nan_injection import inject_nan

TINY = ["--data-limit", "256", "64", "--epochs", "1", "--subset", "64", "--batch-size", "32", "--no-progress"]


def test_studies_cover_the_claims_with_enough_seeds():
    assert STUDIES["seeds"].seeds == (0, 1, 2, 3, 4)
    assert len(STUDIES["long"].seeds) >= 3
    assert STUDIES["projector_dim"].values == (128, 256, 512, 1024, 2048, 4096)
    assert STUDIES["projector_depth"].values == (0, 1, 2)
    assert all(len(STUDIES[s].seeds) >= 2 for s in ("projector_dim", "projector_depth", "music_options"))
    assert STUDIES["stability"].values == (1, 2) and STUDIES["stability"].seeds == (0, 1, 2, 3, 4)
    assert STUDIES["projector_dim_tuned"].values == STUDIES["projector_dim"].values
    assert STUDIES["optimizer"].values[0] == {"optimizer": "sgd"}  # the tuned SGD run to beat
    assert len(LARS_LRS) >= 3 and all(v["optimizer"] == "lars" for v in STUDIES["optimizer"].values[1:])
    grid = music_option_grid((128, 4096))
    assert {g["segment_dim"] for g in grid if g["dim"] == 128 and "segment_dim" in g} == {8, 16, 32, 64}
    # Same effort as each peer's search: seven candidates per projection size.
    assert sum(g["dim"] == 4096 for g in grid) == 7


def test_each_study_declares_how_a_value_changes_the_main_runs_settings():
    base, params = get_profile("cpu"), {"lr": 0.1, "segment_dim": 32}
    main_run = STUDIES["seeds"].settings("main run", base, params)
    assert (main_run.profile, main_run.params, main_run.threads) == (base, params, None)
    long = STUDIES["long"].settings(STUDIES["long"].values[0], base, params)
    assert long.profile.epochs == 3 * base.epochs and long.profile.pretrain_subset is None
    for study in ("projector_dim", "projector_dim_tuned"):
        assert STUDIES[study].settings(256, base, params).profile.projector_output_dim == 256
    assert STUDIES["projector_depth"].settings(0, base, params).profile.projector_num_layers == 1
    options = STUDIES["music_options"].settings({"dim": 512, "segment_dim": 16}, base, params)
    assert options.profile.projector_output_dim == 512 and options.params == {"lr": 0.1, "segment_dim": 16}
    lars = STUDIES["optimizer"].settings({"optimizer": "lars", "lr": 3.0}, base, params)
    assert lars.params == {"lr": 3.0, "segment_dim": 32, "optimizer": "lars"} and lars.profile == base
    assert STUDIES["stability"].settings(2, base, params).threads == 2
    assert params == {"lr": 0.1, "segment_dim": 32}  # the main run's own settings are left as they were


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


def test_a_run_lock_keeps_a_second_process_off_and_a_dead_holder_is_taken_over(tmp_path):
    path = tmp_path / "runs" / "music__128__seed0.json"
    with RunLock(path) as first:
        assert first.held and path.with_suffix(".lock").read_text().strip() == str(os.getpid())
        with RunLock(path) as second:
            assert not second.held and str(os.getpid()) in second.reason
    assert not path.with_suffix(".lock").exists()

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    path.with_suffix(".lock").write_text(ended.stdout.decode())
    with RunLock(path) as lock:
        assert lock.held
    assert not path.with_suffix(".lock").exists()

    # A lock just created, before its holder wrote its process id, is held; an old empty one is not.
    path.with_suffix(".lock").write_text("")
    with RunLock(path) as lock:
        assert not lock.held and "taking" in lock.reason
    os.utime(path.with_suffix(".lock"), (0, 0))
    with RunLock(path) as lock:
        assert lock.held


@needs_fmnist
def test_a_study_skips_a_run_another_process_holds(tmp_path):
    args = ["projector_dim", "--out", str(tmp_path), "--values", "128", "256", "--seeds", "0", *TINY]
    held = tmp_path / "projector_dim" / "runs" / "music__128__seed0.lock"
    held.parent.mkdir(parents=True)
    held.write_text(f"{os.getpid()}\n")  # this test's own process: alive
    main([*args, "--methods", "music"])
    assert sorted(p.name for p in held.parent.glob("*.json")) == ["music__256__seed0.json"]
    assert held.is_file()  # someone else's lock is left alone


@needs_fmnist
def test_runs_equal_to_another_studys_are_copied_not_retrained(tmp_path):
    common = ["--out", str(tmp_path), "--seeds", "0", "--methods", "music", "--threads", "1", *TINY]
    main(["seeds", *common])
    seeds_run = json.loads((tmp_path / "seeds" / "runs" / "music__mainrun__seed0.json").read_text())
    assert seeds_run["row"]["threads"] == 1

    # The main run's projector size is one point of the projector_dim study: the same run, copied.
    main(["projector_dim", "--values", "1024", *common])
    copied = json.loads((tmp_path / "projector_dim" / "runs" / "music__1024__seed0.json").read_text())
    assert copied["from"] == "seeds/runs/music__mainrun__seed0.json"
    assert copied["row"] == seeds_run["row"] and copied["value"] == 1024

    # A seeds run trained at one thread is the one-thread stability run; at two threads it is not.
    summary = main(["stability", *common])
    runs = tmp_path / "stability" / "runs"
    one = json.loads((runs / "music__1__seed0.json").read_text())
    two = json.loads((runs / "music__2__seed0.json").read_text())
    assert one["from"] == "seeds/runs/music__mainrun__seed0.json" and one["settings"]["threads"] == 1
    assert one["row"]["final_loss"] == seeds_run["row"]["final_loss"] and one["row"]["diverged"] is None
    assert "from" not in two and two["row"]["threads"] == 2
    assert [e["methods"]["music"]["seeds"] for e in summary["values"]] == [[0], [0]]


@needs_fmnist
def test_the_report_covers_every_value_whichever_values_a_command_ran(tmp_path):
    args = ["projector_dim", "--out", str(tmp_path), "--seeds", "0", "--methods", "music", *TINY]
    main([*args, "--values", "128"])
    summary = main([*args, "--values", "256"])
    assert [e["value"] for e in summary["values"]] == [128, 256]
    table = (tmp_path / "projector_dim" / "table.md").read_text()
    assert "| 128 |" in table and "| 256 |" in table


def test_values_outside_the_study_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"--values=\['300'\].*not among the projector_dim study's values"):
        main(["projector_dim", "--out", str(tmp_path), "--values", "300", *TINY])
    with pytest.raises(ValueError, match="not among the music_options study's values"):
        main(["music_options", "--out", str(tmp_path), "--values", "128", *TINY])


@needs_fmnist
def test_optimizer_study_scores_lars_against_sgd_on_validation(tmp_path):
    args = ["optimizer", "--out", str(tmp_path), "--seeds", "0", "--methods", "vicreg", *TINY]
    summary = main([*args, "--tune-val-size", "64"])
    assert [e["value"] for e in summary["values"]] == list(STUDIES["optimizer"].values)
    assert all("comparison" not in e for e in summary["values"])  # a search: no test-split verdict
    runs = {
        json.loads(p.read_text())["value"]["lr"]: json.loads(p.read_text())
        for p in (tmp_path / "optimizer" / "runs").glob("vicreg__optimizerlars_*.json")
    }
    assert sorted(runs) == sorted(LARS_LRS)
    assert runs[0.3]["settings"]["params"]["optimizer"] == "lars"
    assert runs[0.3]["settings"]["params"]["lambda_param"] == 10.0  # the tuned loss options, unchanged
    assert "optimizerlars_lr0.3" in (tmp_path / "optimizer" / "table.md").read_text()


def _music_options_summary(folder, candidates):
    """A music_options summary.json: (options with dim, seeds, mean validation top-1) per candidate."""
    values = [
        {"value": value, "methods": {"music": {"seeds": seeds, "diverged": [], "linear_top1": top1}}}
        for value, seeds, top1 in candidates
    ]
    (folder / "music_options").mkdir(parents=True)
    (folder / "music_options" / "summary.json").write_text(json.dumps({"values": values}))


@needs_fmnist
def test_projector_dim_tuned_trains_music_at_its_chosen_options_and_copies_the_peers(tmp_path):
    common = ["--out", str(tmp_path), "--seeds", "0", *TINY]
    tuned = ["projector_dim_tuned", "--values", "128", "--methods", "music", "vicreg", *common]
    with pytest.raises(ValueError, match="music_options.*first"):
        main(tuned)
    main(["projector_dim", "--values", "128", "--methods", "vicreg", *common])
    _music_options_summary(
        tmp_path,
        [
            ({"dim": 128, "segment_dim": 8}, [0, 1], 80.0),
            ({"dim": 128, "segment_dim": 32}, [0, 1], 79.0),
            ({"dim": 128, "inv_weight": 2.0}, [0], 90.0),  # one seed of two: not eligible
            ({"dim": 256, "segment_dim": 16}, [1], 85.0),
        ],
    )
    main(tuned)
    runs = tmp_path / "projector_dim_tuned" / "runs"
    music = json.loads((runs / "music__128__seed0.json").read_text())
    assert music["settings"]["params"]["segment_dim"] == 8 and "inv_weight" not in music["settings"]["params"]
    assert "from" not in music  # trained, not copied
    vicreg = json.loads((runs / "vicreg__128__seed0.json").read_text())
    assert vicreg["from"] == "projector_dim/runs/vicreg__128__seed0.json"
    assert "segment_dim 8" in (tmp_path / "projector_dim_tuned" / "table.md").read_text()
    with pytest.raises(ValueError, match=r"projection size \[256\]"):
        main(["projector_dim_tuned", "--values", "256", *common])


def test_seed_studies_plot_every_seed_of_every_method(tmp_path):
    study = STUDIES["long"]
    runs = tmp_path / "long" / "runs"
    runs.mkdir(parents=True)
    diverged = {"seed": 2, "epoch": 3, "step": 9, "last_finite_loss": 1.0, "reason": "non-finite loss"}
    for m, method in enumerate(("music", "barlow_twins", "vicreg")):
        for seed in (0, 1, 2):
            top1 = None if (method, seed) == ("vicreg", 2) else 88.0 + m * 0.1 + seed * 0.2
            row = {"seed": seed, "linear_top1": top1, "knn_top1": top1, "final_loss": 1.0}
            row["diverged"] = diverged if top1 is None else None
            run = {"study": "long", "method": method, "value": study.values[0], "seed": seed, "row": row}
            (runs / f"{method}__x__seed{seed}.json").write_text(
                json.dumps({**run, "settings": {"params": {}}})
            )
    summary = write_report(study, tmp_path / "long")
    assert (tmp_path / "long" / "long.png").stat().st_size > 5000
    assert summary["values"][0]["methods"]["vicreg"]["diverged"][0]["seed"] == 2


def test_values_are_chosen_as_the_study_writes_them():
    multicrop = STUDIES["multicrop"]
    assert chosen_values(multicrop, ["2 views", "2+6views"]) == multicrop.values[:2]
    assert chosen_values(STUDIES["projector_dim"], ["128", "4096"]) == (128, 4096)
    with pytest.raises(ValueError, match="'2 views', '2\\+6 views'"):
        chosen_values(multicrop, ["3 views"])


@needs_fmnist
def test_a_new_study_is_one_declaration(tmp_path):
    """A study declared here and nowhere else is trained, resumed and reported by the one engine."""
    from dataclasses import replace

    from benchmarks.quality.study.catalogue import TEST, Study
    from benchmarks.quality.study.cli import parse_args
    from benchmarks.quality.study.plots import SweepPlot
    from benchmarks.quality.study.runner import run

    toy = Study(
        "toy",
        TEST,
        "projector_hidden_dim",
        (64, 128),
        (0,),
        vary=lambda run, value: replace(run, profile=replace(run.profile, projector_hidden_dim=value)),
        plot=SweepPlot("projector hidden width"),
        methods=("music", "vicreg"),
        home=tmp_path,
    )
    args = parse_args(["seeds", *TINY, "--max-steps", "2"])
    logged: list[str] = []
    summary = run(toy, args, logged.append)
    runs = tmp_path / "toy" / "runs"
    files = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")}
    assert sorted(files) == [f"{m}__{v}__seed0.json" for m in ("music", "vicreg") for v in (128, 64)]
    record = json.loads((runs / "music__64__seed0.json").read_text())
    assert record["settings"]["profile"]["projector_hidden_dim"] == 64 and record["value"] == 64
    assert 0 <= record["row"]["linear_top1"] <= 100
    assert [e["value"] for e in summary["values"]] == [64, 128]
    table = (tmp_path / "toy" / "table.md").read_text()
    assert table.startswith("Study `toy`: test linear top-1 (%)") and "| 128 |" in table
    assert json.loads((tmp_path / "toy" / "summary.json").read_text()) == summary
    assert (tmp_path / "toy" / "toy.png").stat().st_size > 1000

    logged.clear()
    assert run(toy, args, logged.append) == summary  # resumed: nothing trained, the same report
    assert {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")} == files
    assert not [line for line in logged if line.endswith("...")]
