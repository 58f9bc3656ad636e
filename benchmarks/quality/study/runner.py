"""Running a study: every missing run, seed by seed, each trained once by one of the processes sharing it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.quality.augment import BatchAugment
from benchmarks.quality.config import Profile
from benchmarks.quality.data import ImageData, validation_split
from benchmarks.quality.models import save_model
from benchmarks.quality.run import train_and_evaluate
from benchmarks.quality.study.catalogue import RunSettings, Study, value_label
from benchmarks.quality.study.lock import RunLock
from benchmarks.quality.study.report import write_report
from benchmarks.quality.study.reuse import equivalent_run, music_choices
from benchmarks.quality.study.store import read_run, run_path, run_settings, write_run
from benchmarks.quality.train import pretrain
from benchmarks.quality.tune import score_config


def train_run(
    study: Study, method: str, seed: int, run: RunSettings, data: ImageData, split: ImageData | None, args
) -> dict[str, Any]:
    """One run, scored as the study's kind asks: on the test split, on the validation split, or by how its
    pretraining went."""
    previous_threads = torch.get_num_threads()
    if run.threads is not None:
        torch.set_num_threads(run.threads)
    profile, params = run.profile, run.params
    start = time.perf_counter()
    try:
        if study.kind == "test":
            augment = BatchAugment(profile.augment, *data.channel_stats())
            row, trained = train_and_evaluate(
                method,
                params,
                data,
                profile,
                augment,
                seed,
                args.device,
                args.max_steps,
                False,
                monitor=False,
            )
            if getattr(args, "save_models", None) is not None and not trained.diverged:
                save_model(trained.model, args.save_models / study.name / f"{method}__seed{seed}.pt")
        elif study.kind == "validation":
            augment = BatchAugment(profile.augment, *split.channel_stats())
            row = score_config(method, params, split, profile, augment, seed, args.device, False)
        else:
            augment = BatchAugment(profile.augment, *data.channel_stats())
            trained = pretrain(
                method,
                params,
                data,
                profile,
                augment,
                seed,
                args.device,
                monitor=False,
                max_steps=args.max_steps,
                progress=False,
                stop_epoch=args.stop_epoch,
            )
            losses = [h["loss"] for h in trained.history if h["epoch"] > 0]
            row = {
                "seed": seed,
                "diverged": None if not trained.diverged else {"seed": seed, **trained.divergence},
                "epochs_run": len(losses),
                "final_loss": losses[-1] if losses else None,
                "seconds": trained.seconds,
            }
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous_threads)
    return {**row, "threads": used_threads, "wall_seconds": round(time.perf_counter() - start, 1)}


def run_study(
    study: Study,
    data: ImageData,
    base: Profile,
    params: dict[str, dict[str, Any]],
    out: Path,
    args,
    log=print,
    values: tuple[Any, ...] | None = None,
) -> dict[str, Any]:
    """Run what is missing of ``study`` at ``values`` (default: all of the study's; at most
    ``args.max_runs`` new runs), then rewrite its report, which covers every value with run files."""
    split = validation_split(data, base.tune_val_size, seed=0) if study.kind == "validation" else None
    seeds = tuple(args.seeds or study.seeds)
    values = study.values if values is None else values
    methods = args.methods or study.methods
    tuned_music = study.music_at_chosen_options and "music" in methods
    choices = music_choices(out) if tuned_music else {}
    missing = [v for v in values if tuned_music and v not in choices]
    if missing:
        raise ValueError(
            f"music_options has no candidate finished on all its seeds at projection size {missing}: "
            "run `python -m benchmarks.quality.study music_options` to the end first"
        )
    new = 0
    for seed in seeds:  # seed-major, so a study cut short has whole seeds for every value
        for value in values:
            for method in methods:
                if not study.trains(method, value):
                    continue
                method_params = params[method]
                if method == "music" and tuned_music:
                    method_params = {**method_params, **choices[value]}
                run = study.settings(value, base, method_params)
                path = run_path(out, study, method, value, seed)
                settings = run_settings(run, args)
                if path.is_file():
                    if read_run(path)["settings"] != settings:
                        raise ValueError(
                            f"{path} was made with other settings than this run's; choose another --out "
                            "or remove the file to rerun it"
                        )
                    continue
                label = f"[{study.name}] {method} {value_label(value)} seed {seed}"
                record = {"study": study.name, "method": method, "value": value, "seed": seed}
                same = equivalent_run(out, study, method, seed, settings) if study.reuses_runs else None
                if same is not None:
                    source, row = same
                    write_run(path, {**record, "row": row, "from": source, "settings": settings})
                    log(f"{label}: the same run as {source}")
                    continue
                if args.max_runs is not None and new >= args.max_runs:
                    log(f"[{study.name}] stopped after {new} new runs (--max-runs)")
                    return write_report(study, out)
                with RunLock(path) as lock:
                    if not lock.held or path.is_file():  # another process holds it, or just finished it
                        log(f"{label}: skipped, {lock.reason or 'finished by another process'}")
                        continue
                    log(f"{label} ...")
                    row = train_run(study, method, seed, run, data, split, args)
                    write_run(path, {**record, "row": row, "settings": settings})
                log(f"{label}: {_short(row)}")
                new += 1
                write_report(study, out, with_plot=False)
    return write_report(study, out)


def _short(row: dict[str, Any]) -> str:
    if row.get("diverged"):
        return f"diverged {row['diverged']}"
    keys = ("linear_top1", "knn_top1", "final_loss", "wall_seconds")
    return ", ".join(f"{k} {row[k]:.4g}" for k in keys if isinstance(row.get(k), int | float))
