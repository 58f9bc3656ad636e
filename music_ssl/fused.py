"""The operator shared by the fused implementations (chunked PyTorch and Triton).

The joint-entropy kernel returns the input gradients together with the loss, so the forward pass also
finishes the chain rule through the softmax and returns dL/dz; the backward pass only multiplies it by
the incoming gradient. Extra memory is O(N * D): besides the kernel's own, the probabilities and the
agreement distribution of the invariance term (3 N x D, the log-probabilities are exponentiated in
place), then two float32 gradients the size of the inputs, finished in place in the kernel's buffers.

The whole computation is one custom operator, `music_ssl::music_loss`, with a shape-only ("fake")
implementation and its backward registered, so that torch.compile sees one node (no graph break) and
autocast leaves it alone. Numerics follow what flows in: the math is float32 (float64 for float64
inputs) whatever the input dtype, and dL/dz stays float32 until it meets the incoming gradient (a loss
scale of 2**16 for float16 training), then is cast once to the input's dtype, as autograd does for the
reference. The backward is not itself differentiable: a double backward (a gradient penalty) is refused
with an error that points to the reference implementation.
"""

import functools
import typing

import torch
from torch import Tensor

from music_ssl import distributed, implementations
from music_ssl._validation import compute_dtype
from music_ssl.implementations import JointEntropies
from music_ssl.options import LossMath
from music_ssl.output import MUSICOutput, segment_diagnostics
from music_ssl.segments import log_probabilities

DOUBLE_BACKWARD_MESSAGE = (
    "The fused MUSIC implementations ('chunked', 'triton', and 'auto', which picks one of them) do not "
    "support double backward (differentiating a gradient, e.g. a gradient penalty or "
    "backward(create_graph=True)). Use MUSICLoss(implementation='reference'), whose backward is "
    "differentiable."
)

TRANSFORM_MESSAGE = (
    "Forward-mode AD and torch.func transforms (jvp, jacfwd, grad, vmap, ...) do not reach through the "
    "fused MUSIC implementations ('chunked', 'triton', and 'auto', which picks one of them): their "
    "gradients come from a custom operator that only reverse-mode autograd calls. Use "
    "MUSICLoss(implementation='reference'), whose derivatives are plain autograd's."
)


def _check_plain_autograd(z_a: Tensor, z_b: Tensor) -> None:
    """Refuses dual tensors (torch.autograd.forward_ad) and tensors wrapped by a torch.func transform,
    which would otherwise get a zero tangent or fail inside torch."""
    if torch.compiler.is_compiling():
        return  # torch.compile traces plain tensors; a transform around it wraps the compiled call
    for z in (z_a, z_b):
        wrapped = torch._C._functorch.is_functorch_wrapped_tensor(z)
        if wrapped or torch.autograd.forward_ad.unpack_dual(z).tangent is not None:
            raise RuntimeError(TRANSFORM_MESSAGE)


def _logits_gradient(p: Tensor, grad_p: Tensor, q: Tensor, inv_coef: float, temperature: float) -> Tensor:
    """dL/dz, in place in grad_p, from dL/dp of the joint terms (through the softmax) and the invariance
    term, whose gradient with respect to the logits is inv_coef * (p - q)."""
    projection = (p * grad_p).sum(dim=-1, keepdim=True)
    grad_p.sub_(projection).mul_(p)
    return grad_p.add_(p, alpha=inv_coef).sub_(q, alpha=inv_coef).div_(temperature)


def _loss_and_gradients(
    z_a: Tensor, z_b: Tensor, options: LossMath, joint_entropies: JointEntropies, compute_grad: bool
) -> tuple[MUSICOutput, Tensor | None, Tensor | None]:
    """The loss's parts and, with compute_grad, dL/dz of both views (float32, float64 for float64)."""
    segment_dim, temperature, diag_weight, off_weight, inv_weight, gather, group, agreement = options
    batch_size, dim = z_a.shape
    num_segments = dim // segment_dim
    shape = (batch_size, num_segments, segment_dim)

    log_p_a = log_probabilities(z_a, segment_dim, temperature)
    log_p_b = log_probabilities(z_b, segment_dim, temperature)
    # L_inv = -mean log sum_c p_a p_b. Its gradient needs q = softmax(log p_a + log p_b), the agreement
    # distribution, made in place in the buffer of log p_a + log p_b.
    agreement_q = log_p_a + log_p_b
    log_agreement = torch.logsumexp(agreement_q, dim=-1, keepdim=True)
    # A rank may hold no sample (an uneven last batch): its mean is 0, not 0/0.
    local_count = max(batch_size, 1)
    local_invariance = -log_agreement.sum() / (local_count * num_segments)
    if compute_grad:
        agreement_q.sub_(log_agreement).exp_()
    else:
        del agreement_q
    p_a, p_b = log_p_a.exp_(), log_p_b.exp_()

    global_a, global_b, rows, ranks = distributed.global_views(
        p_a.reshape(batch_size, dim),
        p_b.reshape(batch_size, dim),
        gather,
        distributed.layout(dim, z_a.dtype, segment_dim, agreement),
        distributed.process_group(group),
        differentiable=False,
    )
    global_batch_size = global_a.shape[0]

    diag_coef = diag_weight / num_segments
    off_coef = off_weight / (num_segments * (num_segments - 1)) if num_segments > 1 else 0.0
    # Every rank computes the same joint terms; DDP averages gradients over ranks, so each rank
    # contributes `ranks` times its share (what an all-gather with a summing backward would give).
    diag_sum, off_sum, grad_p_a, grad_p_b = joint_entropies(
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
    # This rank's share of L_inv: the local mean weighted so that DDP's average over ranks is the global
    # mean also for unequal per-rank batches (the factor is 1 for equal batches and without gathering).
    inv_scale = ranks * batch_size / global_batch_size
    invariance = local_invariance * inv_scale
    loss = diag_weight * diag + off_weight * off + inv_weight * invariance
    entropy, confidence = segment_diagnostics(
        global_a.reshape(global_batch_size, num_segments, segment_dim),
        global_b.reshape(global_batch_size, num_segments, segment_dim),
    )
    parts = MUSICOutput(loss, invariance, diag, off, entropy, confidence)
    if not compute_grad:
        return parts, None, None

    assert grad_p_a is not None and grad_p_b is not None
    # d(-logsumexp(la + lb))/dla = -q; through log_softmax that becomes p - q.
    inv_coef = inv_weight * inv_scale / (local_count * num_segments)
    grad_a = _logits_gradient(p_a, grad_p_a.reshape(shape), agreement_q, inv_coef, temperature)
    grad_b = _logits_gradient(p_b, grad_p_b.reshape(shape), agreement_q, inv_coef, temperature)
    return parts, grad_a.reshape(batch_size, dim), grad_b.reshape(batch_size, dim)


# The operator returns the loss's parts (`MUSICOutput`'s fields, in order), then dL/dz_a and dL/dz_b: a
# custom operator returns a flat tuple of tensors. `_pack` and `_unpack` are the only readers of the order.
_NUM_PARTS = len(MUSICOutput._fields)


def _pack(parts: MUSICOutput, grad_a: Tensor, grad_b: Tensor) -> tuple[Tensor, ...]:
    return (*parts, grad_a, grad_b)


def _unpack(outputs: tuple[Tensor, ...]) -> tuple[MUSICOutput, Tensor, Tensor]:
    return MUSICOutput(*outputs[:_NUM_PARTS]), outputs[_NUM_PARTS], outputs[_NUM_PARTS + 1]


@torch.library.custom_op("music_ssl::music_loss", mutates_args=())
def music_loss_operator(
    z_a: Tensor,
    z_b: Tensor,
    segment_dim: int,
    temperature: float,
    diag_weight: float,
    off_weight: float,
    inv_weight: float,
    gather: bool,
    group: str,
    agreement: typing.Sequence[float],  # noqa: UP006 (torch 2.4's schema inference knows typing's)
    implementation: str,
    fall_back: bool,
    compute_grad: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The loss's parts (`MUSICOutput`), dL/dz_a and dL/dz_b; the gradients are float32 (float64 for
    float64 inputs), or empty without compute_grad. `implementation` and `fall_back` are what
    `music_ssl.implementations.choose` returns for a fused implementation."""
    options = LossMath(
        segment_dim, temperature, diag_weight, off_weight, inv_weight, gather, group, list(agreement)
    )
    joint = functools.partial(implementations.joint_entropies, implementation, fall_back)
    # Inside the operator every product is the math dtype, whatever autocast region it was called from.
    with torch.autocast(device_type=z_a.device.type, enabled=False):
        parts, grad_a, grad_b = _loss_and_gradients(z_a, z_b, options, joint, compute_grad)
    if grad_a is None or grad_b is None:
        grad_a, grad_b = (parts.loss.new_empty((0,)) for _ in range(2))
    # Contiguous, as the shapes function declares (the chunked kernel builds dL/dz_a transposed).
    return _pack(parts, grad_a.contiguous(), grad_b.contiguous())


@music_loss_operator.register_fake
def _music_loss_shapes(z_a, z_b, segment_dim, *options_and_choice):
    compute_grad = options_and_choice[-1]
    dtype = compute_dtype(z_a.dtype)
    num_segments = z_a.shape[1] // segment_dim

    def empty(*shape: int) -> Tensor:
        return z_a.new_empty(shape, dtype=dtype)

    parts = MUSICOutput(empty(), empty(), empty(), empty(), empty(num_segments), empty(num_segments))
    grad_shape = tuple(z_a.shape) if compute_grad else (0,)
    return _pack(parts, empty(*grad_shape), empty(*grad_shape))


def _save_gradients(ctx, inputs, output) -> None:
    _, grad_a, grad_b = _unpack(output)
    ctx.save_for_backward(grad_a, grad_b)
    ctx.input_dtypes = (inputs[0].dtype, inputs[1].dtype)
    ctx.num_options = len(inputs) - 2


def _backward(ctx, *grad_outputs: Tensor) -> tuple[Tensor | None, ...]:
    if torch.is_grad_enabled():
        raise RuntimeError(DOUBLE_BACKWARD_MESSAGE)
    grad_a, grad_b = ctx.saved_tensors
    dtype_a, dtype_b = ctx.input_dtypes
    # Only the loss is differentiable: the other parts are returned detached.
    incoming = _unpack(grad_outputs)[0].loss.to(grad_a.dtype)
    return (grad_a * incoming).to(dtype_a), (grad_b * incoming).to(dtype_b), *([None] * ctx.num_options)


music_loss_operator.register_autograd(_backward, setup_context=_save_gradients)


def music_loss_fused(
    z_a: Tensor, z_b: Tensor, options: LossMath, implementation: str, fall_back: bool
) -> MUSICOutput:
    """MUSIC through the fused operator with the named implementation. Arguments are assumed validated."""
    _check_plain_autograd(z_a, z_b)
    compute_grad = torch.is_grad_enabled() and (z_a.requires_grad or z_b.requires_grad)
    outputs = music_loss_operator(z_a, z_b, *options, implementation, fall_back, compute_grad)
    parts, _, _ = _unpack(outputs)
    # Built anew, not with _replace, which torch 2.4's compiler cannot trace.
    return MUSICOutput(parts.loss, *(part.detach() for part in parts[1:]))
