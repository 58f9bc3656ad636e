"""The lightly-style examples train a couple of steps on real Fashion-MNIST images."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image

pytest.importorskip("lightly", reason="pip install 'music-ssl[lightly]'")
pytest.importorskip("torchvision", reason="pip install 'music-ssl[lightly]'")

EXAMPLES_DIR = Path(__file__).resolve().parents[3] / "integrations" / "lightly" / "examples"


def load_example(framework: str) -> ModuleType:
    path = EXAMPLES_DIR / framework / "music.py"
    spec = importlib.util.spec_from_file_location(f"music_example_{framework}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pytorch_example_on_fashion_mnist(fashion_mnist_root: Path) -> None:
    example = load_example("pytorch")
    losses = example.main(
        ["--dataset", "fashion_mnist", "--data-dir", str(fashion_mnist_root)]
        + ["--batch-size", "16", "--max-steps", "2", "--num-workers", "0"]
    )
    assert len(losses) == 2
    assert all(math.isfinite(loss) for loss in losses)


def test_pytorch_example_on_the_local_idx_files_of_debians_folder() -> None:
    """--data-dir the folder that holds the idx files themselves (Debian's dataset-fashion-mnist), not
    torchvision's FashionMNIST/raw layout: read with music_ssl.integrations.idx, nothing downloaded."""
    from music_ssl.integrations.idx import DEBIAN_FASHION_MNIST, holds_idx_split

    if not holds_idx_split(DEBIAN_FASHION_MNIST, "train"):
        pytest.skip("Fashion-MNIST idx files missing: apt-get install -y dataset-fashion-mnist")
    example = load_example("pytorch")
    losses = example.main(
        ["--dataset", "fashion_mnist", "--data-dir", str(DEBIAN_FASHION_MNIST)]
        + ["--batch-size", "16", "--max-steps", "2", "--num-workers", "0"]
    )
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)


def test_pytorch_example_on_image_folder(image_folder: Path) -> None:
    example = load_example("pytorch")
    losses = example.main(
        ["--dataset", "folder", "--data-dir", str(image_folder), "--input-size", "32"]
        + ["--batch-size", "8", "--epochs", "1", "--num-workers", "0"]
    )
    assert len(losses) == 2  # 16 images, batches of 8.
    assert all(math.isfinite(loss) for loss in losses)


def test_pytorch_lightning_example_logs_loss_terms(fashion_mnist_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("pytorch_lightning", reason="pip install 'music-ssl[lightly]'")
    example = load_example("pytorch_lightning")
    trainer = example.main(
        ["--dataset", "fashion_mnist", "--data-dir", str(fashion_mnist_root)]
        + ["--batch-size", "16", "--max-steps", "2", "--num-workers", "0"]
        + ["--accelerator", "cpu", "--log-dir", str(tmp_path)]
    )
    assert trainer.global_step == 2
    for name in ("train_loss", "train_music_inv", "train_music_diag", "train_music_off"):
        assert math.isfinite(trainer.callback_metrics[name].item()), name


def test_pytorch_lightning_distributed_example_runs_two_processes(image_folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("pytorch_lightning", reason="pip install 'music-ssl[lightly]'")
    # Lightning's DDP launcher starts the second rank by re-running the script, so the example runs as
    # a script here: two CPU processes over gloo, each with its half of the 16 images.
    script = EXAMPLES_DIR / "pytorch_lightning_distributed" / "music.py"
    command = [sys.executable, str(script), "--dataset", "folder", "--data-dir", str(image_folder)]
    command += ["--input-size", "32", "--batch-size", "4", "--max-steps", "2", "--num-workers", "0"]
    command += ["--accelerator", "cpu", "--devices", "2", "--log-dir", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "`Trainer.fit` stopped: `max_steps=2` reached." in result.stdout + result.stderr


def test_pytorch_example_trains_multi_crop(fashion_mnist_root: Path) -> None:
    """--n-local-views 2: two global views of 32 px and two local views of 16 px reach the loss."""
    example = load_example("pytorch")
    args = example.parse_args(["--n-local-views", "2"])
    transform = example.make_transform(args)
    views = transform(Image.new("L", (28, 28), color=128).convert("RGB"))
    assert [tuple(view.shape) for view in views] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 2
    losses = example.main(
        ["--dataset", "fashion_mnist", "--data-dir", str(fashion_mnist_root), "--n-local-views", "2"]
        + ["--batch-size", "16", "--max-steps", "2", "--num-workers", "0"]
    )
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)


def test_pytorch_lightning_example_trains_multi_crop(fashion_mnist_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("pytorch_lightning", reason="pip install 'music-ssl[lightly]'")
    example = load_example("pytorch_lightning")
    trainer = example.main(
        ["--dataset", "fashion_mnist", "--data-dir", str(fashion_mnist_root)]
        + ["--n-local-views", "2", "--local-view-size", "12"]
        + ["--batch-size", "16", "--max-steps", "2", "--num-workers", "0"]
        + ["--accelerator", "cpu", "--log-dir", str(tmp_path)]
    )
    assert trainer.global_step == 2
    assert math.isfinite(trainer.callback_metrics["train_loss"].item())


@pytest.mark.parametrize("framework", ["pytorch", "pytorch_lightning", "pytorch_lightning_distributed"])
def test_examples_refuse_a_negative_number_of_local_views(framework: str, capsys) -> None:
    with pytest.raises(SystemExit):
        load_example(framework).parse_args(["--n-local-views", "-1"])
    assert "--n-local-views must be 0 or more, got -1" in capsys.readouterr().err
