"""The fused MUSIC operator, which the fused implementations share.

One call of a fused implementation is one custom operator, ``music_ssl::music_loss_<implementation>``,
with a shape-only ("fake") implementation and its backward registered: torch.compile sees one node and
autocast leaves it alone. Its kernel (`music_ssl.chunked`'s PyTorch loop, or the Triton kernel) returns
the joint terms' gradients with their values, so the forward pass finishes the chain rule through the
softmax and returns dL/dz; the backward only multiplies it by the incoming gradient (a double backward is
refused, pointing to the reference). Several views are one call: each view's softmax once, every pair's
joint terms (`segment_views`) accumulated per view. Under data parallelism the operator itself exchanges
the ranks' rows, or adds their joints (`distributed.global_batch`), so its outputs have this rank's shapes
and a compiled graph (also with fullgraph=True) holds the exchange. The call that flattens the options
into the operator's arguments, `FusedLoss`, is the registry entry's loss.

Numerics follow what flows in: the math is float32 (float64 for float64 inputs) whatever the input
dtype, and dL/dz stays float32 until it meets the incoming gradient, then is cast once to the input's
dtype, as autograd does for the reference.

Memory is O(V N D), never D x D with the gather (the kernel holds chunks of P's rows): the probabilities
and the agreement distributions of the invariance terms (the log-probabilities are exponentiated in place;
two views share one agreement), then float32 gradients the size of the inputs.
"""

# No `from __future__ import annotations`: torch 2.4 infers the operator's schema from evaluated
# annotations only.
import typing

import torch
from torch import Tensor

from music_ssl import checks, distributed
from music_ssl.chunked import chunked_joint_terms, joint_chunks
from music_ssl.output import MUSICOutput, segment_diagnostics, segment_sums
from music_ssl.output import diagnostics as output_diagnostics
from music_ssl.segments import compute_dtype, segment_views

if typing.TYPE_CHECKING:
    from music_ssl.fallback import Fallback
    from music_ssl.options import MUSICOptions
    from music_ssl.registry import JointKernel

# chunked_joint_terms: the kernel's old home.
__all__ = ["NUM_PARTS", "FusedLoss", "chunked_joint_terms", "operator"]


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


# What the operator returns: `MUSICOutput`'s fields in their order (the diagnostics empty unless asked
# for), then dL/dz of the views, stacked (empty without gradients).
NUM_PARTS = len(MUSICOutput._fields)


def operator(name: str, kernel: "JointKernel", fallback: "Fallback | None", operator_name: str):
    """The custom operator ``music_ssl::music_loss_<operator_name>`` of the fused implementation ``name``,
    whose joint terms ``kernel`` computes (``fallback``'s kernel in its place after a failure, where the
    call allows it), with its shapes function and autograd registered."""

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
            start, stop = rows

            # L_inv = -mean log sum_c p_i p_j per pair. Its gradient needs q = softmax(log p_i + log p_j),
            # the pair's agreement distribution, summed per view (with two views both share one q).
            agreement_log_sum = log_p[0].new_zeros(())
            agreement_sums: list[Tensor | None] = [None] * num_views
            for i, j in pairs:
                agreement = log_p[i][start:stop] + log_p[j][start:stop]
                log_agreement = torch.logsumexp(agreement, dim=-1, keepdim=True)
                agreement_log_sum += log_agreement.sum()
                if compute_grad:
                    q = agreement.sub_(log_agreement).exp_()
                    _add(agreement_sums, i, q)
                    _add(agreement_sums, j, q)
            # A rank may hold no sample (an uneven last batch): its mean is 0, not 0/0.
            local_count = max(batch_size, 1)
            local_inv = -agreement_log_sum / (local_count * num_segments * len(pairs))
            for view_log_p in log_p:
                view_log_p.exp_()  # the probabilities, in place of the log-probabilities
            p: list[Tensor | None] = list(log_p)
            del log_p  # p alone holds the probabilities: each is freed when its view is done

            diag_coef = diag_weight / num_segments
            off_coef = off_weight / (num_segments * (num_segments - 1)) if num_segments > 1 else 0.0
            # Every rank computes the same joint terms; DDP averages gradients over ranks, so each rank
            # contributes `ranks` times its share (what an all-gather with a summing backward would give).
            joint_terms = kernel if fallback is None else fallback.wrap(name, kernel, fall_back)
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

                    terms_of_pair = joint_chunks(
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
        ctx.save_for_backward(output[NUM_PARTS])
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


def _check_plain_autograd(views: "typing.Sequence[Tensor]", name: str) -> None:
    """Refuses dual tensors (torch.autograd.forward_ad) and tensors wrapped by a torch.func transform,
    which would otherwise get a zero tangent or fail inside torch."""
    if torch.compiler.is_compiling():
        return  # torch.compile traces plain tensors; a transform around it wraps the compiled call
    for z in views:
        wrapped = torch._C._functorch.is_functorch_wrapped_tensor(z)
        if wrapped or torch.autograd.forward_ad.unpack_dual(z).tangent is not None:
            raise RuntimeError(checks.TRANSFORM_MESSAGE.format(name=name))


class FusedLoss:
    """The loss of the fused implementation ``name``, whose joint terms ``kernel`` computes, through the
    custom operator ``music_ssl::music_loss_<name>`` (`operator`); called as an
    `Implementation`'s loss, ``(views, num_global, options, terms)`` -> the loss, or its `MUSICOutput`
    with ``terms``. A call under ``implementation="auto"`` may run the fallback's kernel after a compile
    or launch failure of its own; one that names the implementation raises the failure."""

    def __init__(self, name: str, kernel: "JointKernel", fallback: "Fallback | None" = None) -> None:
        self.name, self.kernel, self.fallback = name, kernel, fallback
        self.operator: typing.Any = None  # defined when the registry accepts the name, or at the first call

    def build(self, operator_name: str | None = None) -> None:
        """Defines the operator once, as music_ssl::music_loss_<operator_name> (default: the name)."""
        if self.operator is None:
            self.operator = operator(self.name, self.kernel, self.fallback, operator_name or self.name)

    def __call__(
        self,
        views: tuple[Tensor, ...],
        num_global: int,
        options: "MUSICOptions",
        terms: bool,
    ) -> "Tensor | MUSICOutput":
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
            options.implementation == "auto",  # whether a compile or launch failure may fall back
            torch.is_grad_enabled() and any(z.requires_grad for z in views),
            terms,
        )
        return MUSICOutput(*outputs[:NUM_PARTS]) if terms else outputs[0]
