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


def log_probabilities(z: Tensor, segment_dim: int, temperature: float) -> Tensor:
    """log softmax(z / temperature) of every segment, (N, D) -> (N, S, C), in the compute dtype; what every
    implementation of the loss starts from. Arguments are assumed validated.

    Each segment's logits are shifted by their maximum before the division (the softmax is unchanged) and
    bounded below by the dtype's lowest value / 2**33: a temperature so small that z / temperature would
    overflow then still gives finite log-probabilities, and the invariance term, a sum of up to 2**32
    agreements of two of them, stays finite too, instead of inf - inf = NaN. The bound lies far below
    any log-probability a float can tell from log 0 (about -745 in float64), so it changes nothing else.
    """
    dtype = check.compute_dtype(z.dtype)
    logits = z.to(dtype).reshape(z.shape[0], z.shape[1] // segment_dim, segment_dim)
    shifted = (logits - logits.amax(dim=-1, keepdim=True).detach()).div_(temperature)
    # where, not clamp_min: a NaN logit stays NaN in the loss and its gradient (clamp's gradient drops it).
    floor = torch.finfo(dtype).min / 2**33
    return torch.log_softmax(torch.where(shifted < floor, floor, shifted), dim=-1)


def segment_probabilities(z: Tensor, segment_dim: int = 32, temperature: float = 1.0) -> Tensor:
    """Per-segment attribute distributions of a projection: (N, D) -> (N, S, C), rows sum to 1; float32,
    or float64 for float64 input, as the loss computes them."""
    temperature = check.temperature(temperature)
    _segments(z, segment_dim)
    check.temperature_fits(temperature, z.dtype)
    return log_probabilities(z, segment_dim, temperature).exp()


def segment_codes(z: Tensor, segment_dim: int = 32) -> Tensor:
    """Discrete code of a projection: the most likely attribute of every segment, (N, D) -> (N, S)."""
    return _segments(z, segment_dim).argmax(dim=-1)
