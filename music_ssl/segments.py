"""Reading a flat projection as segments: attribute probabilities and discrete codes."""

from __future__ import annotations

import torch
from torch import Tensor

from music_ssl import _validation as check


def _segments(z: Tensor, segment_dim: int) -> Tensor:
    check.projection("z", z)
    check.segment_dim(segment_dim)
    check.segment_width("z has", tuple(z.shape), segment_dim)
    return z.reshape(z.shape[0], z.shape[1] // segment_dim, segment_dim)


def segment_probabilities(z: Tensor, segment_dim: int = 32, temperature: float = 1.0) -> Tensor:
    """Per-segment attribute distributions of a projection: (N, D) -> (N, S, C), rows sum to 1; float32,
    or float64 for float64 input, as the loss computes them."""
    temperature = check.temperature(temperature)
    segments = _segments(z, segment_dim)
    check.temperature_fits(temperature, z.dtype)
    return torch.softmax(segments.to(check.compute_dtype(z.dtype)) / temperature, dim=-1)


def segment_codes(z: Tensor, segment_dim: int = 32) -> Tensor:
    """Discrete code of a projection: the most likely attribute of every segment, (N, D) -> (N, S)."""
    return _segments(z, segment_dim).argmax(dim=-1)
