"""MUSIC trained by the real stable-pretraining on Fashion-MNIST images, on CPU, for a few dozen steps.

Skipped only when stable-pretraining is not installed (``pip install music-ssl[stable-pretraining]``, part
of the ``dev`` extra). A failure names the stable-pretraining release that broke the adapter.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math

import pytest
import torch

if importlib.util.find_spec("stable_pretraining") is None:
    pytest.skip(
        "stable-pretraining is not installed: pip install music-ssl[stable-pretraining]",
        allow_module_level=True,
    )

import lightning as pl
import stable_pretraining as spt
import torchmetrics
from stable_pretraining.data import transforms
from torch import nn

from music_ssl import MUSICLoss, MUSICOutput, MUSICProjectionHead
from music_ssl.integrations.idx import DEBIAN_FASHION_MNIST
from music_ssl.integrations.stable_pretraining import cifar10_resnet18 as benchmark
from music_ssl.integrations.stable_pretraining import music_forward

RELEASE = f"stable-pretraining {spt.__version__}"
LOGGED = (
    "fit/loss",
    "fit/music_inv",
    "fit/music_diag",
    "fit/music_off",
    "fit/music_attribute_entropy",
    "fit/music_attribute_entropy_min",
    "fit/music_confidence",
    "fit/music_code_entropy",
    "fit/music_code_entropy_min",
)
BATCH, TRAIN_IMAGES, VAL_IMAGES, EPOCHS = 64, 512, 256, 3


@pytest.fixture(scope="module")
def fashion_mnist() -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
    if not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST idx files not found under {DEBIAN_FASHION_MNIST} (make data)")
    train = benchmark.IdxImages(DEBIAN_FASHION_MNIST, "train")
    val = benchmark.IdxImages(DEBIAN_FASHION_MNIST, "t10k")
    return torch.utils.data.Subset(train, range(TRAIN_IMAGES)), torch.utils.data.Subset(
        val, range(VAL_IMAGES)
    )


class StepLosses(pl.Callback):
    """The loss of every training step, read from the state that spt.Module.training_step returns."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def train_music(fashion_mnist) -> tuple[pl.Trainer, list[float]]:
    train_images, val_images = fashion_mnist
    normalize = benchmark.NORMALIZE["fashion-mnist"]
    view = benchmark.view_transform(28, normalize)
    train = spt.data.FromTorchDataset(
        train_images, names=["image", "label"], transform=transforms.MultiViewTransform([view, view])
    )
    val = spt.data.FromTorchDataset(
        val_images,
        names=["image", "label"],
        transform=transforms.Compose(transforms.ToImage(rgb=True, **normalize)),
    )
    data = spt.data.DataModule(
        train=torch.utils.data.DataLoader(train, batch_size=BATCH, shuffle=True, drop_last=True),
        val=torch.utils.data.DataLoader(val, batch_size=128),
    )
    module = spt.Module(
        backbone=benchmark.small_backbone(width=8),
        projector=MUSICProjectionHead(32, 64, 64, num_layers=2, segment_dim=8),
        forward=music_forward,
        music_loss=MUSICLoss(segment_dim=8),
        optim={
            "optimizer": {"type": "SGD", "lr": 0.05, "momentum": 0.9},
            "scheduler": {"type": "ConstantLR", "factor": 1.0},
        },
    )
    probe = spt.callbacks.OnlineProbe(
        module,
        name="linear_probe",
        input="embedding",
        target="label",
        probe=nn.Linear(32, 10),
        loss=nn.CrossEntropyLoss(),
        metrics={"top1": torchmetrics.classification.MulticlassAccuracy(10)},
    )
    knn = spt.callbacks.OnlineKNN(
        name="knn_probe",
        input="embedding",
        target="label",
        queue_length=2 * TRAIN_IMAGES,
        metrics={"accuracy": torchmetrics.classification.MulticlassAccuracy(10)},
        input_dim=32,
        k=10,
    )
    step_losses = StepLosses()
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        callbacks=[probe, knn, step_losses],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    try:
        trainer.fit(module, datamodule=data)
    except Exception as error:
        pytest.fail(
            f"{RELEASE}: training spt.Module with music_forward failed: {type(error).__name__}: {error}"
        )
    return trainer, step_losses.losses


@pytest.fixture(scope="module")
def trained(fashion_mnist, tmp_path_factory) -> tuple[pl.Trainer, list[float]]:
    # Installing stable-pretraining adds its default callbacks to every Lightning Trainer; one of them dumps
    # the environment into spt's cache_dir (~/.cache/stable-pretraining unless moved).
    config = spt.get_config()
    previous_cache_dir = config.cache_dir
    spt.set(cache_dir=str(tmp_path_factory.mktemp("spt_cache")))
    torch.manual_seed(0)
    try:
        return train_music(fashion_mnist)
    finally:
        config.cache_dir = previous_cache_dir


def test_loss_is_finite_and_falls(trained):
    _, losses = trained
    steps = EPOCHS * (TRAIN_IMAGES // BATCH)
    assert len(losses) == steps, f"{RELEASE}: {len(losses)} training steps reported a loss, expected {steps}"
    assert all(math.isfinite(loss) for loss in losses), f"{RELEASE}: non-finite MUSIC loss: {losses}"
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first - 0.05, (
        f"{RELEASE}: the MUSIC loss did not fall: first steps {first:.3f}, last {last:.3f}"
    )


def test_online_probe_and_knn_report_accuracies(trained):
    metrics = trained[0].callback_metrics
    for name in ("eval/linear_probe_top1", "eval/knn_probe_accuracy"):
        assert name in metrics, f"{RELEASE}: {name} was not reported; reported: {sorted(metrics)}"
        assert 0.0 <= float(metrics[name]) <= 1.0, f"{RELEASE}: {name} = {float(metrics[name])}"
    # Chance is 0.1 (+-0.02 on 256 images); seeds 0-3 give 0.19-0.47 after these 24 steps (seed 0: 0.41).
    # Labels out of line with the forward's embeddings bring it down to chance.
    knn = float(metrics["eval/knn_probe_accuracy"])
    assert knn > 0.15, f"{RELEASE}: kNN accuracy {knn:.3f} on music_forward's embeddings is at chance"


def test_loss_terms_and_segment_diagnostics_are_logged_per_step_and_epoch(trained):
    metrics = trained[0].callback_metrics
    for name in LOGGED:
        for logged in (f"{name}_step", f"{name}_epoch"):
            assert logged in metrics, f"{RELEASE}: {logged} was not logged; logged: {sorted(metrics)}"
            assert math.isfinite(float(metrics[logged])), f"{RELEASE}: {logged} = {float(metrics[logged])}"


class RecordingLoss(MUSICLoss):
    """MUSICLoss that records, for every call, how many views reached it and how many were global."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[int, int | None, list[tuple[int, ...]]]] = []

    def terms(self, z_a, z_b=None, *, num_global=None) -> MUSICOutput:
        self.calls.append((len(z_a), num_global, [tuple(z.shape) for z in z_a]))
        return super().terms(z_a, z_b, num_global=num_global)


def test_multi_crop_trains_with_global_and_local_views_named_as_for_dino(fashion_mnist, tmp_path):
    """Two global views of 28 px and two local views of 14 px, named as stable-pretraining's DINO reads them,
    trained by a Lightning Trainer for a few steps: every step's loss has all four views, two global."""
    train_images, _ = fashion_mnist
    normalize = benchmark.NORMALIZE["fashion-mnist"]
    global_view = benchmark.view_transform(28, normalize)
    local_crop = dataclasses.replace(benchmark.RECIPE.views[0], crop_scale=(0.05, 0.4))
    local_view = benchmark.view_transform(14, normalize, local_crop)
    multi_crop = transforms.MultiViewTransform(
        {"global_1": global_view, "global_2": global_view, "local_1": local_view, "local_2": local_view}
    )
    train = spt.data.FromTorchDataset(
        torch.utils.data.Subset(train_images, range(4 * 32)), names=["image", "label"], transform=multi_crop
    )
    sample = train[0]
    sizes = {name: tuple(sample[name]["image"].shape[-2:]) for name in ("global_1", "global_2", "local_1")}
    assert sizes == {"global_1": (28, 28), "global_2": (28, 28), "local_1": (14, 14)}
    data = spt.data.DataModule(
        train=torch.utils.data.DataLoader(train, batch_size=32, shuffle=True, drop_last=True)
    )
    loss = RecordingLoss(segment_dim=8)
    module = spt.Module(
        backbone=benchmark.small_backbone(width=8),
        projector=MUSICProjectionHead(32, 64, 64, num_layers=2, segment_dim=8),
        forward=music_forward,
        music_loss=loss,
        optim={"optimizer": {"type": "SGD", "lr": 0.05, "momentum": 0.9}},
    )
    step_losses = StepLosses()
    trainer = pl.Trainer(
        max_steps=4,
        accelerator="cpu",
        callbacks=[step_losses],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=tmp_path,
    )
    config = spt.get_config()
    previous_cache_dir = config.cache_dir
    spt.set(cache_dir=str(tmp_path / "spt_cache"))
    torch.manual_seed(0)
    try:
        trainer.fit(module, datamodule=data)
    except Exception as error:
        pytest.fail(
            f"{RELEASE}: multi-crop training with music_forward failed: {type(error).__name__}: {error}"
        )
    finally:
        config.cache_dir = previous_cache_dir

    assert len(step_losses.losses) == 4, f"{RELEASE}: {len(step_losses.losses)} steps, expected 4"
    assert all(math.isfinite(value) for value in step_losses.losses), step_losses.losses
    assert [(views, num_global) for views, num_global, _ in loss.calls] == [(4, 2)] * 4
    assert all(shapes == [(32, 64)] * 4 for _, _, shapes in loss.calls)
    assert math.isfinite(float(trainer.callback_metrics["fit/music_inv_step"]))
