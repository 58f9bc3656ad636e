"""The quality benchmark's one command: any declaration of the catalogue by its name.

    python -m benchmarks.quality.study main               # the main run (python -m benchmarks.quality)
    python -m benchmarks.quality.study tune               # the search (python -m benchmarks.quality.tune)
    python -m benchmarks.quality.study codes              # MUSIC's codes on the main run's models
    python -m benchmarks.quality.study codes_long         # the same on the long study's kept models

    python -m benchmarks.quality.study seeds              # 5 seeds of the main run's settings
    python -m benchmarks.quality.study field              # MUSIC against six peers from lightly, 3 seeds
    python -m benchmarks.quality.study long               # 3x the epochs on the full 60k split, 5 seeds
    python -m benchmarks.quality.study projector_dim      # output dim 128 ... 4096, 2 seeds, all methods
    python -m benchmarks.quality.study projector_depth    # 0, 1 and 2 hidden layers, 2 seeds
    python -m benchmarks.quality.study music_options      # MUSIC's segment size and term weights per dim
    python -m benchmarks.quality.study projector_dim_tuned  # projector_dim, MUSIC at music_options' choice
    python -m benchmarks.quality.study stability          # every field method, seeds 0-4, 1 and 2 threads
    python -m benchmarks.quality.study optimizer          # LARS at five learning rates against tuned SGD
    python -m benchmarks.quality.study multicrop          # 2 global + 6 local views against 2 views, 3 seeds
    python -m benchmarks.quality.study temperature        # MUSIC at 1.0 against 0.25, the codes' use, 3 seeds
    python -m benchmarks.quality.study temperature_wide   # the same, wider backbone and head, batch 512
    python -m benchmarks.quality.study seeds --methods supervised   # the supervised ceiling, 5 seeds

The studies of the paper's claims run in resumable pieces. Every run is written to
``OUT/<study>/runs/<name>.json`` when it finishes and skipped when that file
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
