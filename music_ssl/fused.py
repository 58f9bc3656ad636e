"""The autograd wrapper shared by the fused implementations (chunked PyTorch and Triton).

The joint-entropy kernel returns the input gradients together with the loss, so the forward pass also
finishes the chain rule through the softmax and stores dL/dz; the backward pass only scales it. Extra
memory is O(N * D): two gradients the size of the inputs.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from music_ssl import distributed
from music_ssl._validation import check_batch_size, compute_dtype
from music_ssl.output import MUSICOutput, segment_diagnostics


class JointEntropies(Protocol):
    """Signature of a joint kernel; see `music_ssl.chunked.chunked_joint_entropies`."""

    def __call__(
        self,
        p_a: Tensor,
        p_b: Tensor,
        local_rows: tuple[int, int],
        segment_dim: int,
        diag_coef: float,
        off_coef: float,
        grad_scale: float,
        compute_grad: bool,
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]: ...


def _softmax_backward(p: Tensor, grad_p: Tensor) -> Tensor:
    return p * (grad_p - (p * grad_p).sum(dim=-1, keepdim=True))


def _music_fused(
    z_a: Tensor,
    z_b: Tensor,
    segment_dim: int,
    temperature: float,
    diag_weight: float,
    off_weight: float,
    inv_weight: float,
    gather_distributed: bool,
    joint_entropies: JointEntropies,
    compute_grad: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
    dtype = compute_dtype(z_a.dtype)
    batch_size, dim = z_a.shape
    num_segments = dim // segment_dim
    shape = (batch_size, num_segments, segment_dim)

    log_p_a = torch.log_softmax(z_a.to(dtype).reshape(shape) / temperature, dim=-1)
    log_p_b = torch.log_softmax(z_b.to(dtype).reshape(shape) / temperature, dim=-1)
    agreement = log_p_a + log_p_b
    invariance = -torch.logsumexp(agreement, dim=-1).mean()
    p_a, p_b = log_p_a.exp(), log_p_b.exp()

    if gather_distributed:
        global_a, rows = distributed.gather_rows(p_a.reshape(batch_size, dim), differentiable=False)
        global_b, _ = distributed.gather_rows(p_b.reshape(batch_size, dim), differentiable=False)
        world_size = distributed.world_size()
    else:
        global_a, global_b = p_a.reshape(batch_size, dim), p_b.reshape(batch_size, dim)
        rows, world_size = (0, batch_size), 1
    global_batch_size = global_a.shape[0]
    check_batch_size(global_batch_size)

    diag_coef = diag_weight / num_segments
    off_coef = off_weight / (num_segments * (num_segments - 1)) if num_segments > 1 else 0.0
    # Every rank computes the same joint terms; DDP averages gradients over ranks, so each rank
    # contributes world_size times its share (what an all-gather with a summing backward would give).
    diag_sum, off_sum, grad_p_a, grad_p_b = joint_entropies(
        global_a.contiguous(),
        global_b.contiguous(),
        rows,
        segment_dim,
        diag_coef,
        off_coef,
        float(world_size),
        compute_grad,
    )
    diag = diag_sum / num_segments
    off = off_sum / (num_segments * (num_segments - 1)) if num_segments > 1 else off_sum.new_zeros(())
    # Unequal per-rank batches: weight the local mean so that DDP's average over ranks is the global mean.
    inv_scale = world_size * batch_size / global_batch_size
    loss = diag_weight * diag + off_weight * off + inv_weight * inv_scale * invariance
    entropy, confidence = segment_diagnostics(
        global_a.reshape(global_batch_size, num_segments, segment_dim),
        global_b.reshape(global_batch_size, num_segments, segment_dim),
    )
    terms = (loss, invariance, diag, off, entropy, confidence)
    if not compute_grad:
        return (*terms, None, None)

    assert grad_p_a is not None and grad_p_b is not None
    # d(-logsumexp(la + lb))/dla = -q with q = softmax(la + lb); through log_softmax that becomes p - q.
    inv_coef = inv_weight * inv_scale / (batch_size * num_segments)
    agreement_q = torch.softmax(agreement, dim=-1)
    grad_a = _softmax_backward(p_a, grad_p_a.reshape(shape)) + inv_coef * (p_a - agreement_q)
    grad_b = _softmax_backward(p_b, grad_p_b.reshape(shape)) + inv_coef * (p_b - agreement_q)
    return (
        *terms,
        grad_a.reshape(batch_size, dim) / temperature,
        grad_b.reshape(batch_size, dim) / temperature,
    )


class _FusedMUSIC(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z_a: Tensor, z_b: Tensor, options: dict) -> tuple[Tensor, ...]:  # type: ignore[override]
        *terms, grad_a, grad_b = _music_fused(z_a, z_b, compute_grad=True, **options)
        ctx.save_for_backward(grad_a.to(z_a.dtype), grad_b.to(z_b.dtype))
        ctx.mark_non_differentiable(*terms[1:])
        return tuple(terms)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss: Tensor, *unused: Tensor) -> tuple[Tensor, Tensor, None]:  # type: ignore[override]
        grad_a, grad_b = ctx.saved_tensors
        return grad_a * grad_loss.to(grad_a.dtype), grad_b * grad_loss.to(grad_b.dtype), None


def music_loss_fused(
    z_a: Tensor,
    z_b: Tensor,
    segment_dim: int,
    temperature: float,
    diag_weight: float,
    off_weight: float,
    inv_weight: float,
    gather_distributed: bool,
    joint_entropies: JointEntropies,
) -> MUSICOutput:
    """MUSIC with a fused joint kernel. Arguments are assumed validated."""
    options = dict(
        segment_dim=segment_dim,
        temperature=temperature,
        diag_weight=diag_weight,
        off_weight=off_weight,
        inv_weight=inv_weight,
        gather_distributed=gather_distributed,
        joint_entropies=joint_entropies,
    )
    needs_grad = torch.is_grad_enabled() and (z_a.requires_grad or z_b.requires_grad)
    with torch.autocast(device_type=z_a.device.type, enabled=False):
        if needs_grad:
            terms = _FusedMUSIC.apply(z_a, z_b, options)
        else:
            with torch.no_grad():
                *terms, _, _ = _music_fused(z_a, z_b, compute_grad=False, **options)
    return MUSICOutput(*terms)
