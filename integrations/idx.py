"""Files in the MNIST (idx) format, as Fashion-MNIST ships: the one reader that every command and test of
this project uses for them, the dataset of PIL images that the scripts and examples read them as, and where
Debian's ``dataset-fashion-mnist`` package puts them."""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import torch

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# The idx element types: the third byte of the magic number.
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path, count: int | None = None) -> np.ndarray:
    """The array held by an idx file, gzipped (``.gz``) or not, in native byte order; with ``count``, only
    its first ``count`` items (of the first dimension), read without decompressing the rest.

    Raises:
        ValueError: The file is not an idx file, or holds fewer elements than its header says (or, read
            whole, more).
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        magic = f.read(4)
        if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
            raise ValueError(f"{path} is not an idx file: bad magic number {magic!r}")
        code, ndim = magic[2], magic[3]
        if code not in _DTYPES:
            raise ValueError(f"{path}: unknown idx element type 0x{code:02x}")
        shape = struct.unpack(f">{ndim}I", f.read(4 * ndim))
        if count is not None:
            shape = (min(count, shape[0]), *shape[1:])
        dtype = np.dtype(_DTYPES[code])
        raw = f.read() if count is None else f.read(math.prod(shape) * dtype.itemsize)
    array = np.frombuffer(raw, dtype=dtype)
    if array.size != math.prod(shape):
        raise ValueError(f"{path}: header says shape {shape} but holds {array.size} elements")
    return array.reshape(shape).astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Writes ``array`` (uint8) as an uncompressed idx file, as torchvision's MNIST readers expect."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    Path(path).write_bytes(header + array.tobytes())


def holds_idx_split(root: str | Path, split: str) -> bool:
    """Whether ``root`` holds ``{split}-images-idx3-ubyte.gz`` and its labels, as Debian's folder does."""
    root = Path(root)
    return all((root / f"{split}-{kind}.gz").is_file() for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"))


class IdxImages(torch.utils.data.Dataset):
    """Images and labels of an MNIST-style idx split (``{split}-images-idx3-ubyte.gz``; ``train`` or
    ``t10k`` for Fashion-MNIST) as (PIL image, label) pairs, ``transform`` applied to the image."""

    def __init__(self, root: str | Path, split: str, transform=None) -> None:
        root = Path(root)
        if not holds_idx_split(root, split):
            raise ValueError(
                f"data_dir={str(root)!r} has no {split}-images-idx3-ubyte.gz and "
                f"{split}-labels-idx1-ubyte.gz: expected the idx files of the {split} split (Debian: "
                f"apt-get install dataset-fashion-mnist, in {DEBIAN_FASHION_MNIST})."
            )
        self.images = read_idx(root / f"{split}-images-idx3-ubyte.gz")
        self.labels = read_idx(root / f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        image = Image.fromarray(self.images[index])
        return (image if self.transform is None else self.transform(image)), int(self.labels[index])
