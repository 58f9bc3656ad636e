"""Running solo-learn's own scripts from its checkout with our packaged configs (import after solo)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import solo
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin

PLUGIN_MODULE = "hydra_plugins.music_ssl_solo.music_ssl_solo_searchpath"
SOLO_CHECKOUT = Path(os.environ.get("SOLO_LEARN_DIR", Path(solo.__file__).resolve().parents[1]))


def plugin_is_seen() -> bool:
    return any(p.__module__ == PLUGIN_MODULE for p in Plugins.instance().discover(SearchPathPlugin))


def solo_script(name: str) -> Path:
    """``name`` in the solo-learn checkout (SOLO_LEARN_DIR), or a skip; our configs reach it through
    the Hydra plugin, so it is a skip too while Hydra does not see the plugin."""
    script = SOLO_CHECKOUT / name
    if not script.is_file():
        pytest.skip(f"{name} not found in {SOLO_CHECKOUT}: set SOLO_LEARN_DIR to a solo-learn checkout")
    if not plugin_is_seen():
        pytest.skip("Hydra does not see hydra_plugins.music_ssl_solo: install music-ssl as a wheel")
    return script


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def image_folder_run(folder: Path, out: Path) -> list[str]:
    """Overrides for one epoch on the ``fashion_mnist_folder`` images, writing checkpoints under
    ``out/trained_models``."""
    return [
        "data.dataset=custom",
        f"data.train_path={folder / 'train'}",
        f"data.val_path={folder / 'val'}",
        "data.num_workers=0",
        "optimizer.batch_size=8",
        "max_epochs=1",
        "+limit_val_batches=1",
        f"checkpoint.dir={out / 'trained_models'}",
    ]
