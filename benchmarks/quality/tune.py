"""The tuning search: the same small grid for every method, scored on a validation split of the train set.

``python -m benchmarks.quality.tune`` (or ``python -m benchmarks.quality --tune``). The official test split
is never loaded into the search: ``validation_split`` carves ``profile.tune_val_size`` images out of the
train split and the rest is the search's train set. Two stages per method, the same number of runs each:

1. learning rate in ``LR_GRID`` with the paper's loss options; when the best learning rate is at an end
   of the grid, the grid is extended by one more factor of 3 in that direction (same rule for every
   method), so no method is stuck at the edge of a grid chosen for another;
2. at the best learning rate, two alternatives of the method's own main options (``LOSS_ALTERNATIVES``);
3. if an alternative beat the paper's options, one more step in that alternative's direction
   (``LOSS_FURTHER``), again for every method alike.

With ``--reuse-trials``, trials already recorded in ``tuned.json`` under the same protocol are reused,
not rerun (that is how the recorded search added the grid extension and stage 3 to its first pass).

The winner by validation linear-probe top-1 is written to ``tuned.json``, which the main run reads.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.quality.augment import BatchAugment
from benchmarks.quality.config import Profile
from benchmarks.quality.data import ImageData, validation_split
from benchmarks.quality.evaluate import evaluate_features, extract_features
from benchmarks.quality.methods import DEFAULT_LOSS_PARAMS, METHODS
from benchmarks.quality.train import pretrain

TUNED_PATH = Path(__file__).with_name("tuned.json")

LR_GRID = (0.03, 0.1, 0.3)
LOSS_ALTERNATIVES: dict[str, list[dict[str, Any]]] = {
    "music": [{"segment_dim": 16, "temperature": 1.0}, {"segment_dim": 32, "temperature": 0.5}],
    "barlow_twins": [{"lambda_param": 0.001}, {"lambda_param": 0.02}],
    "vicreg": [
        {"lambda_param": 10.0, "mu_param": 25.0, "nu_param": 1.0},
        {"lambda_param": 25.0, "mu_param": 10.0, "nu_param": 1.0},
    ],
}

# One more step along each alternative's direction (stage 3): smaller segments / lower temperature,
# weaker / stronger redundancy weight, weaker invariance / variance weight.
LOSS_FURTHER: dict[str, list[dict[str, Any]]] = {
    "music": [{"segment_dim": 8, "temperature": 1.0}, {"segment_dim": 32, "temperature": 0.25}],
    "barlow_twins": [{"lambda_param": 0.0002}, {"lambda_param": 0.08}],
    "vicreg": [
        {"lambda_param": 4.0, "mu_param": 25.0, "nu_param": 1.0},
        {"lambda_param": 25.0, "mu_param": 4.0, "nu_param": 1.0},
    ],
}


def tuned_key(profile: Profile, dataset: str) -> str:
    return f"{profile.name}/{dataset}"


def load_tuned(profile: Profile, dataset: str, path: Path = TUNED_PATH) -> dict[str, dict[str, Any]] | None:
    """The chosen ``{method: params}`` for this profile and dataset, or None if never searched."""
    if not path.is_file():
        return None
    entry = json.loads(path.read_text()).get(tuned_key(profile, dataset))
    return None if entry is None else entry["chosen"]


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
    if trained.diverged:
        return {"linear_top1": 0.0, "knn_top1": 0.0, "diverged": True, "seconds": time.perf_counter() - start}
    n = profile.tune_probe_train or len(split.train_labels)
    g = torch.Generator().manual_seed(seed + 4)
    probe_idx = torch.randperm(len(split.train_labels), generator=g)[:n]
    fb = profile.feature_batch_size
    train_f = extract_features(
        trained.model.backbone, split.train_images[probe_idx], augment.plain, fb, device
    )
    val_f = extract_features(trained.model.backbone, split.test_images, augment.plain, fb, device)
    scores = evaluate_features(
        train_f,
        split.train_labels[probe_idx],
        val_f,
        split.test_labels,
        split.num_classes,
        profile.knn_ks,
        profile.knn_temperature,
        profile.probe_weight_decay,
        profile.probe_max_iter,
    )
    return {
        **{k: round(v, 2) for k, v in scores.items()},
        "diverged": False,
        "seconds": round(time.perf_counter() - start, 1),
    }


def _protocol(profile: Profile, seed: int) -> dict[str, Any]:
    return {
        "validation": f"{profile.tune_val_size} images held out of the train split (seed {seed})",
        "pretrain_epochs": profile.tune_epochs,
        "pretrain_subset": profile.pretrain_subset,
        "batch_size": profile.batch_size,
        "probe_train_images": profile.tune_probe_train,
        "lr_grid": list(LR_GRID),
        "lr_grid_extension": "x3 or /3 once if the best lr is at an end of the grid",
        "loss_alternatives": LOSS_ALTERNATIVES,
        "loss_further": LOSS_FURTHER,
    }


def _previous_trials(
    path: Path | None, key: str, protocol: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    if path is None or not path.is_file():
        return {}
    entry = json.loads(path.read_text()).get(key)
    if entry is None:
        return {}
    old = entry.get("protocol", {})
    shared = (set(old) & set(protocol)) - {
        "lr_grid_extension",
        "loss_alternatives",
        "loss_further",
        "lr_grid",
    }
    if not {"validation", "pretrain_epochs", "pretrain_subset"} <= shared or any(
        old[k] != protocol[k] for k in shared
    ):
        return {}
    return entry.get("trials", {})


def tune(
    data: ImageData,
    profile: Profile,
    dataset: str,
    methods: tuple[str, ...] = METHODS,
    device="cpu",
    seed: int = 0,
    progress: bool = True,
    path: Path | None = TUNED_PATH,
    log=print,
    reuse: bool = False,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    split = validation_split(data, profile.tune_val_size, seed=seed)
    del data  # the official test split plays no part below
    augment = BatchAugment(profile.augment, *split.channel_stats())
    protocol = _protocol(profile, seed)
    previous = _previous_trials(path, tuned_key(profile, dataset), protocol) if reuse else {}
    trials: dict[str, list[dict[str, Any]]] = {}
    chosen: dict[str, dict[str, Any]] = {}
    for method in methods:
        rows = trials.setdefault(method, [])
        done = {json.dumps(r["params"], sort_keys=True): r for r in previous.get(method, [])}

        def run(params: dict[str, Any], stage: int, method=method, rows=rows, done=done) -> None:
            old = done.get(json.dumps(params, sort_keys=True))
            if old is not None:
                rows.append({**old, "stage": stage})
                log(f"[tune] {method} {params}: reused {old['linear_top1']}")
                return
            scores = score_config(method, params, split, profile, augment, seed, device, progress)
            rows.append({"stage": stage, "params": params, **scores})
            log(f"[tune] {method} {params}: {scores}")

        for lr in LR_GRID:
            run({"lr": lr, **DEFAULT_LOSS_PARAMS[method]}, stage=1)
        best_lr = max(rows, key=lambda r: r["linear_top1"])["params"]["lr"]
        if best_lr in (LR_GRID[0], LR_GRID[-1]):
            best_lr = round(best_lr / 3 if best_lr == LR_GRID[0] else best_lr * 3, 6)
            run({"lr": best_lr, **DEFAULT_LOSS_PARAMS[method]}, stage=1)
            best_lr = max(rows, key=lambda r: r["linear_top1"])["params"]["lr"]
        for alternative in LOSS_ALTERNATIVES[method]:
            run({"lr": best_lr, **alternative}, stage=2)
        best = max(rows, key=lambda r: r["linear_top1"])["params"]
        for alternative, further in zip(LOSS_ALTERNATIVES[method], LOSS_FURTHER[method], strict=True):
            if best == {"lr": best_lr, **alternative}:
                run({"lr": best_lr, **further}, stage=3)
        chosen[method] = max(rows, key=lambda r: r["linear_top1"])["params"]
    entry = {
        "chosen": chosen,
        "trials": trials,
        "criterion": "validation linear-probe top-1 (%)",
        "protocol": protocol,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if path is not None:
        # Merge per method, so a search over some methods keeps the others' recorded results.
        all_entries = json.loads(path.read_text()) if path.is_file() else {}
        kept = all_entries.get(tuned_key(profile, dataset))
        if kept is not None and _previous_trials(path, tuned_key(profile, dataset), protocol):
            for key in ("chosen", "trials"):
                entry[key] = {**{m: v for m, v in kept[key].items() if m not in methods}, **entry[key]}
        entry["seconds"] = round(sum(r["seconds"] for rows in entry["trials"].values() for r in rows), 1)
        all_entries[tuned_key(profile, dataset)] = entry
        path.write_text(json.dumps(all_entries, indent=2) + "\n")
        log(f"[tune] wrote {path}")
    return entry


def main(argv: list[str] | None = None) -> None:
    from benchmarks.quality.__main__ import main as cli_main

    cli_main(["--tune", *(argv or [])] if argv is not None else None, force_tune=True)


if __name__ == "__main__":
    main()
