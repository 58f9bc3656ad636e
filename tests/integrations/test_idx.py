"""The one idx reader: whole files and heads of them, gzipped or not, and what it refuses."""

import gzip

import numpy as np
import pytest

from music_ssl.integrations.idx import DEBIAN_FASHION_MNIST, read_idx, write_idx


def test_written_files_read_back_whole_and_by_head(tmp_path):
    images = np.arange(5 * 3 * 2, dtype=np.uint8).reshape(5, 3, 2)
    write_idx(tmp_path / "images-idx3-ubyte", images)
    (tmp_path / "images-idx3-ubyte.gz").write_bytes(
        gzip.compress((tmp_path / "images-idx3-ubyte").read_bytes())
    )
    for name in ("images-idx3-ubyte", "images-idx3-ubyte.gz"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), images)
        np.testing.assert_array_equal(read_idx(tmp_path / name, count=2), images[:2])
        np.testing.assert_array_equal(read_idx(tmp_path / name, count=50), images)


def test_big_endian_elements_come_back_in_native_order(tmp_path):
    values = np.array([1, -2, 70000], dtype=">i4")
    path = tmp_path / "ints-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 0x0C, 1]) + (3).to_bytes(4, "big") + values.tobytes())
    got = read_idx(path)
    assert got.dtype == np.dtype("int32") and got.dtype.isnative
    assert got.tolist() == [1, -2, 70000]


@pytest.mark.parametrize(
    "content,match",
    [
        (b"\x12\x34\x08\x01\x00\x00\x00\x01\x00", "bad magic number"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "unknown idx element type 0x07"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x03\x00", r"header says shape \(3,\) but holds 1 elements"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x00\x00", r"header says shape \(1,\) but holds 2 elements"),
    ],
)
def test_other_files_are_refused(tmp_path, content, match):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        read_idx(path)


def test_reads_debians_fashion_mnist():
    path = DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz"
    if not path.is_file():
        pytest.skip(f"Fashion-MNIST idx files not found under {DEBIAN_FASHION_MNIST} (make data)")
    labels = read_idx(path)
    assert labels.shape == (10000,) and set(labels.tolist()) == set(range(10))
    assert read_idx(DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz", count=3).shape == (3, 28, 28)
