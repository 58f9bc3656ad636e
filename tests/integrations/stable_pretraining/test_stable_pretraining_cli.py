"""The CIFAR-10 script's command line answers at once: arguments are parsed before stable-pretraining,
Lightning and torchvision are imported, defaults are shown, and a bad data folder is a usage error."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = "music_ssl.integrations.stable_pretraining.cifar10_resnet18"


def _python(code: str, cwd) -> subprocess.CompletedProcess:
    """A fresh interpreter started from an empty folder, so that it imports music_ssl as installed (from
    the checkout's root it would find the checkout's music_ssl, which has no integrations subpackage)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_help_imports_none_of_the_heavy_packages_and_shows_defaults(tmp_path):
    result = _python(
        f"import sys, {SCRIPT} as script\n"
        "try:\n    script.parse_args(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('stable_pretraining', 'lightning', 'torchvision', 'torchmetrics')\n"
        "print([m for m in heavy if m in sys.modules])",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert "(default: cifar10)" in result.stdout


@pytest.mark.parametrize("dataset", ["fashion-mnist", "folder"])
def test_a_missing_data_folder_is_a_usage_error_not_a_traceback(tmp_path, dataset):
    missing = tmp_path / "nowhere"
    result = _python(
        f"import {SCRIPT} as s; s.parse_args(['--dataset', '{dataset}', '--data-dir', '{missing}'])", tmp_path
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"--data-dir {missing} is not a folder" in result.stderr
