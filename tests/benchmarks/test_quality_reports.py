"""The committed tables are what the report code makes of the committed results, byte for byte: a change
to a report that changes a published number or line fails here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks.quality import codes_report
from benchmarks.quality.__main__ import PUBLISH_DIR
from benchmarks.quality.config import RESULTS
from benchmarks.quality.report import markdown_table, tuning_table
from benchmarks.quality.study.catalogue import STUDIES
from benchmarks.quality.study.cli import DEFAULT_OUT as STUDIES_OUT
from benchmarks.quality.study.report import write_report
from benchmarks.quality.tuned import TUNED_PATH

CODES_OUT = RESULTS / "codes"

# Every study folder with a report, the --stop-epoch ones (first<N>epochs/<study>) included.
STUDY_FOLDERS = sorted(p.parent.relative_to(STUDIES_OUT) for p in STUDIES_OUT.rglob("summary.json"))


def _copy_runs(folder: Path, to: Path) -> None:
    shutil.copytree(folder / "runs", to / "runs", ignore=shutil.ignore_patterns("*.lock", "*.partial"))


def _same_files(made: Path, committed: Path, names: tuple[str, ...]) -> None:
    for name in names:
        assert (made / name).read_text() == (committed / name).read_text(), f"{committed / name} changed"


def test_the_committed_study_reports_are_found():
    assert STUDY_FOLDERS and {folder.name for folder in STUDY_FOLDERS} <= set(STUDIES)


@pytest.mark.parametrize("folder", STUDY_FOLDERS, ids=str)
def test_a_study_report_is_rebuilt_from_its_run_files(folder, tmp_path):
    committed = STUDIES_OUT / folder
    study = STUDIES[json.loads((committed / "summary.json").read_text())["study"]]
    _copy_runs(committed, tmp_path / folder)
    write_report(study, (tmp_path / folder).parent, with_plot=False)
    _same_files(tmp_path / folder, committed, ("summary.json", "table.md"))


def test_the_codes_report_is_rebuilt_from_its_run_files(tmp_path):
    _copy_runs(CODES_OUT, tmp_path)
    codes_report.write_tables(tmp_path)
    _same_files(tmp_path, CODES_OUT, ("summary.json", "table.md"))


def test_the_main_runs_tables_are_rebuilt_from_its_results():
    results = json.loads((PUBLISH_DIR / "results.json").read_text())
    assert markdown_table(results) == (PUBLISH_DIR / "table.md").read_text()
    # The published search is the CPU profile's on Fashion-MNIST, the main run's.
    entry = json.loads(TUNED_PATH.read_text())["cpu/fashion_mnist"]
    assert tuning_table(entry) == (PUBLISH_DIR / "tuning.md").read_text()
