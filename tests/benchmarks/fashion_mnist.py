"""Fashion-MNIST for the benchmark tests: Debian's files, or the test skipped; a few images of it."""

from __future__ import annotations

import pytest

from benchmarks.quality.data import DEBIAN_FASHION_MNIST, ImageData, load_dataset

needs_fmnist = pytest.mark.skipif(
    not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST idx files missing: apt-get install -y dataset-fashion-mnist",
)


def first_images(train: int, test: int) -> ImageData:
    """The first ``train`` training and ``test`` test images of Fashion-MNIST."""
    return load_dataset("fashion_mnist", DEBIAN_FASHION_MNIST).head(train, test)
