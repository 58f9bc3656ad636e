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
import torch
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


TERMS = (
    "music_loss",
    "music_inv",
    "music_diag",
    "music_off",
    "music_attribute_entropy",
    "music_code_entropy",
)


def test_pytorch_example_prints_every_term_every_epoch(fashion_mnist_root: Path, capsys) -> None:
    example = load_example("pytorch")
    example.main(
        ["--dataset", "fashion_mnist", "--data-dir", str(fashion_mnist_root)]
        + ["--batch-size", "8", "--epochs", "2", "--num-workers", "0"]
    )
    epochs = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2
    for line in epochs:
        assert all(f"{term} " in line for term in TERMS), line


def test_pytorch_lightning_example_prints_every_term_every_epoch(
    fashion_mnist_root: Path, tmp_path: Path, capsys
) -> None:
    lightning = pytest.importorskip("pytorch_lightning", reason="pip install 'music-ssl[lightly]'")
    if tuple(int(part) for part in lightning.__version__.split(".")[:2]) < (2, 1):
        pytest.skip(
            "the epoch line is not seen under pytorch-lightning 2.0 (cause not yet found): "
            "pip install 'pytorch-lightning>=2.1'"
        )
    example = load_example("pytorch_lightning")
    example.main(
        ["--dataset", "fashion_mnist", "--data-dir", str(fashion_mnist_root)]
        + ["--batch-size", "8", "--epochs", "2", "--num-workers", "0"]
        + ["--accelerator", "cpu", "--log-dir", str(tmp_path)]
    )
    epochs = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2
    for line in epochs:
        assert all(f"train_{term} " in line for term in TERMS), line


@pytest.mark.parametrize("framework", ["pytorch", "pytorch_lightning", "pytorch_lightning_distributed"])
def test_examples_show_their_defaults_and_use_no_more_loader_workers_than_cores(
    framework: str, capsys
) -> None:
    if framework != "pytorch":
        pytest.importorskip("pytorch_lightning", reason="pip install 'music-ssl[lightly]'")
    example = load_example(framework)
    with pytest.raises(SystemExit):
        example.parse_args(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--batch-size BATCH_SIZE" in shown and "(default: 256)" in shown
    assert "(default: cifar10)" in shown
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 1 <= example.parse_args([]).num_workers <= min(8, cores)


SHARDS = (5, 19)  # images per rank: unequal, as with a sampler of your own or an uneven last batch


def _epoch_logs_on_unequal_shards(rank: int, root: str) -> dict:
    """One epoch of one step of the distributed example's module on this rank's shard, through Lightning's
    DDP: the projections the loss saw and every value Lightning logged for the epoch."""
    import torch
    from pytorch_lightning import Trainer
    from torch.utils.data import DataLoader

    example = load_example("pytorch_lightning_distributed")
    torch.manual_seed(0)
    model = example.MUSIC()
    seen: dict = {}
    terms = model.criterion.terms

    def record(z, num_global=None):
        seen.update(z_a=z[0].detach(), z_b=z[1].detach())
        return terms(z, num_global=num_global)

    model.criterion.terms = record
    generator = torch.Generator().manual_seed(rank)
    images = torch.randn(SHARDS[rank], 2, 3, 16, 16, generator=generator)
    dataset = [([pair[0], pair[1]], 0) for pair in images]
    trainer = Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=1,
        use_distributed_sampler=False,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(model, train_dataloaders=DataLoader(dataset, batch_size=SHARDS[rank]))
    seen["logged"] = {key: float(value) for key, value in trainer.callback_metrics.items()}
    return seen


@pytest.mark.timeout(600)
def test_the_distributed_examples_logs_are_the_global_batchs_values_with_unequal_shards(
    tmp_path: Path,
) -> None:
    pytest.importorskip("pytorch_lightning", reason="pip install 'music-ssl[lightly]'")
    from tests.integrations.two_processes import run_on_two_processes

    ranks = run_on_two_processes(_epoch_logs_on_unequal_shards, str(tmp_path))
    z_a = torch.cat([rank["z_a"] for rank in ranks])
    z_b = torch.cat([rank["z_b"] for rank in ranks])
    expected = load_example("pytorch_lightning_distributed").MUSIC().criterion.terms(z_a, z_b)
    want = {"loss": expected.loss, **expected.log_dict()}
    for rank in ranks:
        for name, value in want.items():
            key = "train_loss" if name == "loss" else f"train_{name}"
            for suffix in ("_step", "_epoch"):
                assert rank["logged"][key + suffix] == pytest.approx(float(value), rel=1e-4, abs=1e-5), (
                    key + suffix
                )
