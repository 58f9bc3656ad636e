"""benchmarks/exchange_timing.py: both exchanges timed on real gloo processes, beside the counted model."""

import json

import pytest
import torch
import torch.distributed as dist

from benchmarks import exchange_timing
from music_ssl import implementations

pytestmark = [
    pytest.mark.skipif(not dist.is_available(), reason="torch was built without torch.distributed"),
    pytest.mark.processes,
]


def test_two_gloo_processes_time_both_exchanges_beside_the_model(tmp_path):
    dim, world, batch = 64, 2, 32
    exchange_timing.main(
        ["--out", str(tmp_path), "--worlds", str(world), "--global-batches", str(batch), "--dim", str(dim),
         "--segment-dim", "16", "--repeats", "1"]
    )  # fmt: skip
    rows = json.loads((tmp_path / "timing.json").read_text())["rows"]
    ways = {(row["exchange"], row["implementation"]) for row in rows}
    compiled = implementations.compiled_on(torch.device("cpu"))
    assert ways == {(e, i) for e in ("gather", "reduce") for i in compiled}
    for row in rows:
        assert row["measured_ms"] > 0 and row["model_ms"] > row["model_exchange_ms"] > 0
        assert row["flop_per_s"] > 0 and row["bytes_per_s"] > 0
    gather = next(row for row in rows if row["exchange"] == "gather")
    reduce = next(row for row in rows if row["exchange"] == "reduce")
    # The model's counts are the exchanges' own: the whole batch's products and the other rank's rows,
    # or this rank's rows' products and a D x D sum.
    assert gather["counted_gflop"] * 1e9 == pytest.approx(6 * batch * dim**2)
    assert reduce["counted_gflop"] * 1e9 == pytest.approx(6 * (batch // world) * dim**2)
    assert gather["counted_moved_mib"] * 2**20 == pytest.approx((world - 1) * (batch // world) * 2 * dim * 4)
    assert reduce["counted_moved_mib"] * 2**20 == pytest.approx(2 * (world - 1) * dim * dim * 4 // world)
    table = (tmp_path / "timing.md").read_text().splitlines()
    assert len(table) == 3 and table[2].startswith(f"| {world} | {batch} |")


def test_a_batch_the_world_cannot_split_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        exchange_timing.main(["--out", str(tmp_path), "--worlds", "4", "--global-batches", "30"])
    assert "--global-batches: 30 is not a multiple of the world size 4" in capsys.readouterr().err
