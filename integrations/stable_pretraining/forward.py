"""MUSIC as a stable-pretraining forward function, shaped as ``stable_pretraining.forward.barlow_twins``,
with multi-crop (global and local views) as ``stable_pretraining.forward.dino`` takes it.

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
    """Forward function for MUSIC (https://arxiv.org/abs/2206.06461), with two views or multi-crop.

    Args:
        self: The ``spt.Module`` (bound automatically) with the attributes:
            - backbone: Feature extraction network.
            - projector: Projection head, typically ``MUSICProjectionHead``; its output dimension is a
              multiple of the loss's ``segment_dim``.
            - music_loss: A ``MUSICLoss``.
        batch: A multi-view batch built by ``MultiViewTransform`` (training): two views, or global and local
            views (multi-crop; `global_and_local_views` says how they are told apart); or a single-view batch
            with an ``"image"`` key (validation).
        stage: The stage that stable-pretraining passes ("fit", "validate", "test" or "predict").

    Returns:
        Dictionary containing:
            - 'embedding': Backbone features of the global views (both views of a two-view batch),
              concatenated; local views are left to the loss, as stable-pretraining's DINO leaves them.
            - 'label': Labels of those views, if the batch has labels (for probes and callbacks).
            - 'loss': The MUSIC loss (during training only): ``music_loss(z_list, num_global=G)`` over the
              projections of the G global views, then the local ones; for two views the two-view loss.

    Examples:
        >>> module = spt.Module(
        ...     backbone=backbone,
        ...     projector=(projector := MUSICProjectionHead(512, 1024, 1024, segment_dim=32)),
        ...     forward=music_forward,
        ...     music_loss=projector.loss(),
        ...     optim={"optimizer": {"type": "SGD", "lr": 0.2, "momentum": 0.9, "weight_decay": 5e-4}},
        ... )
    """
    out = {}
    split = global_and_local_views(batch)
    if split is None and self.training:
        raise ValueError(
            "music_forward got a single-view batch (an 'image' key) in training: MUSIC compares at least two "
            "views of every image. Build the training set with "
            "spt.data.transforms.MultiViewTransform([view_transform_1, view_transform_2])."
        )
    if split is None:
        out["embedding"] = self.backbone(batch["image"])
        if "label" in batch:
            out["label"] = batch["label"]
        return out

    global_views, local_views = split
    embeddings = [self.backbone(view["image"]) for view in global_views]
    out["embedding"] = torch.cat(embeddings, dim=0)
    if "label" in global_views[0]:
        out["label"] = torch.cat([view["label"] for view in global_views], dim=0)

    if self.training:
        music_loss = loss_of(self)
        embeddings += [self.backbone(view["image"]) for view in local_views]
        z = [self.projector(embedding) for embedding in embeddings]
        terms = music_loss.terms(z, num_global=len(global_views))
        out["loss"] = terms.loss
        # The loss and L_inv are this rank's shares, whose mean over ranks is the global value: every
        # rank's step weighs alike in the epoch's mean (batch_size=1), whatever its batch size.
        self.log_dict(music_log_dict(terms, stage), on_step=True, on_epoch=True, sync_dist=True, batch_size=1)
    return out


def training_views(batch: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The views of a training batch, global views first, or None for a single-view batch (one
    ``"image"``); `global_and_local_views` tells the global views from the local ones."""
    split = global_and_local_views(batch)
    return None if split is None else split[0] + split[1]


def global_and_local_views(
    batch: dict[str, Any],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """The global and the local views of a training batch, or None for a single-view batch (one
    ``"image"``).

    ``MultiViewTransform([t1, t2, ...])`` batches as ``{"views": [view_1, view_2, ...]}`` and
    ``MultiViewTransform({"a": t1, "b": t2, ...})`` as ``{"a": view_1, "b": view_2, ...}``; every view is a
    dict with at least an ``"image"``. Global views are told from local ones:

    - by name, as stable-pretraining's own multi-crop forward functions (DINO, DINOv2) read them: where a
      view's name starts with ``"global"`` or ``"local"`` (``{"global_1": ..., "global_2": ...,
      "local_1": ..., ...}``), those names decide, and every view must carry one;
    - by size otherwise (a list of views, or names such as ``"a"`` and ``"b"``): the views whose images
      have the most pixels are global, the smaller ones local. Two views of one size are both global.

    Within each kind, the views keep the batch's order.

    Returns:
        ``(global_views, local_views)``; ``local_views`` is empty for two views of one size.

    Raises:
        ValueError: If the batch holds fewer than two views or no global view, a view is not a dict with
            an ``"image"``, or some view names start with ``"global"``/``"local"`` and others do not.
    """
    if "views" in batch:
        views = batch["views"]
        named = isinstance(views, dict)
        names = [str(name) for name in views] if named else []
        views = list(views.values()) if named else list(views)
    elif "image" in batch:
        return None
    else:
        # spt.Module.training_step adds an int "batch_idx" to every batch (0.1.x): only dicts are views.
        names = [str(name) for name, value in batch.items() if isinstance(value, dict)]
        views = [value for value in batch.values() if isinstance(value, dict)]
    if len(views) < 2:
        keys = sorted(str(key) for key in batch)
        raise ValueError(
            f"music_forward needs a batch of at least 2 views, got {len(views)} (batch keys: {keys}). "
            "Build the training set with MultiViewTransform([view_transform_1, view_transform_2]), or "
            "for multi-crop MultiViewTransform({'global_1': ..., 'global_2': ..., 'local_1': ..., ...}); "
            "a single-view batch needs an 'image' key."
        )
    for index, view in enumerate(views):
        if not isinstance(view, dict) or "image" not in view:
            found = sorted(view) if isinstance(view, dict) else type(view).__name__
            raise ValueError(f"music_forward: view {index} must be a dict with an 'image' key, got {found}.")

    kinds = [_kind_by_name(name) for name in names]
    if any(kinds):
        if not all(kinds):
            unnamed = [name for name, kind in zip(names, kinds, strict=True) if kind is None]
            raise ValueError(
                f"music_forward: views {unnamed} are named neither 'global...' nor 'local...', beside views "
                f"that are (view names: {names}); name every view of a multi-crop batch 'global_*' or "
                "'local_*', or none of them (then the largest views are global)."
            )
        is_global = [kind == "global" for kind in kinds]
    else:
        pixels = [view["image"].shape[-2] * view["image"].shape[-1] for view in views]
        is_global = [count == max(pixels) for count in pixels]
    if not any(is_global):
        raise ValueError(
            f"music_forward: a multi-crop batch needs at least one global view, got only local ones (view "
            f"names: {names}); name the large views 'global_1', 'global_2', ..."
        )
    global_views = [view for view, is_g in zip(views, is_global, strict=True) if is_g]
    local_views = [view for view, is_g in zip(views, is_global, strict=True) if not is_g]
    return global_views, local_views


def _kind_by_name(name: str) -> str | None:
    """The kind of view a name says, as stable-pretraining's multi-crop methods read it: ``"global"`` or
    ``"local"`` for a name starting with it, else None."""
    for kind in ("global", "local"):
        if name.startswith(kind):
            return kind
    return None


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
