"""A small image folder of real Fashion-MNIST images for the solo-learn integration tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from music_ssl.integrations.idx import DEBIAN_FASHION_MNIST, read_idx

CLASS_NAMES = ["tshirt", "trouser", "pullover", "dress", "coat"]  # labels 0-4; solo's linear eval needs >= 5


def _read_head(split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    paths = [DEBIAN_FASHION_MNIST / f"{split}-{kind}-ubyte.gz" for kind in ("images-idx3", "labels-idx1")]
    if not all(path.is_file() for path in paths):
        pytest.skip(f"Fashion-MNIST idx files not found under {DEBIAN_FASHION_MNIST} (make data)")
    images, labels = (read_idx(path, count) for path in paths)
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
