"""Reading a flat projection as segments: attribute probabilities and discrete codes; the views' pairs.

The math every implementation starts from, below all of them: `segment_views` (every view's
`log_probabilities` and the `view_pairs` the loss averages) is what the reference and the fused operator
share, and `compute_dtype` the precision they compute in.
"""

from __future__ import annotations

import torch
from torch import Tensor

from music_ssl import checks


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other floating dtype is computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def log_probabilities(z: Tensor, segment_dim: int, temperature: float) -> Tensor:
    """log softmax(z / temperature) of every segment, (N, D) -> (N, S, C), in the compute dtype; what every
    implementation of the loss starts from. Arguments are assumed validated.

    Each segment's logits are shifted by their maximum before the division (the softmax is unchanged) and
    bounded below by the dtype's lowest value / 2**33: a temperature so small that z / temperature would
    overflow then still gives finite log-probabilities, and the invariance term, a sum of up to 2**32
    agreements of two of them, stays finite too, instead of inf - inf = NaN. The bound lies far below
    any log-probability a float can tell from log 0 (about -745 in float64), so it changes nothing else.
    """
    dtype = compute_dtype(z.dtype)
    logits = z.to(dtype).reshape(z.shape[0], z.shape[1] // segment_dim, segment_dim)
    shifted = (logits - logits.amax(dim=-1, keepdim=True).detach()).div_(temperature)
    # where, not clamp_min: a NaN logit stays NaN in the loss and its gradient (clamp's gradient drops it).
    floor = torch.finfo(dtype).min / 2**33
    return torch.log_softmax(torch.where(shifted < floor, floor, shifted), dim=-1)


def view_pairs(num_views: int, num_global: int) -> list[tuple[int, int]]:
    """The pairs of views whose two-view losses MUSIC averages: every pair (i, j), i < j, with at least
    one global view (i < num_global): global-global and global-local, no local-local."""
    return [(i, j) for i in range(num_global) for j in range(i + 1, num_views)]


def segment_views(
    views: tuple[Tensor, ...] | list[Tensor], num_global: int, segment_dim: int, temperature: float
) -> tuple[list[Tensor], list[tuple[int, int]]]:
    """What every implementation starts from, in one call: each view's `log_probabilities` (once per view)
    and the pairs of views the loss averages (`view_pairs`). Arguments are assumed validated."""
    log_p = [log_probabilities(z, segment_dim, temperature) for z in views]
    return log_p, view_pairs(len(views), num_global)


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
