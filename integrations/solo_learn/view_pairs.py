"""Which views of an image MUSIC compares under solo-learn's multi-crop, and how the pairs add up.

solo-learn hands a method its projections in crop order: the ``num_large_crops`` large crops first,
then the ``num_small_crops`` small crops. MUSIC compares two views at a time; these functions decide
which pairs, with which weights, and how the per-pair diagnostics are combined. They need no solo-learn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import NamedTuple

import torch
from torch import Tensor


class ViewPair(NamedTuple):
    """Two crops, by their index in solo-learn's crop order, and the pair's weight in the loss."""

    first: int
    second: int
    weight: float


def view_pairs(num_large_crops: int, num_small_crops: int) -> list[ViewPair]:
    """Every pair of large crops, then every (large crop, small crop) pair, all with the same weight.

    Small crops are never paired with each other: like the multi-crop of SwAV and DINO, a small crop
    is compared with the large crops only. The MUSIC loss is symmetric, so each unordered pair counts
    once. The weights are 1 / number of pairs: the loss is the mean over pairs, and with two large
    crops and no small crop it is the loss of that single pair.

    Args:
        num_large_crops: number of large crops (solo-learn's ``cfg.data.num_large_crops``).
        num_small_crops: number of small crops (``cfg.data.num_small_crops``).

    Returns:
        list[ViewPair]: ``(0, 1)``, ..., then ``(i, num_large_crops + k)`` for every large crop i and
        small crop k, each with weight 1 / len(pairs).

    Raises:
        TypeError: if a count is not an int.
        ValueError: if a count is negative, or the crops yield no pair of views.
    """

    for name, count in (("num_large_crops", num_large_crops), ("num_small_crops", num_small_crops)):
        if isinstance(count, bool) or not isinstance(count, int):
            raise TypeError(f"{name} must be an int >= 0, got {count!r}.")
        if count < 0:
            raise ValueError(f"{name} must be >= 0, got {count}.")
    large = range(num_large_crops)
    small = range(num_large_crops, num_large_crops + num_small_crops)
    indices = list(combinations(large, 2)) + [(i, j) for i in large for j in small]
    if not indices:
        raise ValueError(
            f"method=music needs at least one pair of views of every image, but the augmentations give "
            f"num_large_crops={num_large_crops} and num_small_crops={num_small_crops}: use two large crops "
            "(num_crops: 2, or two pipelines with the first pipeline's crop_size), or one large crop and "
            "small crops (pipelines with another crop_size)."
        )
    return [ViewPair(first, second, 1.0 / len(indices)) for first, second in indices]


def combine_pair_logs(logs: Sequence[Mapping[str, Tensor]], weights: Sequence[float]) -> dict[str, Tensor]:
    """Combines the per-pair scalars of ``MUSICOutput.log_dict`` into one dict to log.

    A name ending in ``_min`` is a minimum within a pair (the least used segment's attribute entropy):
    the combined value is the minimum over pairs, so it still names the worst segment of any pair. Every
    other name is a mean within a pair and is combined with the pairs' weights, as the loss is.

    Args:
        logs: one ``log_dict`` per pair, all with the same names.
        weights: the pairs' weights, summing to 1.

    Returns:
        dict[str, Tensor]: one scalar per name.

    Raises:
        ValueError: if there are no pairs, the lengths differ, or the pairs log different names.
    """

    if not logs or len(logs) != len(weights):
        raise ValueError(
            f"need one log per weight and at least one of each, got {len(logs)} and {len(weights)}."
        )
    names = list(logs[0])
    for log in logs[1:]:
        if sorted(log) != sorted(names):
            raise ValueError(f"every pair must log the same names, got {sorted(names)} and {sorted(log)}.")
    combined: dict[str, Tensor] = {}
    for name in names:
        values = torch.stack([log[name] for log in logs])
        if name.endswith("_min"):
            combined[name] = values.min()
        else:
            combined[name] = (values * values.new_tensor(list(weights))).sum()
    return combined
