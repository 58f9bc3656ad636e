"""Real Fashion-MNIST images for the lightly integration tests: a few dozen, read from the idx files.

A uniquely named module, not conftest.py: test modules import it, and conftest is an ambiguous name
in a tests tree without __init__.py files.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_HEADER_BYTES = 16  # magic, count, rows, cols: four big-endian int32
LABEL_HEADER_BYTES = 8  # magic, count


def _read_idx_head(split: str, count: int) -> tuple[bytes, bytes, np.ndarray, np.ndarray]:
    """First `count` images and labels of a split: the raw idx bytes and the decoded arrays."""
    images_path = FASHION_MNIST_DIR / f"{split}-images-idx3-ubyte.gz"
    labels_path = FASHION_MNIST_DIR / f"{split}-labels-idx1-ubyte.gz"
    if not images_path.is_file() or not labels_path.is_file():
        pytest.skip(f"Fashion-MNIST idx files not found under {FASHION_MNIST_DIR}")
    with gzip.open(images_path) as f:
        image_bytes = f.read(IMAGE_HEADER_BYTES + count * 28 * 28)
    with gzip.open(labels_path) as f:
        label_bytes = f.read(LABEL_HEADER_BYTES + count)
    images = np.frombuffer(image_bytes[IMAGE_HEADER_BYTES:], dtype=np.uint8).reshape(count, 28, 28)
    labels = np.frombuffer(label_bytes[LABEL_HEADER_BYTES:], dtype=np.uint8)
    return image_bytes, label_bytes, images, labels


def _with_count(header_and_data: bytes, count: int) -> bytes:
    """idx bytes whose header announces `count` items (the second int32), so readers stop there."""
    return header_and_data[:4] + struct.pack(">i", count) + header_and_data[8:]


def write_fashion_mnist_root(root: Path, count: int = 64) -> Path:
    """Writes a torchvision FashionMNIST root holding the first `count` images of each split."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for split in ("train", "t10k"):
        image_bytes, label_bytes, _, _ = _read_idx_head(split, count=count)
        (raw / f"{split}-images-idx3-ubyte").write_bytes(_with_count(image_bytes, count))
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(_with_count(label_bytes, count))
    return root


def write_image_folder(root: Path, classes: int, images_per_class: int, size: int, offset: int = 0) -> Path:
    """Writes Fashion-MNIST images as RGB PNGs into one subfolder per class, ImageNet style."""
    _, _, images, labels = _read_idx_head("train", count=offset + 2000)
    for label in range(classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        indices = np.flatnonzero(labels[offset:] == label)[:images_per_class] + offset
        for index in indices:
            image = Image.fromarray(images[index]).convert("RGB").resize((size, size), Image.BILINEAR)
            image.save(folder / f"{index:05d}.png")
    return root
