"""The MUSIC loss written as docs/math.md reads: plain PyTorch, autograd, the D x D joint in memory.

This is the source of truth for the math. The fused implementations are tested against it.
"""

from __future__ import annotations

import contextlib
import typing

import torch
from torch import Tensor

from music_ssl import distributed
from music_ssl.fused import log_probabilities
from music_ssl.output import MUSICOutput, segment_diagnostics

if typing.TYPE_CHECKING:
    from music_ssl.options import MUSICOptions


def xlogx(x: Tensor) -> Tensor:
    """x * log(x) with 0 * log 0 = 0 and a finite gradient at 0.

    torch.special.xlogy(x, x) has the right value but a NaN gradient at 0 (0/0 through its second
    argument); clamping inside the log keeps the derivative log(max(x, tiny)) + 1 finite.
    """
    return x * x.clamp_min(torch.finfo(x.dtype).tiny).log()


def reference_loss(
    z_a: Tensor, z_b: Tensor, options: MUSICOptions, terms: bool, fall_back: bool = False
) -> Tensor | MUSICOutput:
    """Computes MUSIC from the definitions of docs/math.md: the loss, or its `MUSICOutput` with ``terms``.
    Arguments are assumed validated; ``fall_back`` is unused (the reference has no other kernel)."""
    segment_dim, temperature = options.segment_dim, options.temperature
    batch_size, dim = z_a.shape
    num_segments = dim // segment_dim

    # The meta device, which propagates shapes only, has no autocast to turn off. (Asked by device type:
    # torch.amp.is_autocast_available breaks torch 2.4's compiled graphs.)
    no_autocast = (
        contextlib.nullcontext()
        if z_a.device.type == "meta"
        else torch.autocast(device_type=z_a.device.type, enabled=False)
    )
    with no_autocast:
        log_p_a = log_probabilities(z_a, segment_dim, temperature)
        log_p_b = log_probabilities(z_b, segment_dim, temperature)

        # L_inv = -log sum_i p_a p_b, in log space so that saturated, disagreeing codes stay finite. The
        # mean over this rank's samples; a rank that holds none (an uneven last batch) contributes 0.
        agreement_log = torch.logsumexp(log_p_a + log_p_b, dim=-1)
        local_inv = -agreement_log.sum() / (max(batch_size, 1) * num_segments)

        p_a, p_b, _, ranks = distributed.global_views(
            log_p_a.exp().reshape(batch_size, dim),
            log_p_b.exp().reshape(batch_size, dim),
            options.gather_index,
            torch.is_grad_enabled(),
            options.group_name,
            (z_a.dtype, segment_dim, options.agreement),
        )
        global_batch_size = p_a.shape[0]

        joint = p_a.reshape(global_batch_size, dim).T @ p_b.reshape(global_batch_size, dim)
        joint = joint / global_batch_size
        # blocks[s, t] is the C x C joint pmf of segment s of view a and segment t of view b.
        blocks = xlogx(joint).reshape(num_segments, segment_dim, num_segments, segment_dim).transpose(1, 2)
        same = torch.arange(num_segments, device=joint.device)
        diagonal_blocks = blocks[same, same]
        diag = diagonal_blocks.diagonal(dim1=-2, dim2=-1).sum() / num_segments
        if num_segments > 1:
            off = (blocks.sum() - diagonal_blocks.sum()) / (num_segments * (num_segments - 1))
        else:
            off = joint.new_zeros(())

        # This rank's share of L_inv: its local mean, weighted so that the mean over ranks (what DDP's
        # gradient averaging takes) is the global mean also for unequal batches; the factor is 1 for equal
        # batches and without gathering.
        inv = local_inv * (ranks * batch_size / global_batch_size)
        loss = options.diag_weight * diag + options.off_weight * off + options.inv_weight * inv

    if not terms:
        return loss
    shape = (global_batch_size, num_segments, segment_dim)
    entropy, confidence = segment_diagnostics(p_a.reshape(shape), p_b.reshape(shape))
    return MUSICOutput(loss, inv.detach(), diag.detach(), off.detach(), entropy, confidence)
