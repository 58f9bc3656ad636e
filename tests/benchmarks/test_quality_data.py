"""Readers of the quality benchmark on the real Fashion-MNIST files and on a tiny image folder."""

from __future__ import annotations

import gzip
import shutil

import pytest
import torch

from benchmarks.quality.data import (  # noqa: E402
    DEBIAN_FASHION_MNIST,
    load_dataset,
    validation_split,
)
from tests.benchmarks.fashion_mnist import needs_fmnist


@pytest.fixture(scope="module")
def fmnist():
    return load_dataset("fashion_mnist", DEBIAN_FASHION_MNIST)


@needs_fmnist
def test_fashion_mnist_shapes_and_label_counts(fmnist):
    assert fmnist.train_images.shape == (60000, 1, 28, 28)
    assert fmnist.test_images.shape == (10000, 1, 28, 28)
    assert fmnist.train_images.dtype == torch.uint8
    assert fmnist.num_classes == 10 and len(fmnist.class_names) == 10
    assert fmnist.train_labels.bincount().tolist() == [6000] * 10
    assert fmnist.test_labels.bincount().tolist() == [1000] * 10
    assert 0 < fmnist.train_images.float().mean() < 255


@needs_fmnist
def test_uncompressed_idx_files_read_the_same(tmp_path, fmnist):
    for gz in DEBIAN_FASHION_MNIST.glob("*-ubyte.gz"):
        with gzip.open(gz, "rb") as src, open(tmp_path / gz.stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    plain = load_dataset("fashion_mnist", tmp_path)
    assert torch.equal(plain.train_images, fmnist.train_images)
    assert torch.equal(plain.test_labels, fmnist.test_labels)


@needs_fmnist
def test_mnist_reader_finds_torchvision_layout(tmp_path):
    # MNIST is not on this machine; its files have the same idx format, so a copy under torchvision's
    # folder names exercises the MNIST path.
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in DEBIAN_FASHION_MNIST.glob("*-ubyte.gz"):
        shutil.copy(gz, raw / gz.name)
    data = load_dataset("mnist", tmp_path)
    assert data.train_images.shape == (60000, 1, 28, 28) and data.class_names[0] == "0"


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_dataset("fashion_mnist", tmp_path)


@needs_fmnist
def test_validation_split_never_uses_the_test_split(fmnist):
    split = validation_split(fmnist, 10000, seed=0)
    assert len(split.train_labels) == 50000 and len(split.test_labels) == 10000
    # Every validation image is a training image.
    assert torch.equal(
        split.test_images[:5], fmnist.train_images[_rows_of(fmnist.train_images, split.test_images[:5])]
    )


def _rows_of(haystack: torch.Tensor, needles: torch.Tensor) -> torch.Tensor:
    weights = torch.randint(1, 1 << 20, (haystack[0].numel(),), generator=torch.Generator().manual_seed(0))
    keys = haystack.flatten(1).long() @ weights
    return torch.stack([(keys == n.flatten().long() @ weights).nonzero()[0, 0] for n in needles])


@needs_fmnist
def test_image_folder_reader(tmp_path, fmnist):
    from torchvision.transforms.functional import to_pil_image

    for split, images, labels in (
        ("train", fmnist.train_images, fmnist.train_labels),
        ("test", fmnist.test_images, fmnist.test_labels),
    ):
        for cls in (0, 1, 7):
            folder = tmp_path / split / fmnist.class_names[cls].replace("/", "-")
            folder.mkdir(parents=True)
            for i in (labels == cls).nonzero().flatten()[:4].tolist():
                to_pil_image(images[i]).save(folder / f"{i}.png")
    data = load_dataset("imagefolder", tmp_path, image_size=32)
    assert data.train_images.shape == (12, 3, 32, 32) and data.test_images.shape == (12, 3, 32, 32)
    assert data.train_images.dtype == torch.uint8
    assert data.num_classes == 3 and data.class_names == ["Sneaker", "T-shirt-top", "Trouser"]
    assert data.train_labels.bincount().tolist() == [4, 4, 4]
