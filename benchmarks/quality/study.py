"""Studies of the paper's claims, run in resumable pieces: one JSON file per finished run.

    python -m benchmarks.quality.study seeds              # 5 seeds of the main run's settings
    python -m benchmarks.quality.study long               # 3x the epochs on the full 60k split, 5 seeds
    python -m benchmarks.quality.study projector_dim      # output dim 128 ... 4096, 2 seeds, all methods
    python -m benchmarks.quality.study projector_depth    # 0, 1 and 2 hidden layers, 2 seeds
    python -m benchmarks.quality.study music_options      # MUSIC's segment size and term weights per dim
    python -m benchmarks.quality.study projector_dim_tuned  # projector_dim, MUSIC at music_options' choice
    python -m benchmarks.quality.study stability          # main-run settings, seeds 0-4, 1 and 2 threads
    python -m benchmarks.quality.study optimizer          # LARS at five learning rates against tuned SGD

Every run is written to ``OUT/<study>/runs/<name>.json`` when it finishes and skipped when that file
exists, so a study can be stopped at any time (``--max-runs`` stops it after that many new runs) and
continued later, on another day or machine; a run file made with other settings is refused, never mixed
in. After every run the study's ``table.md``, ``summary.json`` and plot are rewritten from all run files,
so they always say how many seeds each number rests on. Several processes can share one study: each
trains the runs that no other holds (``<run>.lock``), so two one-thread workers use two cores. A run that
another study already made with equal settings is copied, not retrained (the main run's settings are the
1024-dimension point of ``projector_dim``; a ``seeds`` run trained at one thread is the one-thread
``stability`` run of that seed); the copy names its source under ``from``.

Three kinds of run: ``test`` studies train and evaluate on the test split exactly as the main run does
(fixed hyper-parameters from tuned.json: they measure, they choose nothing); ``music_options`` and
``optimizer`` are searches, so they score on the tuning search's validation split, with its short schedule,
and never see the test split; ``stability`` only pretrains and records whether and where a method diverged.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from benchmarks.quality.augment import AugmentConfig, BatchAugment
from benchmarks.quality.cli import add_common_arguments, load_data, set_threads
from benchmarks.quality.config import Profile, get_profile
from benchmarks.quality.data import ImageData, validation_split
from benchmarks.quality.methods import METHODS
from benchmarks.quality.report import NAMES
from benchmarks.quality.stats import compare
from benchmarks.quality.train import pretrain
from benchmarks.quality.tuned import method_params

DEFAULT_OUT = Path(__file__).with_name("results") / "studies"
DIMS = (128, 256, 512, 1024, 2048, 4096)
MUSIC_SEGMENT_DIMS = (8, 16, 32, 64)
MUSIC_WEIGHT_ALTERNATIVES = ({"inv_weight": 2.0}, {"diag_weight": 2.0}, {"off_weight": 2.0})
# LARS learning rates per 256 images from around the papers' 0.2 upwards, against SGD at each method's
# tuned rate. The grid was 0.1-3.0; 3.0 was best for every method, so it was extended by one more factor
# of about 3, as the tuning search extends a grid whose end wins.
LARS_LRS = (0.1, 0.3, 1.0, 3.0, 10.0)
OPTIMIZER_GRID = ({"optimizer": "sgd"}, *({"optimizer": "lars", "lr": lr} for lr in LARS_LRS))


@dataclass(frozen=True)
class Study:
    name: str
    kind: str  # "test", "validation" or "pretrain"
    variable: str
    values: tuple[Any, ...]
    seeds: tuple[int, ...]
    methods: tuple[str, ...] = METHODS
    # MUSIC at the options ``music_options`` chose for each projection size instead of the tuned ones.
    music_at_chosen_options: bool = False


def music_option_grid(dims: tuple[int, ...] = DIMS) -> tuple[dict[str, Any], ...]:
    """Per projection size: every segment size that gives at least two segments, then the three term
    weights doubled one at a time at the tuned segment size. Seven candidates per size, as many as the
    peers' search gave each of them."""
    grid = []
    for dim in dims:
        grid += [{"dim": dim, "segment_dim": c} for c in MUSIC_SEGMENT_DIMS if dim % c == 0 and dim // c >= 2]
        grid += [{"dim": dim, **w} for w in MUSIC_WEIGHT_ALTERNATIVES]
    return tuple(grid)


STUDIES = {
    s.name: s
    for s in (
        Study("seeds", "test", "settings", ("main run",), (0, 1, 2, 3, 4)),
        Study("long", "test", "settings", ("3x epochs, full train split",), (0, 1, 2, 3, 4)),
        Study("projector_dim", "test", "projector_output_dim", DIMS, (0, 1)),
        Study("projector_depth", "test", "hidden_layers", (0, 1, 2), (0, 1)),
        Study("music_options", "validation", "music_options", music_option_grid(), (0, 1), ("music",)),
        # projector_dim again, with MUSIC at the options music_options chose for each width (the peers'
        # runs are projector_dim's, copied).
        Study(
            "projector_dim_tuned", "test", "projector_output_dim", DIMS, (0, 1), music_at_chosen_options=True
        ),
        Study("stability", "pretrain", "threads", (1, 2), (0, 1, 2, 3, 4)),
        Study("optimizer", "validation", "optimizer", OPTIMIZER_GRID, (0, 1)),
    )
}


def configure(study: Study, value: Any, profile: Profile, params: dict[str, Any]):
    """The profile, the method's params and the thread count of one run of ``study`` at ``value``."""
    threads = None
    if study.name == "long":
        profile = replace(profile, epochs=3 * profile.epochs, pretrain_subset=None)
    elif study.variable == "projector_output_dim":
        profile = replace(profile, projector_output_dim=int(value))
    elif study.name == "projector_depth":
        profile = replace(profile, projector_num_layers=int(value) + 1)
    elif study.name == "music_options":
        profile = replace(profile, projector_output_dim=int(value["dim"]))
        params = {**params, **{k: v for k, v in value.items() if k != "dim"}}
    elif study.name == "optimizer":
        params = {**params, **value}
    elif study.name == "stability":
        threads = int(value)
    return profile, params, threads


def music_choices(out: Path) -> dict[int, dict[str, Any]]:
    """Per projection size, the MUSIC options that ``music_options`` scored best, by the tuning search's
    rule (``tune.best``), among candidates run on every seed of the study; sizes with no such candidate
    are left out."""
    from benchmarks.quality.tune import best

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


def value_label(value: Any) -> str:
    if isinstance(value, dict):
        return "_".join(f"{k}{v}" for k, v in value.items())
    return str(value).replace(" ", "").replace(",", "_")


def run_path(out: Path, study: Study, method: str, value: Any, seed: int) -> Path:
    return out / study.name / "runs" / f"{method}__{value_label(value)}__seed{seed}.json"


def _settings(profile: Profile, params: dict[str, Any], threads, args) -> dict[str, Any]:
    """What a run file must match to be reused."""
    # A run is one seed: the profile's list of seeds is no setting of it.
    return {
        "profile": {k: v for k, v in json.loads(json.dumps(profile.to_dict())).items() if k != "seeds"},
        "params": params,
        "threads": threads,
        "dataset": args.dataset,
        "data_limit": args.data_limit,
        "max_steps": args.max_steps,
        "stop_epoch": args.stop_epoch,
    }


def one_run(
    study, method, value, seed, profile, params, threads, data, split, device, args
) -> dict[str, Any]:
    from benchmarks.quality.run import train_and_evaluate
    from benchmarks.quality.tune import score_config

    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        if study.kind == "test":
            augment = BatchAugment(profile.augment, *data.channel_stats())
            row, trained = train_and_evaluate(
                method, params, data, profile, augment, seed, device, args.max_steps, False, monitor=False
            )
            if getattr(args, "save_models", None) is not None and not trained.diverged:
                save_model(trained.model, args.save_models / study.name / f"{method}__seed{seed}.pt")
        elif study.kind == "validation":
            augment = BatchAugment(profile.augment, *split.channel_stats())
            row = score_config(method, params, split, profile, augment, seed, device, False)
        else:
            augment = BatchAugment(profile.augment, *data.channel_stats())
            trained = pretrain(
                method,
                params,
                data,
                profile,
                augment,
                seed,
                device,
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


def save_model(model: torch.nn.Module, path: Path) -> None:
    """The trained backbone and projector (state dict, on the CPU), for studies of the representation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, path.with_suffix(".partial"))
    path.with_suffix(".partial").replace(path)


def import_main_run(study: Study, results_path: Path, out: Path, args, log=print) -> int:
    """Write the runs of a main run's results.json that this study would make itself as its run files.

    Only for ``seeds`` (the main run's settings, test split) and ``stability`` (the main run's thread
    count, seeds one after another, full schedule); the settings are checked as for any other run file.
    """
    if study.name not in ("seeds", "stability"):
        raise ValueError(f"--from-results applies to the seeds and stability studies, not {study.name!r}")
    results = json.loads(results_path.read_text())
    config = results["config"]
    if config.get("seed_workers", 1) != 1:
        raise ValueError(
            f"{results_path}: seeds ran side by side; only a --workers 1 run has one thread count"
        )
    profile = Profile(**{**config["profile"], "augment": AugmentConfig(**config["profile"]["augment"])})
    threads = config["threads"] if study.name == "stability" else None
    if study.name == "stability" and threads not in study.values:
        raise ValueError(f"{results_path}: {threads} threads is not one of the study's {study.values}")
    value = threads if study.name == "stability" else study.values[0]
    run_args = argparse.Namespace(
        dataset=config["dataset"],
        data_limit=config.get("data_limit"),
        max_steps=config["max_steps"],
        stop_epoch=None,
    )
    written = 0
    for method in study.methods:
        row_params = results["methods"][method]["params"]
        for row in results["methods"][method]["per_seed"]:
            path = run_path(out, study, method, value, row["seed"])
            settings = _settings(profile, row_params, threads, run_args)
            if study.kind == "pretrain":
                row = _pretrain_row(row)
            if path.is_file():
                if json.loads(path.read_text())["settings"] != settings:
                    raise ValueError(f"{path} was made with other settings than {results_path}")
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            record = {"study": study.name, "method": method, "value": value, "seed": row["seed"], "row": row}
            record["from"] = str(config["command"])
            path.write_text(json.dumps({**record, "settings": settings}, indent=2) + "\n")
            written += 1
    log(f"[{study.name}] {written} runs taken from {results_path}")
    return written


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
                method_params = params[method]
                if method == "music" and tuned_music:
                    method_params = {**method_params, **choices[value]}
                profile, run_params, threads = configure(study, value, base, method_params)
                path = run_path(out, study, method, value, seed)
                settings = _settings(profile, run_params, threads, args)
                if path.is_file():
                    stored = json.loads(path.read_text())
                    if stored["settings"] != settings:
                        raise ValueError(
                            f"{path} was made with other settings than this run's; choose another --out "
                            "or remove the file to rerun it"
                        )
                    continue
                label = f"[{study.name}] {method} {value_label(value)} seed {seed}"
                record = {"study": study.name, "method": method, "value": value, "seed": seed}
                same = equivalent_run(out, study, method, seed, settings)
                if same is not None:
                    source, row = same
                    _write_run(path, {**record, "row": row, "from": source, "settings": settings})
                    log(f"{label}: the same run as {source}")
                    continue
                if args.max_runs is not None and new >= args.max_runs:
                    log(f"[{study.name}] stopped after {new} new runs (--max-runs)")
                    return write_report(study, out, seeds)
                with RunLock(path) as lock:
                    if not lock.held or path.is_file():  # another process holds it, or just finished it
                        log(f"{label}: skipped, {lock.reason or 'finished by another process'}")
                        continue
                    log(f"{label} ...")
                    row = one_run(
                        study,
                        method,
                        value,
                        seed,
                        profile,
                        run_params,
                        threads,
                        data,
                        split,
                        args.device,
                        args,
                    )
                    _write_run(path, {**record, "row": row, "settings": settings})
                log(f"{label}: {_short(row)}")
                new += 1
                write_report(study, out, seeds, with_plot=False)
    return write_report(study, out, seeds)


def _write_run(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    partial.replace(path)  # a reader never sees half a file


class RunLock:
    """``<run>.lock`` next to a run file while a process trains it, so that several processes can share
    one study (each takes the runs nobody holds). A lock whose process has ended is taken over; the
    holder is a process id, so the processes must share one machine."""

    def __init__(self, path: Path):
        self.path = path.with_suffix(".lock")
        self.held = False
        self.reason = ""

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = _lock_holder(self.path)
                if holder is not None and _alive(holder):
                    self.reason = f"process {holder} is running it"
                    return self
                if holder is None and _age(self.path) < 60:
                    self.reason = "another process is taking it"  # created, its pid not yet written
                    return self
                self.path.unlink(missing_ok=True)  # left by a process that ended
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            self.held = True
            return self
        self.reason = f"could not take {self.path}"
        return self

    def __exit__(self, *exc) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)


def _lock_holder(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def equivalent_run(
    out: Path, study: Study, method: str, seed: int, settings: dict[str, Any]
) -> tuple[str, dict[str, Any]] | None:
    """A finished run of another study that is this very run, as ``(its path under out, row)``.

    A ``test`` run is reused by another ``test`` study when every setting is equal (the main run's
    settings are one value of the projector studies). A ``stability`` run at N threads is read off a
    ``test`` run with the same settings that recorded training at N threads: it trained the same schedule
    and recorded whether it diverged.

    The run files are read afresh for every run, not indexed once: another process sharing the studies
    may have finished the run a moment ago (a few small JSON files against minutes of training).
    """
    if study.kind not in ("test", "pretrain"):
        return None
    for other in STUDIES.values():
        if other.name == study.name or other.kind != "test":
            continue
        for path in sorted((out / other.name / "runs").glob(f"{method}__*__seed{seed}.json")):
            record = json.loads(path.read_text())
            row, theirs = record["row"], record["settings"]
            if study.kind == "test" and theirs == settings:
                return f"{other.name}/runs/{path.name}", row
            if (
                study.kind == "pretrain"
                and settings["stop_epoch"] is None
                and {**theirs, "threads": settings["threads"], "stop_epoch": None} == settings
                and row.get("threads") == settings["threads"]
            ):
                return f"{other.name}/runs/{path.name}", _pretrain_row(row)
    return None


def _pretrain_row(row: dict[str, Any]) -> dict[str, Any]:
    """What a stability run records, taken from a full run's row."""
    return {
        "seed": row["seed"],
        "diverged": row["diverged"],
        "epochs_run": round(row["seconds"] / row["seconds_per_epoch"]),
        "final_loss": row.get("final_loss"),
        "seconds": row["seconds"],
        **({"threads": row["threads"]} if "threads" in row else {}),
    }


def _short(row: dict[str, Any]) -> str:
    if row.get("diverged"):
        return f"diverged {row['diverged']}"
    keys = ("linear_top1", "knn_top1", "final_loss", "wall_seconds")
    return ", ".join(f"{k} {row[k]:.4g}" for k in keys if isinstance(row.get(k), int | float))


def load_runs(out: Path, study: Study) -> list[dict[str, Any]]:
    folder = out / study.name / "runs"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def summarize_runs(study: Study, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per value: per method mean, std and number of seeds, diverged seeds, and MUSIC's paired verdicts."""
    summary: dict[str, Any] = {
        "study": study.name,
        "kind": study.kind,
        "variable": study.variable,
        "values": [],
    }
    for value in study.values:
        rows_by_method: dict[str, list[dict[str, Any]]] = {}
        music_params: list[dict[str, Any]] = []
        for r in runs:
            if r["value"] == value:
                rows_by_method.setdefault(r["method"], []).append(r["row"])
                if r["method"] == "music" and r["settings"]["params"] not in music_params:
                    music_params.append(r["settings"]["params"])
        if not rows_by_method:
            continue
        entry: dict[str, Any] = {"value": value, "methods": {}}
        if study.music_at_chosen_options:
            entry["music_params"] = music_params
        for method, rows in rows_by_method.items():
            rows.sort(key=lambda r: r["seed"])
            finished = [r for r in rows if not r.get("diverged")]
            stats: dict[str, Any] = {
                "seeds": [r["seed"] for r in rows],
                "diverged": [r["diverged"] for r in rows if r.get("diverged")],
                "wall_seconds": round(sum(r.get("wall_seconds", 0.0) for r in rows), 1),
            }
            for key in ("linear_top1", "knn_top1", "final_loss", "epochs_run"):
                values = [r[key] for r in finished if isinstance(r.get(key), int | float)]
                if values:
                    stats[key] = round(statistics.fmean(values), 4)
                    stats[f"{key}_std"] = round(statistics.stdev(values), 4) if len(values) > 1 else None
            entry["methods"][method] = stats
        peers = tuple(m for m in METHODS if m != "music" and m in rows_by_method)
        if study.kind == "test" and "music" in rows_by_method and peers:
            entry["comparison"] = compare(rows_by_method, "music", peers, names=NAMES)
        summary["values"].append(entry)
    return summary


def _cell(stats: dict[str, Any] | None, key: str) -> str:
    if stats is None:
        return "–"
    n_done = len(stats["seeds"]) - len(stats["diverged"])
    bad = f", {len(stats['diverged'])} diverged" if stats["diverged"] else ""
    if key not in stats:
        return f"– (n={n_done}{bad})"
    std = stats.get(f"{key}_std")
    return f"{stats[key]:.2f}" + (f" ± {std:.2f}" if std is not None else "") + f" (n={n_done}{bad})"


def _music_options(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in params.items() if k != "lr")


def markdown(summary: dict[str, Any], study: Study) -> str:
    key = "final_loss" if study.kind == "pretrain" else "linear_top1"
    what = {
        "test": "test linear top-1 (%)",
        "validation": "validation linear top-1 (%)",
        "pretrain": "final loss",
    }
    methods = [m for m in METHODS if m in study.methods]
    options = study.music_at_chosen_options
    lines = [
        f"Study `{study.name}`: {what[study.kind]}, mean ± std over seeds (n = seeds that finished).",
        "",
        f"| {study.variable} | "
        + ("MUSIC's options | " if options else "")
        + " | ".join(NAMES[m] for m in methods)
        + " |"
        + (" MUSIC minus peers (verdict) |" if study.kind == "test" else ""),
        "|---|"
        + ("---|" if options else "")
        + "---:|" * len(methods)
        + ("---|" if study.kind == "test" else ""),
    ]
    for entry in summary["values"]:
        cells = [_cell(entry["methods"].get(m), key) for m in methods]
        line = f"| {value_label(entry['value'])} | "
        if options:
            line += "; ".join(_music_options(p) for p in entry["music_params"]) + " | "
        line += " | ".join(cells) + " |"
        if study.kind == "test":
            verdicts = []
            for peer, c in entry.get("comparison", {}).get("peers", {}).items():
                d = c["linear_top1"]
                ci = "" if d["ci95"] is None else f" [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"
                mean = "–" if d["mean"] is None else f"{d['mean']:+.2f}"
                verdicts.append(f"{NAMES[peer].split(' (')[0]}: {mean}{ci} ({c['verdict']})")
            line += " " + "; ".join(verdicts) + " |"
        lines.append(line)
    diverged = [
        f"{NAMES[m]} at {value_label(e['value'])}: "
        + ", ".join(
            f"seed {d['seed']} (epoch {d['epoch']}, step {d['step']}, {d['reason']})" for d in s["diverged"]
        )
        for e in summary["values"]
        for m, s in e["methods"].items()
        if s["diverged"]
    ]
    if diverged:
        lines += ["", "Diverged: " + "; ".join(diverged) + "."]
    return "\n".join(lines) + "\n"


def plot_seeds(runs: list[dict[str, Any]], study: Study, path: Path) -> bool:
    """Every seed's test accuracy per method, linear probe and kNN side by side; a grey line joins the
    methods' runs of one seed (a pair), a bar marks each method's mean."""
    finished = [r for r in runs if not r["row"].get("diverged") and r["row"].get("linear_top1") is not None]
    if not finished:
        return False
    from benchmarks.quality.plots import COLORS, LABELS, plt

    methods = [m for m in study.methods if any(r["method"] == m for r in finished)]
    seeds = sorted({r["seed"] for r in finished})
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.6))
    for ax, key, probe in zip(axes, ("linear_top1", "knn_top1"), ("linear", "kNN (k = 20)"), strict=True):
        by = {(r["method"], r["seed"]): r["row"][key] for r in finished}
        for seed in seeds:
            pairs = [(x, by[m, seed]) for x, m in enumerate(methods) if (m, seed) in by]
            ax.plot(*zip(*pairs, strict=True), color="0.75", lw=1, zorder=1)
        for x, method in enumerate(methods):
            values = [by[method, seed] for seed in seeds if (method, seed) in by]
            ax.scatter([x] * len(values), values, color=COLORS[method], zorder=2, s=18)
            mean = sum(values) / len(values)
            ax.hlines(mean, x - 0.25, x + 0.25, color=COLORS[method], lw=2, zorder=3)
        ax.set_xticks(range(len(methods)), [LABELS[m] for m in methods])
        ax.set_xlim(-0.5, len(methods) - 0.5)
        ax.set_ylabel(f"test {probe} top-1 (%)")
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(
        f"{study.name}: {study.values[0]}; seeds {', '.join(map(str, seeds))} (grey lines join a seed)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot(summary: dict[str, Any], study: Study, path: Path, runs: list[dict[str, Any]] = ()) -> bool:
    if study.variable == "settings":
        return plot_seeds(list(runs), study, path)
    if study.variable not in ("projector_output_dim", "hidden_layers"):
        return False
    from benchmarks.quality.plots import COLORS, LABELS, plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for method in study.methods:
        points = [
            (
                e["value"],
                e["methods"][method]["linear_top1"],
                e["methods"][method].get("linear_top1_std") or 0.0,
            )
            for e in summary["values"]
            if "linear_top1" in e["methods"].get(method, {})
        ]
        if points:
            x, y, err = zip(*points, strict=True)
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=LABELS[method], color=COLORS[method])
    if study.variable == "projector_output_dim":
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(DIMS), [str(d) for d in DIMS])
        ax.set_xlabel("projector output dimension")
    else:
        ax.set_xticks([0, 1, 2])
        ax.set_xlabel("projector hidden layers")
    ax.set_ylabel("test linear top-1 (%)")
    ax.set_title(
        "MUSIC at music_options' choice per width; mean ± std over seeds"
        if study.music_at_chosen_options
        else "mean ± std over seeds",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_report(study: Study, out: Path, seeds: tuple[int, ...], with_plot: bool = True) -> dict[str, Any]:
    """Summary, table and plot of every run file of the study, whichever ``--values`` made them."""
    runs = load_runs(out, study)
    summary = summarize_runs(study, runs)
    folder = out / study.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (folder / "table.md").write_text(markdown(summary, study))
    if with_plot:
        plot(summary, study, folder / f"{study.name}.png", runs)
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.quality.study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("study", choices=sorted(STUDIES))
    add_common_arguments(p)
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="default: benchmarks/quality/results/studies"
    )
    p.add_argument("--methods", nargs="+", choices=METHODS, default=None)
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default: the study's seeds")
    p.add_argument("--values", nargs="+", type=int, default=None, help="only these values of the variable")
    p.add_argument("--max-runs", type=int, default=None, help="stop after this many new runs")
    p.add_argument("--report-only", action="store_true", help="rewrite table and plot from the run files")
    p.add_argument(
        "--from-results",
        type=Path,
        default=None,
        help="seeds, stability: first take the matching runs of a main run's results.json",
    )
    p.add_argument("--epochs", type=int, default=None, help="override the profile's epochs (quick checks)")
    p.add_argument("--subset", type=int, default=None, help="override the pretraining subset (quick checks)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument(
        "--stop-epoch",
        type=int,
        default=None,
        help="stability: stop each run after this epoch of the full schedule; runs go to OUT/firstNepochs/",
    )
    p.add_argument(
        "--save-models",
        type=Path,
        default=None,
        help="test studies: also save each trained model as DIR/<study>/<method>__seed<N>.pt",
    )
    p.add_argument("--tune-val-size", type=int, default=None, help="music_options: validation images")
    p.add_argument("--tuned", type=Path, default=None)
    p.add_argument("--untuned", action="store_true", help="paper defaults at the profile's lr")
    args = p.parse_args(argv)
    set_threads(args.threads)
    log = functools.partial(print, flush=True)
    study = STUDIES[args.study]
    profile = get_profile(
        args.profile,
        epochs=args.epochs,
        pretrain_subset=args.subset,
        batch_size=args.batch_size,
        tune_val_size=args.tune_val_size,
    )
    if study.kind == "validation" and args.epochs is not None:
        profile = replace(profile, tune_epochs=args.epochs)
    if args.stop_epoch is not None and study.kind != "pretrain":
        raise ValueError(f"--stop-epoch={args.stop_epoch} applies to the stability study only")
    values = None
    if args.values is not None:
        values = tuple(args.values)
        unknown = [v for v in values if v not in study.values]
        if unknown:
            raise ValueError(
                f"--values={list(values)}: {unknown} not among the {study.name} study's values {study.values}"
            )
    out = args.out if args.stop_epoch is None else args.out / f"first{args.stop_epoch}epochs"
    if args.from_results is not None:
        import_main_run(study, args.from_results, out, args, log)
    if args.report_only:
        summary = write_report(study, out, tuple(args.seeds or study.seeds))
    else:
        data, _ = load_data(args, log)
        params, source = method_params(profile, args.dataset, args.tuned, args.untuned)
        log(f"[{study.name}] hyper-parameters: {source}")
        summary = run_study(study, data, profile, params, out, args, log, values)
    log((out / study.name / "table.md").read_text())
    return summary


if __name__ == "__main__":
    main()
