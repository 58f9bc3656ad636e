"""Drives lightly's own ImageNet ResNet-50 runner with --methods music, when a lightly checkout is given.

Set LIGHTLY_REPO to a checkout of https://github.com/lightly-ai/lightly to run it. It pretrains a
ResNet-50 for one epoch on 8 Fashion-MNIST images on CPU and runs the kNN evaluation; set
LIGHTLY_RUNNER_FULL_EVAL=1 to also run the runner's linear (90 epochs) and fine-tune (30 epochs)
evaluations, which take minutes on CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integrations.lightly.lightly_fashion_mnist import write_image_folder

LIGHTLY_REPO = os.environ.get("LIGHTLY_REPO")

pytestmark = pytest.mark.skipif(
    not LIGHTLY_REPO,
    reason="set LIGHTLY_REPO to a checkout of https://github.com/lightly-ai/lightly to drive its runner",
)


def test_lightly_runner_pretrains_and_evaluates_music(tmp_path: Path) -> None:
    pytest.importorskip("lightly", reason="pip install 'music-ssl[lightly]'")
    pytest.importorskip("pytorch_lightning", reason="pip install 'music-ssl[lightly]'")
    # The runner logs to TensorBoard and its DeviceStatsMonitor reads CPU stats through psutil.
    if not any(_installed(name) for name in ("tensorboard", "tensorboardX")):
        pytest.skip("lightly's runner logs to TensorBoard: pip install tensorboard")
    pytest.importorskip("psutil", reason="lightly's runner monitors CPU stats: pip install psutil")

    write_image_folder(tmp_path / "train", classes=2, images_per_class=4, size=64)
    write_image_folder(tmp_path / "val", classes=2, images_per_class=2, size=64, offset=1000)
    command = [sys.executable, "-m", "music_ssl.integrations.lightly.run_benchmark"]
    command += ["--lightly-repo", str(LIGHTLY_REPO), "--methods", "music"]
    command += ["--train-dir", str(tmp_path / "train"), "--val-dir", str(tmp_path / "val")]
    command += ["--log-dir", str(tmp_path / "logs"), "--epochs", "1", "--batch-size-per-device", "4"]
    # persistent_workers in the runner's data loaders needs at least one worker.
    command += ["--num-workers", "1", "--accelerator", "cpu", "--devices", "1", "--precision", "32"]
    # 10 classes: the runner's classifiers report top-5 accuracy. k=4: there are 8 training images.
    command += ["--strategy", "auto", "--num-classes", "10", "--knn-k", "4"]
    full_eval = os.environ.get("LIGHTLY_RUNNER_FULL_EVAL") == "1"
    if not full_eval:
        command += ["--skip-linear-eval", "--skip-finetune-eval"]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3600 if full_eval else 900
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "Running pretraining for music..." in output
    assert "Results for music:" in output
    assert "val_knn_top1" in output
    if full_eval:
        assert "max linear val_top1" in output
        assert "max finetune val_top1" in output


def _installed(name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(name) is not None
