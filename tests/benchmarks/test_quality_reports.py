"""Every committed table and summary is what the one report writer makes of the committed run files, byte
for byte: a change to a report that changes a published number or line fails here, and so does a
committed table that no declaration writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks.quality.config import RESULTS
from benchmarks.quality.study.catalogue import STUDIES
from benchmarks.quality.tuned import TUNED_PATH

# Every table, summary and results file under docs/results/quality, whatever wrote it.
COMMITTED = sorted(
    p.relative_to(RESULTS)
    for p in RESULTS.rglob("*")
    if p.suffix == ".md" or p.name in ("summary.json", "results.json", "tuning.json")
)


def _declaration(folder: Path) -> str:
    """The declaration whose report a committed folder holds: the main run's files sit in docs/results/
    quality itself, a study's in studies/[first<N>epochs/]<name>/, the codes studies' in their own."""
    return "main" if folder == Path(".") else folder.name


def _inputs(study, committed: Path, to: Path) -> None:
    """What the report is made from, copied: the run files, the main run's results.json, the search's
    entry in tuned.json (the published one is the CPU profile's on Fashion-MNIST, the main run's)."""
    to.mkdir(parents=True, exist_ok=True)
    if study.name == "main":
        shutil.copy(committed / "results.json", to / "results.json")
        (to / "tuning.json").write_text(json.dumps(json.loads(TUNED_PATH.read_text())["cpu/fashion_mnist"]))
    else:
        shutil.copytree(committed / "runs", to / "runs", ignore=shutil.ignore_patterns("*.lock", "*.partial"))


def test_every_committed_table_has_a_declaration_that_writes_it():
    folders = {path.parent for path in COMMITTED}
    assert len(COMMITTED) >= 35 and {_declaration(f) for f in folders} <= set(STUDIES)
    assert {"codes", "codes_long", "stability"} <= {f.name for f in folders}


@pytest.mark.parametrize("folder", sorted({path.parent for path in COMMITTED}), ids=str)
def test_a_committed_report_is_rebuilt_from_its_run_files(folder, tmp_path):
    study = STUDIES[_declaration(folder)]
    _inputs(study, RESULTS / folder, tmp_path)
    study.kind.report(study, tmp_path, with_plot=False)
    if study.name == "main":
        STUDIES["tune"].kind.report(STUDIES["tune"], tmp_path)
    for path in (p for p in COMMITTED if p.parent == folder):
        assert (tmp_path / path.name).read_text() == (RESULTS / path).read_text(), f"{path} changed"
