"""MUSIC as a solo-learn method, in the shape of ``solo/methods/barlow_twins.py``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import omegaconf
import torch
from solo.methods.base import BaseMethod

from music_ssl import MUSICProjectionHead
from music_ssl.integrations.solo_learn.losses import music_loss_terms_func
from music_ssl.integrations.solo_learn.method_kwargs import resolve_method_kwargs
from music_ssl.integrations.solo_learn.view_pairs import combine_pair_logs, view_pairs


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
                temperature (float): temperature of the per-segment softmax. Defaults to 1.0.
                diag_weight (float): weight of the agreement (diagonal) entropy term. Defaults to 1.0.
                off_weight (float): weight of the inter-segment joint entropy term. Defaults to 1.0.
                inv_weight (float): weight of the per-sample invariance term. Defaults to 1.0.
                implementation (str): "auto", "reference", "chunked" or "triton", as in
                    ``music_ssl.MUSICLoss``. Defaults to "auto".

        Every option is checked when the method is built, by music-ssl's own checks.

        Multi-crop: the loss is the mean of MUSIC over every pair of large crops and every
        (large crop, small crop) pair, each pair with the same weight; small crops are not paired
        with each other (see ``view_pairs``). Two large crops and no small crop give one pair: the
        setting of solo-learn's Barlow Twins and VICReg, whose training_step unpacks exactly two
        projections (``z1, z2 = out["z"]``), so they need exactly two large crops and small crops
        never reach their loss. A configuration without any pair of views is refused.
        """

        super().__init__(cfg)

        kwargs = cfg.method_kwargs
        self.segment_dim: int = kwargs.segment_dim
        self.temperature: float = kwargs.temperature
        self.diag_weight: float = kwargs.diag_weight
        self.off_weight: float = kwargs.off_weight
        self.inv_weight: float = kwargs.inv_weight
        self.implementation: str = kwargs.implementation
        self.view_pairs = view_pairs(self.num_large_crops, self.num_small_crops)

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

        Logs the weighted mean over view pairs of ``MUSICOutput.log_dict``'s scalars, except
        ``train_music_attribute_entropy_min``, the minimum over pairs (see ``combine_pair_logs``).

        Args:
            batch (Sequence[Any]): a batch of data in the format of [img_indexes, [X], Y], where
                [X] is a list of size num_crops containing batches of images.
            batch_idx (int): index of the batch.

        Returns:
            torch.Tensor: total loss composed of MUSIC loss and classification loss.
        """

        out = super().training_step(batch, batch_idx)
        class_loss = out["loss"]
        z = out["z"]  # large crops, then small crops

        # ------- music loss -------
        music_loss = 0.0
        logs = []
        for pair in self.view_pairs:
            terms = music_loss_terms_func(
                z[pair.first],
                z[pair.second],
                segment_dim=self.segment_dim,
                temperature=self.temperature,
                diag_weight=self.diag_weight,
                off_weight=self.off_weight,
                inv_weight=self.inv_weight,
                implementation=self.implementation,
            )
            music_loss = music_loss + pair.weight * terms.loss
            logs.append(terms.log_dict(prefix="train_"))

        weights = [pair.weight for pair in self.view_pairs]
        self.log_dict(combine_pair_logs(logs, weights), on_epoch=True, sync_dist=True)

        return music_loss + class_loss
