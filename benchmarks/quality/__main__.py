"""python -m benchmarks.quality: MUSIC vs Barlow Twins vs VICReg, linear probe and kNN on frozen features.

Every method is trained on every seed of the profile (paired: same seeds, images and initial weights);
results.json holds per-method means and standard deviations, MUSIC minus each peer per seed with a 95 %
interval, and a win / tie / loss verdict (rule in benchmarks/quality/stats.py and docs/quality.md). A
method that diverges is recorded as such and the run goes on.

Examples:
    python -m benchmarks.quality                       # CPU profile, Fashion-MNIST (Debian's files)
    python -m benchmarks.quality --seeds 0 1 2 3 4     # more seeds, tighter intervals
    python -m benchmarks.quality --profile gpu --dataset cifar10 --data-root data --download

The search that chooses the hyper-parameters is ``python -m benchmarks.quality.tune``.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from benchmarks.quality.cli import add_common_arguments, load_data, set_threads
from benchmarks.quality.config import RESULTS, get_profile
from benchmarks.quality.plots import write_plots
from benchmarks.quality.report import markdown_table
from benchmarks.quality.run import run_benchmark, versions
from benchmarks.quality.ssl_methods import SSL_METHODS
from benchmarks.quality.tuned import method_params

PUBLISH_DIR = RESULTS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(p)
    p.add_argument("--out", type=Path, default=Path("results/quality"))
    p.add_argument("--methods", nargs="+", choices=SSL_METHODS, default=list(SSL_METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default: the profile's seeds")
    p.add_argument("--epochs", type=int, default=None, help="override the profile's pretraining epochs")
    p.add_argument("--subset", type=int, default=None, help="override the profile's pretraining subset size")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=None, help="stop each pretraining after this many steps")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes running seeds side by side (default: on CPU one per seed up to the thread count)",
    )
    p.add_argument(
        "--tuned", type=Path, default=None, help="tuned values (default benchmarks/quality/tuned.json)"
    )
    p.add_argument("--untuned", action="store_true", help="ignore tuned.json: paper defaults, profile lr")
    p.add_argument(
        "--publish",
        action="store_true",
        help="also copy results.json, table.md and plots to docs/results/quality/",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    set_threads(args.threads)
    log = functools.partial(print, flush=True)
    overrides = {"epochs": args.epochs, "pretrain_subset": args.subset, "batch_size": args.batch_size}
    if args.seeds:
        overrides["seeds"] = tuple(args.seeds)
    profile = get_profile(args.profile, **overrides)
    t0 = time.perf_counter()
    data, data_root = load_data(args, log)
    log(f"profile {profile.name}, seeds {list(profile.seeds)}")
    args.out.mkdir(parents=True, exist_ok=True)
    methods = tuple(args.methods)

    params, tuned_from = method_params(profile, args.dataset, args.tuned, args.untuned)
    log(f"hyper-parameters: {tuned_from}")
    results, artifacts = run_benchmark(
        data,
        profile,
        params,
        methods,
        args.device,
        args.max_steps,
        progress=not args.no_progress,
        log=log,
        workers=args.workers,
    )
    results["config"] = {
        "profile": profile.to_dict(),
        "dataset": args.dataset,
        "data_root": str(data_root),
        "train_images": len(data.train_labels),
        "test_images": len(data.test_labels),
        "device": args.device,
        "threads": torch.get_num_threads(),
        "seed_workers": results.pop("seed_workers"),
        "max_steps": args.max_steps,
        "data_limit": args.data_limit,
        "hyper_parameters_from": tuned_from,
        "evaluation": (
            "frozen backbone features of the official test split; linear probe = multinomial logistic "
            f"regression (L-BFGS, L2 {profile.probe_weight_decay}) on standardized features of the full "
            f"train split; kNN = cosine, k in {list(profile.knn_ks)}, "
            f"votes exp(sim/{profile.knn_temperature})"
        ),
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.quality", *(argv or sys.argv[1:])]),
    }
    results["versions"] = versions()
    results["total_seconds"] = round(time.perf_counter() - t0, 1)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown_table(results)
    (args.out / "table.md").write_text(table)
    plots = write_plots(results, artifacts, args.out)
    log(table)
    log(
        f"wrote {args.out / 'results.json'}, {args.out / 'table.md'} and {len(plots)} plots "
        f"in {results['total_seconds']:.0f} s"
    )
    if args.publish:
        PUBLISH_DIR.mkdir(exist_ok=True)
        for path in [args.out / "results.json", args.out / "table.md", *plots]:
            shutil.copy(path, PUBLISH_DIR / path.name)
        log(f"copied to {PUBLISH_DIR}")
    return results


if __name__ == "__main__":
    main()
