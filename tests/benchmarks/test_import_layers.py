"""The benchmarks' modules form layers too: no module imports, even inside a function, one that imports it
back (a command-line entry calls the one CLI from a module of its own)."""

from pathlib import Path

from tests.music_ssl.test_import_layers import cycles, imports_between_modules

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_the_benchmarks_have_no_import_cycle():
    edges = imports_between_modules(BENCHMARKS)
    assert "benchmarks.quality.study.runner" in edges["benchmarks.quality.study.cli"]  # the walk sees them
    assert cycles(edges) == []
