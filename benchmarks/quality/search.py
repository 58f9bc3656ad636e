"""The tuning search: the same small grid for every method, scored on a validation split of the train set.

    python -m benchmarks.quality.tune --out results/tune        # writes benchmarks/quality/tuned.json
    python -m benchmarks.quality.study tune --out results/tune  # the same (``tune.py`` calls the one CLI)

The test split is never loaded (``validation_split``). Every candidate is trained on each of
``TUNE_SEEDS`` and scored by its mean validation linear top-1; one that diverged on any seed is never
chosen. The stages (``LR_GRID``, ``LOSS_ALTERNATIVES``, ``LOSS_FURTHER``), ``--reuse-trials`` and the
safety overrides: docs/quality.md, "Tuning".
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from benchmarks.quality.augment import BatchAugment
from benchmarks.quality.config import Profile, RunSettings
from benchmarks.quality.data import ImageData, validation_split
from benchmarks.quality.evaluate import evaluate_profile, extract_features
from benchmarks.quality.ssl_methods import DEFAULT_LOSS_PARAMS, SSL_METHODS
from benchmarks.quality.study.main_report import write_tuning_report
from benchmarks.quality.study.store import write_json
from benchmarks.quality.train import pretrain
from benchmarks.quality.tuned import TUNED_PATH, read_entry, tuned_key, write_entry

TUNE_SEEDS = (0, 1)
# The seed that draws the validation split from the train split.
SPLIT_SEED = 0

LR_GRID = (0.03, 0.1, 0.3)
LOSS_ALTERNATIVES: dict[str, list[dict[str, Any]]] = {
    "music": [{"segment_dim": 16, "temperature": 1.0}, {"segment_dim": 32, "temperature": 0.5}],
    "barlow_twins": [{"lambda_param": 0.001}, {"lambda_param": 0.02}],
    "vicreg": [
        {"lambda_param": 10.0, "mu_param": 25.0, "nu_param": 1.0},
        {"lambda_param": 25.0, "mu_param": 10.0, "nu_param": 1.0},
    ],
    "simclr": [{"temperature": 0.2}, {"temperature": 1.0}],
    "lejepa": [{"lambda_param": 0.02}, {"lambda_param": 0.1}],
    "visreg": [{"lambda_param": 0.3}, {"lambda_param": 0.9}],
    "wmse": [{"embedding_dim": 32, "w_size": 128}, {"embedding_dim": 64, "w_size": 256}],
}

# One more step along each alternative's direction (stage 3): smaller segments / lower temperature,
# weaker / stronger redundancy weight, weaker invariance / variance weight; for the field study's peers,
# a lower / higher temperature or regularizer weight, a smaller embedding / a larger whitened one.
LOSS_FURTHER: dict[str, list[dict[str, Any]]] = {
    "music": [{"segment_dim": 8, "temperature": 1.0}, {"segment_dim": 32, "temperature": 0.25}],
    "barlow_twins": [{"lambda_param": 0.0002}, {"lambda_param": 0.08}],
    "vicreg": [
        {"lambda_param": 4.0, "mu_param": 25.0, "nu_param": 1.0},
        {"lambda_param": 25.0, "mu_param": 4.0, "nu_param": 1.0},
    ],
    "simclr": [{"temperature": 0.1}, {"temperature": 2.0}],
    "lejepa": [{"lambda_param": 0.01}, {"lambda_param": 0.2}],
    "visreg": [{"lambda_param": 0.15}, {"lambda_param": 0.95}],
    # W-MSE whitens sub-batches of w_size, at least twice the embedding: the batch (256) bounds w_size.
    "wmse": [{"embedding_dim": 16, "w_size": 128}, {"embedding_dim": 128, "w_size": 256}],
}


def score_config(method, params, split: ImageData, profile: Profile, augment, seed, device, progress) -> dict:
    start = time.perf_counter()
    trained = pretrain(
        method,
        params,
        split,
        profile,
        augment,
        seed,
        device,
        epochs=profile.tune_epochs,
        monitor=False,
        progress=progress,
    )
    row: dict[str, Any] = {"seed": seed, "linear_top1": None, "knn_top1": None}
    if not trained.diverged:
        n = profile.tune_probe_train or len(split.train_labels)
        g = torch.Generator().manual_seed(seed + 4)
        probe_idx = torch.randperm(len(split.train_labels), generator=g)[:n]
        probe = replace(
            split, train_images=split.train_images[probe_idx], train_labels=split.train_labels[probe_idx]
        )
        fb = profile.feature_batch_size
        train_f = extract_features(trained.model.backbone, probe.train_images, augment.plain, fb, device)
        val_f = extract_features(trained.model.backbone, split.test_images, augment.plain, fb, device)
        row |= {k: round(v, 2) for k, v in evaluate_profile(train_f, val_f, probe, profile).items()}
    return {**row, "diverged": trained.divergence, "seconds": round(time.perf_counter() - start, 1)}


def score_candidate(method, params, split, profile, augment, seeds, device, progress) -> dict:
    """``params`` on every seed: the mean scores, or ``diverged`` (and no score) if any seed diverged."""
    per_seed = [score_config(method, params, split, profile, augment, s, device, progress) for s in seeds]
    diverged = [r["diverged"] | {"seed": r["seed"]} for r in per_seed if r["diverged"]]
    scores = {
        key: None if diverged else round(statistics.fmean(r[key] for r in per_seed), 2)
        for key in ("linear_top1", "knn_top1")
    }
    return {
        **scores,
        "diverged": diverged,
        "per_seed": per_seed,
        "seconds": round(sum(r["seconds"] for r in per_seed), 1),
    }


def best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The candidate with the highest mean validation score among those that never diverged."""
    stable = [r for r in rows if not r["diverged"] and r["linear_top1"] is not None]
    return max(stable, key=lambda r: r["linear_top1"]) if stable else None


def apply_safety_overrides(
    chosen: dict[str, dict[str, Any]],
    overrides: dict[str, dict[str, Any]],
    searched: tuple[str, ...],
    log=print,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The chosen values after the recorded safety overrides, and the overrides that still apply.

    A safety override (``{"searched", "chosen", "why"}`` in ``tuned.json``) replaces a searched value
    that later diverged in a full-length run. It outlives a new search only while that search still
    chooses the value it replaced; a method not searched this time, or whose search has not chosen yet,
    keeps its override as it is.
    """
    chosen, kept = dict(chosen), {}
    for method, override in overrides.items():
        if method in searched and method not in chosen:
            kept[method] = override  # its search has not chosen yet (a search written as it goes)
        elif method not in searched:
            if method in chosen:
                kept[method] = override
        elif chosen.get(method) == override["searched"]:
            chosen[method] = override["chosen"]
            kept[method] = override
            log(
                f"[tune] {method}: the search chose {override['searched']} again; the main run keeps the "
                f"safety override {override['chosen']}"
            )
        else:
            log(
                f"[tune] {method}: the search now chooses {chosen.get(method)}; the safety override of "
                f"{override['searched']} no longer applies"
            )
    return chosen, kept


def _protocol(profile: Profile, seeds: tuple[int, ...]) -> dict[str, Any]:
    return {
        "validation": f"{profile.tune_val_size} images held out of the train split (seed {SPLIT_SEED})",
        "seeds": list(seeds),
        "criterion": "mean validation linear-probe top-1 over the seeds; a candidate that diverged on any "
        "seed is never chosen",
        "pretrain_epochs": profile.tune_epochs,
        "pretrain_subset": profile.pretrain_subset,
        "batch_size": profile.batch_size,
        "probe_train_images": profile.tune_probe_train,
        "lr_grid": list(LR_GRID),
        "lr_grid_extension": "x3 or /3 once if the best lr is at an end of the grid",
        "loss_alternatives": LOSS_ALTERNATIVES,
        "loss_further": LOSS_FURTHER,
    }


# What a protocol says of the grids: trials of another grid are still trials of their candidates.
GRID_KEYS = {"lr_grid", "lr_grid_extension", "loss_alternatives", "loss_further"}


def _previous_trials(
    path: Path | None, profile: Profile, dataset: str, protocol: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """The trials ``path`` records for this profile and dataset under the same scoring protocol, else
    none."""
    entry = None if path is None else read_entry(profile, dataset, path)
    old = {} if entry is None else entry.get("protocol", {})
    shared = (set(old) & set(protocol)) - GRID_KEYS
    if not {"validation", "seeds", "pretrain_epochs", "pretrain_subset"} <= shared or any(
        old[k] != protocol[k] for k in shared
    ):
        return {}
    return entry.get("trials", {})


def tune(
    data: ImageData,
    profile: Profile,
    dataset: str,
    methods: tuple[str, ...] = SSL_METHODS,
    device="cpu",
    seeds: tuple[int, ...] = TUNE_SEEDS,
    progress: bool = True,
    path: Path | None = TUNED_PATH,
    log=print,
    reuse: bool = False,
) -> dict[str, Any]:
    """Run the search for ``methods``; write the winners to ``path`` (None: write nothing)."""
    if len(seeds) < 2:
        raise ValueError(f"seeds={seeds}; the search scores every candidate on at least two seeds")
    t0 = time.perf_counter()
    split = validation_split(data, profile.tune_val_size, seed=SPLIT_SEED)
    del data  # the official test split plays no part below
    augment = BatchAugment(profile.augment, *split.channel_stats())
    protocol = _protocol(profile, tuple(seeds))
    previous = _previous_trials(path, profile, dataset, protocol) if reuse else {}
    trials: dict[str, list[dict[str, Any]]] = {}
    chosen: dict[str, dict[str, Any]] = {}

    def save(log=log) -> dict[str, Any]:
        entry = {
            "chosen": dict(chosen),
            "trials": {m: list(rows) for m, rows in trials.items()},
            "criterion": protocol["criterion"],
            "protocol": protocol,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        if path is not None:
            _write_merged(entry, path, profile, dataset, methods, log)
        return entry

    for method in methods:
        rows = trials.setdefault(method, [])
        done = {json.dumps(r["params"], sort_keys=True): r for r in previous.get(method, [])}

        def run(params: dict[str, Any], stage: int, method=method, rows=rows, done=done) -> None:
            old = done.get(json.dumps(params, sort_keys=True))
            if old is not None:
                rows.append({**old, "stage": stage})
                log(f"[tune] {method} {params}: reused {old['linear_top1']}")
                return
            scores = score_candidate(method, params, split, profile, augment, seeds, device, progress)
            rows.append({"stage": stage, "params": params, **scores})
            log(f"[tune] {method} {params}: {scores['linear_top1']} (diverged: {scores['diverged']})")
            # Every finished candidate is on disk: a stopped search resumes with --reuse-trials.
            save(log=lambda *_: None)

        def best_lr(rows=rows) -> float | None:
            winner = best(rows)
            return None if winner is None else winner["params"]["lr"]

        default = DEFAULT_LOSS_PARAMS[method]
        for lr in LR_GRID:
            run({"lr": lr, **default}, stage=1)
        lr = best_lr()
        if lr in (LR_GRID[0], LR_GRID[-1]):  # the grid's end won: one more step beyond it
            run({"lr": round(lr / 3 if lr == LR_GRID[0] else lr * 3, 6), **default}, stage=1)
            lr = best_lr()
        if lr is None:
            log(f"[tune] {method}: every learning rate diverged; nothing chosen")
            continue
        for alternative in LOSS_ALTERNATIVES[method]:
            run({"lr": lr, **alternative}, stage=2)
        winner = best(rows)["params"]
        for alternative, further in zip(LOSS_ALTERNATIVES[method], LOSS_FURTHER[method], strict=True):
            if winner == {"lr": lr, **alternative}:
                run({"lr": lr, **further}, stage=3)
        chosen[method] = best(rows)["params"]
    entry = save()
    if path is not None:
        log(f"[tune] wrote {path} [{tuned_key(profile, dataset)}]")
    return entry


def _write_merged(
    entry: dict[str, Any], path: Path, profile: Profile, dataset: str, methods: tuple[str, ...], log
) -> None:
    """Writes ``entry`` for ``methods``, keeping the other methods' recorded results (merged per method)
    and the safety overrides that still apply; ``entry`` is updated to what was written."""
    protocol = entry["protocol"]
    kept = read_entry(profile, dataset, path)
    if kept is not None and _previous_trials(path, profile, dataset, protocol):
        for key in ("chosen", "trials"):
            entry[key] = {**{m: v for m, v in kept[key].items() if m not in methods}, **entry[key]}
    entry["chosen"], overrides = apply_safety_overrides(
        entry["chosen"], (kept or {}).get("safety_overrides", {}), methods, log
    )
    if overrides:
        entry["safety_overrides"] = overrides
    entry["seconds"] = round(sum(r["seconds"] for rows in entry["trials"].values() for r in rows), 1)
    write_entry(profile, dataset, entry, path)


def validation_run(method: str, seed: int, run: RunSettings, split: ImageData, args) -> dict[str, Any]:
    """A search study's run: scored on the validation split as the search scores a candidate."""
    augment = BatchAugment(run.profile.augment, *split.channel_stats())
    return score_config(method, run.params, split, run.profile, augment, seed, args.device, False)


def run_search(
    study, data: ImageData, profile: Profile, params, out: Path, args, log=print
) -> dict[str, Any]:
    """The search for ``--methods`` (default the main run's) on ``--seeds`` (default ``TUNE_SEEDS``): the
    winners go to ``--tuned``, the entry to ``out/tuning.json`` and its table to ``out/tuning.md``."""
    path = args.tuned or TUNED_PATH
    seeds = tuple(args.seeds or TUNE_SEEDS)
    methods = tuple(args.methods or study.methods)
    progress = not args.no_progress
    entry = tune(
        data, profile, args.dataset, methods, args.device, seeds, progress, path, log, args.reuse_trials
    )
    write_json(out / "tuning.json", entry)
    write_tuning_report(study, out)
    log((out / "tuning.md").read_text())
    return entry
