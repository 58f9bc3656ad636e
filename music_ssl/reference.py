"""The MUSIC loss written as docs/math.md reads: plain PyTorch, autograd, the D x D joint in memory.

This is the source of truth for the math. The fused implementations are tested against it.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from music_ssl import distributed
from music_ssl._validation import compute_dtype
from music_ssl.output import MUSICOutput, segment_diagnostics


def xlogx(x: Tensor) -> Tensor:
    """x * log(x) with 0 * log 0 = 0 and a finite gradient at 0.

    torch.special.xlogy(x, x) has the right value but a NaN gradient at 0 (0/0 through its second
    argument); clamping inside the log keeps the derivative log(max(x, tiny)) + 1 finite.
    """
    return x * x.clamp_min(torch.finfo(x.dtype).tiny).log()


def music_loss_reference(
    z_a: Tensor,
    z_b: Tensor,
    segment_dim: int,
    temperature: float,
    diag_weight: float,
    off_weight: float,
    inv_weight: float,
    gather_distributed: bool,
) -> MUSICOutput:
    """Computes MUSIC from the definitions of docs/math.md. Arguments are assumed validated."""
    dtype = compute_dtype(z_a.dtype)
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
        logits_a = z_a.to(dtype).reshape(batch_size, num_segments, segment_dim) / temperature
        logits_b = z_b.to(dtype).reshape(batch_size, num_segments, segment_dim) / temperature
        log_p_a = torch.log_softmax(logits_a, dim=-1)
        log_p_b = torch.log_softmax(logits_b, dim=-1)

        # L_inv = -log sum_i p_a p_b, in log space so that saturated, disagreeing codes stay finite. The
        # mean over this rank's samples; a rank that holds none (an uneven last batch) contributes 0.
        agreement = torch.logsumexp(log_p_a + log_p_b, dim=-1)
        invariance = -agreement.sum() / (max(batch_size, 1) * num_segments)

        own_layout = distributed.layout(
            dim, segment_dim, z_a.dtype, temperature, diag_weight, off_weight, inv_weight
        )
        p_a, p_b, _, world_size = distributed.global_views(
            log_p_a.exp(), log_p_b.exp(), gather_distributed, own_layout
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

        # For unequal per-rank batches, weight the local mean so that DDP's average over ranks is the
        # global mean; with equal batches the factor is 1.
        inv_scale = world_size * batch_size / global_batch_size
        loss = diag_weight * diag + off_weight * off + inv_weight * inv_scale * invariance

    entropy, confidence = segment_diagnostics(p_a, p_b)
    return MUSICOutput(loss, invariance.detach(), diag.detach(), off.detach(), entropy, confidence)
