"""Real Fashion-MNIST images for the adapters' tests, from Debian's files (the test skips without them)."""

from __future__ import annotations

import numpy as np
import pytest

from music_ssl.integrations.idx import DEBIAN_FASHION_MNIST, read_idx


def first_images(split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` images (uint8, N x 28 x 28) and labels of ``split`` ("train" or "t10k")."""
    paths = [DEBIAN_FASHION_MNIST / f"{split}-{kind}-ubyte.gz" for kind in ("images-idx3", "labels-idx1")]
    if not all(path.is_file() for path in paths):
        pytest.skip(f"Fashion-MNIST idx files not found under {DEBIAN_FASHION_MNIST} (make data)")
    images, labels = (read_idx(path, count) for path in paths)
    return images, labels
