"""Which folders install as which packages. Everything else about the package is in pyproject.toml.

The adapters' source lives in the top-level ``integrations/`` folder but installs as
``music_ssl.integrations.*``, and the solo-learn Hydra plugin installs in Hydra's ``hydra_plugins``
namespace package; no generic top-level package named ``integrations`` is ever installed. Packages are
found by walking each root, never listed by hand, so a new folder cannot be left out of the wheel: every
folder under a root is a package and every file in it ships (Python source as modules, the rest as package
data), except caches. A folder that is itself a root installs under that root's name only.
"""

from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
# import name -> folder, relative to this file
ROOTS = {
    "music_ssl": "music_ssl",
    "music_ssl.integrations": "integrations",
    "hydra_plugins.music_ssl_solo": "integrations/solo_learn/hydra_plugin",
}
SKIPPED_DIRS = {"__pycache__"}
SKIPPED_SUFFIXES = {".pyc", ".pyo", ".lock", ".partial"}


def _owner(folder: Path) -> str:
    """The root a folder installs under: the deepest root folder that holds it."""
    holders = [
        (len(Path(root).parts), name)
        for name, root in ROOTS.items()
        if Path(root) in (folder, *folder.parents)
    ]
    return max(holders)[1]


def _packages() -> tuple[list[str], dict[str, str], dict[str, list[str]]]:
    packages, package_dir, package_data = [], {}, {}
    for name, root in ROOTS.items():
        for path in sorted([HERE / root, *(HERE / root).rglob("*")]):
            folder = path.relative_to(HERE)
            if not path.is_dir() or SKIPPED_DIRS & set(folder.parts) or _owner(folder) != name:
                continue
            package = ".".join([name, *folder.relative_to(root).parts])
            packages.append(package)
            package_dir[package] = folder.as_posix()
            data = [
                f.name
                for f in sorted(path.iterdir())
                if f.is_file() and f.suffix != ".py" and f.suffix not in SKIPPED_SUFFIXES
            ]
            if data:
                package_data[package] = data
    return packages, package_dir, package_data


packages, package_dir, package_data = _packages()
setup(packages=packages, package_dir=package_dir, package_data=package_data)
