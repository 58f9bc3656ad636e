"""MUSIC's attributes on the test split: their probabilities, how often each is an image's code, entropy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from music_ssl import cluster_sizes, segment_probabilities

if TYPE_CHECKING:
    from benchmarks.quality.augment import BatchAugment
    from benchmarks.quality.config import Profile
    from benchmarks.quality.data import ImageData


@torch.no_grad()
def music_attributes(
    model, data: ImageData, augment: BatchAugment, profile: Profile, segment_dim: int, device
) -> torch.Tensor:
    """(N_test, S, C) attribute probabilities of the un-augmented test images."""
    model.eval()
    probs = []
    for start in range(0, len(data.test_images), profile.feature_batch_size):
        x = augment.plain(data.test_images[start : start + profile.feature_batch_size].to(device))
        probs.append(segment_probabilities(model(x).float(), segment_dim).cpu())
    return torch.cat(probs)


def code_usage(probs: torch.Tensor) -> torch.Tensor:
    """(N, S, C) probabilities -> (S, C) share of images whose most likely attribute is each attribute."""
    return cluster_sizes(probs.argmax(-1), probs.shape[-1]).float() / probs.shape[0]


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of the distributions along the last dimension."""
    return -torch.special.xlogy(p, p).sum(-1)
