"""Python started inside a source checkout imports the checkout's package, ahead of any installed one:
its adapters, the folder integrations/ beside it, are found as music_ssl.integrations all the same."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_python_started_in_a_checkout_finds_the_adapters(tmp_path):
    checkout = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("music_ssl", "integrations"):
        shutil.copytree(ROOT / folder, checkout / folder, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", checkout)
    script = (
        "import music_ssl, music_ssl.integrations.idx as idx, music_ssl.integrations.recipes as recipes\n"
        "print(music_ssl.__file__); print(idx.__file__); print(recipes.IMAGENET.segment_dim)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=checkout, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    package, adapter, segment_dim = result.stdout.strip().splitlines()[-3:]
    assert Path(package).resolve() == (checkout / "music_ssl" / "__init__.py").resolve()
    assert Path(adapter).resolve() == (checkout / "integrations" / "idx.py").resolve()
    assert int(segment_dim) > 1
