"""The run files, ``OUT/<study>/runs/<name>.json``: one per finished run, written whole or not at all, with
the settings it was made with; the one rule for a file that exists (``resume``); and the lock that lets
several processes share one study."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.quality.config import RunSettings
from benchmarks.quality.names import value_label


def run_path(out: Path, study, method: str, value: Any, seed: int) -> Path:
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


def resume(path: Path, settings: dict[str, Any], made_by: str = "this run's") -> bool:
    """Whether ``path`` holds this finished run; a run file made with other settings is refused, never
    mixed in."""
    if not path.is_file():
        return False
    if read_run(path)["settings"] != json.loads(json.dumps(settings)):
        raise ValueError(
            f"{path} was made with other settings than {made_by}; choose another --out or remove the file "
            "to rerun it"
        )
    return True


def read_run(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def write_json(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    partial.replace(path)  # a reader never sees half a file


def load_runs(folder: Path, pattern: str = "*.json") -> list[dict[str, Any]]:
    """Every run file under ``folder``/runs, whichever command made it."""
    runs = folder / "runs"
    return [read_run(p) for p in sorted(runs.glob(pattern))] if runs.is_dir() else []


class RunLock:
    """``<run>.lock`` next to a run file while a process trains it, so that several processes can share
    one study (each takes the runs nobody holds). A lock whose process has ended is taken over; the
    holder is a process id, so the processes must share one machine."""

    def __init__(self, path: Path):
        self.path = path.with_suffix(".lock")
        self.held = False
        self.reason = ""

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = _lock_holder(self.path)
                if holder is not None and _alive(holder):
                    self.reason = f"process {holder} is running it"
                    return self
                if holder is None and _age(self.path) < 60:
                    self.reason = "another process is taking it"  # created, its pid not yet written
                    return self
                self.path.unlink(missing_ok=True)  # left by a process that ended
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            self.held = True
            return self
        self.reason = f"could not take {self.path}"
        return self

    def __exit__(self, *exc) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)


def _lock_holder(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_summary(
    folder: Path, summary: dict[str, Any], table: str, name="summary.json", table_name="table.md"
) -> None:
    """A report's two files in ``folder``: its summary as JSON and its markdown table."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(summary, indent=2) + "\n")
    (folder / table_name).write_text(table)


@dataclass(frozen=True)
class SeedRuns:
    """The main run's run files, ``OUT/runs/<method>__seed<k>.json``: one per method (and the random-init
    baseline) and seed, written as each finishes, so that a main run cut short goes on from the runs it
    finished, by `resume`'s rule (a file made with other settings is refused). Beside MUSIC's file of the
    first seed lie its test-set attribute probabilities (``.pt``), which the plots draw."""

    folder: Path
    settings: dict[str, dict[str, Any]]  # by method: what its run files must match

    def path(self, method: str, seed: int) -> Path:
        return self.folder / f"{method}__seed{seed}.json"

    def _settings(self, method: str, first: bool) -> dict[str, Any]:
        # The first seed's runs also record the kNN monitor's curve, which the plots draw.
        return {**self.settings[method], "first_seed": first}

    def finished(self, method: str, seed: int, first: bool) -> dict[str, Any] | None:
        """The run file of ``method`` on ``seed`` (its row, history and probabilities), None if not run."""
        path = self.path(method, seed)
        if not resume(path, self._settings(method, first), made_by="this main run's"):
            return None
        record = read_run(path)
        saved = path.with_suffix(".pt")
        return {**record, "probabilities": torch.load(saved) if saved.is_file() else None}

    def save(
        self, method: str, seed: int, first: bool, row: dict[str, Any], history=None, probabilities=None
    ):
        path = self.path(method, seed)
        if probabilities is not None:  # written first: the run file says that the run is whole
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(probabilities, path.with_suffix(".pt"))
        record = {"method": method, "seed": seed, "row": row, "history": history}
        write_json(path, {**record, "settings": self._settings(method, first)})
