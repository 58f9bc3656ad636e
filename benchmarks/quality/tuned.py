"""The tuned-values file, ``benchmarks/quality/tuned.json``: one entry per profile and dataset.

The search (``benchmarks/quality/search.py``) writes it, the main run and the studies read it. An entry
holds the chosen ``{method: params}``, every trial with its per-seed scores, and the search's protocol.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.quality.config import Profile
from benchmarks.quality.ssl_methods import ALL_METHODS, DEFAULT_LOSS_PARAMS

TUNED_PATH = Path(__file__).with_name("tuned.json")


def tuned_key(profile: Profile, dataset: str) -> str:
    return f"{profile.name}/{dataset}"


def read_entry(profile: Profile, dataset: str, path: Path = TUNED_PATH) -> dict[str, Any] | None:
    """The whole recorded entry (chosen values, trials, protocol), or None if never searched."""
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get(tuned_key(profile, dataset))


def write_entry(profile: Profile, dataset: str, entry: dict[str, Any], path: Path = TUNED_PATH) -> None:
    """Store ``entry`` under its key, keeping the other profiles' and datasets' entries."""
    entries = json.loads(path.read_text()) if path.is_file() else {}
    entries[tuned_key(profile, dataset)] = entry
    path.write_text(json.dumps(entries, indent=2) + "\n")


def method_params(
    profile: Profile, dataset: str, path: Path | None = TUNED_PATH, untuned: bool = False
) -> tuple[dict[str, dict[str, Any]], str]:
    """Every method's ``lr`` and loss options for a run, and a line saying where they came from.

    Paper defaults at the profile's learning rate when ``untuned`` or when nothing was searched.
    """
    defaults = {m: {"lr": profile.lr, **DEFAULT_LOSS_PARAMS[m]} for m in ALL_METHODS}
    if untuned:
        return defaults, "paper defaults (--untuned)"
    path = TUNED_PATH if path is None else path
    entry = read_entry(profile, dataset, path)
    if entry is None:
        return defaults, f"paper defaults, lr {profile.lr} (no search recorded in {path})"
    params = {m: entry["chosen"].get(m, defaults[m]) for m in ALL_METHODS}
    return params, f"{path.name} [{tuned_key(profile, dataset)}]"
