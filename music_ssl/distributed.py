"""Gathering per-rank rows into the global batch, also when ranks hold batches of different sizes."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from music_ssl import _validation as check


def world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


# What every rank must agree on before the global joint is estimated: the loss's inputs and options.
LAYOUT_FIELDS = ("dim", "segment_dim", "dtype", "temperature", "diag_weight", "off_weight", "inv_weight")
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def layout(
    dim: int, segment_dim: int, dtype: torch.dtype, temperature: float, *weights: float
) -> tuple[float, ...]:
    """The numbers of LAYOUT_FIELDS for one rank's call (the dtype as its index in _DTYPES)."""
    code = _DTYPES.index(dtype) if dtype in _DTYPES else -1
    return (float(dim), float(segment_dim), float(code), float(temperature), *weights)


def _describe(values: tuple[float, ...]) -> str:
    parts = []
    for name, value in zip(LAYOUT_FIELDS, values, strict=True):
        if name == "dtype":
            parts.append(f"dtype={_DTYPES[int(value)] if value >= 0 else 'other'}")
        elif name in ("dim", "segment_dim"):
            parts.append(f"{name}={int(value)}")
        else:
            parts.append(f"{name}={value:g}")
    return ", ".join(parts)


def _rows_per_rank(x: Tensor, own_layout: tuple[float, ...]) -> list[int]:
    """Every rank's batch size, exchanged together with its layout; the same error on every rank when
    the layouts differ, before any collective whose size depends on them."""
    local = torch.tensor([float(x.shape[0]), *own_layout], device=x.device, dtype=torch.float64)
    everyone = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, local)
    rows = [values.tolist() for values in everyone]
    layouts = [tuple(values[1:]) for values in rows]
    if any(other != layouts[0] for other in layouts[1:]):
        described = "; ".join(f"rank {rank}: {_describe(values)}" for rank, values in enumerate(layouts))
        raise ValueError(
            "gather_distributed=True estimates one joint over every rank's batch, so every rank must call "
            f"the loss with the same projection width, segment_dim, dtype and options; got {described}."
        )
    return [int(values[0]) for values in rows]


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


def gather_rows(
    x: Tensor, differentiable: bool = True, counts: list[int] | None = None
) -> tuple[Tensor, tuple[int, int]]:
    """Returns the global batch and the slice of its rows that belongs to this rank.

    Without an initialized process group of more than one rank this is the identity. With
    `differentiable=False` the gather is outside autograd, for implementations that produce their own
    gradients.
    `counts`, every rank's batch size, is exchanged first when not given.
    """
    if world_size() == 1:
        return x, (0, x.shape[0])
    if counts is None:
        counts = _rows_per_rank(x, ())
    rows = _own_rows(counts)
    if differentiable:
        return _GatherRows.apply(x.contiguous(), counts, rows), rows
    with torch.no_grad():
        return _all_gather_rows(x.contiguous(), counts), rows


def global_views(
    p_a: Tensor,
    p_b: Tensor,
    gather: bool,
    own_layout: tuple[float, ...],
    differentiable: bool = True,
) -> tuple[Tensor, Tensor, tuple[int, int], int]:
    """Both views' rows of the global batch, this rank's slice of them and the world size.

    The one place where the batch that the joint distribution is estimated on is checked: it must hold
    at least two samples over all ranks (a single rank may hold none), and every rank must have called
    the loss with the same `own_layout` (see `layout`)."""
    if gather and world_size() > 1:
        counts = _rows_per_rank(p_a, own_layout)
        global_a, rows = gather_rows(p_a, differentiable, counts)
        global_b, _ = gather_rows(p_b, differentiable, counts)
        size = world_size()
    else:
        global_a, global_b, rows, size = p_a, p_b, (0, p_a.shape[0]), 1
    check.batch_size(global_a.shape[0])
    return global_a, global_b, rows, size
