"""The fused MUSIC operator, and the PyTorch kernel of its joint terms ("chunked").

One call of a fused implementation is one custom operator, ``music_ssl::music_loss_<implementation>``
(built by `operator` for each fused entry of the registry), with a shape-only ("fake") implementation
and its backward registered, so that torch.compile sees one node (no graph break) and autocast leaves it
alone. Its kernel returns the gradients of the joint terms together with their values, so the forward
pass also finishes the chain rule through the softmax and returns dL/dz; the backward pass only
multiplies it by the incoming gradient. The backward is not itself differentiable: a double backward (a
gradient penalty) is refused with an error that points to the reference implementation.

Numerics follow what flows in: the math is float32 (float64 for float64 inputs) whatever the input
dtype, and dL/dz stays float32 until it meets the incoming gradient (a loss scale of 2**16 for float16
training), then is cast once to the input's dtype, as autograd does for the reference.

Memory is O(N D), never D x D. The joint P = p_a^T p_b / N is produced a chunk of rows at a time (rows
of whole segments, so that the diagonal blocks of a chunk sit inside its own columns); on each chunk the
x log x epilogue, the weighted sums and dL/dP are applied in place, and dL/dP is contracted with the
inputs right away. Besides the kernel's two chunk buffers: the probabilities and the agreement
distribution of the invariance term (3 N x D; the log-probabilities are exponentiated in place), then
two float32 gradients the size of the inputs, finished in place in the kernel's buffers.
"""

# No `from __future__ import annotations`: torch 2.4 infers the operator's schema from evaluated
# annotations only.
import typing
from typing import Protocol

import torch
from torch import Tensor

from music_ssl import distributed
from music_ssl.output import MUSICOutput, segment_diagnostics

if typing.TYPE_CHECKING:
    from music_ssl.fallback import Fallback
    from music_ssl.options import MUSICOptions

DOUBLE_BACKWARD_MESSAGE = (
    "The {name!r} MUSIC implementation (a fused one: its gradient comes from a custom operator, and "
    "'auto' picks a fused one) does not support double backward (differentiating a gradient, e.g. a "
    "gradient penalty or backward(create_graph=True)). Use MUSICLoss(implementation='reference'), whose "
    "backward is differentiable."
)

TRANSFORM_MESSAGE = (
    "Forward-mode AD and torch.func transforms (jvp, jacfwd, grad, vmap, ...) do not reach through the "
    "{name!r} MUSIC implementation (a fused one, and 'auto' picks a fused one): its gradients come from a "
    "custom operator that only reverse-mode autograd calls. Use MUSICLoss(implementation='reference'), "
    "whose derivatives are plain autograd's."
)

# Rows of P per chunk of the PyTorch kernel. 512 rows keep its two float32 chunk buffers at 32 MiB for
# D = 8192 while the chunk products stay large enough to run at full matrix-multiply speed. Read at each
# call, so a test can make chunks small.
CHUNK_ROWS = 512


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


class JointKernel(Protocol):
    """What a fused implementation supplies: the weighted sums of P log P over the diagonal entries of
    diagonal blocks and over off-diagonal blocks of the joint P = p_a^T p_b / N (the joint terms before
    their normalization), and dL/dp of both views for the local rows; `chunked_joint_terms` is the
    contract's reference."""

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


def _diagonal_blocks(chunk: Tensor, first_column: int, num_segments: int, segment_dim: int) -> Tensor:
    """View (k, C, C) of the k diagonal C x C blocks of a chunk whose rows are segments starting at
    `first_column`'s segment. A strided view, so writes land in the chunk."""
    row_stride = chunk.stride(0)
    return chunk.as_strided(
        (num_segments, segment_dim, segment_dim),
        (segment_dim * row_stride + segment_dim, row_stride, 1),
        chunk.storage_offset() + first_column,
    )


def chunked_joint_terms(
    p_a: Tensor,
    p_b: Tensor,
    local_rows: tuple[int, int],
    segment_dim: int,
    diag_coef: float,
    off_coef: float,
    grad_scale: float,
    compute_grad: bool,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Sums of P log P over the diagonal entries of diagonal blocks and over off-diagonal blocks.

    Args:
        p_a, p_b: (N, D) attribute probabilities of the global batch, D = S * segment_dim.
        local_rows: The rows of p_a/p_b whose gradients are wanted (this rank's samples).
        diag_coef, off_coef: Weights of the two sums in the objective whose gradient is returned.
        grad_scale: Factor applied to the returned gradients.
        compute_grad: Whether to produce the gradients.

    Returns:
        (diag_sum, off_sum, grad_p_a, grad_p_b); the gradients are those of
        ``grad_scale * (diag_coef * diag_sum + off_coef * off_sum)`` with respect to the local rows of
        p_a and p_b, or None when not requested.
    """
    batch_size, dim = p_a.shape
    segments_per_chunk = max(1, CHUNK_ROWS // segment_dim)
    rows_per_chunk = segments_per_chunk * segment_dim
    start, stop = local_rows
    local_a, local_b = p_a[start:stop], p_b[start:stop]
    a_columns = p_a.T  # (D, N) view: a chunk of rows of P is a chunk of columns of p_a.

    diag_sum = p_a.new_zeros(())
    off_sum = p_a.new_zeros(())
    # The gradient of p_a is built transposed, (D, N): each chunk then writes a contiguous block of rows.
    grad_a_t = p_a.new_empty((dim, stop - start)) if compute_grad else None
    grad_b = torch.zeros_like(local_b) if compute_grad else None
    joint = p_a.new_empty((rows_per_chunk, dim))
    grad_joint = p_a.new_empty((rows_per_chunk, dim))  # log P, then dL/dP, in place
    scale = grad_scale / batch_size

    for first in range(0, dim, rows_per_chunk):
        last = min(first + rows_per_chunk, dim)
        chunk = joint[: last - first]
        grad_chunk = grad_joint[: last - first]
        torch.addmm(chunk, a_columns[first:last], p_b, beta=0.0, alpha=1.0 / batch_size, out=chunk)
        diag_part, off_part = _epilogue(
            chunk, grad_chunk, first, segment_dim, diag_coef, off_coef, compute_grad
        )
        diag_sum += diag_part
        off_sum += off_part
        if grad_a_t is None or grad_b is None:  # compute_grad is False
            continue
        # P = p_a^T p_b / N: dL/dp_a[:, chunk] = p_b dL/dP_chunk^T / N and
        # dL/dp_b += p_a[:, chunk] dL/dP_chunk / N.
        out_rows = grad_a_t[first:last]
        torch.addmm(out_rows, grad_chunk, local_b.T, beta=0.0, alpha=scale, out=out_rows)
        grad_b.addmm_(local_a[:, first:last], grad_chunk, alpha=scale)

    grad_a = None if grad_a_t is None else grad_a_t.T
    return diag_sum, off_sum, grad_a, grad_b


def _epilogue(
    joint: Tensor,
    grad: Tensor,
    first: int,
    segment_dim: int,
    diag_coef: float,
    off_coef: float,
    compute_grad: bool,
) -> tuple[Tensor, Tensor]:
    """x log x sums of rows of P that start at row `first` (a segment boundary); writes dL/dP into `grad`.

    dL/dP = coef * (log P + 1), with coef = off_coef off the diagonal blocks, diag_coef on the diagonal
    of diagonal blocks and 0 elsewhere in them. Returns the sums over diagonal entries of diagonal blocks
    and over off-diagonal blocks.
    """
    k = joint.shape[0] // segment_dim
    log_joint = torch.clamp_min(joint, torch.finfo(joint.dtype).tiny, out=grad).log_()
    block_p = _diagonal_blocks(joint, first, k, segment_dim)
    block_log = _diagonal_blocks(log_joint, first, k, segment_dim)
    diag_log = block_log.diagonal(dim1=-2, dim2=-1).clone()
    diag_part = (block_p.diagonal(dim1=-2, dim2=-1) * diag_log).sum()
    block_part = (block_p * block_log).sum()
    # P log P in place of P (P is not needed again), then torch's sum, whose pairwise reduction keeps the
    # error of a float32 chunk sum from growing with the chunk's size (one running dot product did).
    off_part = joint.mul_(log_joint).sum() - block_part
    if not compute_grad:
        return diag_part, off_part

    torch.add(grad.new_full((), off_coef), log_joint, alpha=off_coef, out=grad)
    block_grad = _diagonal_blocks(grad, first, k, segment_dim)
    block_grad.zero_()
    block_grad.diagonal(dim1=-2, dim2=-1).copy_(diag_log.add_(1.0).mul_(diag_coef))
    return diag_part, off_part


def _logits_gradient(p: Tensor, grad_p: Tensor, q: Tensor, inv_coef: float, temperature: float) -> Tensor:
    """dL/dz, in place in grad_p, from dL/dp of the joint terms (through the softmax) and the invariance
    term, whose gradient with respect to the logits is inv_coef * (p - q)."""
    projection = (p * grad_p).sum(dim=-1, keepdim=True)
    grad_p.sub_(projection).mul_(p)
    return grad_p.add_(p, alpha=inv_coef).sub_(q, alpha=inv_coef).div_(temperature)


def _check_plain_autograd(z_a: Tensor, z_b: Tensor, name: str) -> None:
    """Refuses dual tensors (torch.autograd.forward_ad) and tensors wrapped by a torch.func transform,
    which would otherwise get a zero tangent or fail inside torch."""
    if torch.compiler.is_compiling():
        return  # torch.compile traces plain tensors; a transform around it wraps the compiled call
    for z in (z_a, z_b):
        wrapped = torch._C._functorch.is_functorch_wrapped_tensor(z)
        if wrapped or torch.autograd.forward_ad.unpack_dual(z).tangent is not None:
            raise RuntimeError(TRANSFORM_MESSAGE.format(name=name))


# What the operator returns: `MUSICOutput`'s fields in their order (the diagnostics empty unless asked
# for), then dL/dz_a and dL/dz_b (empty without gradients).
_NUM_PARTS = len(MUSICOutput._fields)


class FusedLoss:
    """The loss of the fused implementation ``name``, whose joint terms ``kernel`` computes, through the
    custom operator ``music_ssl::music_loss_<name>`` (`operator`); called as an `Implementation`'s loss,
    ``(z_a, z_b, options, terms, fall_back)`` -> the loss, or its `MUSICOutput` with ``terms``.
    ``fall_back``: whether this call may run the fallback's kernel after a compile or launch failure of
    its own ("auto")."""

    def __init__(self, name: str, kernel: JointKernel, fallback: "Fallback | None" = None) -> None:
        self.name, self.kernel, self.fallback = name, kernel, fallback
        self.operator = _operator(self)

    def __call__(self, z_a: Tensor, z_b: Tensor, options: "MUSICOptions", terms: bool, fall_back: bool):
        _check_plain_autograd(z_a, z_b, self.name)
        grad_enabled = torch.is_grad_enabled()
        outputs = self.operator(
            z_a,
            z_b,
            options.segment_dim,
            options.temperature,
            options.diag_weight,
            options.off_weight,
            options.inv_weight,
            options.agreement,
            options.gather_index,
            grad_enabled,
            options.group_name,
            fall_back,
            grad_enabled and (z_a.requires_grad or z_b.requires_grad),
            terms,
        )
        return MUSICOutput(*outputs[:_NUM_PARTS]) if terms else outputs[0]


def _operator(fused: FusedLoss):
    """The custom operator of ``fused``, with its shapes function and autograd registered."""
    name = fused.name

    @torch.library.custom_op(f"music_ssl::music_loss_{name}", mutates_args=())
    def music_loss_operator(
        z_a: Tensor,
        z_b: Tensor,
        segment_dim: int,
        temperature: float,
        diag_weight: float,
        off_weight: float,
        inv_weight: float,
        agreement: typing.Sequence[float],  # noqa: UP006 (torch 2.4's schema inference knows typing's)
        gather_distributed: int,
        grad_enabled: bool,
        group_name: str,
        fall_back: bool,
        compute_grad: bool,
        compute_terms: bool,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """`MUSICOutput`'s fields (the diagnostics empty without compute_terms), dL/dz_a and dL/dz_b
        (float32, float64 for float64 inputs; empty without compute_grad). ``gather_distributed``: the
        option's index in `distributed.GATHER_CHOICES`."""
        # Inside the operator every product is the math dtype, whatever autocast region it was called from.
        with torch.autocast(device_type=z_a.device.type, enabled=False):
            batch_size, dim = z_a.shape
            num_segments = dim // segment_dim
            log_p_a = log_probabilities(z_a, segment_dim, temperature)
            log_p_b = log_probabilities(z_b, segment_dim, temperature)
            # L_inv = -mean log sum_c p_a p_b. Its gradient needs q = softmax(log p_a + log p_b), the
            # agreement distribution, made in place in the buffer of log p_a + log p_b.
            agreement_q = log_p_a + log_p_b
            log_agreement = torch.logsumexp(agreement_q, dim=-1, keepdim=True)
            # A rank may hold no sample (an uneven last batch): its mean is 0, not 0/0.
            local_count = max(batch_size, 1)
            local_inv = -log_agreement.sum() / (local_count * num_segments)
            if compute_grad:
                agreement_q.sub_(log_agreement).exp_()
            else:
                del agreement_q
            p_a, p_b = log_p_a.exp_(), log_p_b.exp_()

            global_a, global_b, rows, ranks = distributed.global_views(
                p_a.reshape(batch_size, dim),
                p_b.reshape(batch_size, dim),
                gather_distributed,
                grad_enabled,
                group_name,
                (z_a.dtype, segment_dim, agreement),
                differentiable=False,
            )
            global_batch_size = global_a.shape[0]

            diag_coef = diag_weight / num_segments
            off_coef = off_weight / (num_segments * (num_segments - 1)) if num_segments > 1 else 0.0
            # Every rank computes the same joint terms; DDP averages gradients over ranks, so each rank
            # contributes `ranks` times its share (what an all-gather with a summing backward would give).
            joint_terms = (
                fused.kernel if fused.fallback is None else fused.fallback.wrap(name, fused.kernel, fall_back)
            )
            diag_sum, off_sum, grad_p_a, grad_p_b = joint_terms(
                global_a.contiguous(),
                global_b.contiguous(),
                rows,
                segment_dim,
                diag_coef,
                off_coef,
                float(ranks),
                compute_grad,
            )
            diag = diag_sum / num_segments
            off = off_sum / (num_segments * (num_segments - 1)) if num_segments > 1 else off_sum.new_zeros(())
            # This rank's share of L_inv: the local mean weighted so that DDP's average over ranks is the
            # global mean also for unequal per-rank batches (1 for equal batches and without gathering).
            inv_scale = ranks * batch_size / global_batch_size
            inv = local_inv * inv_scale
            loss = diag_weight * diag + off_weight * off + inv_weight * inv
            if compute_terms:
                shape = (global_batch_size, num_segments, segment_dim)
                entropy, confidence = segment_diagnostics(global_a.reshape(shape), global_b.reshape(shape))
            else:
                entropy, confidence = loss.new_empty((0,)), loss.new_empty((0,))
            if compute_grad:
                assert grad_p_a is not None and grad_p_b is not None
                shape = (batch_size, num_segments, segment_dim)
                # d(-logsumexp(la + lb))/dla = -q; through log_softmax that becomes p - q.
                inv_coef = inv_weight * inv_scale / (local_count * num_segments)
                grad_a = _logits_gradient(p_a, grad_p_a.reshape(shape), agreement_q, inv_coef, temperature)
                grad_b = _logits_gradient(p_b, grad_p_b.reshape(shape), agreement_q, inv_coef, temperature)
                # Contiguous, as the shapes function declares (the chunked kernel builds dL/dz_a transposed).
                grad_a, grad_b = (g.reshape(batch_size, dim).contiguous() for g in (grad_a, grad_b))
            else:
                grad_a, grad_b = loss.new_empty((0,)), loss.new_empty((0,))
        return loss, inv, diag, off, entropy, confidence, grad_a, grad_b

    @music_loss_operator.register_fake
    def _shapes(z_a, z_b, segment_dim, *options):
        compute_grad, compute_terms = options[-2:]
        dtype = compute_dtype(z_a.dtype)
        num_segments = z_a.shape[1] // segment_dim

        def empty(*shape: int) -> Tensor:
            return z_a.new_empty(shape, dtype=dtype)

        per_segment = (num_segments,) if compute_terms else (0,)
        grad_shape = tuple(z_a.shape) if compute_grad else (0,)
        return (
            *(empty() for _ in range(4)),
            empty(*per_segment),
            empty(*per_segment),
            empty(*grad_shape),
            empty(*grad_shape),
        )

    def _save_gradients(ctx, inputs, output) -> None:
        ctx.mark_non_differentiable(*output[1:])  # only the loss is differentiable
        ctx.save_for_backward(output[_NUM_PARTS], output[_NUM_PARTS + 1])
        ctx.input_dtypes = (inputs[0].dtype, inputs[1].dtype)
        ctx.num_options = len(inputs) - 2

    def _backward(ctx, grad_loss: Tensor, *grad_others: Tensor) -> tuple[Tensor | None, ...]:
        if torch.is_grad_enabled():
            raise RuntimeError(DOUBLE_BACKWARD_MESSAGE.format(name=name))
        grad_a, grad_b = ctx.saved_tensors
        dtype_a, dtype_b = ctx.input_dtypes
        incoming = grad_loss.to(grad_a.dtype)
        return (grad_a * incoming).to(dtype_a), (grad_b * incoming).to(dtype_b), *([None] * ctx.num_options)

    music_loss_operator.register_autograd(_backward, setup_context=_save_gradients)

    return music_loss_operator
