"""Runs lightly's unmodified ImageNet ResNet-50 benchmark runner with MUSIC registered as "music" (the
recipe's two views) and "music_multicrop" (two global views and six local ones).

Usage:
    python -m music_ssl.integrations.lightly.run_benchmark --lightly-repo PATH [runner arguments]

PATH is a checkout of https://github.com/lightly-ai/lightly (or its benchmarks/imagenet/resnet50
folder); it defaults to the LIGHTLY_REPO environment variable. Every other argument goes to the
runner's own parser, e.g. `--methods music --train-dir ... --val-dir ... --devices 8`, or
`--methods music_multicrop ...` for multi-crop.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from argparse import ArgumentParser
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from .registry import register

RUNNER_DIR = Path("benchmarks") / "imagenet" / "resnet50"
RUNNER_MODULE = "lightly_benchmark_imagenet_resnet50_main"


def find_runner(lightly_repo: Path) -> Path:
    """Returns the runner's main.py given a lightly checkout or the runner's own folder."""
    for folder in (lightly_repo / RUNNER_DIR, lightly_repo):
        if (folder / "main.py").is_file():
            return folder / "main.py"
    raise ValueError(
        f"--lightly-repo {str(lightly_repo)!r} contains no {RUNNER_DIR / 'main.py'}; "
        "pass the root of a lightly checkout, e.g. `git clone https://github.com/lightly-ai/lightly`."
    )


def load_runner(main_py: Path) -> ModuleType:
    """Imports the runner's main.py, with its folder on sys.path for its per-method modules."""
    runner_dir = str(main_py.parent.resolve())
    if runner_dir not in sys.path:
        sys.path.insert(0, runner_dir)
    # A distinct module name: "main" is too generic to claim in sys.modules.
    spec = importlib.util.spec_from_file_location(RUNNER_MODULE, main_py)
    assert spec is not None and spec.loader is not None
    runner = importlib.util.module_from_spec(spec)
    sys.modules[RUNNER_MODULE] = runner
    spec.loader.exec_module(runner)
    return runner


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(
        "python -m music_ssl.integrations.lightly.run_benchmark",
        description="lightly's ImageNet ResNet-50 benchmark runner with MUSIC available as --methods music "
        "(two views) and --methods music_multicrop (two global and six local views). "
        "All arguments except --lightly-repo are the runner's own.",
        add_help=False,  # -h reaches the runner and prints its arguments.
    )
    parser.add_argument(
        "--lightly-repo",
        type=Path,
        default=os.environ.get("LIGHTLY_REPO"),
        help="the root of a lightly checkout (git clone https://github.com/lightly-ai/lightly), or the "
        "runner's folder, benchmarks/imagenet/resnet50 (default: $LIGHTLY_REPO)",
    )
    args, runner_argv = parser.parse_known_args(argv)
    if args.lightly_repo is None and {"-h", "--help"} & set(runner_argv):
        parser.print_help()
        parser.exit(0, "\nWith --lightly-repo given, --help lists the runner's own arguments.\n")
    if args.lightly_repo is None:
        parser.error("--lightly-repo PATH (or the LIGHTLY_REPO environment variable) is required")

    try:
        main_py = find_runner(args.lightly_repo)
    except ValueError as error:
        parser.error(str(error))
    runner = load_runner(main_py)
    register(runner.METHODS)
    register(runner.METHODS, name="music_multicrop", multi_crop=True)
    runner_args = runner.parser.parse_args(runner_argv)
    runner.main(**vars(runner_args))


if __name__ == "__main__":
    main()
