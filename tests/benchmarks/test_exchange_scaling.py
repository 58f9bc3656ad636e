"""The simulated worlds of benchmarks/exchange_scaling.py: what one rank's loss counts is what the two
exchanges do, on a small layout."""

import pytest
import torch.distributed as dist

from benchmarks import exchange_scaling

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch was built without torch.distributed")


@pytest.fixture
def small_layout(monkeypatch):
    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    monkeypatch.setattr(exchange_scaling, "DIM", 160)
    monkeypatch.setattr(exchange_scaling, "SEGMENT_DIM", 16)
    return 160


def test_a_rank_counts_the_products_and_bytes_of_its_exchange(small_layout):
    """The gather: the three N x D x D products of the whole batch whatever R, and the other ranks' rows
    received; the reduce: this rank's N / R rows, and two D x D sums' worth moved by the all_reduce."""
    dim, world, batch = small_layout, 8, 64
    gather = exchange_scaling.one_rank(world, batch, "gather", "reference")
    reduce = exchange_scaling.one_rank(world, batch, "reduce", "reference")
    assert gather["tflop"] * 1e12 == 6 * batch * dim**2
    assert reduce["tflop"] * 1e12 == 6 * (batch // world) * dim**2
    assert gather["moved_gib"] * 2**30 == (world - 1) * (batch // world) * 2 * dim * 4
    assert reduce["moved_gib"] * 2**30 == 2 * (world - 1) * dim * dim * 4 // world
    # Held at once: at least the gathered rows of both views, or the D x D joint of the pair.
    assert gather["peak_gib"] * 2**30 >= batch * 2 * dim * 4
    assert reduce["peak_gib"] * 2**30 >= dim * dim * 4
    assert not dist.is_initialized()


def test_the_table_and_plot_are_written(small_layout, tmp_path):
    exchange_scaling.main(["--out", str(tmp_path), "--worlds", "8,16", "--global-batches", "64"])
    table = (tmp_path / "table.md").read_text().splitlines()
    assert table[0].startswith("| N | R | gather (reference)") and len(table) == 2 + 2
    assert (tmp_path / "scaling.png").stat().st_size > 0
