"""MUSIC for lightly's ImageNet ResNet-50 benchmark runner (`benchmarks/imagenet/resnet50/main.py`).

Follows the contract of the runner's per-method modules: a module-level `transform` and a
LightningModule built as `MUSIC(batch_size_per_device, num_classes)` whose `forward` returns backbone
features and which trains an `online_classifier` on them. Settings are the MUSIC authors' ImageNet
recipe, `music_ssl.integrations.recipes.IMAGENET`, in lightly's terms in `recipe.py`; its learning rate
follows the global batch (every process's batch together), and the loss estimates the joint over it.
`multi_crop_transform` adds six local views of 96 px to the recipe's two views; the same module trains on
either.
"""

from __future__ import annotations

import torch
from lightly.models.utils import get_weight_decay_parameters
from lightly.utils.benchmarking import OnlineLinearClassifier
from lightly.utils.lars import LARS
from lightly.utils.scheduler import CosineWarmupScheduler
from pytorch_lightning import LightningModule
from torch import Tensor
from torch.nn import Identity, Module
from torchvision.models import resnet50

from music_ssl import MUSICLoss, MUSICOutput, MUSICProjectionHead

from . import recipe
from .transform import MUSICMultiCropTransform, MUSICTransform
from .views import size_groups


class MUSIC(LightningModule):
    """MUSIC [0] with a ResNet-50 backbone, trained and evaluated as lightly's benchmark methods are.

    Trains on the two views of `transform`, or on the two global and six local views of
    `multi_crop_transform`: the views of the first view's size are global, the smaller ones local, and the
    loss is MUSIC's mean over every pair with a global view (for two views, the two-view loss). The online
    classifier learns from the global views.

    Logs `train_loss` (what the runner's early stopping watches), the three loss terms and the
    segment diagnostics of `MUSICOutput.log_dict` (`train_music_inv`, `train_music_diag`,
    `train_music_off`, `train_music_attribute_entropy[_min]`, `train_music_confidence`,
    `train_music_code_entropy[_min]`), and the
    online classifier's metrics. With a TensorBoard logger, the per-segment attribute entropy and
    confidence are also logged as histograms every `log_every_n_steps`.

    - [0] Niu & Wang, "Multi-Segmental Informational Coding for Self-Supervised Representation
      Learning", 2022, https://arxiv.org/abs/2206.06461

    Args:
        batch_size_per_device: Batch size on every device; sets the learning rate with the world size.
        num_classes: Number of classes of the online linear classifier.
        backbone: Feature extractor returning (N, feature_dim) or (N, feature_dim, 1, 1). Defaults to
            a ResNet-50 without its classification layer.
        feature_dim: Output dimension of the backbone.
        hidden_dim: Width of the projector's hidden layer.
        output_dim: Projection dimension, a multiple of segment_dim.
        segment_dim: Attributes per segment.

    Examples:
        >>> # In lightly's benchmarks/imagenet/resnet50/main.py, or with register(METHODS):
        >>> METHODS["music"] = {"model": MUSIC, "transform": transform}
    """

    def __init__(
        self,
        batch_size_per_device: int,
        num_classes: int,
        backbone: Module | None = None,
        feature_dim: int = recipe.RECIPE.feature_dim,
        hidden_dim: int = recipe.RECIPE.hidden_dim,
        output_dim: int = recipe.RECIPE.output_dim,
        segment_dim: int = recipe.RECIPE.segment_dim,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.batch_size_per_device = batch_size_per_device

        if backbone is None:
            resnet = resnet50()
            resnet.fc = Identity()  # The classification layer is not part of the representation.
            backbone = resnet
        self.backbone = backbone
        self.projection_head = MUSICProjectionHead(
            input_dim=feature_dim,
            hidden_dim=hidden_dim,
            output_dim=output_dim,
            num_layers=recipe.RECIPE.num_layers,
            segment_dim=segment_dim,
        )
        self.criterion = MUSICLoss(
            segment_dim=segment_dim,
            temperature=recipe.RECIPE.temperature,
            diag_weight=recipe.RECIPE.diag_weight,
            off_weight=recipe.RECIPE.off_weight,
            inv_weight=recipe.RECIPE.inv_weight,
            gather_distributed="auto",
        )

        self.online_classifier = OnlineLinearClassifier(feature_dim=feature_dim, num_classes=num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def training_step(self, batch: tuple[list[Tensor], Tensor, list[str]], batch_idx: int) -> Tensor:
        views, targets = batch[0], batch[1]
        # Two views of one size, or global views then smaller local ones (multi-crop): each run of views
        # of one size goes through the backbone as one batch.
        groups = size_groups(views)
        num_global = groups[0].stop
        features = [self.forward(torch.cat(views[group])).flatten(start_dim=1) for group in groups]
        z = []
        for group, group_features in zip(groups, features, strict=True):
            z.extend(self.projection_head(group_features).chunk(group.stop - group.start))
        # With two views, the two-view loss; with local views, its mean over the pairs with a global view.
        output = self.criterion.terms(z, num_global=num_global)

        # The loss and L_inv are this rank's shares (their mean over ranks is the global value): every
        # rank's step weighs alike (batch_size=1) in the mean that sync_dist and an epoch's log take.
        self.log("train_loss", output.loss, prog_bar=True, sync_dist=True, batch_size=1)
        self.log_dict(output.log_dict(prefix="train_"), sync_dist=True, batch_size=1)
        self._log_segment_histograms(output)

        # The online classifier sees detached features of the global views: it measures the
        # representation, never shapes it.
        cls_loss, cls_log = self.online_classifier.training_step(
            (features[0].detach(), targets.repeat(num_global)), batch_idx
        )
        self.log_dict(cls_log, sync_dist=True, batch_size=len(targets))
        return output.loss + cls_loss

    def _log_segment_histograms(self, output: MUSICOutput) -> None:
        """Per-segment attribute entropy and confidence, as histograms, where the logger draws them.

        The scalars above summarise the segments by their mean and minimum; the histograms show
        whether a few segments collapse while the others stay healthy.
        """
        experiment = getattr(self.logger, "experiment", None)
        if not hasattr(experiment, "add_histogram"):  # TensorBoard's SummaryWriter has it.
            return
        if self.global_step % self.trainer.log_every_n_steps != 0:
            return
        experiment.add_histogram(
            "train_music_segment_attribute_entropy", output.attribute_entropy, self.global_step
        )
        experiment.add_histogram("train_music_segment_confidence", output.confidence, self.global_step)

    def validation_step(self, batch: tuple[Tensor, Tensor, list[str]], batch_idx: int) -> Tensor:
        images, targets = batch[0], batch[1]
        features = self.forward(images).flatten(start_dim=1)
        cls_loss, cls_log = self.online_classifier.validation_step((features.detach(), targets), batch_idx)
        self.log_dict(cls_log, prog_bar=True, sync_dist=True, batch_size=len(targets))
        return cls_loss

    def configure_optimizers(self):
        # As in VICReg's LARS: batch norm and bias parameters get neither weight decay nor the trust
        # ratio (lightly's LARS skips it for groups with weight_decay=0).
        params, params_no_weight_decay = get_weight_decay_parameters([self.backbone, self.projection_head])
        optimizer = LARS(
            [
                {"name": "music", "params": params},
                {"name": "music_no_weight_decay", "params": params_no_weight_decay, "weight_decay": 0.0},
                {
                    "name": "online_classifier",
                    "params": self.online_classifier.parameters(),
                    "weight_decay": 0.0,
                },
            ],
            lr=recipe.RECIPE.learning_rate(self.batch_size_per_device, self.trainer.world_size),
            momentum=recipe.RECIPE.momentum,
            weight_decay=recipe.RECIPE.weight_decay,
            trust_coefficient=recipe.RECIPE.lars_trust_coefficient,
        )
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = {
            "scheduler": CosineWarmupScheduler(
                optimizer=optimizer,
                warmup_epochs=recipe.warmup_steps(total_steps, self.trainer.max_epochs),
                max_epochs=total_steps,
            ),
            "interval": "step",
        }
        return [optimizer], [scheduler]


# VICReg's asymmetric augmentations at 224 px, as the MUSIC authors used on ImageNet.
transform = MUSICTransform()
# Multi-crop: those two views as global views (crops of 40-100 %), then six local views of 96 px.
multi_crop_transform = MUSICMultiCropTransform()
