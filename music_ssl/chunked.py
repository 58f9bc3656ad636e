"""The PyTorch kernel of the fused operator's joint terms: the "chunked" implementation's.

The joint P = p_a^T p_b / N of a pair is produced a chunk of rows at a time (rows of whole segments, so
that the diagonal blocks of a chunk sit inside its own columns); on each chunk the x log x epilogue, the
weighted sums and dL/dP are applied in place, and dL/dP is contracted with the inputs right away. Memory
besides the inputs: two chunk buffers and float32 gradients the size of the local rows, never D x D.
The same loop runs on rows of a joint the ranks summed (exchange="reduce", `joint_chunks`).
"""

from __future__ import annotations

import typing

import torch
from torch import Tensor

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
    joint = p_a.new_empty((rows_per_chunk(segment_dim), dim))

    def rows_of_joint(first: int, last: int) -> Tensor:
        chunk = joint[: last - first]
        return torch.addmm(chunk, a_columns[first:last], p_b, beta=0.0, alpha=1.0 / batch_size, out=chunk)

    local = (p_a[start:stop], p_b[start:stop])
    return joint_chunks(
        rows_of_joint, *local, batch_size, segment_dim, diag_coef, off_coef, grad_scale, compute_grad
    )


def rows_per_chunk(segment_dim: int) -> int:
    """`CHUNK_ROWS` rounded down to whole segments (one segment at least)."""
    return max(1, CHUNK_ROWS // segment_dim) * segment_dim


def joint_chunks(
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
    chunk_rows = rows_per_chunk(segment_dim)
    diag_sum = local_a.new_zeros(())
    off_sum = local_a.new_zeros(())
    # The gradient of p_a is built transposed, (D, N): each chunk then writes a contiguous block of rows.
    grad_a_t = local_a.new_empty((dim, local_a.shape[0])) if compute_grad else None
    grad_b = torch.zeros_like(local_b) if compute_grad else None
    grad_joint = local_a.new_empty((chunk_rows, dim))  # log P, then dL/dP, in place
    scale = grad_scale / count

    for first in range(0, dim, chunk_rows):
        last = min(first + chunk_rows, dim)
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
