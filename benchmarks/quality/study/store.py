"""A study's run files, ``OUT/<study>/runs/<method>__<value>__seed<N>.json``: one per finished run, with
the settings it was made with, so a run is reused only where those settings are the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.quality.study.catalogue import RunSettings, Study, value_label


def run_path(out: Path, study: Study, method: str, value: Any, seed: int) -> Path:
    return out / study.name / "runs" / f"{method}__{value_label(value)}__seed{seed}.json"


def run_settings(run: RunSettings, args) -> dict[str, Any]:
    """What a run file must match to be reused."""
    # A run is one seed: the profile's list of seeds is no setting of it.
    return {
        "profile": {k: v for k, v in json.loads(json.dumps(run.profile.to_dict())).items() if k != "seeds"},
        "params": run.params,
        "threads": run.threads,
        "dataset": args.dataset,
        "data_limit": args.data_limit,
        "max_steps": args.max_steps,
        "stop_epoch": args.stop_epoch,
    }


def read_run(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def write_run(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    partial.replace(path)  # a reader never sees half a file


def load_runs(out: Path, study: Study) -> list[dict[str, Any]]:
    """Every run file of the study, whichever command made it."""
    folder = out / study.name / "runs"
    return [read_run(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
