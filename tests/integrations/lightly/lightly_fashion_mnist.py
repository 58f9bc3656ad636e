"""Real Fashion-MNIST images for the lightly integration tests: a few dozen, read from the idx files.

A uniquely named module, not conftest.py: test modules import it, and conftest is an ambiguous name
in a tests tree without __init__.py files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from music_ssl.integrations.idx import write_idx
from tests.integrations.fashion_mnist import first_images


def write_fashion_mnist_root(root: Path, count: int = 64) -> Path:
    """Writes a torchvision FashionMNIST root holding the first `count` images of each split."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for split in ("train", "t10k"):
        images, labels = first_images(split, count)
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    return root


def write_image_folder(root: Path, classes: int, images_per_class: int, size: int, offset: int = 0) -> Path:
    """Writes Fashion-MNIST images as RGB PNGs into one subfolder per class, ImageNet style."""
    images, labels = first_images("train", count=offset + 2000)
    for label in range(classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        indices = np.flatnonzero(labels[offset:] == label)[:images_per_class] + offset
        for index in indices:
            image = Image.fromarray(images[index]).convert("RGB").resize((size, size), Image.BILINEAR)
            image.save(folder / f"{index:05d}.png")
    return root
