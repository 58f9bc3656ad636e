"""A small image folder of real Fashion-MNIST images for the solo-learn integration tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.integrations.fashion_mnist import first_images

CLASS_NAMES = ["tshirt", "trouser", "pullover", "dress", "coat"]  # labels 0-4; solo's linear eval needs >= 5


@pytest.fixture(scope="session")
def fashion_mnist_folder(tmp_path_factory) -> Path:
    """``root/{train,val}/<class>/<i>.png``: RGB PNGs, 8 train and 4 val images for each of 5 classes."""
    from PIL import Image

    root = tmp_path_factory.mktemp("fashion_mnist_folder")
    for split, source, per_class in (("train", "train", 8), ("val", "t10k", 4)):
        images, labels = first_images(source, 200)
        for label, name in enumerate(CLASS_NAMES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i, index in enumerate(np.flatnonzero(labels == label)[:per_class]):
                Image.fromarray(images[index]).convert("RGB").save(folder / f"{i:02d}.png")
    return root
