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
    model,
    data: ImageData,
    augment: BatchAugment,
    profile: Profile,
    segment_dim: int,
    device,
    temperature: float,
) -> torch.Tensor:
    """(N_test, S, C) attribute probabilities of the un-augmented test images, at the temperature the
    model was trained with."""
    model.eval()
    probs = []
    for start in range(0, len(data.test_images), profile.feature_batch_size):
        x = augment.plain(data.test_images[start : start + profile.feature_batch_size].to(device))
        probs.append(segment_probabilities(model(x).float(), segment_dim, temperature).cpu())
    return torch.cat(probs)


def code_usage(probs: torch.Tensor) -> torch.Tensor:
    """(N, S, C) probabilities -> (S, C) share of images whose most likely attribute is each attribute."""
    return cluster_sizes(probs.argmax(-1), probs.shape[-1]).float() / probs.shape[0]


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of the distributions along the last dimension."""
    return -torch.special.xlogy(p, p).sum(-1)


def hard_code_usage(probs: torch.Tensor) -> dict[str, float]:
    """How much of each segment's alphabet the hard codes (every image's most likely attribute) use, from
    (N, S, C) probabilities: ``code_attributes_used``, the attributes that are some image's code, and
    ``code_effective_attributes``, exp of the entropy of how the images spread over them (C when every
    attribute codes as many images), each the mean over segments."""
    usage = code_usage(probs)
    return {
        "code_attributes_used": float((usage > 0).sum(-1).float().mean()),
        "code_effective_attributes": float(entropy(usage).exp().mean()),
    }
