"""The autograd wrapper shared by the fused implementations (chunked PyTorch and Triton).

The joint-entropy kernel returns the input gradients together with the loss, so the forward pass also
finishes the chain rule through the softmax and stores dL/dz; the backward pass only scales it. Extra
memory is O(N * D): besides the kernel's own, the probabilities and the agreement distribution of the
invariance term (3 N x D, the log-probabilities are exponentiated in place), then two gradients the size
of the inputs, finished in place in the buffers the kernel returned.
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


def _logits_gradient(p: Tensor, grad_p: Tensor, q: Tensor, inv_coef: float, temperature: float) -> Tensor:
    """dL/dz, in place in grad_p, from dL/dp of the joint terms (through the softmax) and the invariance
    term, whose gradient with respect to the logits is inv_coef * (p - q)."""
    projection = (p * grad_p).sum(dim=-1, keepdim=True)
    grad_p.sub_(projection).mul_(p)
    return grad_p.add_(p, alpha=inv_coef).sub_(q, alpha=inv_coef).div_(temperature)


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
    # L_inv = -mean log sum_c p_a p_b. Its gradient needs q = softmax(log p_a + log p_b), the agreement
    # distribution, made in place in the buffer of log p_a + log p_b.
    agreement_q = log_p_a + log_p_b
    log_agreement = torch.logsumexp(agreement_q, dim=-1, keepdim=True)
    invariance = -log_agreement.mean()
    if compute_grad:
        agreement_q.sub_(log_agreement).exp_()
    else:
        del agreement_q
    p_a, p_b = log_p_a.exp_(), log_p_b.exp_()

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
    # d(-logsumexp(la + lb))/dla = -q; through log_softmax that becomes p - q.
    inv_coef = inv_weight * inv_scale / (batch_size * num_segments)
    grad_a = _logits_gradient(p_a, grad_p_a.reshape(shape), agreement_q, inv_coef, temperature)
    grad_b = _logits_gradient(p_b, grad_p_b.reshape(shape), agreement_q, inv_coef, temperature)
    return (*terms, grad_a.reshape(batch_size, dim), grad_b.reshape(batch_size, dim))


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
