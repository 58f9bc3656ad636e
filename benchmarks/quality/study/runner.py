"""Running a declaration: the command's data, profile and tuned values, then the study's missing runs, seed
by seed, each trained once by one of the processes sharing it (or a run another study already made),
then its report."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.quality.augment import AugmentConfig
from benchmarks.quality.config import Profile, get_profile
from benchmarks.quality.data import ImageData, default_data_root, load_dataset
from benchmarks.quality.names import value_label
from benchmarks.quality.search import best
from benchmarks.quality.study.catalogue import PRETRAIN, STUDIES, TEST, Study
from benchmarks.quality.study.store import RunLock, read_run, resume, run_path, run_settings, write_json
from benchmarks.quality.tuned import method_params


def run(study: Study, args: argparse.Namespace, log=print) -> dict[str, Any]:
    """``study`` as the command ``args`` asks: its report alone (``--report-only``), or its runs first."""
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"threads={args.threads}; expected a positive number of CPU threads")
        torch.set_num_threads(args.threads)
    out = args.out or study.home
    if args.stop_epoch is not None:
        if study.kind is not PRETRAIN:
            raise ValueError(f"--stop-epoch={args.stop_epoch} applies to the stability study only")
        out = out / f"first{args.stop_epoch}epochs"
    if args.from_results is not None:
        import_main_run(study, args.from_results, out, args, log)
    if args.report_only:
        return study.kind.report(study, study.folder(out))
    overrides = {k: getattr(args, k) for k in ("epochs", "batch_size", "tune_val_size")}
    profile = get_profile(args.profile, pretrain_subset=args.subset, **overrides)
    data, profile = study.kind.prepare(load_data(args, log), profile, args)
    params, args.params_from = method_params(profile, args.dataset, args.tuned, args.untuned)
    log(f"[{study.name}] hyper-parameters: {args.params_from}")
    if study.kind.run is not None:
        return study.kind.run(study, data, profile, params, out, args, log)
    return run_study(study, data, profile, params, out, args, log)


def load_data(args: argparse.Namespace, log=print) -> ImageData:
    """The dataset named by ``args``, cut to ``--data-limit`` if given."""
    args.data_root = args.data_root or default_data_root(args.dataset)
    start = time.perf_counter()
    data = load_dataset(args.dataset, args.data_root, args.download, args.image_size)
    if args.data_limit is not None:
        train, test = args.data_limit
        if train < 1 or test < 1:
            raise ValueError(f"data_limit={args.data_limit}; expected two positive image counts")
        data = data.head(train, test)
    log(
        f"{args.dataset}: train {tuple(data.train_images.shape)}, test {tuple(data.test_images.shape)} "
        f"from {args.data_root} ({time.perf_counter() - start:.1f} s); device {args.device}, "
        f"{torch.get_num_threads()} threads"
    )
    return data


def run_study(
    study: Study,
    data: ImageData,
    base: Profile,
    params: dict[str, dict[str, Any]],
    out: Path,
    args,
    log=print,
) -> dict[str, Any]:
    """Run what is missing of ``study`` at ``args.values`` (default: all of the study's; at most
    ``args.max_runs`` new runs), then rewrite its report, which covers every value with run files."""
    seeds = tuple(args.seeds or study.seeds)
    values = study.values if args.values is None else chosen_values(study, args.values)
    methods = args.methods or study.methods
    folder = study.folder(out)
    tuned_music = study.music_at_chosen_options and "music" in methods
    choices = music_choices(out) if tuned_music else {}
    missing = [v for v in values if tuned_music and v not in choices]
    if missing:
        raise ValueError(
            f"music_options has no candidate finished on all its seeds at projection size {missing}: "
            "run `python -m benchmarks.quality.study music_options` to the end first"
        )
    args.study, new = study.name, 0
    for seed in seeds:  # seed-major, so a study cut short has whole seeds for every value
        for value in values:
            for method in (m for m in methods if study.trains(m, value)):
                method_params = params[method]
                if method == "music" and tuned_music:
                    method_params = {**method_params, **choices[value]}
                settings_of_run = study.settings(value, base, method_params)
                path = run_path(out, study, method, value, seed)
                settings = run_settings(settings_of_run, args)
                if resume(path, settings):
                    continue
                label = f"[{study.name}] {method} {value_label(value)} seed {seed}"
                record = {"study": study.name, "method": method, "value": value, "seed": seed}
                same = equivalent_run(out, study, method, seed, settings) if study.reuses_runs else None
                if same is not None:
                    source, row = same
                    write_json(path, {**record, "row": row, "from": source, "settings": settings})
                    log(f"{label}: the same run as {source}")
                    continue
                if args.max_runs is not None and new >= args.max_runs:
                    log(f"[{study.name}] stopped after {new} new runs (--max-runs)")
                    return study.kind.report(study, folder)
                with RunLock(path) as lock:
                    if not lock.held or path.is_file():  # another process holds it, or just finished it
                        log(f"{label}: skipped, {lock.reason or 'finished by another process'}")
                        continue
                    log(f"{label} ...")
                    row = _scored(study, method, seed, settings_of_run, data, args)
                    write_json(path, {**record, "row": row, "settings": settings})
                log(f"{label}: {_short(row)}")
                new += 1
                study.kind.report(study, folder, with_plot=False)
    return study.kind.report(study, folder)


def _scored(study: Study, method: str, seed: int, run_settings_, data: ImageData, args) -> dict[str, Any]:
    """One run, scored as the study's kind declares, at the threads its settings name."""
    previous_threads = torch.get_num_threads()
    if run_settings_.threads is not None:
        torch.set_num_threads(run_settings_.threads)
    start = time.perf_counter()
    try:
        row = study.kind.score(method, seed, run_settings_, data, args)
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous_threads)
    return {**row, "threads": used_threads, "wall_seconds": round(time.perf_counter() - start, 1)}


def _short(row: dict[str, Any]) -> str:
    if row.get("diverged"):
        return f"diverged {row['diverged']}"
    keys = ("linear_top1", "knn_top1", "final_loss", "wall_seconds")
    return ", ".join(f"{k} {row[k]:.4g}" for k in keys if isinstance(row.get(k), int | float))


def chosen_values(study: Study, given: list[str]) -> tuple[Any, ...]:
    """The study's values that ``--values`` names, each written as the study writes it or as its run
    files' label (``2 views`` or ``2views``)."""
    by_name = {str(v): v for v in study.values} | {value_label(v): v for v in study.values}
    unknown = [g for g in given if g not in by_name]
    if unknown:
        accepted = ", ".join(repr(str(v)) for v in study.values)
        raise ValueError(
            f"--values={given}: {unknown} not among the {study.name} study's values ({accepted})"
        )
    return tuple(by_name[g] for g in given)


def equivalent_run(
    out: Path, study: Study, method: str, seed: int, settings: dict[str, Any]
) -> tuple[str, dict[str, Any]] | None:
    """A finished run of another study that is this very run, as ``(its path under out, row)``.

    A ``test`` run is reused by another ``test`` study when every setting is equal (the main run's
    settings are one value of the projector studies; the studies a study ``copies_first_from`` are searched
    first, the others in the catalogue's order). A ``stability`` run at N threads is read off a
    ``test`` run with the same settings that recorded training at N threads: it trained the same schedule
    and recorded whether it diverged.

    The run files are read afresh for every run, not indexed once: another process sharing the studies
    may have finished the run a moment ago (a few small JSON files against minutes of training).
    """
    if not study.kind.copied:
        return None
    first = [STUDIES[name] for name in study.copies_first_from]
    for other in [*first, *(s for s in STUDIES.values() if s.name not in study.copies_first_from)]:
        if other.name == study.name or other.kind is not TEST:
            continue
        for path in sorted((out / other.name / "runs").glob(f"{method}__*__seed{seed}.json")):
            record = read_run(path)
            row, theirs = record["row"], record["settings"]
            if study.kind is TEST and theirs == settings:
                return f"{other.name}/runs/{path.name}", row
            if (
                study.kind is PRETRAIN
                and settings["stop_epoch"] is None
                and {**theirs, "threads": settings["threads"], "stop_epoch": None} == settings
                and row.get("threads") == settings["threads"]
            ):
                return f"{other.name}/runs/{path.name}", pretrain_row(row)
    return None


def pretrain_row(row: dict[str, Any]) -> dict[str, Any]:
    """What a stability run records, taken from a full run's row."""
    return {
        "seed": row["seed"],
        "diverged": row["diverged"],
        "epochs_run": round(row["seconds"] / row["seconds_per_epoch"]),
        "final_loss": row.get("final_loss"),
        "seconds": row["seconds"],
        **({"threads": row["threads"]} if "threads" in row else {}),
    }


def import_main_run(study: Study, results_path: Path, out: Path, args, log=print) -> int:
    """Write the runs of a main run's results.json that this study would make itself as its run files.

    Only for the studies that declare which of their values a main run stands for (``seeds``: the main
    run's settings, test split; ``stability``: the main run's thread count, seeds one after another, full
    schedule); the settings are checked as for any other run file.
    """
    if study.main_run_value is None:
        takers = " and ".join(s.name for s in STUDIES.values() if s.main_run_value is not None)
        raise ValueError(f"--from-results applies to the {takers} studies, not {study.name!r}")
    results = json.loads(results_path.read_text())
    config = results["config"]
    if config.get("seed_workers", 1) != 1:
        raise ValueError(
            f"{results_path}: seeds ran side by side; only a --workers 1 run has one thread count"
        )
    profile = Profile(**{**config["profile"], "augment": AugmentConfig(**config["profile"]["augment"])})
    value = study.main_run_value(config)
    if value not in study.values:
        raise ValueError(f"{results_path}: {value} {study.variable} is not one of the study's {study.values}")
    run_args = argparse.Namespace(
        dataset=config["dataset"],
        data_limit=config.get("data_limit"),
        max_steps=config["max_steps"],
        stop_epoch=None,
    )
    written = 0
    # A main run trains the methods of the main table; a study's others (the supervised ceiling, the field
    # study's peers) are never in its results.
    for method in (m for m in study.methods if m in results["methods"]):
        row_params = results["methods"][method]["params"]
        for row in results["methods"][method]["per_seed"]:
            path = run_path(out, study, method, value, row["seed"])
            settings = run_settings(study.settings(value, profile, row_params), run_args)
            if resume(path, settings, made_by=str(results_path)):
                continue
            record = {"study": study.name, "method": method, "value": value, "seed": row["seed"]}
            row = pretrain_row(row) if study.kind is PRETRAIN else row
            write_json(path, {**record, "row": row, "from": str(config["command"]), "settings": settings})
            written += 1
    log(f"[{study.name}] {written} runs taken from {results_path}")
    return written


def music_choices(out: Path) -> dict[int, dict[str, Any]]:
    """Per projection size, the MUSIC options that ``music_options`` scored best, by the tuning search's
    rule (``tune.best``), among candidates run on every seed of the study; sizes with no such candidate
    are left out."""
    path = out / "music_options" / "summary.json"
    if not path.is_file():
        raise ValueError(
            f"{path} not found: run `python -m benchmarks.quality.study music_options` (same --out) first"
        )
    seeds = len(STUDIES["music_options"].seeds)
    candidates: dict[int, list[dict[str, Any]]] = {}
    for entry in json.loads(path.read_text())["values"]:
        stats = entry["methods"].get("music", {})
        if len(stats.get("seeds", ())) < seeds:
            continue
        options = {k: v for k, v in entry["value"].items() if k != "dim"}
        row = {"params": options, "diverged": stats["diverged"], "linear_top1": stats.get("linear_top1")}
        candidates.setdefault(int(entry["value"]["dim"]), []).append(row)
    winners = {dim: best(rows) for dim, rows in candidates.items()}
    return {dim: winner["params"] for dim, winner in winners.items() if winner is not None}
