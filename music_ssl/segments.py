"""Reading a flat projection as segments: attribute probabilities and discrete codes."""

from __future__ import annotations

from torch import Tensor

from music_ssl import checks
from music_ssl.fused import log_probabilities


def _segments(z: Tensor, segment_dim: int) -> Tensor:
    checks.projection("z", z)
    checks.segment_dim(segment_dim)
    checks.segment_width("z has", tuple(z.shape), segment_dim)
    return z.reshape(z.shape[0], z.shape[1] // segment_dim, segment_dim)


def segment_probabilities(z: Tensor, segment_dim: int = 32, temperature: float = 0.25) -> Tensor:
    """Per-segment attribute distributions of a projection: (N, D) -> (N, S, C), rows sum to 1; float32,
    or float64 for float64 input, as the loss computes them."""
    temperature = checks.temperature(temperature)
    _segments(z, segment_dim)
    checks.temperature_fits(temperature, z.dtype)
    return log_probabilities(z, segment_dim, temperature).exp()


def segment_codes(z: Tensor, segment_dim: int = 32) -> Tensor:
    """Discrete code of a projection: the most likely attribute of every segment, (N, D) -> (N, S)."""
    return _segments(z, segment_dim).argmax(dim=-1)
