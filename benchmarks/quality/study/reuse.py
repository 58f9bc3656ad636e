"""Runs a study takes from elsewhere instead of training them: another study's equal runs, the main run's
seeds, and the MUSIC options ``music_options`` chose."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.quality.augment import AugmentConfig
from benchmarks.quality.config import Profile
from benchmarks.quality.study.catalogue import STUDIES, Study
from benchmarks.quality.study.store import read_run, run_path, run_settings, write_run
from benchmarks.quality.tune import best


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
    if study.kind not in ("test", "pretrain"):
        return None
    first = [STUDIES[name] for name in study.copies_first_from]
    for other in [*first, *(s for s in STUDIES.values() if s.name not in study.copies_first_from)]:
        if other.name == study.name or other.kind != "test":
            continue
        for path in sorted((out / other.name / "runs").glob(f"{method}__*__seed{seed}.json")):
            record = read_run(path)
            row, theirs = record["row"], record["settings"]
            if study.kind == "test" and theirs == settings:
                return f"{other.name}/runs/{path.name}", row
            if (
                study.kind == "pretrain"
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
            if study.kind == "pretrain":
                row = pretrain_row(row)
            if path.is_file():
                if read_run(path)["settings"] != settings:
                    raise ValueError(f"{path} was made with other settings than {results_path}")
                continue
            record = {"study": study.name, "method": method, "value": value, "seed": row["seed"], "row": row}
            record["from"] = str(config["command"])
            write_run(path, {**record, "settings": settings})
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
