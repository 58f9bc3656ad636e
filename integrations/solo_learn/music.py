"""MUSIC as a solo-learn method, in the shape of ``solo/methods/barlow_twins.py``."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import omegaconf
import torch
import torch.nn as nn
from solo.methods.base import BaseMethod
from solo.utils.misc import omegaconf_select

from music_ssl.integrations.solo_learn.losses import music_loss_func


class MUSIC(BaseMethod):
    def __init__(self, cfg: omegaconf.DictConfig):
        """Implements MUSIC (https://arxiv.org/abs/2206.06461)

        Extra cfg settings:
            method_kwargs:
                proj_hidden_dim (int): number of neurons of the hidden layers of the projector.
                proj_output_dim (int): number of dimensions of projected features, a multiple of
                    segment_dim (the projection holds proj_output_dim / segment_dim segments).
                proj_num_hidden_layers (int): number of Linear+BatchNorm+ReLU blocks before the
                    last Linear (which has no bias). Defaults to 2.
                segment_dim (int): number of attributes in each segment. Defaults to 32.
                temperature (float): temperature of the per-segment softmax. Defaults to 1.0.
                diag_weight (float): weight of the agreement (diagonal) entropy term. Defaults to 1.0.
                off_weight (float): weight of the inter-segment joint entropy term. Defaults to 1.0.
                inv_weight (float): weight of the per-sample invariance term. Defaults to 1.0.
        """

        super().__init__(cfg)

        self.segment_dim: int = cfg.method_kwargs.segment_dim
        self.temperature: float = cfg.method_kwargs.temperature
        self.diag_weight: float = cfg.method_kwargs.diag_weight
        self.off_weight: float = cfg.method_kwargs.off_weight
        self.inv_weight: float = cfg.method_kwargs.inv_weight

        proj_hidden_dim: int = cfg.method_kwargs.proj_hidden_dim
        proj_output_dim: int = cfg.method_kwargs.proj_output_dim
        proj_num_hidden_layers: int = cfg.method_kwargs.proj_num_hidden_layers

        # projector: hidden Linear+BN+ReLU blocks, then a Linear without bias whose output is
        # read as proj_output_dim / segment_dim segments of segment_dim attribute logits
        layers: list[nn.Module] = []
        in_dim = self.features_dim
        for _ in range(proj_num_hidden_layers):
            layers += [nn.Linear(in_dim, proj_hidden_dim), nn.BatchNorm1d(proj_hidden_dim), nn.ReLU()]
            in_dim = proj_hidden_dim
        layers.append(nn.Linear(in_dim, proj_output_dim, bias=False))
        self.projector = nn.Sequential(*layers)

    @staticmethod
    def add_and_assert_specific_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Adds method specific default values/checks for config.

        Args:
            cfg (omegaconf.DictConfig): DictConfig object.

        Returns:
            omegaconf.DictConfig: same as the argument, used to avoid errors.
        """

        cfg = super(MUSIC, MUSIC).add_and_assert_specific_cfg(cfg)

        # is_missing on the parent node: with a dotted key OmegaConf 2.3 reports "???" as present
        for key in ("proj_hidden_dim", "proj_output_dim"):
            assert key in cfg.method_kwargs and not omegaconf.OmegaConf.is_missing(cfg.method_kwargs, key), (
                f"method_kwargs.{key} is required by method=music (the projector's dimensions)"
            )

        cfg.method_kwargs.proj_num_hidden_layers = omegaconf_select(
            cfg, "method_kwargs.proj_num_hidden_layers", 2
        )
        cfg.method_kwargs.segment_dim = omegaconf_select(cfg, "method_kwargs.segment_dim", 32)
        cfg.method_kwargs.temperature = omegaconf_select(cfg, "method_kwargs.temperature", 1.0)
        cfg.method_kwargs.diag_weight = omegaconf_select(cfg, "method_kwargs.diag_weight", 1.0)
        cfg.method_kwargs.off_weight = omegaconf_select(cfg, "method_kwargs.off_weight", 1.0)
        cfg.method_kwargs.inv_weight = omegaconf_select(cfg, "method_kwargs.inv_weight", 1.0)

        proj_output_dim = cfg.method_kwargs.proj_output_dim
        segment_dim = cfg.method_kwargs.segment_dim
        assert cfg.method_kwargs.proj_num_hidden_layers >= 0, (
            "method_kwargs.proj_num_hidden_layers must be >= 0, "
            f"got {cfg.method_kwargs.proj_num_hidden_layers}"
        )
        suggestion = segment_dim * max(1, proj_output_dim // max(segment_dim, 1))
        assert segment_dim >= 2 and proj_output_dim % segment_dim == 0, (
            f"method_kwargs.proj_output_dim={proj_output_dim} must be a multiple of "
            f"method_kwargs.segment_dim={segment_dim} (>= 2): MUSIC splits the projection into segments "
            f"of segment_dim attributes, e.g. proj_output_dim={suggestion}"
        )
        assert cfg.method_kwargs.temperature > 0, (
            f"method_kwargs.temperature must be > 0, got {cfg.method_kwargs.temperature}"
        )

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

        The loss is averaged over every pair of large crops and, when small crops are configured,
        over every (large crop, small crop) pair.

        Args:
            batch (Sequence[Any]): a batch of data in the format of [img_indexes, [X], Y], where
                [X] is a list of size num_crops containing batches of images.
            batch_idx (int): index of the batch.

        Returns:
            torch.Tensor: total loss composed of MUSIC loss and classification loss.
        """

        out = super().training_step(batch, batch_idx)
        class_loss = out["loss"]
        large_z = out["z"][: self.num_large_crops]
        small_z = out["z"][self.num_large_crops :]
        pairs = list(combinations(large_z, 2)) + [(za, zb) for za in large_z for zb in small_z]

        # ------- music loss -------
        music_loss = 0.0
        metrics: dict[str, torch.Tensor] = {}
        for z1, z2 in pairs:
            terms = music_loss_func(
                z1,
                z2,
                segment_dim=self.segment_dim,
                temperature=self.temperature,
                diag_weight=self.diag_weight,
                off_weight=self.off_weight,
                inv_weight=self.inv_weight,
                return_terms=True,
            )
            music_loss = music_loss + terms.loss / len(pairs)
            for name, value in terms.log_dict(prefix="train_").items():
                metrics[name] = metrics.get(name, 0.0) + value.detach() / len(pairs)

        self.log_dict(metrics, on_epoch=True, sync_dist=True)

        return music_loss + class_loss
