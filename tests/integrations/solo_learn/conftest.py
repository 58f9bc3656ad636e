"""A small image folder of real Fashion-MNIST images for the solo-learn integration tests."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = ["tshirt", "trouser", "pullover", "dress", "coat"]  # labels 0-4; solo's linear eval needs >= 5


def _read_head(split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    images_path = FASHION_MNIST_DIR / f"{split}-images-idx3-ubyte.gz"
    labels_path = FASHION_MNIST_DIR / f"{split}-labels-idx1-ubyte.gz"
    if not images_path.is_file() or not labels_path.is_file():
        pytest.skip(f"Fashion-MNIST idx files not found under {FASHION_MNIST_DIR}")
    with gzip.open(images_path) as f:
        images = np.frombuffer(f.read(16 + count * 28 * 28)[16:], dtype=np.uint8).reshape(count, 28, 28)
    with gzip.open(labels_path) as f:
        labels = np.frombuffer(f.read(8 + count)[8:], dtype=np.uint8)
    return images, labels


@pytest.fixture(scope="session")
def fashion_mnist_folder(tmp_path_factory) -> Path:
    """``root/{train,val}/<class>/<i>.png``: RGB PNGs, 8 train and 4 val images for each of 5 classes."""
    from PIL import Image

    root = tmp_path_factory.mktemp("fashion_mnist_folder")
    for split, source, per_class in (("train", "train", 8), ("val", "t10k", 4)):
        images, labels = _read_head(source, 200)
        for label, name in enumerate(CLASS_NAMES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i, index in enumerate(np.flatnonzero(labels == label)[:per_class]):
                Image.fromarray(images[index]).convert("RGB").save(folder / f"{i:02d}.png")
    return root
