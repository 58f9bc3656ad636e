"""MUSIC for lightly users: the loss, the segmented head and the augmentations, next to lightly's own.

Examples:
    >>> from music_ssl.integrations.lightly import MUSICProjectionHead, MUSICTransform
    >>> # Where a Barlow Twins model has BarlowTwinsProjectionHead and BarlowTwinsLoss:
    >>> projection_head = MUSICProjectionHead(512, 2048, 2048, segment_dim=32)
    >>> criterion = projection_head.loss()  # MUSICLoss with the head's segment_dim
    >>> loss = criterion(projection_head(backbone(x0)), projection_head(backbone(x1)))
    >>> # Multi-crop: MUSICMultiCropTransform() gives two global views, then six local ones.
    >>> loss = criterion([projection_head(backbone(x)) for x in views], num_global=2)

The ImageNet ResNet-50 benchmark method lives in `music_ssl.integrations.lightly.imagenet_resnet50`;
`register(METHODS)` adds it to lightly's benchmark runner and `python -m
music_ssl.integrations.lightly.run_benchmark --lightly-repo PATH ...` runs that runner with it. The
recipe it follows is `music_ssl.integrations.recipes.IMAGENET`, in lightly's terms in
`music_ssl.integrations.lightly.recipe`.

Importing this package does not import lightly: the transforms are loaded on first access, so the
recipe can be read (and tested) without lightly installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from music_ssl import MUSICLoss, MUSICOutput, MUSICProjectionHead

from .registry import register

if TYPE_CHECKING:
    from .transform import (
        MUSICLocalViewTransform,
        MUSICMultiCropTransform,
        MUSICTransform,
        MUSICView1Transform,
        MUSICView2Transform,
        views_transform,
    )

_TRANSFORMS = (
    "MUSICLocalViewTransform",
    "MUSICMultiCropTransform",
    "MUSICTransform",
    "MUSICView1Transform",
    "MUSICView2Transform",
    "views_transform",
)

__all__ = [
    "MUSICLocalViewTransform",
    "MUSICLoss",
    "MUSICMultiCropTransform",
    "MUSICOutput",
    "MUSICProjectionHead",
    "MUSICTransform",
    "MUSICView1Transform",
    "MUSICView2Transform",
    "register",
    "views_transform",
]


def __getattr__(name: str) -> Any:
    if name in _TRANSFORMS:
        from . import transform

        return getattr(transform, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
