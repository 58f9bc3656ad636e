"""The quality benchmark's one command: any declaration of the catalogue by its name.

    python -m benchmarks.quality.study main               # the main run (python -m benchmarks.quality)
    python -m benchmarks.quality.study tune               # the search (python -m benchmarks.quality.tune)
    python -m benchmarks.quality.study codes              # MUSIC's codes on the main run's models
    python -m benchmarks.quality.study seeds              # any study of the catalogue, by its name

Every run is one file, skipped when it exists, so a study stops at any time and continues later; several
processes share one study through a lock per run; a run another study made with equal settings is
copied. The studies and these rules: docs/quality.md, "Studies of the paper's claims".
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

import torch

from benchmarks.quality.config import PROFILES
from benchmarks.quality.data import DATASETS, DEBIAN_FASHION_MNIST
from benchmarks.quality.ssl_methods import ALL_METHODS
from benchmarks.quality.study.catalogue import STUDIES
from benchmarks.quality.study.runner import run


def parse_args(argv: list[str], prog: str = "python -m benchmarks.quality.study") -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("study", choices=sorted(STUDIES))
    p.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    p.add_argument("--dataset", choices=DATASETS, default="fashion_mnist")
    p.add_argument(
        "--data-root", type=Path, help=f"default: {DEBIAN_FASHION_MNIST} (fashion_mnist), ./data otherwise"
    )
    p.add_argument("--download", action="store_true", help="let torchvision download missing data")
    p.add_argument(
        "--data-limit",
        nargs=2,
        type=int,
        metavar=("TRAIN", "TEST"),
        help="keep only the first TRAIN train and TEST test images (quick checks, not for reported numbers)",
    )
    p.add_argument("--image-size", type=int, default=32, help="imagefolder: resize and crop to this size")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--out",
        type=Path,
        help="default: the study's (results/quality, results/tune, docs/results/quality[/studies])",
    )
    p.add_argument("--methods", nargs="+", choices=ALL_METHODS, help="default: the study's")
    p.add_argument("--seeds", nargs="+", type=int, help="default: the study's (main: the profile's)")
    p.add_argument(
        "--values",
        nargs="+",
        help="only these values of the variable, as the study writes them (128; '2 views' or 2views)",
    )
    p.add_argument("--max-runs", type=int, help="stop after this many new runs")
    p.add_argument(
        "--report-only", action="store_true", help="rewrite the tables and plots from the run files"
    )
    p.add_argument(
        "--from-results",
        type=Path,
        help="seeds, stability: first take the matching runs of a main run's results.json",
    )
    p.add_argument("--epochs", type=int, help="override the profile's pretraining epochs")
    p.add_argument("--subset", type=int, help="override the profile's pretraining subset size")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-steps", type=int, help="stop each pretraining after this many steps")
    p.add_argument(
        "--stop-epoch",
        type=int,
        help="stability: stop each run after this epoch of the full schedule; runs go to OUT/firstNepochs/",
    )
    p.add_argument(
        "--save-models",
        type=Path,
        help="test studies: also save each trained model as DIR/<study>/<method>__seed<N>.pt",
    )
    p.add_argument("--tune-val-size", type=int, help="validation images of the search and its studies")
    p.add_argument("--tuned", type=Path, help="tuned values (default benchmarks/quality/tuned.json)")
    p.add_argument("--untuned", action="store_true", help="ignore tuned.json: paper defaults, profile lr")
    p.add_argument(
        "--workers",
        type=int,
        help="main: processes running seeds side by side (default: on CPU one per seed up to the threads)",
    )
    p.add_argument(
        "--publish", action="store_true", help="main: also copy its files to docs/results/quality/"
    )
    p.add_argument(
        "--reuse-trials", action="store_true", help="tune: reuse trials recorded under the same protocol"
    )
    p.add_argument(
        "--models", type=Path, help="codes: kept models (default results/codes/models, results/models/long)"
    )
    p.add_argument("--queries", type=int, default=2000, help="codes: test images used as retrieval queries")
    args = p.parse_args(argv)
    args.argv = argv[1:]
    return args


def main(argv: list[str] | None = None, prog: str = "python -m benchmarks.quality.study") -> dict[str, Any]:
    args = parse_args(sys.argv[1:] if argv is None else argv, prog)
    return run(STUDIES[args.study], args, functools.partial(print, flush=True))
