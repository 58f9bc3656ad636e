"""Fixtures with real Fashion-MNIST images for the lightly integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integrations.lightly.lightly_fashion_mnist import write_fashion_mnist_root, write_image_folder


@pytest.fixture(scope="session")
def fashion_mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision FashionMNIST root holding the first 64 images of each split, uncompressed."""
    return write_fashion_mnist_root(tmp_path_factory.mktemp("fashion_mnist"))


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 classes x 8 Fashion-MNIST images, 64 px RGB PNGs."""
    return write_image_folder(tmp_path_factory.mktemp("images"), classes=2, images_per_class=8, size=64)
