"""``method=music`` in solo-learn without editing it: register(), the Hydra plugin, solo's own scripts."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip(
    "solo",
    reason="solo-learn is not installable from PyPI at a usable version: install it from its GitHub "
    "repository (pip install 'setuptools<82'; pip install --no-build-isolation -e <solo-learn checkout>) "
    "to run these tests",
)

from hydra import compose, initialize  # noqa: E402
from solo.methods import METHODS, BarlowTwins  # noqa: E402

from music_ssl.integrations.solo_learn import MUSIC, register  # noqa: E402
from tests.integrations.solo_learn.scripts import image_folder_run, plugin_is_seen, run, solo_script  # noqa: E402

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
    if not plugin_is_seen():
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


def test_solo_scripts_pretrain_then_linear(fashion_mnist_folder, tmp_path):
    """solo-learn's unmodified main_pretrain.py and main_linear.py with our packaged configs, on CPU."""
    pretrain, linear = solo_script("main_pretrain.py"), solo_script("main_linear.py")
    data = [*image_folder_run(fashion_mnist_folder, tmp_path), "+limit_train_batches=2", *CPU_RUN]
    run(
        [sys.executable, str(pretrain), "--config-name", "music_cifar", "auto_resume.enabled=False", *data],
        tmp_path,
    )
    (checkpoint,) = (tmp_path / "trained_models" / "music").glob("*/*.ckpt")

    run(
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
