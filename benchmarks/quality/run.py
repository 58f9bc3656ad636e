"""The main run: pretrain every method with the same protocol, then evaluate frozen features."""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from benchmarks.quality.attributes import code_usage, entropy, hard_code_usage, music_attributes
from benchmarks.quality.augment import BatchAugment
from benchmarks.quality.config import RESULTS, Profile, RunSettings
from benchmarks.quality.data import ImageData
from benchmarks.quality.evaluate import evaluate_profile, extract_features
from benchmarks.quality.models import save_model
from benchmarks.quality.names import full_names
from benchmarks.quality.ssl_methods import SSL_METHODS, loss_params
from benchmarks.quality.stats import compare
from benchmarks.quality.study.main_report import write_main_report
from benchmarks.quality.study.store import SeedRuns, run_settings, write_json
from benchmarks.quality.train import build_model, divergence_event, pretrain

BASELINES = ("raw_pixels", "random_init")
METRICS = ("linear_top1", "knn_top1")


@dataclass
class Artifacts:
    """What the plots need beyond results.json: MUSIC's test-set attribute probabilities."""

    test_images: torch.Tensor
    music_probabilities: torch.Tensor | None = None  # (N_test, S, C)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or "unknown"


def versions() -> dict[str, str]:
    import lightly
    import torchvision

    import music_ssl

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "lightly": lightly.__version__,
        "music_ssl": music_ssl.__version__,
        "platform": platform.platform(),
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        # The CPU and the instruction set torch's kernels dispatch to: the same code and seeds give the
        # same numbers on one machine, but can differ in the last digits on another CPU.
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "device": torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else platform.processor() or "cpu",
    }


def _features(backbone, data: ImageData, augment: BatchAugment, profile: Profile, device) -> tuple:
    fb = profile.feature_batch_size
    return (
        extract_features(backbone, data.train_images, augment.plain, fb, device),
        extract_features(backbone, data.test_images, augment.plain, fb, device),
    )


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean over the seeds that finished of every numeric entry; ``*_std`` beside accuracies.

    A seed that diverged has ``None`` accuracies and is left out of the means; ``diverged`` lists it.
    """
    out: dict[str, Any] = {}
    finished = [r for r in rows if not r.get("diverged")]
    for key, value in (finished or rows)[0].items():
        if key == "seed" or isinstance(value, bool) or not isinstance(value, int | float | None):
            continue
        values = [r[key] for r in finished if isinstance(r.get(key), int | float)]
        if not values:
            out[key] = None
            continue
        out[key] = round(statistics.fmean(values), 4)
        if len(values) > 1 and (key.endswith("top1") or key.startswith("knn_top1_k")):
            out[f"{key}_std"] = round(statistics.stdev(values), 4)
    out["seeds"] = [r["seed"] for r in rows]
    out["diverged"] = [r["diverged"] for r in rows if r.get("diverged")]
    return out


def _diverged_row(seed: int, divergence: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {
        "seed": seed,
        **dict.fromkeys(("linear_top1", "knn_top1"), None),
        "seconds": seconds,
        "diverged": {"seed": seed, **divergence},
    }


def _reading(params: dict[str, Any]) -> dict[str, Any]:
    """How MUSIC's head output is read: its segment size and the temperature it trained at."""
    options = loss_params("music", params)
    return {"segment_dim": int(options["segment_dim"]), "temperature": float(options["temperature"])}


def pretrain_run(
    method: str, run: RunSettings, data: ImageData, seed: int, args, **options: Any
) -> tuple[BatchAugment, Any]:
    """Pretrain ``method`` at ``run``'s profile and options on ``seed``: the one call every run makes, with
    the command's device and step limit (``args``); returns the views' augmentation and the TrainResult."""
    augment = BatchAugment(run.profile.augment, *data.channel_stats())
    options = {"max_steps": args.max_steps, "progress": False, "monitor": False, **options}
    return augment, pretrain(method, run.params, data, run.profile, augment, seed, args.device, **options)


def train_and_evaluate(
    method: str, run: RunSettings, data: ImageData, seed: int, args, **options: Any
) -> tuple[dict[str, Any], Any, torch.Tensor | None]:
    """One method on one seed: pretrain, then evaluate unless it diverged; MUSIC's row also says how many
    attributes its hard codes of the test images use per segment (`hard_code_usage`). Returns the row, the
    TrainResult and MUSIC's test-set attribute probabilities (None for another method or a diverged run)."""
    profile, params, device = run.profile, run.params, args.device
    augment, trained = pretrain_run(method, run, data, seed, args, **options)
    epochs_run = [h for h in trained.history if h["epoch"] > 0]
    timing = {
        "seconds": trained.seconds,
        "seconds_per_epoch": trained.seconds / max(1, len(epochs_run)),
        "cpu_seconds_per_epoch": trained.cpu_seconds / max(1, len(epochs_run)),
    }
    if trained.peak_step_bytes is not None:
        timing["peak_step_mib"] = round(trained.peak_step_bytes / 2**20, 1)
    if trained.diverged:
        return {**_diverged_row(seed, trained.divergence, trained.seconds), **timing}, trained, None
    start = time.perf_counter()
    train_f, test_f = _features(trained.model.backbone, data, augment, profile, device)
    if not (torch.isfinite(train_f).all() and torch.isfinite(test_f).all()):
        last = epochs_run[-1]["loss"] if epochs_run else None
        trained.divergence = divergence_event(len(epochs_run), None, last, "non-finite features")
        return {**_diverged_row(seed, trained.divergence, trained.seconds), **timing}, trained, None
    row = {
        "seed": seed,
        **evaluate_profile(train_f, test_f, data, profile),
        **timing,
        "eval_seconds": time.perf_counter() - start,
        "final_loss": epochs_run[-1]["loss"] if epochs_run else None,
        "diverged": None,
    }
    probabilities = None
    if method == "music":
        probabilities = music_attributes(
            trained.model, data, augment, profile, device=device, **_reading(params)
        )
        row |= hard_code_usage(probabilities)
    return row, trained, probabilities


def _read_or_run(runs: SeedRuns | None, name: str, seed: int, first: bool, run) -> dict[str, Any]:
    """The record of ``name`` on ``seed`` (its row, history and probabilities): read from its run file in
    ``runs`` where it finished before, else ``run()``'s, written there."""
    record = runs.finished(name, seed, first) if runs is not None else None
    if record is None:
        record = run()
        if runs is not None:
            runs.save(name, seed, first, record["row"], record["history"], record["probabilities"])
    return record


def one_seed(
    data: ImageData,
    profile: Profile,
    method_params: dict[str, dict[str, Any]],
    methods: tuple[str, ...],
    args,
    progress: bool,
    seed: int,
    first: bool,
    runs: SeedRuns | None = None,
    log=print,
) -> dict[str, Any]:
    """The random-init baseline and every method on one seed, each read from its run file in ``runs``
    where it finished before, else run and written there.

    Returns ``rows`` (one per method and ``random_init``), ``histories`` and, on the first seed, MUSIC's
    test-set attribute probabilities (``music_probabilities``, or None if it diverged).
    """
    device = args.device
    augment = BatchAugment(profile.augment, *data.channel_stats())
    out: dict[str, Any] = {"rows": {}, "histories": {}, "music_probabilities": None}

    def random_init() -> dict[str, Any]:
        start = time.perf_counter()
        torch.manual_seed(seed)  # the very initial weights every method starts from
        model = build_model(profile, data.channels).to(device)
        result = evaluate_profile(*_features(model.backbone, data, augment, profile, device), data, profile)
        row = {"seed": seed, **result, "seconds": time.perf_counter() - start, "diverged": None}
        return {"row": row, "history": None, "probabilities": None}

    def trained(method: str) -> dict[str, Any]:
        # The kNN monitor draws the accuracy-over-epochs plot from the first seed alone.
        run = RunSettings(profile, method_params[method])
        row, result, probabilities = train_and_evaluate(
            method, run, data, seed, args, progress=progress, monitor=first
        )
        return {"row": row, "history": result.history, "probabilities": probabilities if first else None}

    out["rows"]["random_init"] = _read_or_run(runs, "random_init", seed, first, random_init)["row"]
    log(f"[seed {seed}] random_init: {out['rows']['random_init']}")
    for method in methods:
        record = _read_or_run(runs, method, seed, first, functools.partial(trained, method))
        out["rows"][method] = record["row"]
        out["histories"][method] = record["history"]
        log(f"[seed {seed}] {method}: {record['row']}")
        if record["probabilities"] is not None:
            out["music_probabilities"] = record["probabilities"]
    return out


def _one_seed_in_worker(threads: int, *args) -> dict[str, Any]:
    torch.set_num_threads(threads)
    return one_seed(*args, log=functools.partial(print, flush=True))


def seed_workers(num_seeds: int, device, workers: int | None) -> int:
    """Seeds run side by side on CPU, one process each: small convolutions use two 1-thread processes
    better than one 2-thread process. One process on a GPU."""
    if workers is not None:
        if workers < 1:
            raise ValueError(f"workers={workers}; expected a positive number of processes")
        return min(workers, num_seeds)
    if torch.device(device).type != "cpu":
        return 1
    return max(1, min(num_seeds, torch.get_num_threads()))


def run_benchmark(
    data: ImageData,
    profile: Profile,
    method_params: dict[str, dict[str, Any]],
    methods: tuple[str, ...] = SSL_METHODS,
    device: str | torch.device = "cpu",
    max_steps: int | None = None,
    progress: bool = True,
    log=print,
    workers: int | None = None,
    runs: SeedRuns | None = None,
) -> tuple[dict[str, Any], Artifacts]:
    """Every method in ``methods`` and both baselines, for every seed in ``profile.seeds``.

    Raw pixels do not depend on the seed and are evaluated once. A method that diverges on a seed is
    recorded as such and the run goes on; ``results["comparison"]`` pairs the seeds (see stats.py).
    With ``workers`` > 1 the seeds run in that many processes at once, sharing torch's threads between
    them; every method of one seed runs in the same process, so the pairs stay exact. With ``runs``, a
    method's run on a seed that finished before is read from its run file instead.
    """
    t0 = time.perf_counter()
    artifacts = Artifacts(test_images=data.test_images)
    per_seed: dict[str, list[dict[str, Any]]] = {name: [] for name in (*methods, *BASELINES)}

    start = time.perf_counter()
    raw_train = data.train_images.flatten(1).float().div(255).to(device)
    raw_test = data.test_images.flatten(1).float().div(255).to(device)
    raw = evaluate_profile(raw_train, raw_test, data, profile)
    del raw_train, raw_test
    per_seed["raw_pixels"] = [
        {"seed": seed, **raw, "seconds": time.perf_counter() - start, "diverged": None}
        for seed in profile.seeds
    ]
    log(f"raw_pixels (every seed): {raw}")

    workers = seed_workers(len(profile.seeds), device, workers)
    args = argparse.Namespace(device=device, max_steps=max_steps)
    jobs = [
        (data, profile, method_params, methods, args, progress and workers == 1, seed, i == 0, runs)
        for i, seed in enumerate(profile.seeds)
    ]
    if workers == 1:
        outs = [one_seed(*job, log=log) for job in jobs]
    else:
        threads = max(1, torch.get_num_threads() // workers)
        log(f"{len(jobs)} seeds in {workers} processes of {threads} threads")
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            outs = pool.starmap(_one_seed_in_worker, [(threads, *job) for job in jobs])
            pool.close()
            pool.join()
    for out in outs:
        for name, row in out["rows"].items():
            per_seed[name].append(row)
    histories = {m: outs[0]["histories"][m] for m in methods}
    artifacts.music_probabilities = probs = outs[0]["music_probabilities"]

    results: dict[str, Any] = {"methods": {}}
    for name, rows in per_seed.items():
        summary = summarize(rows)
        if name in methods:
            summary["params"] = {
                "lr": method_params[name].get("lr", profile.lr),
                **loss_params(name, method_params[name]),
            }
            summary["history"] = histories[name]
            if name == "music" and probs is not None:
                entropies = entropy(code_usage(probs)).tolist()
                summary["attribute_entropy_per_segment"] = [round(v, 4) for v in entropies]
        summary["per_seed"] = rows
        results["methods"][name] = summary
    if "music" in methods:
        peers = tuple(m for m in methods if m != "music") + BASELINES
        results["comparison"] = compare(per_seed, "music", peers, METRICS, full_names())
    results["seed_workers"] = workers
    results["total_seconds"] = round(time.perf_counter() - t0, 1)
    return results, artifacts


def evaluate_on_test(method: str, seed: int, run: RunSettings, data: ImageData, args) -> dict[str, Any]:
    """A test study's run: trained and evaluated as the main run does, its model kept on request."""
    row, trained, _ = train_and_evaluate(method, run, data, seed, args)
    if getattr(args, "save_models", None) is not None and not trained.diverged:
        save_model(trained.model, args.save_models / args.study / f"{method}__seed{seed}.pt")
    return row


def pretrain_only(method: str, seed: int, run: RunSettings, data: ImageData, args) -> dict[str, Any]:
    """A stability run: how its pretraining went, whether and where it diverged."""
    _, trained = pretrain_run(method, run, data, seed, args, stop_epoch=args.stop_epoch)
    losses = [h["loss"] for h in trained.history if h["epoch"] > 0]
    return {
        "seed": seed,
        "diverged": None if not trained.diverged else {"seed": seed, **trained.divergence},
        "epochs_run": len(losses),
        "final_loss": losses[-1] if losses else None,
        "seconds": trained.seconds,
    }


def run_main(study, data: ImageData, profile: Profile, params, out: Path, args, log=print) -> dict[str, Any]:
    """The main run: every method and both baselines on every seed of the profile (paired), written to
    ``out/results.json``, ``table.md`` and the plots; ``--publish`` copies them to docs/results/quality/."""
    t0 = time.perf_counter()
    profile = replace(profile, seeds=tuple(args.seeds)) if args.seeds else profile
    log(f"profile {profile.name}, seeds {list(profile.seeds)}")
    methods = tuple(args.methods or study.methods)
    # One run file per method and seed (OUT/runs/), so that a main run cut short goes on from them.
    settings = {
        name: {**run_settings(RunSettings(profile, params.get(name, {})), args), "device": str(args.device)}
        for name in (*methods, "random_init")
    }
    results, artifacts = run_benchmark(
        data, profile, params, methods, args.device, args.max_steps, not args.no_progress, log, args.workers,
        SeedRuns(out / "runs", settings),
    )  # fmt: skip
    results["config"] = {
        "profile": profile.to_dict(),
        "dataset": args.dataset,
        "data_root": str(args.data_root),
        "train_images": len(data.train_labels),
        "test_images": len(data.test_labels),
        "device": args.device,
        "threads": torch.get_num_threads(),
        "seed_workers": results.pop("seed_workers"),
        "max_steps": args.max_steps,
        "data_limit": args.data_limit,
        "hyper_parameters_from": args.params_from,
        "evaluation": (
            "frozen backbone features of the official test split; linear probe = multinomial logistic "
            f"regression (L-BFGS, L2 {profile.probe_weight_decay}) on standardized features of the full "
            f"train split; kNN = cosine, k in {list(profile.knn_ks)}, "
            f"votes exp(sim/{profile.knn_temperature})"
        ),
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.quality", *args.argv]),
    }
    results["versions"] = versions()
    results["total_seconds"] = round(time.perf_counter() - t0, 1)
    write_json(out / "results.json", results)
    write_main_report(study, out, artifacts=artifacts)
    plots = sorted(out.glob("*.png"))
    log(
        f"wrote {out / 'results.json'}, {out / 'table.md'} and {len(plots)} plots "
        f"in {results['total_seconds']:.0f} s"
    )
    if args.publish:
        RESULTS.mkdir(exist_ok=True)
        for path in [out / "results.json", out / "table.md", *plots]:
            shutil.copy(path, RESULTS / path.name)
        log(f"copied to {RESULTS}")
    return results
