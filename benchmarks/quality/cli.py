"""Command-line options shared by the main run, the search and the studies: data, device, threads."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchmarks.quality.config import PROFILES
from benchmarks.quality.data import DATASETS, DEBIAN_FASHION_MNIST, ImageData, default_data_root, load_dataset


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    p.add_argument("--dataset", choices=DATASETS, default="fashion_mnist")
    p.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help=f"default: {DEBIAN_FASHION_MNIST} (fashion_mnist), ./data otherwise",
    )
    p.add_argument("--download", action="store_true", help="let torchvision download missing data")
    p.add_argument(
        "--data-limit",
        nargs=2,
        type=int,
        default=None,
        metavar=("TRAIN", "TEST"),
        help="keep only the first TRAIN train and TEST test images (quick checks, not for reported numbers)",
    )
    p.add_argument("--image-size", type=int, default=32, help="imagefolder: resize and crop to this size")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true")


def set_threads(threads: int | None) -> None:
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads={threads}; expected a positive number of CPU threads")
        torch.set_num_threads(threads)


def load_data(args: argparse.Namespace, log=print) -> tuple[ImageData, Path]:
    """The dataset named by ``args``, cut to ``--data-limit`` if given, and the folder it came from."""
    data_root = args.data_root or default_data_root(args.dataset)
    start = time.perf_counter()
    data = load_dataset(args.dataset, data_root, args.download, args.image_size)
    if args.data_limit is not None:
        train, test = args.data_limit
        if train < 1 or test < 1:
            raise ValueError(f"data_limit={args.data_limit}; expected two positive image counts")
        data = data.head(train, test)
    log(
        f"{args.dataset}: train {tuple(data.train_images.shape)}, test {tuple(data.test_images.shape)} "
        f"from {data_root} ({time.perf_counter() - start:.1f} s); device {args.device}, "
        f"{torch.get_num_threads()} threads"
    )
    return data, data_root
