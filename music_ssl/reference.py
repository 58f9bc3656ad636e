"""The MUSIC loss written as docs/math.md reads: plain PyTorch, autograd, the D x D joint in memory.

This is the source of truth for the math. The fused implementations are tested against it. Under data
parallelism it follows their policy: the ranks' rows are gathered outside autograd, this rank's own rows
take the gradient, and no collective runs in the backward pass.
"""

from __future__ import annotations

import contextlib
import typing

import torch
from torch import Tensor

from music_ssl import distributed
from music_ssl.output import MUSICOutput, diagnostics, segment_diagnostics, segment_sums
from music_ssl.segments import segment_views

if typing.TYPE_CHECKING:
    from music_ssl.options import MUSICOptions


def reference_loss(
    views: tuple[Tensor, ...], num_global: int, options: MUSICOptions, terms: bool
) -> Tensor | MUSICOutput:
    """Computes MUSIC from the definitions of docs/math.md: the mean of the two-view loss over the pairs of
    views (`segment_views`), or its `MUSICOutput` with ``terms``. Arguments are assumed validated."""
    batch = _batch_with_own_rows(views, num_global, options)
    segment_dim, temperature = options.segment_dim, options.temperature
    batch_size, dim = batch.views[0].shape
    group_views = batch.group_views
    global_batch_size = batch.samples
    num_segments = dim // segment_dim

    # The meta device, which propagates shapes only, has no autocast to turn off. (Asked by device type:
    # torch.amp.is_autocast_available breaks torch 2.4's compiled graphs.)
    no_autocast = (
        contextlib.nullcontext()
        if group_views[0].device.type == "meta"
        else torch.autocast(device_type=group_views[0].device.type, enabled=False)
    )
    with no_autocast:
        # Each view's softmax once, over the batch the joint is estimated on; this rank's rows are a slice.
        # After it the math is written out in place, calling no helper of this file, so that the call
        # reads top to bottom (loops, not comprehensions: before CPython 3.12 a comprehension runs as a
        # function of this file).
        log_p, pairs = segment_views(group_views, num_global, segment_dim, temperature)
        start, stop = batch.rows
        rows = group_views[0].shape[0]
        same = torch.arange(num_segments, device=log_p[0].device)
        inv_terms, diag_terms, off_terms = [], [], []
        p, joints = [], []
        for view_log_p in log_p:
            p.append(view_log_p.exp())
        for i, j in pairs:
            # The pair's joint P = (1/N) sum_n p_i[n]^T p_j[n]: from the rows it is estimated on, or under
            # exchange="reduce" from this rank's rows, the ranks' sums added by one all_reduce (below).
            joints.append(p[i].reshape(rows, dim).T @ p[j].reshape(rows, dim))
        joint_sums = torch.stack(joints)
        if batch.reduced:
            joint_sums = distributed.sum_over_ranks(joint_sums, options.group_key)
        for (i, j), joint in zip(pairs, joint_sums / global_batch_size, strict=True):
            # L_inv = -log sum_c p_i p_j, in log space so that saturated, disagreeing codes stay finite.
            # The mean over this rank's samples; a rank that holds none (an uneven last batch) gives 0.
            agreement_log = torch.logsumexp(log_p[i][start:stop] + log_p[j][start:stop], dim=-1)
            inv_terms.append(-agreement_log.sum() / (max(batch_size, 1) * num_segments))

            # x log x with 0 log 0 = 0 and a finite gradient at 0: torch.special.xlogy(x, x) has the
            # right value but a NaN gradient at 0 (0/0 through its second argument); clamping inside the
            # log keeps the derivative log(max(x, tiny)) + 1 finite.
            plogp = joint * joint.clamp_min(torch.finfo(joint.dtype).tiny).log()
            # blocks[s, t] holds the C x C joint pmf's terms of segment s of view i and segment t of view j.
            blocks = plogp.reshape(num_segments, segment_dim, num_segments, segment_dim).transpose(1, 2)
            diagonal_blocks = blocks[same, same]
            diag_terms.append(diagonal_blocks.diagonal(dim1=-2, dim2=-1).sum() / num_segments)
            if num_segments > 1:
                off_terms.append((blocks.sum() - diagonal_blocks.sum()) / (num_segments * (num_segments - 1)))
            else:
                off_terms.append(joint.new_zeros(()))
        diag = torch.stack(diag_terms).mean()
        off = torch.stack(off_terms).mean()
        if batch.ranks > 1:
            # Every rank computes the same joint terms (from the same rows, or the same sums); DDP averages
            # gradients over ranks, so each rank's own rows take `ranks` times the gradient (the value is
            # unchanged).
            diag = diag.detach() + batch.ranks * (diag - diag.detach())
            off = off.detach() + batch.ranks * (off - off.detach())
        # This rank's share of L_inv: its local mean, weighted so that the mean over ranks (what DDP's
        # gradient averaging takes) is the global mean also for unequal batches; the factor is 1 for equal
        # batches and without gathering.
        inv = torch.stack(inv_terms).mean() * (batch.ranks * batch_size / global_batch_size)
        loss = options.diag_weight * diag + options.off_weight * off + options.inv_weight * inv

    if not terms:
        return loss
    if not batch.reduced:
        return MUSICOutput(loss, inv.detach(), diag.detach(), off.detach(), *segment_diagnostics(p))
    # The diagnostics' sums over samples, added over the ranks as the joints were.
    sums = distributed.sum_over_ranks(segment_sums(p), options.group_key)
    return MUSICOutput(
        loss, inv.detach(), diag.detach(), off.detach(), *diagnostics(sums, global_batch_size * len(p))
    )


def _batch_with_own_rows(views: tuple[Tensor, ...], num_global: int, options: MUSICOptions):
    """The batch of the call (`distributed.global_batch`), its gathered views holding this rank's views
    themselves at its rows, so that autograd reaches them (and only them: the other rows are constants)."""
    batch = distributed.global_batch(
        views,
        num_global,
        options.segment_dim,
        options.rank_settings,
        options.group_key,
        torch.is_grad_enabled(),
        can_reduce=True,
    )
    if batch.ranks == 1 or batch.reduced:
        return batch
    start, stop = batch.rows
    spliced = []  # a loop: a generator expression would run as a function of this file, turning back
    for rows, view in zip(batch.group_views, views, strict=True):
        spliced.append(torch.cat([rows[:start], view, rows[stop:]]))
    return batch._replace(group_views=tuple(spliced))
