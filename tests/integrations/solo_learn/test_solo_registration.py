"""``method=music`` in solo-learn without editing it: register(), the Hydra plugin, solo's own scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "solo",
    reason="solo-learn is not installable from PyPI at a usable version: install it from its GitHub "
    "repository (pip install 'setuptools<82'; pip install --no-build-isolation -e <solo-learn checkout>) "
    "to run these tests",
)

import solo  # noqa: E402
from hydra import compose, initialize  # noqa: E402
from hydra.core.plugins import Plugins  # noqa: E402
from hydra.plugins.search_path_plugin import SearchPathPlugin  # noqa: E402
from solo.methods import METHODS, BarlowTwins  # noqa: E402

from music_ssl.integrations.solo_learn import MUSIC, register  # noqa: E402

PLUGIN_MODULE = "hydra_plugins.music_ssl_solo.music_ssl_solo_searchpath"
SOLO_CHECKOUT = Path(os.environ.get("SOLO_LEARN_DIR", Path(solo.__file__).resolve().parents[1]))
CPU_RUN = ["accelerator=cpu", "devices='1'", "strategy=auto", "precision=32", "sync_batchnorm=False"]


@pytest.fixture
def restore_methods():
    saved = dict(METHODS)
    yield
    METHODS.clear()
    METHODS.update(saved)


def test_register_is_idempotent(restore_methods):
    METHODS.pop("music", None)
    before = set(METHODS)
    register()
    register()
    assert METHODS["music"] is MUSIC
    assert set(METHODS) == before | {"music"}


def test_register_refuses_to_replace_another_method(restore_methods):
    METHODS["music"] = BarlowTwins
    with pytest.raises(ValueError, match="already"):
        register()
    assert METHODS["music"] is BarlowTwins


def test_hydra_plugin_registers_and_serves_configs(restore_methods):
    if not any(p.__module__ == PLUGIN_MODULE for p in Plugins.instance().discover(SearchPathPlugin)):
        pytest.skip(
            "Hydra does not see hydra_plugins.music_ssl_solo (music-ssl not installed, or installed in "
            "setuptools' default editable mode): pip install . or pip install -e . "
            "--config-settings editable_mode=strict"
        )
    METHODS.pop("music", None)
    # what solo's main_pretrain.py does: solo.methods imported at module top, config composed inside
    # @hydra.main(version_base="1.2") without a config_path
    with initialize(version_base="1.2", config_path=None):
        cfg = compose(config_name="music_cifar")
    assert cfg.method == "music"
    assert METHODS["music"] is MUSIC


def _solo_script(name: str) -> Path:
    script = SOLO_CHECKOUT / name
    if not script.is_file():
        pytest.skip(f"{name} not found in {SOLO_CHECKOUT}: set SOLO_LEARN_DIR to a solo-learn checkout")
    return script


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_solo_scripts_pretrain_then_linear(fashion_mnist_folder, tmp_path):
    """solo-learn's unmodified main_pretrain.py and main_linear.py with our packaged configs, on CPU."""
    pretrain, linear = _solo_script("main_pretrain.py"), _solo_script("main_linear.py")
    if not any(p.__module__ == PLUGIN_MODULE for p in Plugins.instance().discover(SearchPathPlugin)):
        pytest.skip("Hydra does not see hydra_plugins.music_ssl_solo: install music-ssl as a wheel")
    data = [
        "data.dataset=custom",
        f"data.train_path={fashion_mnist_folder / 'train'}",
        f"data.val_path={fashion_mnist_folder / 'val'}",
        "data.num_workers=0",
        "optimizer.batch_size=8",
        "max_epochs=1",
        "+limit_train_batches=2",
        "+limit_val_batches=1",
        f"checkpoint.dir={tmp_path / 'trained_models'}",
        *CPU_RUN,
    ]
    _run(
        [sys.executable, str(pretrain), "--config-name", "music_cifar", "auto_resume.enabled=False", *data],
        tmp_path,
    )
    (checkpoint,) = (tmp_path / "trained_models" / "music").glob("*/*.ckpt")

    _run(
        [
            sys.executable,
            str(linear),
            "--config-name",
            "music_linear",
            f"pretrained_feature_extractor='{checkpoint}'",
            *data,
        ],
        tmp_path,
    )
    assert list((tmp_path / "trained_models" / "linear").glob("*/*.ckpt"))
