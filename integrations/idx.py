"""Files in the MNIST (idx) format, as Fashion-MNIST ships: the one reader that every command and test of
this project uses for them, and where Debian's ``dataset-fashion-mnist`` package puts them."""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np

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
