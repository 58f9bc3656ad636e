"""A checkout is used through its editable install (`make install`: `pip install -e .`), which maps
music_ssl.integrations to the folder integrations/ as a wheel installs it at music_ssl/integrations/;
`import music_ssl` installs no import hook of its own.

A copy of the checkout is installed editable into a new virtual environment whose path also reaches the
suite's packages (torch ...: a folder of links to them), music-ssl's own left out, so nothing is downloaded
where the suite's setuptools can build the package.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")

ROOT = Path(__file__).resolve().parents[1]
# What an editable install reads: the package's folders, its build files and the files its metadata names.
CHECKOUT = ("music_ssl", "integrations", "pyproject.toml", "setup.py", "README.md", "LICENSE")
# The suite's own music-ssl, however installed, which the new environment must not see.
MUSIC_SSL = ("music_ssl", "__editable__")


def _no_build_isolation() -> list[str]:
    """``--no-build-isolation`` where the suite's setuptools meets pyproject.toml's build requirement;
    otherwise pip fetches the build requirements, as the suite's wheel builds do."""
    from packaging.requirements import Requirement

    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    (setuptools,) = [r for r in map(Requirement, requires) if r.name == "setuptools"]
    try:
        installed = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return []
    return ["--no-build-isolation"] if setuptools.specifier.contains(installed) else []


@pytest.fixture(scope="module")
def editable(tmp_path_factory) -> tuple[Path, Path]:
    """(the python of a new environment, a copy of the checkout installed in it with ``pip install -e``)."""
    tmp = tmp_path_factory.mktemp("editable")
    checkout = tmp / "checkout"
    for name in CHECKOUT:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, checkout / name)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    others = tmp / "suite-packages"
    others.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not (entry.suffix == ".pth" or entry.name.startswith(MUSIC_SSL)):
            (others / entry.name).symlink_to(entry)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "suite_packages.pth").write_text(f"{others}\n")
    install = [str(python), "-m", "pip", "install", "-q", "--no-deps", *_no_build_isolation(), "-e", "."]
    result = subprocess.run(install, cwd=checkout, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return python, checkout


def _run(python: Path, script: str, cwd: Path) -> list[str]:
    result = subprocess.run([str(python), "-c", script], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()


@pytest.mark.parametrize("started_in", ["another folder", "the checkout"])
def test_an_editable_install_of_a_checkout_finds_the_adapters(editable, tmp_path, started_in):
    python, checkout = editable
    script = (
        "import music_ssl, music_ssl.integrations.idx as idx, music_ssl.integrations.recipes as recipes\n"
        "print(music_ssl.__file__); print(idx.__file__); print(recipes.IMAGENET.segment_dim)"
    )
    output = _run(python, script, checkout if started_in == "the checkout" else tmp_path)
    package, adapter, segment_dim = output[-3:]
    assert Path(package).resolve() == (checkout / "music_ssl" / "__init__.py").resolve()
    assert Path(adapter).resolve() == (checkout / "integrations" / "idx.py").resolve()
    assert int(segment_dim) > 1


def test_importing_the_package_installs_no_import_hook(editable, tmp_path):
    python, checkout = editable
    script = (
        "import sys\n"
        "finders, hooks = list(sys.meta_path), list(sys.path_hooks)\n"
        "import music_ssl\n"
        "print(music_ssl.__file__)\n"
        "added = [f for f in sys.meta_path if f not in finders]\n"
        "added += [h for h in sys.path_hooks if h not in hooks]\n"
        "print([repr(a) for a in added])"
    )
    package, added = _run(python, script, tmp_path)[-2:]
    assert Path(package).resolve() == (checkout / "music_ssl" / "__init__.py").resolve()
    assert added == "[]", f"import music_ssl added to sys.meta_path or sys.path_hooks: {added}"
