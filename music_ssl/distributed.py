"""The distributed policy, and gathering per-rank rows into the global batch of a process group.

Under data parallelism the joint distribution is estimated over the batch of every rank of one process
group: the default group, or the data-parallel group passed as ``process_group``. When the loss gathers:

- ``gather_distributed=False``: never; every rank's joint is its own batch.
- ``gather_distributed=True``: whenever the group has more than one rank. Every rank of the group must
  call the loss, also under ``torch.no_grad()``.
- ``gather_distributed="auto"`` (the default): when the group has more than one rank *and* torch's grad
  mode is on (`torch.is_grad_enabled()`), as in a training step, whose gradients must be those of one
  process on the concatenated batch. The grad mode is a per-step switch that every rank of a
  data-parallel step shares (whether this rank's views require grad is not: an empty rank's placeholder
  may not). A call under ``torch.no_grad()`` or ``torch.inference_mode()`` (an evaluation or logging
  batch, possibly on rank 0 alone) uses this rank's own batch and no collective, so it can never wait for
  ranks that do not call.

What the ranks exchange to estimate that joint, ``exchange``:

- ``"gather"``: their rows. Every rank receives the whole group's (N_global, D) projections
  of every view and computes the joint from them: 6 N_global D^2 operations and N_global x D values per
  rank and view, whatever the number of ranks.
- ``"reduce"``: their sums. The joint of a pair of views is a sum over samples,
  P = (1/N_global) sum_n p_i[n]^T p_j[n], and so are the batch's diagnostics: every rank sums its own
  samples and one all_reduce adds the ranks' D x D sums (one per pair of views) in the forward pass. Every
  rank then holds the same P and the same gradient of the joint terms with respect to it, and computes the
  gradient of its own rows from it, with no collective in the backward pass: 6 N_local D^2 operations and
  D^2 values per pair and rank. The value and gradients are the gather's; the implementations that declare
  it compute it (`registry.Implementation.exchanges`: every built-in one).
- ``"auto"`` (the default): the reduce where it moves no more bytes per rank than the gather, that is
  where the global batch's rows outweigh the pairs' joints, N_global V >= 2 P D (V views, P pairs of
  views; a ring all_reduce moves about twice its D x D tensor), and the implementation computes it; else
  the gather (`cheaper_exchange`). Where the reduce moves fewer bytes it also computes less (N_local
  instead of N_global rows) and, from N_global V >= D on, holds less. Decided from the group's batch
  sizes, which every rank has received, so every rank decides the same.

Every rank of the group must pass the same ``gather_distributed``: a rank with False, or with True under
no_grad while the others have "auto", runs no collective that the others could wait on, so no check can
see it; among ranks that gather, the layout check below names every difference.

Before any collective whose size depends on it, every rank's batch size travels with the numbers its
call must agree on (`layout`), in one fixed-size all_gather; ranks that disagree all raise the same error.
"""

from __future__ import annotations

import typing
from typing import NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor

from music_ssl import registry

# gather_distributed, exchange and implementation as written, encoded by their index for the layout check.
GATHER_CHOICES = (False, True, "auto")
EXCHANGE_CHOICES = ("auto", "gather", "reduce")
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# The numbers of `MUSICOptions.rank_settings`, in its order: the options every rank must share.
RANK_SETTINGS_FIELDS = (
    "temperature",
    "diag_weight",
    "off_weight",
    "inv_weight",
    "gather_distributed",
    "exchange",
    "implementation",
)
# What every rank of the group must agree on before one joint is estimated over their batches.
LAYOUT_FIELDS = ("views", "global views", "dim", "dtype", "segment_dim", *RANK_SETTINGS_FIELDS)

# Why the reference cannot gather inside a compiled graph (the fused implementations exchange inside their
# operator, whose output shapes do not depend on the other ranks).
COMPILED_GATHER_MESSAGE = (
    'implementation="reference" gathers every rank\'s rows, and how many each rank holds is data: '
    "torch.compile cannot trace a shape that depends on it (with fullgraph=True it stops here; without, "
    'the loss runs eagerly). Under several processes compile with implementation="auto" or "chunked", whose '
    "one operator runs the exchange, or call the reference outside the compiled region."
)


def group_size(group: dist.ProcessGroup | None = None) -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    size = dist.get_world_size(group)
    if size < 1:
        raise ValueError(
            f"process_group={group!r} does not hold this process (rank {dist.get_rank()}); pass the "
            "data-parallel group this rank belongs to, as new_group returns it on every rank."
        )
    return size


def gathers(gather_distributed: bool | str, group: dist.ProcessGroup | None, grad_enabled: bool) -> bool:
    """Whether this call estimates the joint over the group's batch (see the module's docstring)."""
    if gather_distributed is False or group_size(group) == 1:
        return False
    return gather_distributed is True or grad_enabled


def layout(
    views: tuple[Tensor, ...], num_global: int, segment_dim: int, rank_settings: tuple[float, ...]
) -> tuple[float, ...]:
    """Every number of LAYOUT_FIELDS for one rank's call of ``views`` under options whose `rank_settings` are
    ``rank_settings`` (the dtype as its index in _DTYPES)."""
    dtype = views[0].dtype
    code = _DTYPES.index(dtype) if dtype in _DTYPES else -1
    shape = (len(views), num_global, views[0].shape[1])
    return (*(float(n) for n in shape), float(code), float(segment_dim), *rank_settings)


def _describe(values: tuple[float, ...]) -> str:

    parts = []
    for name, value in zip(LAYOUT_FIELDS, values, strict=True):
        if name == "dtype":
            parts.append(f"dtype={_DTYPES[int(value)] if value >= 0 else 'other'}")
        elif name == "gather_distributed":
            parts.append(f"gather_distributed={GATHER_CHOICES[int(value)]!r}")
        elif name == "exchange":
            parts.append(f"exchange={EXCHANGE_CHOICES[int(value)]!r}")
        elif name == "implementation":
            parts.append(f"implementation={registry.choices()[int(value)]!r}")
        elif name in ("views", "global views", "dim", "segment_dim"):
            parts.append(f"{name}={int(value)}")
        else:
            parts.append(f"{name}={value:g}")
    return ", ".join(parts)


def _rows_per_rank(x: Tensor, own_layout: tuple[float, ...], group: dist.ProcessGroup | None) -> list[int]:
    """Every rank's batch size, exchanged together with its layout; the same error on every rank when
    the layouts differ, before any collective whose size depends on them."""
    local = torch.tensor([float(x.shape[0]), *own_layout], device=x.device, dtype=torch.float64)
    everyone = [torch.zeros_like(local) for _ in range(dist.get_world_size(group))]
    dist.all_gather(everyone, local, group=group)
    rows = [values.tolist() for values in everyone]
    layouts = [tuple(values[1:]) for values in rows]
    if own_layout and any(other != layouts[0] for other in layouts[1:]):
        described = "; ".join(f"rank {rank}: {_describe(values)}" for rank, values in enumerate(layouts))
        raise ValueError(
            "The MUSIC loss estimates one joint over the batches of every rank of the process group, so "
            "every rank must call it with the same views (count, global count, width and dtype) and options "
            f"(implementation included: they differ in the collectives they run); got {described}."
        )
    return [int(values[0]) for values in rows]


def _all_gather_rows(x: Tensor, counts: list[int], group: dist.ProcessGroup | None) -> Tensor:
    # all_gather needs equal shapes on every rank: pad to the longest batch, then drop the padding.
    padded = x.new_zeros((max(counts), *x.shape[1:]))
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded, group=group)
    return torch.cat([part[:count] for part, count in zip(parts, counts, strict=True)])


def _own_rows(counts: list[int], group: dist.ProcessGroup | None) -> tuple[int, int]:
    rank = dist.get_rank(group)
    return sum(counts[:rank]), sum(counts[: rank + 1])


# Process groups by the key that names them in an operator's arguments (a string: the operator's schema
# cannot hold a group). Filled when options are built; the default group is "".
_GROUPS: dict[str, dist.ProcessGroup] = {}


def group_key(group: dist.ProcessGroup | None) -> str:
    """The key of ``group`` for `group_of`; "" for the default group."""
    if group is None:
        return ""
    key = f"group_{id(group)}"
    _GROUPS.setdefault(key, group)  # held here, so the id cannot name another group later
    return key


def group_of(key: str) -> dist.ProcessGroup | None:
    return _GROUPS[key] if key else None


class GlobalBatch(NamedTuple):
    """The batch one call estimates the joint on, as the implementations take it."""

    # This rank's (N, D) projections of every view, as passed (the global views first).
    views: tuple[Tensor, ...]
    # Every view's (N_global, D) rows of the whole group's batch, this rank's included; ``views`` itself
    # when the call does not gather.
    group_views: tuple[Tensor, ...]
    # The rows of ``group_views`` that are this rank's.
    rows: tuple[int, int]
    # How many ranks' batches the joint is estimated over.
    ranks: int
    # How many samples the joint is estimated over: those of ``group_views``, or with ``reduced`` the
    # group's whole batch, of which ``group_views`` holds this rank's own.
    samples: int
    # Whether the ranks exchange their sums (exchange="reduce"; ``sum_over_ranks``) instead of their rows.
    reduced: bool = False


def cheaper_exchange(samples: int, num_views: int, num_pairs: int, dim: int) -> str:
    """What exchange="auto" runs for a global batch of ``samples`` and ``num_views`` views of width
    ``dim`` compared in ``num_pairs`` pairs: "reduce" where it moves no more bytes per rank than the
    gather (N V >= 2 P D), else "gather"."""
    return "reduce" if samples * num_views >= 2 * num_pairs * dim else "gather"


def global_batch(
    views: tuple[Tensor, ...],
    num_global: int,
    segment_dim: int,
    rank_settings: typing.Sequence[float],
    group_key: str,
    grad_enabled: bool,
    can_reduce: bool = False,
) -> GlobalBatch:
    """The batch a call of ``views`` estimates the joint on, under options with ``segment_dim``,
    ``rank_settings`` (`MUSICOptions.rank_settings`, which holds ``gather_distributed``) and ``group_key``
    (`group_key`), in a call made with grad mode ``grad_enabled``: the group's batch when the policy of
    the module's docstring gathers (`gathers`), else this rank's.

    The gathered rows are outside autograd: an implementation computes the gradient of its own rows
    (``ranks`` times that of the joint terms, as DDP averages over ranks), so no collective runs in the
    backward pass and a rank that takes no backward step (an empty rank's placeholder) leaves nobody
    waiting.

    ``can_reduce``: whether the caller computes exchange="reduce" (`GlobalBatch.reduced`); where it does
    not, "auto" gathers.

    The one place where that batch is checked: it must hold at least two samples over all ranks (a single
    rank may hold none), and every rank must have called the loss with the same layout."""
    group = group_of(group_key)
    gather_distributed = GATHER_CHOICES[int(rank_settings[RANK_SETTINGS_FIELDS.index("gather_distributed")])]
    if gathers(gather_distributed, group, grad_enabled):
        if torch.compiler.is_compiling():  # only the reference gathers outside an operator
            raise RuntimeError(COMPILED_GATHER_MESSAGE)
        counts = _rows_per_rank(views[0], layout(views, num_global, segment_dim, tuple(rank_settings)), group)
        exchange = EXCHANGE_CHOICES[int(rank_settings[RANK_SETTINGS_FIELDS.index("exchange")])]
        if exchange == "auto":
            num_pairs = num_global * len(views) - num_global * (num_global + 1) // 2
            cheaper = cheaper_exchange(sum(counts), len(views), num_pairs, views[0].shape[1])
            exchange = cheaper if can_reduce else "gather"
        if exchange == "reduce":
            batch = GlobalBatch(views, views, (0, views[0].shape[0]), group_size(group), sum(counts), True)
        else:
            with torch.no_grad():
                # One gather of every view's rows: (N, V, D) on each rank, (N_global, V, D) gathered.
                gathered = _all_gather_rows(torch.stack(views, dim=1).contiguous(), counts, group)
            own = _own_rows(counts, group)
            batch = GlobalBatch(views, tuple(gathered.unbind(1)), own, group_size(group), sum(counts))
    else:
        batch = GlobalBatch(views, views, (0, views[0].shape[0]), 1, views[0].shape[0])
    if batch.samples < 2:
        raise ValueError(
            f"MUSIC needs a (global) batch of at least 2 samples to estimate the joint distribution, "
            f"got {batch.samples}."
        )
    return batch


class _SumOverRanks(torch.autograd.Function):
    """The sum of a tensor over the group's ranks, in the forward pass only: its gradient is the incoming
    one, unchanged, with no collective (every rank's incoming gradient is the same, since every rank holds
    the same sum and computes the same function of it)."""

    @staticmethod
    def forward(ctx, x: Tensor, group_key: str) -> Tensor:
        total = x.detach().clone()
        dist.all_reduce(total, group=group_of(group_key))
        return total

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def add_over_ranks_(x: Tensor, group_key: str) -> Tensor:
    """``x``, in place, summed over the ranks of the group ``group_key`` names (every rank must call):
    the exchange of exchange="reduce" where no autograd graph runs through it (inside an operator)."""
    dist.all_reduce(x, group=group_of(group_key))
    return x


def sum_over_ranks(x: Tensor, group_key: str) -> Tensor:
    """``x`` summed over the ranks of the group ``group_key`` names (every rank must call), differentiable
    as the sum of this rank's ``x`` and constants: the exchange of exchange="reduce"."""
    return _SumOverRanks.apply(x, group_key)
