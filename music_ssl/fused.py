"""The fused MUSIC operator, and the PyTorch kernel of its joint terms ("chunked").

One call of a fused implementation is one custom operator, ``music_ssl::music_loss_<implementation>``,
with a shape-only ("fake") implementation and its backward registered: torch.compile sees one node and
autocast leaves it alone. Its kernel returns the joint terms' gradients with their values, so the forward
pass finishes the chain rule through the softmax and returns dL/dz; the backward only multiplies it by
the incoming gradient (a double backward is refused, pointing to the reference). Several views are one
call: each view's softmax once, every pair's joint terms (`segment_views`) accumulated per view. Under data
parallelism the operator itself exchanges the ranks' rows (`distributed.global_batch`), so its outputs
have this rank's shapes and a compiled graph (also with fullgraph=True) holds the exchange.

Numerics follow what flows in: the math is float32 (float64 for float64 inputs) whatever the input
dtype, and dL/dz stays float32 until it meets the incoming gradient, then is cast once to the input's
dtype, as autograd does for the reference.

Memory is O(V N D), never D x D. The joint P = p_a^T p_b / N of a pair is produced a chunk of rows at a
time (rows of whole segments, so that the diagonal blocks of a chunk sit inside its own columns); on each
chunk the x log x epilogue, the weighted sums and dL/dP are applied in place, and dL/dP is contracted
with the inputs right away. Besides the kernel's two chunk buffers: the probabilities and the agreement
distributions of the invariance terms (the log-probabilities are exponentiated in place; two views share
one agreement), then float32 gradients the size of the inputs.
"""

# No `from __future__ import annotations`: torch 2.4 infers the operator's schema from evaluated
# annotations only.
import typing

import torch
from torch import Tensor

from music_ssl import checks, distributed
from music_ssl.output import MUSICOutput, segment_diagnostics, segment_sums
from music_ssl.output import diagnostics as output_diagnostics
from music_ssl.segments import compute_dtype, segment_views

if typing.TYPE_CHECKING:
    from music_ssl.fallback import Fallback
    from music_ssl.options import MUSICOptions
    from music_ssl.registry import JointKernel

# Rows of P per chunk of the PyTorch kernel. 512 rows keep its two float32 chunk buffers at 32 MiB for
# D = 8192 while the chunk products stay large enough to run at full matrix-multiply speed. Read at each
# call, so a test can make chunks small.
CHUNK_ROWS = 512


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
    start, stop = local_rows
    a_columns = p_a.T  # (D, N) view: a chunk of rows of P is a chunk of columns of p_a.
    joint = p_a.new_empty((_rows_per_chunk(segment_dim), dim))

    def rows_of_joint(first: int, last: int) -> Tensor:
        chunk = joint[: last - first]
        return torch.addmm(chunk, a_columns[first:last], p_b, beta=0.0, alpha=1.0 / batch_size, out=chunk)

    local = (p_a[start:stop], p_b[start:stop])
    return _joint_chunks(
        rows_of_joint, *local, batch_size, segment_dim, diag_coef, off_coef, grad_scale, compute_grad
    )


def _rows_per_chunk(segment_dim: int) -> int:
    return max(1, CHUNK_ROWS // segment_dim) * segment_dim


def _joint_chunks(
    rows_of_joint: typing.Callable[[int, int], Tensor],
    local_a: Tensor,
    local_b: Tensor,
    count: int,
    segment_dim: int,
    diag_coef: float,
    off_coef: float,
    grad_scale: float,
    compute_grad: bool,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """The joint terms of P, a chunk of its rows at a time (``rows_of_joint(first, last)``, which the
    chunk's epilogue overwrites), over ``count`` samples, and the gradients of the local rows: the loop of
    `chunked_joint_terms`, whose chunks are products of p_a and p_b, and of exchange="reduce", whose
    chunks are rows of the whole joint the ranks' sums added up to."""
    dim = local_a.shape[1]
    rows_per_chunk = _rows_per_chunk(segment_dim)
    diag_sum = local_a.new_zeros(())
    off_sum = local_a.new_zeros(())
    # The gradient of p_a is built transposed, (D, N): each chunk then writes a contiguous block of rows.
    grad_a_t = local_a.new_empty((dim, local_a.shape[0])) if compute_grad else None
    grad_b = torch.zeros_like(local_b) if compute_grad else None
    grad_joint = local_a.new_empty((rows_per_chunk, dim))  # log P, then dL/dP, in place
    scale = grad_scale / count

    for first in range(0, dim, rows_per_chunk):
        last = min(first + rows_per_chunk, dim)
        chunk = rows_of_joint(first, last)
        grad_chunk = grad_joint[: last - first]
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


def _add(parts: "list[Tensor | None]", index: int, value: Tensor) -> None:
    """parts[index] += value; the first value is taken as it is (with two views, both share one)."""
    so_far = parts[index]
    parts[index] = value if so_far is None else so_far + value


def _logits_gradient(p: Tensor, grad_p: Tensor, q_sum: Tensor, pairs: float, inv_coef: float) -> Tensor:
    """dL/dz * temperature, in place in grad_p, from dL/dp of the joint terms (through the softmax) and the
    invariance terms of the ``pairs`` pairs a view is in: the gradient of one pair's term with respect to
    the logits is inv_coef * (p - q), q the pair's agreement distribution; ``q_sum`` is the sum of their q."""
    grad_p = grad_p.reshape(p.shape)  # the kernel's (N, D) as segments: a view, also when transposed
    projection = (p * grad_p).sum(dim=-1, keepdim=True)
    grad_p.sub_(projection).mul_(p)
    return grad_p.add_(p, alpha=inv_coef * pairs).sub_(q_sum, alpha=inv_coef)


def _check_plain_autograd(views: "typing.Sequence[Tensor]", name: str) -> None:
    """Refuses dual tensors (torch.autograd.forward_ad) and tensors wrapped by a torch.func transform,
    which would otherwise get a zero tangent or fail inside torch."""
    if torch.compiler.is_compiling():
        return  # torch.compile traces plain tensors; a transform around it wraps the compiled call
    for z in views:
        wrapped = torch._C._functorch.is_functorch_wrapped_tensor(z)
        if wrapped or torch.autograd.forward_ad.unpack_dual(z).tangent is not None:
            raise RuntimeError(checks.TRANSFORM_MESSAGE.format(name=name))


# What the operator returns: `MUSICOutput`'s fields in their order (the diagnostics empty unless asked
# for), then dL/dz of the views, stacked (empty without gradients).
_NUM_PARTS = len(MUSICOutput._fields)


class FusedLoss:
    """The loss of the fused implementation ``name``, whose joint terms ``kernel`` computes, through the
    custom operator ``music_ssl::music_loss_<name>`` (`operator`); called as an `Implementation`'s loss,
    ``(batch, num_global, options, terms, fall_back)`` -> the loss, or its `MUSICOutput` with ``terms``.
    ``fall_back``: whether this call may run the fallback's kernel after a compile or launch failure of
    its own ("auto")."""

    def __init__(self, name: str, kernel: "JointKernel", fallback: "Fallback | None" = None) -> None:
        self.name, self.kernel, self.fallback = name, kernel, fallback
        self.operator: typing.Any = None  # defined when the registry accepts the name, or at the first call

    def build(self, operator_name: str | None = None) -> None:
        """Defines the operator once, as music_ssl::music_loss_<operator_name> (default: the name)."""
        if self.operator is None:
            self.operator = _operator(self, operator_name or self.name)

    def __call__(
        self,
        views: "tuple[Tensor, ...]",
        num_global: int,
        options: "MUSICOptions",
        terms: bool,
        fall_back: bool,
    ):
        _check_plain_autograd(views, self.name)
        self.build()
        outputs = self.operator(
            views,
            list(options.rank_settings),
            options.group_key,
            torch.is_grad_enabled(),
            num_global,
            options.segment_dim,
            options.temperature,
            options.diag_weight,
            options.off_weight,
            options.inv_weight,
            fall_back,
            torch.is_grad_enabled() and any(z.requires_grad for z in views),
            terms,
        )
        return MUSICOutput(*outputs[:_NUM_PARTS]) if terms else outputs[0]


def _operator(fused: FusedLoss, operator_name: str):
    """The custom operator ``music_ssl::music_loss_<operator_name>`` of ``fused``, with its shapes function
    and autograd registered."""
    name = fused.name

    @torch.library.custom_op(f"music_ssl::music_loss_{operator_name}", mutates_args=())
    def music_loss_operator(
        views: typing.Sequence[Tensor],  # noqa: UP006 (torch 2.4's schema inference knows typing's)
        rank_settings: typing.Sequence[float],  # noqa: UP006
        group: str,
        grad_enabled: bool,
        num_global: int,
        segment_dim: int,
        temperature: float,
        diag_weight: float,
        off_weight: float,
        inv_weight: float,
        fall_back: bool,
        compute_grad: bool,
        compute_terms: bool,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """`MUSICOutput`'s fields (the diagnostics empty without compute_terms) and dL/dz of this rank's V
        (N, D) ``views``, stacked (float32, float64 for float64 inputs; empty without compute_grad). The
        joint is estimated on the batch that `distributed.global_batch` names for the options'
        ``rank_settings`` and ``group`` in a call under grad mode ``grad_enabled``, exchanged here: the
        outputs have this rank's shapes whatever the other ranks hold, so a compiled graph holds it too."""
        batch = distributed.global_batch(
            tuple(views), num_global, segment_dim, rank_settings, group, grad_enabled, can_reduce=True
        )
        group_views, rows, ranks = batch.group_views, batch.rows, batch.ranks
        # Inside the operator every product is the math dtype, whatever autocast region it was called from.
        with torch.autocast(device_type=views[0].device.type, enabled=False):
            num_views, (batch_size, dim) = len(views), views[0].shape
            global_batch_size = batch.samples
            num_segments = dim // segment_dim
            # Each view's softmax once, (N_global, S, C); this rank's rows are a slice of it.
            log_p, pairs = segment_views(group_views, num_global, segment_dim, temperature)
            local_log_p = [view[rows[0] : rows[1]] for view in log_p]

            # L_inv = -mean log sum_c p_i p_j per pair. Its gradient needs q = softmax(log p_i + log p_j),
            # the pair's agreement distribution, summed per view (with two views both share one q).
            agreement_log_sum = log_p[0].new_zeros(())
            agreement_sums: list[Tensor | None] = [None] * num_views
            for i, j in pairs:
                agreement = local_log_p[i] + local_log_p[j]
                log_agreement = torch.logsumexp(agreement, dim=-1, keepdim=True)
                agreement_log_sum += log_agreement.sum()
                if compute_grad:
                    q = agreement.sub_(log_agreement).exp_()
                    _add(agreement_sums, i, q)
                    _add(agreement_sums, j, q)
            # A rank may hold no sample (an uneven last batch): its mean is 0, not 0/0.
            local_count = max(batch_size, 1)
            local_inv = -agreement_log_sum / (local_count * num_segments * len(pairs))
            p: list[Tensor | None] = [view.exp_() for view in log_p]
            del log_p, local_log_p  # p alone holds the probabilities: each is freed when its view is done

            diag_coef = diag_weight / num_segments
            off_coef = off_weight / (num_segments * (num_segments - 1)) if num_segments > 1 else 0.0
            # Every rank computes the same joint terms; DDP averages gradients over ranks, so each rank
            # contributes `ranks` times its share (what an all-gather with a summing backward would give).
            joint_terms = (
                fused.kernel if fused.fallback is None else fused.fallback.wrap(name, fused.kernel, fall_back)
            )
            diag_sum, off_sum = agreement_log_sum.new_zeros(()), agreement_log_sum.new_zeros(())
            grads_p: list[Tensor | None] = [None] * num_views
            for i, j in pairs:
                p_i = p[i].reshape(-1, dim)  # type: ignore[union-attr]
                p_j = p[j].reshape(-1, dim)  # type: ignore[union-attr]
                if batch.reduced:
                    # exchange="reduce": the pair's joint from this rank's rows, the ranks' sums added (one
                    # D x D all_reduce per pair, one pair's joint held at a time); every rank then holds
                    # the same P and computes the gradients of its own rows from it.
                    joint = distributed.add_over_ranks_(p_i.T @ p_j, group).div_(global_batch_size)

                    def summed_rows(first: int, last: int, joint: Tensor = joint) -> Tensor:
                        return joint[first:last]

                    terms_of_pair = _joint_chunks(
                        summed_rows, p_i, p_j, global_batch_size, segment_dim, diag_coef, off_coef,
                        ranks / len(pairs), compute_grad,
                    )  # fmt: skip
                    del joint, summed_rows  # one pair's joint held at a time
                else:
                    terms_of_pair = joint_terms(
                        p_i, p_j, rows, segment_dim, diag_coef, off_coef, ranks / len(pairs), compute_grad
                    )
                pair_diag, pair_off, grad_i, grad_j = terms_of_pair
                diag_sum += pair_diag
                off_sum += pair_off
                if grad_i is not None and grad_j is not None:
                    _add(grads_p, i, grad_i)
                    _add(grads_p, j, grad_j)
            # Only grads_p holds the kernel's gradients now: each is freed as soon as its view is done.
            del grad_i, grad_j
            diag = diag_sum / (num_segments * len(pairs))
            pairs_segments = num_segments * (num_segments - 1) * len(pairs)
            off = off_sum / pairs_segments if num_segments > 1 else off_sum.new_zeros(())
            # This rank's share of L_inv: the local mean weighted so that DDP's average over ranks is the
            # global mean also for unequal per-rank batches (1 for equal batches and without gathering).
            inv_scale = ranks * batch_size / global_batch_size
            inv = local_inv * inv_scale
            loss = diag_weight * diag + off_weight * off + inv_weight * inv
            if compute_terms and batch.reduced:  # the diagnostics' sums added over the ranks too
                sums = distributed.add_over_ranks_(segment_sums(p), group)  # type: ignore[arg-type]
                diagnostics = output_diagnostics(sums, global_batch_size * num_views)
            elif compute_terms:
                diagnostics = segment_diagnostics(p)  # type: ignore[arg-type]
            else:
                diagnostics = (loss.new_empty((0,)), loss.new_empty((0,)), loss.new_empty((0,)))
            if compute_grad:
                # d(-logsumexp(l_i + l_j))/dl_i = -q; through log_softmax that becomes p_i - q.
                inv_coef = inv_weight * inv_scale / (local_count * num_segments * len(pairs))
                grad = None
                for view in range(num_views):
                    in_pairs = sum(view in pair for pair in pairs)
                    finished = _logits_gradient(
                        p[view][rows[0] : rows[1]],  # type: ignore[index]
                        grads_p[view],  # type: ignore[arg-type]
                        agreement_sums[view],  # type: ignore[arg-type]
                        in_pairs,
                        inv_coef,
                    )
                    # Freed before the output is allocated, so that the peak stays that of the inputs' size.
                    p[view] = grads_p[view] = agreement_sums[view] = None
                    if grad is None:
                        grad = finished.new_empty((num_views, batch_size, dim))
                    grad[view] = finished.reshape(batch_size, dim)
                    del finished
                assert grad is not None
                grad.div_(temperature)
            else:
                grad = loss.new_empty((0,))
        return loss, inv, diag, off, *diagnostics, grad

    @music_loss_operator.register_fake
    def _shapes(views, rank_settings, group, grad_enabled, num_global, segment_dim, *options):
        compute_grad, compute_terms = options[-2:]
        dtype = compute_dtype(views[0].dtype)
        num_segments = views[0].shape[1] // segment_dim

        def empty(*shape: int) -> Tensor:
            return views[0].new_empty(shape, dtype=dtype)

        per_segment = (num_segments,) if compute_terms else (0,)
        return (
            *(empty() for _ in range(4)),
            *(empty(*per_segment) for _ in range(3)),
            empty(len(views), *views[0].shape) if compute_grad else empty(0),
        )

    def _save_gradients(ctx, inputs, output) -> None:
        ctx.mark_non_differentiable(*output[1:])  # only the loss is differentiable
        ctx.save_for_backward(output[_NUM_PARTS])
        ctx.input_dtype = inputs[0][0].dtype
        ctx.num_options = len(inputs) - 1

    def _backward(
        ctx, grad_loss: Tensor, *grad_others: Tensor
    ) -> tuple[list[Tensor] | list[None] | None, ...]:
        if torch.is_grad_enabled():
            raise RuntimeError(checks.DOUBLE_BACKWARD_MESSAGE.format(name=name))
        (grad,) = ctx.saved_tensors
        scaled = (grad * grad_loss.to(grad.dtype)).to(ctx.input_dtype)
        return list(scaled.unbind(0)), *([None] * ctx.num_options)

    music_loss_operator.register_autograd(_backward, setup_context=_save_gradients)

    return music_loss_operator
