"""MUSIC as a solo-learn method, in the shape of ``solo/methods/barlow_twins.py``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import omegaconf
import torch
from solo.methods.base import BaseMethod

from music_ssl import MUSICProjectionHead
from music_ssl.integrations.solo_learn.losses import music_loss_terms_func
from music_ssl.integrations.solo_learn.method_kwargs import LOSS_OPTIONS, resolve_method_kwargs


def _check_crops(num_large_crops: int, num_small_crops: int) -> None:
    """Refuses crop counts that do not give MUSIC two views of every image to compare.

    Args:
        num_large_crops (int): number of large crops (``cfg.data.num_large_crops``), the global views.
        num_small_crops (int): number of small crops (``cfg.data.num_small_crops``), the local views.

    Raises:
        ValueError: if there is no large crop, or fewer than two crops in all.
    """

    if num_large_crops < 1 or num_large_crops + num_small_crops < 2:
        raise ValueError(
            f"method=music needs at least two views of every image, one of them a large crop, but the "
            f"augmentations give num_large_crops={num_large_crops} and num_small_crops={num_small_crops}: "
            "use two large crops (num_crops: 2, or two pipelines with the first pipeline's crop_size), "
            "optionally with small crops (pipelines with another crop_size), or one large crop and at "
            "least one small crop."
        )


class MUSIC(BaseMethod):
    def __init__(self, cfg: omegaconf.DictConfig):
        """Implements MUSIC (https://arxiv.org/abs/2206.06461)

        Extra cfg settings:
            method_kwargs:
                proj_hidden_dim (int): number of neurons of the hidden layers of the projector.
                proj_output_dim (int): number of dimensions of projected features, a multiple of
                    segment_dim (the projection holds proj_output_dim / segment_dim segments).
                proj_num_layers (int): number of Linear layers of the projector, as
                    ``music_ssl.MUSICProjectionHead(num_layers=...)`` counts them: all but the last
                    are followed by BatchNorm and ReLU, the last has no bias. Defaults to 3.
                segment_dim (int): number of attributes in each segment. Defaults to 32.
                temperature (float): temperature of the per-segment softmax. Defaults to 0.25 (the
                    authors trained at 1.0, which the packaged configs keep).
                diag_weight (float): weight of the agreement (diagonal) entropy term. Defaults to 1.0.
                off_weight (float): weight of the inter-segment joint entropy term. Defaults to 1.0.
                inv_weight (float): weight of the per-sample invariance term. Defaults to 1.0.
                implementation (str): "auto" or a registered implementation, as in
                    ``music_ssl.MUSICLoss`` (``music_ssl.implementations.choices()``). Defaults to "auto".
                exchange (str): what the ranks exchange for the joint over the global batch,
                    "auto", "gather" or "reduce", as in ``music_ssl.MUSICLoss``. Defaults to "auto".

        Every option is checked when the method is built, by music-ssl's own checks.

        Multi-crop: the projections of all crops, the num_large_crops large crops (global views)
        first and then the num_small_crops small crops (local views), go to the loss in one call,
        with num_global=num_large_crops. The loss is the mean of the two-view MUSIC loss over
        every pair of views holding at least one large crop: each pair of large crops and each
        (large crop, small crop) pair, all with the same weight; two small crops are never
        compared. Two large crops and no small crop give exactly the two-view loss. At least two
        crops, one of them large, are required: one large crop alone is refused here.
        """

        super().__init__(cfg)

        kwargs = cfg.method_kwargs
        # The loss's options by name (`LOSS_OPTIONS`: every option of MUSICOptions a config holds).
        self.loss_options: dict[str, Any] = {name: kwargs[name] for name in LOSS_OPTIONS}
        _check_crops(self.num_large_crops, self.num_small_crops)

        # projector: its output is read as proj_output_dim / segment_dim segments of attribute logits
        self.projector = MUSICProjectionHead(
            input_dim=self.features_dim,
            hidden_dim=kwargs.proj_hidden_dim,
            output_dim=kwargs.proj_output_dim,
            num_layers=kwargs.proj_num_layers,
            segment_dim=kwargs.segment_dim,
        )

    @staticmethod
    def add_and_assert_specific_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Adds method specific default values/checks for config.

        Args:
            cfg (omegaconf.DictConfig): DictConfig object.

        Returns:
            omegaconf.DictConfig: same as the argument, used to avoid errors.
        """

        cfg = super(MUSIC, MUSIC).add_and_assert_specific_cfg(cfg)

        node = cfg.method_kwargs
        given = {key: node[key] for key in node if not omegaconf.OmegaConf.is_missing(node, key)}
        for key, value in resolve_method_kwargs(given).items():
            node[key] = value

        return cfg

    @property
    def learnable_params(self) -> list[dict]:
        """Adds projector parameters to parent's learnable parameters.

        Returns:
            list[dict]: list of learnable parameters.
        """

        extra_learnable_params = [{"name": "projector", "params": self.projector.parameters()}]
        return super().learnable_params + extra_learnable_params

    def forward(self, X: torch.Tensor) -> dict[str, Any]:
        """Performs the forward pass of the backbone and the projector.

        Args:
            X (torch.Tensor): a batch of images in the tensor format.

        Returns:
            dict[str, Any]: a dict containing the outputs of the parent and the projected features.
        """

        out = super().forward(X)
        z = self.projector(out["feats"])
        out.update({"z": z})
        return out

    def multicrop_forward(self, X: torch.Tensor) -> dict[str, Any]:
        """Performs the forward pass of the small crops through the backbone and the projector.

        Args:
            X (torch.Tensor): a batch of small crops in the tensor format.

        Returns:
            dict[str, Any]: a dict containing the outputs of the parent and the projected features.
        """

        out = super().multicrop_forward(X)
        z = self.projector(out["feats"])
        out.update({"z": z})
        return out

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> torch.Tensor:
        """Training step for MUSIC reusing BaseMethod training step.

        The projections of all crops go to the loss together, the large crops as its global views;
        logs ``MUSICOutput.log_dict``'s scalars with the prefix ``train_``.

        Args:
            batch (Sequence[Any]): a batch of data in the format of [img_indexes, [X], Y], where
                [X] is a list of size num_crops containing batches of images.
            batch_idx (int): index of the batch.

        Returns:
            torch.Tensor: total loss composed of MUSIC loss and classification loss.
        """

        out = super().training_step(batch, batch_idx)
        class_loss = out["loss"]
        z = out["z"]  # num_large_crops large crops, then num_small_crops small crops

        # ------- music loss -------
        terms = music_loss_terms_func(
            z,
            **self.loss_options,
            num_global=self.num_large_crops,
        )

        # The loss and L_inv are this rank's shares, whose mean over ranks is the global value: every
        # rank's step weighs alike in the epoch's mean (batch_size=1), whatever its batch size.
        self.log_dict(terms.log_dict(prefix="train_"), on_epoch=True, sync_dist=True, batch_size=1)

        return terms.loss + class_loss
