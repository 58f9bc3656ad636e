"""MUSIC for stable-pretraining users: a forward function for ``spt.Module``, next to its own.

Examples:
    >>> import stable_pretraining as spt
    >>> from music_ssl.integrations.stable_pretraining import MUSICProjectionHead, music_forward
    >>> # Where a Barlow Twins module has forward.barlow_twins and barlow_loss=spt.losses.BarlowTwinsLoss():
    >>> module = spt.Module(
    ...     backbone=backbone,
    ...     projector=(projector := MUSICProjectionHead(512, 1024, 1024, segment_dim=32)),
    ...     forward=music_forward,
    ...     music_loss=projector.loss(),
    ...     optim={"optimizer": {"type": "SGD", "lr": 0.2, "momentum": 0.9, "weight_decay": 5e-4}},
    ... )

The training set gives two views, or global and local views (multi-crop: ``MultiViewTransform({"global_1":
..., "global_2": ..., "local_1": ..., ...})``, named as for stable-pretraining's DINO, or told apart by size;
see `global_and_local_views`). The forward function imports nothing from stable-pretraining. The CIFAR-10
ResNet-18 benchmark, in the shape of stable-pretraining's own ``benchmarks/cifar10/*-resnet18.py`` scripts,
is ``python -m music_ssl.integrations.stable_pretraining.cifar10_resnet18``.
"""

from music_ssl import MUSICLoss, MUSICOutput, MUSICProjectionHead

from .forward import global_and_local_views, music_forward, music_log_dict, training_views

__all__ = [
    "MUSICLoss",
    "MUSICOutput",
    "MUSICProjectionHead",
    "global_and_local_views",
    "music_forward",
    "music_log_dict",
    "training_views",
]
