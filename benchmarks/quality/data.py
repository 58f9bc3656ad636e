"""Datasets for the quality benchmark, held in memory as uint8 tensors.

Every reader returns an :class:`ImageData` whose images are ``(N, C, H, W)`` uint8 tensors, so the
training loop augments whole batches on the training device instead of running per-image PIL transforms
in a DataLoader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

# The idx reader and Debian's folder (the CLI default for --data-root with fashion_mnist) by the name of
# the checkout's folder, not music_ssl.integrations: benchmarks run from the checkout, where a music_ssl
# installed from a wheel is shadowed by the checkout's own, which has no integrations subpackage.
from integrations.idx import DEBIAN_FASHION_MNIST, read_idx

DATASETS = ("fashion_mnist", "mnist", "cifar10", "cifar100", "imagefolder")

_IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Sub-folders where the idx files are found: the root itself, Debian's layout, torchvision's layout.
_IDX_SUBDIRS = {
    "fashion_mnist": ("", "fashion-mnist", "FashionMNIST/raw"),
    "mnist": ("", "mnist", "MNIST/raw"),
}


@dataclass
class ImageData:
    """A labelled train/test split held in memory."""

    name: str
    train_images: torch.Tensor  # (N, C, H, W) uint8
    train_labels: torch.Tensor  # (N,) int64
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    class_names: list[str]

    @property
    def channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_images.shape[-1])

    def head(self, train: int, test: int) -> ImageData:
        """The first ``train`` training and ``test`` test images and their labels."""
        return ImageData(
            self.name,
            self.train_images[:train],
            self.train_labels[:train],
            self.test_images[:test],
            self.test_labels[:test],
            self.num_classes,
            self.class_names,
        )

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training images in [0, 1]."""
        x = self.train_images[:20000].float().div_(255)
        return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()


def find_idx_file(root: Path, stem: str, subdirs: tuple[str, ...]) -> Path | None:
    for sub in subdirs:
        for suffix in (".gz", ""):
            candidate = root / sub / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def load_idx_dataset(name: str, root: str | Path, download: bool = False) -> ImageData:
    """Fashion-MNIST or MNIST from its four idx files (``.gz`` or uncompressed).

    Looks in ``root``, ``root/fashion-mnist`` (Debian) and ``root/FashionMNIST/raw`` (torchvision; MNIST
    likewise). With ``download=True`` and no files found, torchvision downloads them into ``root``.
    """
    root = Path(root)
    subdirs = _IDX_SUBDIRS[name]
    paths = {split: [find_idx_file(root, s, subdirs) for s in stems] for split, stems in _IDX_STEMS.items()}
    if any(p is None for ps in paths.values() for p in ps):
        if not download:
            hint = "apt-get install -y dataset-fashion-mnist, or " if name == "fashion_mnist" else ""
            raise FileNotFoundError(
                f"{name} idx files not found under {root} (looked in {list(subdirs)}); "
                f"{hint}pass --download to fetch them with torchvision"
            )
        import torchvision

        cls = torchvision.datasets.FashionMNIST if name == "fashion_mnist" else torchvision.datasets.MNIST
        for train in (True, False):
            cls(str(root), train=train, download=True)
        return load_idx_dataset(name, root, download=False)
    tensors = {split: [torch.from_numpy(read_idx(p)) for p in ps] for split, ps in paths.items()}
    (train_x, train_y), (test_x, test_y) = tensors["train"], tensors["test"]
    classes = FASHION_MNIST_CLASSES if name == "fashion_mnist" else [str(i) for i in range(10)]
    return ImageData(
        name=name,
        train_images=train_x.unsqueeze(1).contiguous(),
        train_labels=train_y.long(),
        test_images=test_x.unsqueeze(1).contiguous(),
        test_labels=test_y.long(),
        num_classes=10,
        class_names=classes,
    )


def load_cifar(name: str, root: str | Path, download: bool = False) -> ImageData:
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    splits = [cls(str(root), train=train, download=download) for train in (True, False)]
    images = [torch.from_numpy(s.data).permute(0, 3, 1, 2).contiguous() for s in splits]
    labels = [torch.tensor(s.targets, dtype=torch.long) for s in splits]
    return ImageData(
        name, images[0], labels[0], images[1], labels[1], len(splits[0].classes), splits[0].classes
    )


def _load_folder(folder: Path, image_size: int, class_to_idx: dict[str, int] | None = None):
    import torchvision
    from torchvision.transforms import functional as TF

    dataset = torchvision.datasets.ImageFolder(str(folder))
    if class_to_idx is not None and dataset.class_to_idx != class_to_idx:
        raise ValueError(f"{folder} has classes {list(dataset.class_to_idx)}; expected {list(class_to_idx)}")
    images = torch.empty(len(dataset), 3, image_size, image_size, dtype=torch.uint8)
    for i, (path, _) in enumerate(dataset.samples):
        img = dataset.loader(path).convert("RGB")
        img = TF.center_crop(TF.resize(img, image_size), image_size)
        images[i] = TF.pil_to_tensor(img)
    return images, torch.tensor(dataset.targets, dtype=torch.long), dataset.classes, dataset.class_to_idx


def load_image_folder(root: str | Path, image_size: int = 32) -> ImageData:
    """``root/train/<class>/*`` and ``root/test/<class>/*`` (or ``val``), resized and center-cropped.

    Everything is decoded once into memory, so this suits small data sets (tens of thousands of
    images at 32-96 px).
    """
    root = Path(root)
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        raise FileNotFoundError(
            f"imagefolder expects {root}/train/<class>/ and {root}/test/<class>/ (or val/)"
        )
    train_x, train_y, classes, class_to_idx = _load_folder(root / "train", image_size)
    test_x, test_y, _, _ = _load_folder(test_dir, image_size, class_to_idx)
    return ImageData("imagefolder", train_x, train_y, test_x, test_y, len(classes), classes)


def default_data_root(dataset: str) -> Path:
    return DEBIAN_FASHION_MNIST if dataset == "fashion_mnist" else Path("data")


def load_dataset(name: str, root: str | Path | None = None, download: bool = False, image_size: int = 32):
    """Load one of :data:`DATASETS`; ``root=None`` uses :func:`default_data_root`."""
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r}; expected one of {DATASETS}")
    root = Path(root) if root is not None else default_data_root(name)
    if name in ("fashion_mnist", "mnist"):
        return load_idx_dataset(name, root, download)
    if name in ("cifar10", "cifar100"):
        return load_cifar(name, root, download)
    return load_image_folder(root, image_size)


def validation_split(data: ImageData, num_val: int, seed: int) -> ImageData:
    """Carve ``num_val`` training images out as the test split; the official test split is not touched."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(data.train_labels), generator=g)
    val, train = perm[:num_val], perm[num_val:]
    return ImageData(
        name=f"{data.name}-val",
        train_images=data.train_images[train],
        train_labels=data.train_labels[train],
        test_images=data.train_images[val],
        test_labels=data.train_labels[val],
        num_classes=data.num_classes,
        class_names=data.class_names,
    )
