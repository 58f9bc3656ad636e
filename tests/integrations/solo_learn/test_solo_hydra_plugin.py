"""The Hydra search path plugin and the wheel that ships it; needs hydra-core, not solo-learn."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("hydra")

REPO_ROOT = Path(__file__).resolve().parents[3]
PLUGIN_SOURCE = REPO_ROOT / "integrations" / "solo_learn" / "hydra_plugin" / "music_ssl_solo_searchpath.py"
PLUGIN_MODULE = "hydra_plugins.music_ssl_solo.music_ssl_solo_searchpath"
SEARCH_PATH = "pkg://music_ssl.integrations.solo_learn.configs"


def _plugin_module() -> types.ModuleType:
    """The installed plugin module, or the one in this checkout when music-ssl is not installed as a wheel."""
    try:
        return importlib.import_module(PLUGIN_MODULE)
    except ImportError:
        spec = importlib.util.spec_from_file_location("music_ssl_solo_searchpath", PLUGIN_SOURCE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


def test_plugin_appends_packaged_configs(monkeypatch):
    from hydra._internal.config_search_path_impl import ConfigSearchPathImpl

    module = _plugin_module()
    calls = []
    monkeypatch.setattr("music_ssl.integrations.solo_learn.register", lambda: calls.append(1))
    monkeypatch.delitem(sys.modules, "solo.methods", raising=False)

    search_path = ConfigSearchPathImpl()
    module.MUSICSoloSearchPathPlugin().manipulate_search_path(search_path)

    assert [(e.provider, e.path) for e in search_path.get_path()] == [("music-ssl", SEARCH_PATH)]
    assert calls == [], "registration must wait until solo-learn is loaded"


def test_plugin_registers_once_solo_is_loaded(monkeypatch):
    from hydra._internal.config_search_path_impl import ConfigSearchPathImpl

    module = _plugin_module()
    calls = []
    monkeypatch.setattr("music_ssl.integrations.solo_learn.register", lambda: calls.append(1))
    monkeypatch.setitem(sys.modules, "solo.methods", types.ModuleType("solo.methods"))

    module.MUSICSoloSearchPathPlugin().manipulate_search_path(ConfigSearchPathImpl())
    assert calls == [1]


def test_plugin_warns_instead_of_breaking_hydra(monkeypatch):
    from hydra._internal.config_search_path_impl import ConfigSearchPathImpl

    def broken_register():
        raise ImportError("no solo here")

    module = _plugin_module()
    monkeypatch.setattr("music_ssl.integrations.solo_learn.register", broken_register)
    monkeypatch.setitem(sys.modules, "solo.methods", types.ModuleType("solo.methods"))

    with pytest.warns(UserWarning, match="could not register method=music"):
        module.MUSICSoloSearchPathPlugin().manipulate_search_path(ConfigSearchPathImpl())


@pytest.fixture(scope="module")
def wheel(dist) -> Path:
    """The wheel built from this checkout (the `dist` fixture of tests/conftest.py)."""
    (built,) = dist.glob("music_ssl-*.whl")
    return built


def test_wheel_ships_plugin_and_configs(wheel):
    """The wheel holds hydra_plugins/music_ssl_solo and the YAML configs, and no top-level integrations."""
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "hydra_plugins/music_ssl_solo/music_ssl_solo_searchpath.py" in names
    assert "hydra_plugins/__init__.py" not in names, "hydra_plugins must stay a namespace package"
    for config in ("music_cifar", "music_imagenet100", "music_imagenet", "music_linear"):
        assert f"music_ssl/integrations/solo_learn/configs/{config}.yaml" in names
    assert "music_ssl/integrations/solo_learn/music.py" in names
    assert not any(name.startswith("integrations/") for name in names)
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "music-ssl-solo = music_ssl.integrations.solo_learn.cli:main" in (
        zipfile.ZipFile(wheel).read(entry_points).decode()
    )


def test_installed_wheel_lets_hydra_find_music_cifar(wheel, tmp_path):
    """Installed from the wheel (unpacked on PYTHONPATH, away from this checkout), Hydra discovers the
    plugin and composes music_cifar with no config path, as solo-learn's @hydra.main does."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    script = (
        "from hydra import compose, initialize\n"
        "with initialize(version_base='1.2', config_path=None):\n"
        "    cfg = compose(config_name='music_cifar')\n"
        "print(cfg.method, cfg.method_kwargs.segment_dim)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["music", "32"]
