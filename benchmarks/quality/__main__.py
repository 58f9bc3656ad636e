"""python -m benchmarks.quality: MUSIC vs Barlow Twins vs VICReg, linear probe and kNN on frozen features.

Examples:
    python -m benchmarks.quality                       # CPU profile, Fashion-MNIST (Debian's files)
    python -m benchmarks.quality --tune                # the search; writes benchmarks/quality/tuned.json
    python -m benchmarks.quality --profile gpu --dataset cifar10 --data-root data --download
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

from benchmarks.quality.config import PROFILES, get_profile
from benchmarks.quality.data import DATASETS, default_data_root, load_dataset
from benchmarks.quality.methods import DEFAULT_LOSS_PARAMS, METHODS

PUBLISH_DIR = Path(__file__).with_name("results")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    p.add_argument("--dataset", choices=DATASETS, default="fashion_mnist")
    p.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="default: /usr/share/datasets/fashion-mnist (fashion_mnist), ./data otherwise",
    )
    p.add_argument("--download", action="store_true", help="let torchvision download missing data")
    p.add_argument("--out", type=Path, default=Path("results/quality"))
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None, help="override the profile's pretraining epochs")
    p.add_argument("--subset", type=int, default=None, help="override the profile's pretraining subset size")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=None, help="stop each pretraining after this many steps")
    p.add_argument("--image-size", type=int, default=32, help="imagefolder: resize and crop to this size")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--tune", action="store_true", help="run the tuning search instead of the main run")
    p.add_argument(
        "--tuned", type=Path, default=None, help="tuned values (default benchmarks/quality/tuned.json)"
    )
    p.add_argument("--untuned", action="store_true", help="ignore tuned.json: paper defaults, profile lr")
    p.add_argument("--reuse-trials", action="store_true", help="--tune: reuse trials recorded in tuned.json")
    p.add_argument(
        "--publish",
        action="store_true",
        help="also copy results.json, table.md and plots to benchmarks/quality/results/",
    )
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def method_params(args, profile, log) -> tuple[dict, str]:
    from benchmarks.quality.tune import TUNED_PATH, load_tuned

    defaults = {m: {"lr": profile.lr, **DEFAULT_LOSS_PARAMS[m]} for m in METHODS}
    if args.untuned:
        return defaults, "paper defaults (--untuned)"
    path = args.tuned or TUNED_PATH
    tuned = load_tuned(profile, args.dataset, path)
    if tuned is None:
        log(
            f"no tuned values for {profile.name}/{args.dataset} in {path}: "
            f"using paper defaults, lr {profile.lr}"
        )
        return defaults, "paper defaults (no search recorded)"
    return {m: tuned.get(m, defaults[m]) for m in METHODS}, f"{path.name} [{profile.name}/{args.dataset}]"


def main(argv: list[str] | None = None, force_tune: bool = False) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    log = functools.partial(print, flush=True)
    overrides = {"epochs": args.epochs, "pretrain_subset": args.subset, "batch_size": args.batch_size}
    if args.seeds:
        overrides["seeds"] = tuple(args.seeds)
    profile = get_profile(args.profile, **overrides)
    data_root = args.data_root or default_data_root(args.dataset)
    t0 = time.perf_counter()
    data = load_dataset(args.dataset, data_root, args.download, args.image_size)
    log(
        f"{args.dataset}: train {tuple(data.train_images.shape)}, test {tuple(data.test_images.shape)} "
        f"from {data_root} ({time.perf_counter() - t0:.1f} s); profile {profile.name}, device {args.device}, "
        f"{torch.get_num_threads()} threads"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    methods = tuple(args.methods)

    if args.tune or force_tune:
        from benchmarks.quality.report import tuning_table
        from benchmarks.quality.tune import TUNED_PATH, tune

        entry = tune(
            data,
            profile,
            args.dataset,
            methods,
            args.device,
            progress=not args.no_progress,
            path=args.tuned or TUNED_PATH,
            log=log,
            reuse=args.reuse_trials,
        )
        (args.out / "tuning.json").write_text(json.dumps(entry, indent=2) + "\n")
        (args.out / "tuning.md").write_text(tuning_table(entry))
        log(tuning_table(entry))
        return entry

    from benchmarks.quality.plots import write_plots
    from benchmarks.quality.report import markdown_table
    from benchmarks.quality.run import run_benchmark, versions

    params, tuned_from = method_params(args, profile, log)
    results, artifacts = run_benchmark(
        data, profile, params, methods, args.device, args.max_steps, progress=not args.no_progress, log=log
    )
    results["config"] = {
        "profile": profile.to_dict(),
        "dataset": args.dataset,
        "data_root": str(data_root),
        "train_images": len(data.train_labels),
        "test_images": len(data.test_labels),
        "device": args.device,
        "threads": torch.get_num_threads(),
        "max_steps": args.max_steps,
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
