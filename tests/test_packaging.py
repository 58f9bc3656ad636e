"""What `pip install music-ssl` delivers: the sdist and the wheel hold every file of the package, the
wheel built from the sdist holds the same files, the metadata is what pyproject.toml declares, and the
suite itself imports the installed package, not this checkout.

The artifacts come from the `dist` fixture (tests/conftest.py).
"""

import email.parser
import os
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import music_ssl

ROOT = Path(__file__).resolve().parents[1]
# Where each source folder installs: the adapters' folder as music_ssl.integrations, the solo-learn Hydra
# plugin in Hydra's namespace package. Stated here independently of setup.py, which must agree.
INSTALLED_AS = {
    "integrations/solo_learn/hydra_plugin/": "hydra_plugins/music_ssl_solo/",
    "integrations/": "music_ssl/integrations/",
    "music_ssl/": "music_ssl/",
}
TOP_LEVEL = {"music_ssl", "hydra_plugins"}


def source_files() -> list[str]:
    """Every file of the package in this checkout, as a path from the repository root."""
    files = []
    for folder in ("music_ssl", "integrations"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(path.relative_to(ROOT).as_posix())
    return files


def installed_path(source: str) -> str:
    for prefix, target in INSTALLED_AS.items():
        if source.startswith(prefix):
            return target + source[len(prefix) :]
    raise AssertionError(f"{source} lies in no package folder")


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {folder}, found {[f.name for f in found]}"
    return found[0]


def wheel_files(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist() if ".dist-info/" not in name}


def test_the_wheel_holds_every_file_of_the_package(dist):
    shipped = wheel_files(_one(dist, "*.whl"))
    missing = [source for source in source_files() if installed_path(source) not in shipped]
    assert not missing, f"left out of the wheel: {missing}"
    for source in source_files():
        assert shipped[installed_path(source)] == (ROOT / source).read_bytes(), source
    assert {name.split("/")[0] for name in shipped} == TOP_LEVEL
    assert "music_ssl/triton_kernel/kernels.py" in shipped


def test_the_sdist_holds_every_file_of_the_package(dist):
    sdist = _one(dist, "*.tar.gz")
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        names = {name.removeprefix(top + "/") for name in archive.getnames()}
    wanted = [*source_files(), "setup.py", "pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md"]
    missing = [source for source in wanted if source not in names]
    assert not missing, f"left out of the sdist: {missing}"


def test_the_wheel_built_from_the_sdist_equals_the_wheel_built_from_the_tree(dist):
    from_sdist = wheel_files(_one(dist, "*.whl"))
    from_tree = wheel_files(_one(dist / "from-tree", "*.whl"))
    assert sorted(from_sdist) == sorted(from_tree)
    assert from_sdist == from_tree


def test_the_metadata_is_what_pyproject_declares(dist):
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wheel = _one(dist, "*.whl")
    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(info).decode())
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert metadata["Name"] == "music-ssl"
    assert metadata["Version"] == music_ssl.__version__
    assert wheel.name == f"music_ssl-{music_ssl.__version__}-py3-none-any.whl"
    assert metadata["Requires-Python"] == project["requires-python"]
    assert metadata["License-Expression"] == "MIT"
    requires = metadata.get_all("Requires-Dist")
    assert project["dependencies"][0] in requires  # torch, with its floor
    assert sorted(metadata.get_all("Provides-Extra")) == sorted(project["optional-dependencies"])
    assert "music-ssl-solo = music_ssl.integrations.solo_learn.cli:main" in entry_points
    assert metadata.get_payload().startswith("# music-ssl")  # the README is the long description


def test_the_suite_imports_the_installed_package():
    """`make test` runs the suite against the wheel installed in a clean environment. A developer who
    runs pytest on an editable checkout sets MUSIC_SSL_TEST_CHECKOUT=1 to say so."""
    if os.environ.get("MUSIC_SSL_TEST_CHECKOUT") == "1":
        pytest.skip("MUSIC_SSL_TEST_CHECKOUT=1: this run tests the checkout; `make test` tests the wheel")
    import music_ssl.integrations
    import music_ssl.triton_kernel

    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    for module in (music_ssl, music_ssl.integrations, music_ssl.triton_kernel):
        path = Path(module.__file__).resolve()
        assert site_packages in path.parents, f"{module.__name__} comes from {path}, not {site_packages}"
        for source in ("music_ssl", "integrations"):
            assert ROOT / source not in path.parents
