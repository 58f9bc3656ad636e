"""The ImageNet ResNet-50 benchmark method trains on real images through its own transform."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("lightly", reason="pip install 'music-ssl[lightly]'")
pytest.importorskip("pytorch_lightning", reason="pip install 'music-ssl[lightly]'")

from lightly.data import LightlyDataset  # noqa: E402
from pytorch_lightning import Trainer  # noqa: E402
from pytorch_lightning.loggers import Logger  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from music_ssl import music_loss  # noqa: E402
from music_ssl.integrations.lightly import imagenet_resnet50  # noqa: E402
from music_ssl.integrations.lightly.transform import (  # noqa: E402
    MUSICMultiCropTransform,
    MUSICTransform,
    MUSICView1Transform,
    MUSICView2Transform,
)
from music_ssl.integrations.recipes import IMAGENET  # noqa: E402

NUM_CLASSES = 10  # The online classifier reports top-5 accuracy, so it needs at least 5 classes.
BATCH_SIZE = 8


def small_backbone() -> nn.Module:
    """A stand-in for ResNet-50 that keeps CPU steps at 224 px fast; returns (N, 16) features."""
    return nn.Sequential(
        nn.Conv2d(3, 16, kernel_size=8, stride=8),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def small_music() -> imagenet_resnet50.MUSIC:
    return imagenet_resnet50.MUSIC(
        batch_size_per_device=BATCH_SIZE,
        num_classes=NUM_CLASSES,
        backbone=small_backbone(),
        feature_dim=16,
        hidden_dim=64,
        output_dim=64,
        segment_dim=8,
    )


def test_default_model_follows_the_imagenet_recipe() -> None:
    model = imagenet_resnet50.MUSIC(batch_size_per_device=4, num_classes=NUM_CLASSES)
    linears = [m for m in model.projection_head.modules() if isinstance(m, nn.Linear)]
    dims = [IMAGENET.feature_dim] + [IMAGENET.hidden_dim] * (IMAGENET.num_layers - 1) + [IMAGENET.output_dim]
    assert [(m.in_features, m.out_features) for m in linears] == list(zip(dims[:-1], dims[1:], strict=True))
    assert linears[-1].bias is None
    assert model.projection_head.num_segments == IMAGENET.num_segments
    criterion = model.criterion
    assert (criterion.segment_dim, criterion.temperature) == (IMAGENET.segment_dim, IMAGENET.temperature)
    weights = (criterion.diag_weight, criterion.off_weight, criterion.inv_weight)
    assert weights == (IMAGENET.diag_weight, IMAGENET.off_weight, IMAGENET.inv_weight)
    assert criterion.gather_distributed == "auto"  # the one distributed policy of every host
    assert model.online_classifier.feature_dim == IMAGENET.feature_dim
    features = model(torch.randn(2, 3, 64, 64))
    assert features.shape == (2, IMAGENET.feature_dim)


def test_transform_gives_two_asymmetric_224_px_views(image_folder: Path) -> None:
    transform = imagenet_resnet50.transform
    assert isinstance(transform, MUSICTransform)
    view_1, view_2 = transform.transforms
    assert isinstance(view_1, MUSICView1Transform)
    assert type(view_2) is MUSICView2Transform
    dataset = LightlyDataset(input_dir=str(image_folder), transform=transform)
    views, target, _ = dataset[0]
    assert [view.shape for view in views] == [(3, 224, 224), (3, 224, 224)]
    assert target == 0


class HistogramRecorder:
    """Stands in for TensorBoard's SummaryWriter: records add_histogram calls."""

    def __init__(self) -> None:
        self.histograms: dict[str, list[torch.Tensor]] = {}

    def add_histogram(self, tag: str, values: torch.Tensor, global_step: int) -> None:
        self.histograms.setdefault(tag, []).append(values.detach().clone())


class RecordingLogger(Logger):
    """A Lightning logger whose experiment records histograms, as a TensorBoardLogger's would."""

    def __init__(self) -> None:
        super().__init__()
        self._experiment = HistogramRecorder()
        self.metric_names: set[str] = set()

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> int:
        return 0

    @property
    def experiment(self) -> HistogramRecorder:
        return self._experiment

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metric_names.update(metrics)


def test_trains_on_fashion_mnist_and_logs_finite_terms(image_folder: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = small_music()
    dataset = LightlyDataset(input_dir=str(image_folder), transform=imagenet_resnet50.transform)
    train_dataloader = DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, drop_last=True)
    val_dataset = LightlyDataset(
        input_dir=str(image_folder), transform=imagenet_resnet50.transform.transforms[0]
    )
    val_dataloader = DataLoader(val_dataset, batch_size=BATCH_SIZE)
    head_weight = model.projection_head.layers[0].weight.detach().clone()
    logger = RecordingLogger()

    trainer = Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        accelerator="cpu",
        devices=1,
        logger=logger,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, train_dataloaders=train_dataloader, val_dataloaders=val_dataloader)

    assert trainer.global_step == 2
    metrics = trainer.callback_metrics
    for name in (
        "train_loss",
        "train_music_inv",
        "train_music_diag",
        "train_music_off",
        "train_music_attribute_entropy",
        "train_music_attribute_entropy_min",
        "train_music_confidence",
        "train_music_code_entropy",
        "train_music_code_entropy_min",
        "train_online_cls_loss",
        "val_online_cls_top1",
    ):
        assert name in metrics, f"{name} not logged; logged: {sorted(metrics)}"
        assert math.isfinite(metrics[name].item()), name
    assert "train_music_inv" in logger.metric_names
    # Per-segment diagnostics: one value per segment (64 / 8 = 8 segments) at every step.
    for tag in ("train_music_segment_attribute_entropy", "train_music_segment_confidence"):
        assert [values.shape for values in logger.experiment.histograms[tag]] == [(8,), (8,)]
    # Entropies are in nats and bounded by log(segment_dim).
    assert 0.0 <= metrics["train_music_attribute_entropy"].item() <= math.log(8) + 1e-5
    assert not torch.equal(model.projection_head.layers[0].weight, head_weight)

    # The recipe's optimizer: LARS at its rate for the global batch, no weight decay on norms and biases.
    optimizer = trainer.optimizers[0]
    assert type(optimizer).__name__ == IMAGENET.optimizer.upper()
    groups = {group["name"]: group for group in optimizer.param_groups}
    assert groups["music"]["initial_lr"] == IMAGENET.learning_rate(BATCH_SIZE, world_size=1)
    assert groups["music"]["momentum"] == IMAGENET.momentum
    assert groups["music"]["weight_decay"] == IMAGENET.weight_decay
    assert groups["music"]["trust_coefficient"] == IMAGENET.lars_trust_coefficient
    assert IMAGENET.exclude_bias_and_norm and groups["music_no_weight_decay"]["weight_decay"] == 0.0

    model.eval()
    images = torch.stack([val_dataset[i][0] for i in range(4)])
    with torch.no_grad():
        logits = model.online_classifier(model(images))
    assert logits.shape == (4, NUM_CLASSES)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("views", [0, 1])
def test_fewer_than_two_views_is_a_clear_error(views: int) -> None:
    model = small_music()
    batch = (
        [torch.randn(BATCH_SIZE, 3, 32, 32) for _ in range(views)],
        torch.zeros(BATCH_SIZE, dtype=torch.long),
        [],
    )
    with pytest.raises(
        ValueError, match=rf"at least two views of every image, got {views}: .*MUSICTransform\(\)"
    ):
        model.training_step(batch, 0)


def test_local_views_before_global_ones_are_a_clear_error() -> None:
    views = [torch.randn(BATCH_SIZE, 3, 16, 16), torch.randn(BATCH_SIZE, 3, 32, 32)]
    with pytest.raises(ValueError, match=r"view 1 \(32x32 px\) follows a smaller view"):
        small_music().training_step((views, torch.zeros(BATCH_SIZE, dtype=torch.long), []), 0)


def logged_training_loss(model: imagenet_resnet50.MUSIC, views: list[torch.Tensor]) -> torch.Tensor:
    """training_step's MUSIC loss (what it logs as train_loss), the step run without a Trainer."""
    logged: dict[str, torch.Tensor] = {}
    model.log = lambda name, value, **kwargs: logged.__setitem__(name, value)
    model.log_dict = lambda values, **kwargs: logged.update(values)
    model.training_step((views, torch.arange(BATCH_SIZE) % NUM_CLASSES, []), 0)
    return logged["train_loss"]


def projections(model: imagenet_resnet50.MUSIC, views: list[torch.Tensor]) -> list[torch.Tensor]:
    return [model.projection_head(model(view).flatten(start_dim=1)) for view in views]


def test_multi_crop_loss_is_the_core_loss_of_the_projections_with_two_global_views() -> None:
    """Two 32 px global views and three 16 px local views: the step's loss is music_loss over the same
    projections with num_global=2 (batch norm in eval mode, so that projecting views together or one by
    one gives the same projections)."""
    torch.manual_seed(0)
    model = small_music().eval()
    views = [torch.randn(BATCH_SIZE, 3, 32, 32) for _ in range(2)]
    views += [torch.randn(BATCH_SIZE, 3, 16, 16) for _ in range(3)]
    loss = logged_training_loss(model, views)
    with torch.no_grad():
        z = projections(model, views)
    options = {"segment_dim": 8, "temperature": IMAGENET.temperature}
    torch.testing.assert_close(loss, music_loss(z, num_global=2, **options))
    assert not torch.allclose(loss, music_loss(z[0], z[1], **options))


def test_two_view_loss_is_the_two_view_call() -> None:
    torch.manual_seed(0)
    model = small_music().eval()
    views = [torch.randn(BATCH_SIZE, 3, 32, 32) for _ in range(2)]
    loss = logged_training_loss(model, views)
    with torch.no_grad():
        z_a, z_b = projections(model, views)
    torch.testing.assert_close(loss, model.criterion(z_a, z_b))


def test_multi_crop_trains_through_lightning_on_fashion_mnist(image_folder: Path, tmp_path: Path) -> None:
    """The runner's contract with the multi-crop transform: two global and two local views per image."""
    torch.manual_seed(0)
    model = small_music()
    transform = MUSICMultiCropTransform(input_size=32, n_local_views=2, local_view_size=16, gaussian_blur=0.0)
    dataset = LightlyDataset(input_dir=str(image_folder), transform=transform)
    seen_views: list[list[tuple[int, ...]]] = []
    training_step = model.training_step

    def recording_step(batch, batch_idx):
        seen_views.append([tuple(view.shape) for view in batch[0]])
        return training_step(batch, batch_idx)

    model.training_step = recording_step
    trainer = Trainer(
        max_steps=2,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, train_dataloaders=DataLoader(dataset, batch_size=BATCH_SIZE, drop_last=True))

    assert trainer.global_step == 2
    assert seen_views == [[(BATCH_SIZE, 3, 32, 32)] * 2 + [(BATCH_SIZE, 3, 16, 16)] * 2] * 2
    for name in ("train_loss", "train_music_inv", "train_online_cls_loss"):
        assert math.isfinite(trainer.callback_metrics[name].item()), name


def test_multi_crop_transform_of_the_module_gives_two_global_and_six_local_views() -> None:
    transform = imagenet_resnet50.multi_crop_transform
    assert isinstance(transform, MUSICMultiCropTransform) and len(transform.transforms) == 8
