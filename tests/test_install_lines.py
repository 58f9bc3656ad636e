"""The README's install lines work as written, each in a new virtual environment, from a checkout.

The lines run word for word, in a copy of the checkout that also holds a built documentation site (the
folder a reader has after building the docs). Each new environment sees the suite's own packages except
music-ssl and the build tool (torch, lightly ...: a folder of links to them, on its path), so pip installs
those two itself and finds every other requirement already satisfied: the test covers what the lines do to
music-ssl without downloading torch again. The CPU-only torch line needs PyTorch's package index and runs
only where it is reachable.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX_HOST = "download.pytorch.org"
# What the lines must install themselves, so the new environments do not see the suite's copies.
THE_LINES_INSTALL = ("music_ssl", "build", "__editable__")

pytestmark = pytest.mark.skipif(
    not (ROOT / ".git").exists() or shutil.which("git") is None,
    reason="the install lines run from a git checkout of music-ssl (git clone, then pytest)",
)


def _install_blocks() -> list[list[str]]:
    """The README's Install section: each bash block's lines, comments dropped."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```bash\n(.*?)^```", section, flags=re.DOTALL | re.MULTILINE)
    return [[line.split("  #")[0].strip() for line in block.splitlines() if line.strip()] for block in blocks]


def _checkout_copy(tmp_path: Path) -> Path:
    """The checkout's files (tracked or not ignored) and a built docs site folder beside them."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    copy = tmp_path / "checkout"
    for name in listed:
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    site_dir = re.search(r"^site_dir:\s*(\S+)", (ROOT / "mkdocs.yml").read_text(), flags=re.MULTILINE)
    assert site_dir is not None
    (copy / site_dir.group(1) / "index.html").parent.mkdir(parents=True)
    (copy / site_dir.group(1) / "index.html").write_text("<html></html>")
    return copy


def _environment(tmp_path: Path, name: str) -> Path:
    """A new virtual environment whose path also reaches the suite's packages, music-ssl's left out."""
    venv = tmp_path / name
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    others = tmp_path / f"{name}-others"
    others.mkdir()
    suite = Path(sysconfig.get_paths()["purelib"])
    for entry in suite.iterdir():
        if not (entry.name.endswith(".pth") or entry.name.split("-")[0] in THE_LINES_INSTALL):
            (others / entry.name).symlink_to(entry)
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "suite_packages.pth").write_text(f"{others}\n")
    return venv


def _run(line: str, venv: Path, cwd: Path) -> None:
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{line}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def _imports_from(venv: Path, tmp_path: Path) -> str:
    """Where the environment's python imports music-ssl and its lightly adapter from."""
    result = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import music_ssl, music_ssl.integrations.lightly as lightly_adapter; "
            "print(music_ssl.__file__); print(lightly_adapter.MUSICLoss)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.timeout(900)
def test_each_install_line_of_the_readme_installs_music_ssl_in_a_new_environment(tmp_path: Path) -> None:
    checkout_lines, *rest = _install_blocks()
    assert len(checkout_lines) == 2, checkout_lines
    checkout = _checkout_copy(tmp_path)
    for index, line in enumerate(checkout_lines):
        venv = _environment(tmp_path, f"venv{index}")
        _run(line, venv, checkout)
        where = _imports_from(venv, tmp_path)
        assert str(venv) in where and "MUSICLoss" in where, where
    assert list((checkout / "dist").glob("music_ssl-*.whl")), "the wheel line built no wheel into dist/"


def test_the_cpu_only_torch_line_is_pytorchs_cpu_index() -> None:
    """What the line asks pip for; installing it needs PyTorch's index (the next test)."""
    _, cpu_block = _install_blocks()
    (line,) = cpu_block
    words = shlex.split(line)
    assert words[:4] == ["pip", "install", "torch", "torchvision"]
    assert words[4:] == ["--index-url", f"https://{CPU_INDEX_HOST}/whl/cpu"]


@pytest.mark.timeout(900)
def test_the_cpu_only_torch_line_installs_a_cpu_build(tmp_path: Path) -> None:
    try:
        socket.create_connection((CPU_INDEX_HOST, 443), timeout=5).close()
    except OSError:
        pytest.skip(f"the CPU-only torch line needs network access to {CPU_INDEX_HOST}")
    _, (line,) = _install_blocks()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    _run(line, venv, tmp_path)
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import torch; print(torch.version.cuda)"],
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == "None", result.stdout + result.stderr
