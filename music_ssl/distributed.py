"""Gathering per-rank rows into the global batch, also when ranks hold batches of different sizes."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from music_ssl._validation import check_batch_size


def world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _rows_per_rank(x: Tensor) -> list[int]:
    count = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    counts = [torch.zeros_like(count) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, count)
    return [int(c.item()) for c in counts]


def _all_gather_rows(x: Tensor, counts: list[int]) -> Tensor:
    # all_gather needs equal shapes on every rank: pad to the longest batch, then drop the padding.
    padded = x.new_zeros((max(counts), *x.shape[1:]))
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([part[:count] for part, count in zip(parts, counts, strict=True)])


class _GatherRows(torch.autograd.Function):
    """All-gather whose backward sums every rank's gradient and returns this rank's rows.

    Every rank computes the same batch-level term from the gathered rows; summing the gradients over ranks
    and letting DDP average them gives the gradient of one process on the concatenated batch.
    """

    @staticmethod
    def forward(ctx, x: Tensor, counts: list[int], rows: tuple[int, int]) -> Tensor:  # type: ignore[override]
        ctx.rows = rows
        return _all_gather_rows(x, counts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start, stop = ctx.rows
        return grad[start:stop], None, None


def _own_rows(counts: list[int]) -> tuple[int, int]:
    rank = dist.get_rank()
    return sum(counts[:rank]), sum(counts[: rank + 1])


def gather_rows(x: Tensor, differentiable: bool = True) -> tuple[Tensor, tuple[int, int]]:
    """Returns the global batch and the slice of its rows that belongs to this rank.

    Without an initialized process group of more than one rank this is the identity. With
    `differentiable=False` the gather is outside autograd, for code paths that produce their own gradients.
    """
    if world_size() == 1:
        return x, (0, x.shape[0])
    counts = _rows_per_rank(x)
    rows = _own_rows(counts)
    if differentiable:
        return _GatherRows.apply(x.contiguous(), counts, rows), rows
    with torch.no_grad():
        return _all_gather_rows(x.contiguous(), counts), rows


def global_views(
    p_a: Tensor, p_b: Tensor, gather: bool, differentiable: bool = True
) -> tuple[Tensor, Tensor, tuple[int, int], int]:
    """Both views' rows of the global batch, this rank's slice of them and the world size.

    The one place where the batch that the joint distribution is estimated on is checked: it must hold
    at least two samples over all ranks (a single rank may hold none)."""
    if gather:
        global_a, rows = gather_rows(p_a, differentiable)
        global_b, _ = gather_rows(p_b, differentiable)
        size = world_size()
    else:
        global_a, global_b, rows, size = p_a, p_b, (0, p_a.shape[0]), 1
    check_batch_size(global_a.shape[0])
    return global_a, global_b, rows, size
