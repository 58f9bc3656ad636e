import json

import pytest
import torch

from benchmarks.loss_benchmark import main, measure
from benchmarks.plain_music import plain_music_loss
from music_ssl import music_loss


def test_plain_formulation_computes_music():
    z_a, z_b = torch.randn(2, 64, 96)
    plain = plain_music_loss(z_a, z_b, segment_dim=8, temperature=0.5)
    reference = music_loss(
        z_a.double(), z_b.double(), segment_dim=8, temperature=0.5, implementation="reference"
    )
    assert plain.item() == pytest.approx(reference.item(), abs=1e-5)


@pytest.mark.parametrize("method", ["matmul_floor", "plain", "chunked"])
def test_measure_reports_time_and_memory(method):
    row = measure(method, 32, 256, segment_dim=32, device="cpu", dtype="float32", repeats=2)
    assert row["seconds"] > 0 and row["peak_extra_bytes"] >= 0
    assert (row["method"], row["n"], row["d"]) == (method, 32, 256)


def test_benchmark_writes_table_and_json(tmp_path):
    pytest.importorskip("lightly", reason="pip install 'music-ssl[bench]' for lightly's peer losses")
    methods = "matmul_floor,plain,chunked,vicreg"
    main(["--shapes", "16x64", "--methods", methods, "--repeats", "1", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "results.json").read_text())
    assert [row["method"] for row in result["rows"]] == methods.split(",")
    assert all("seconds" in row for row in result["rows"]), result["rows"]
    assert result["meta"]["device"] == "cpu"
    table = (tmp_path / "table.md").read_text()
    assert table.count("\n") == 2 + len(methods.split(","))


def test_several_views_are_timed_per_pair_beside_two_view_chunked(tmp_path):
    pytest.importorskip("lightly", reason="pip install 'music-ssl[bench]' for lightly's peer losses")
    methods = "chunked,chunked_pairs,lejepa"
    argv = ["--shapes", "16x64", "--views", "2,4", "--global-views", "2", "--methods", methods]
    main([*argv, "--repeats", "1", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "results.json").read_text())
    rows = result["rows"]
    assert [(row["method"], row.get("views", 2)) for row in rows] == [
        (method, views) for views in (2, 4) for method in methods.split(",")
    ]
    assert all("seconds" in row for row in rows), rows
    assert (result["meta"]["views"], result["meta"]["global_views"]) == ([2, 4], 2)
    table = (tmp_path / "table.md").read_text().splitlines()
    assert "per pair vs two-view chunked" in table[0]
    # Two global and two local views: 1 global-global and 4 global-local pairs.
    four_views = [line for line in table if line.startswith("| 16 | 64 | 4 (2) | 5 |")]
    assert len(four_views) == len(methods.split(","))
    assert "| 16 | 64 | 2 (2) | 1 | chunked | " in table[2] and "| 1.00x |" in table[2]
