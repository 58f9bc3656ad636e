"""MUSIC as a stable-pretraining forward function, shaped as ``stable_pretraining.forward.barlow_twins``.

The forward function is bound to an ``spt.Module`` as a method and reads three attributes given to it as
keyword arguments: ``backbone``, ``projector`` and ``music_loss``. It imports nothing from
stable-pretraining; the helpers below it decide everything the function does on its own.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from music_ssl import MUSICOutput


def music_forward(self, batch: dict[str, Any], stage: str) -> dict[str, Tensor]:
    """Forward function for MUSIC (https://arxiv.org/abs/2206.06461).

    Args:
        self: The ``spt.Module`` (bound automatically) with the attributes:
            - backbone: Feature extraction network.
            - projector: Projection head, typically ``MUSICProjectionHead``; its output dimension is a
              multiple of the loss's ``segment_dim``.
            - music_loss: A ``MUSICLoss``.
        batch: A two-view batch built by ``MultiViewTransform`` (training), or a single-view batch with an
            ``"image"`` key (validation).
        stage: The stage that stable-pretraining passes ("fit", "validate", "test" or "predict").

    Returns:
        Dictionary containing:
            - 'embedding': Backbone features of both views, concatenated.
            - 'label': Labels of both views, if the batch has labels (for probes and callbacks).
            - 'loss': The MUSIC loss (during training only).

    Examples:
        >>> module = spt.Module(
        ...     backbone=backbone,
        ...     projector=MUSICProjectionHead(512, 1024, 1024, num_layers=3, segment_dim=32),
        ...     forward=music_forward,
        ...     music_loss=MUSICLoss(segment_dim=32),
        ...     optim={"optimizer": {"type": "SGD", "lr": 0.2, "momentum": 0.9, "weight_decay": 5e-4}},
        ... )
    """
    out = {}
    views = training_views(batch)
    if views is None and self.training:
        raise ValueError(
            "music_forward got a single-view batch (an 'image' key) in training: MUSIC compares two views "
            "of every image. Build the training set with "
            "spt.data.transforms.MultiViewTransform([view_transform_1, view_transform_2])."
        )
    if views is None:
        out["embedding"] = self.backbone(batch["image"])
        if "label" in batch:
            out["label"] = batch["label"]
        return out

    embeddings = [self.backbone(view["image"]) for view in views]
    out["embedding"] = torch.cat(embeddings, dim=0)
    if "label" in views[0]:
        out["label"] = torch.cat([view["label"] for view in views], dim=0)

    if self.training:
        music_loss = loss_of(self)
        z_a, z_b = (self.projector(embedding) for embedding in embeddings)
        terms = music_loss.terms(z_a, z_b)
        out["loss"] = terms.loss
        self.log_dict(music_log_dict(terms, stage), on_step=True, on_epoch=True, sync_dist=True)
    return out


def training_views(batch: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The two views of a training batch, or None for a single-view batch (one ``"image"``).

    ``MultiViewTransform([t1, t2])`` batches as ``{"views": [view_1, view_2]}`` and
    ``MultiViewTransform({"a": t1, "b": t2})`` as ``{"a": view_1, "b": view_2}``; every view is a dict with
    at least an ``"image"``.

    Raises:
        ValueError: If the batch holds a number of views other than two.
    """
    if "views" in batch:
        views = batch["views"]
        views = list(views.values()) if isinstance(views, dict) else list(views)
    elif "image" in batch:
        return None
    else:
        # spt.Module.training_step adds an int "batch_idx" to every batch (0.1.x): only dicts are views.
        views = [value for value in batch.values() if isinstance(value, dict)]
    if len(views) != 2:
        keys = sorted(str(key) for key in batch)
        raise ValueError(
            f"music_forward needs a batch of exactly 2 views, got {len(views)} (batch keys: {keys}). "
            "Build the training set with MultiViewTransform([view_transform_1, view_transform_2]); "
            "a single-view batch needs an 'image' key."
        )
    for index, view in enumerate(views):
        if not isinstance(view, dict) or "image" not in view:
            found = sorted(view) if isinstance(view, dict) else type(view).__name__
            raise ValueError(f"music_forward: view {index} must be a dict with an 'image' key, got {found}.")
    return views


def loss_of(module: torch.nn.Module) -> torch.nn.Module:
    """The module's ``music_loss``, with the fix in the message when it was not given."""
    loss = getattr(module, "music_loss", None)
    if not callable(loss):
        raise ValueError(
            f"music_forward needs the module's music_loss, got {loss!r}: pass it as "
            "spt.Module(..., forward=music_forward, music_loss=MUSICLoss(segment_dim=...))."
        )
    return loss


def music_log_dict(terms: MUSICOutput, stage: str) -> dict[str, Tensor]:
    """What one training step logs: ``{stage}/loss`` as every stable-pretraining method, then MUSIC's terms
    and segment diagnostics as ``{stage}/music_*``."""
    logged = terms.log_dict(prefix=f"{stage}/")
    logged[f"{stage}/loss"] = logged.pop(f"{stage}/music_loss")
    return logged
