"""The joint-entropy terms of MUSIC computed tile by tile, never holding a D x D matrix.

P = p_a^T p_b / N is produced a band of rows at a time (rows of whole segments, so that the diagonal
blocks of a band sit inside the band's own columns). On each band the x*log(x) epilogue, the weighted
sums and dL/dP are applied in place, and dL/dP is contracted with the inputs right away: the input
gradients come out of the forward pass and nothing of size D x D outlives a band.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Rows of P per band. 512 rows keep two float32 band buffers at 32 MiB for D = 8192 while the band
# products stay large enough to run at full matrix-multiply speed.
DEFAULT_BAND_ROWS = 512


def _diagonal_blocks(band: Tensor, first_column: int, num_segments: int, segment_dim: int) -> Tensor:
    """View (k, C, C) of the k diagonal C x C blocks of a band whose rows are segments starting at
    `first_column`'s segment. A strided view, so writes land in the band."""
    row_stride = band.stride(0)
    return band.as_strided(
        (num_segments, segment_dim, segment_dim),
        (segment_dim * row_stride + segment_dim, row_stride, 1),
        band.storage_offset() + first_column,
    )


def chunked_joint_entropies(
    p_a: Tensor,
    p_b: Tensor,
    local_rows: tuple[int, int],
    segment_dim: int,
    diag_coef: float,
    off_coef: float,
    grad_scale: float,
    compute_grad: bool,
    band_rows: int = DEFAULT_BAND_ROWS,
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
    segments_per_band = max(1, band_rows // segment_dim)
    rows_per_band = segments_per_band * segment_dim
    start, stop = local_rows
    local_a, local_b = p_a[start:stop], p_b[start:stop]
    a_columns = p_a.T  # (D, N) view: a band of rows of P is a band of columns of p_a.

    diag_sum = p_a.new_zeros(())
    off_sum = p_a.new_zeros(())
    # The gradient of p_a is built transposed, (D, N): each band then writes a contiguous block of rows.
    grad_a_t = p_a.new_empty((dim, stop - start)) if compute_grad else None
    grad_b = torch.zeros_like(local_b) if compute_grad else None
    joint = p_a.new_empty((rows_per_band, dim))
    grad_joint = p_a.new_empty((rows_per_band, dim))  # log P, then dL/dP, in place
    scale = grad_scale / batch_size

    for first in range(0, dim, rows_per_band):
        last = min(first + rows_per_band, dim)
        band = joint[: last - first]
        grad_band = grad_joint[: last - first]
        torch.addmm(band, a_columns[first:last], p_b, beta=0.0, alpha=1.0 / batch_size, out=band)
        diag_part, off_part = _epilogue(
            band, grad_band, first, segment_dim, diag_coef, off_coef, compute_grad
        )
        diag_sum += diag_part
        off_sum += off_part
        if not compute_grad:
            continue
        # P = p_a^T p_b / N: dL/dp_a[:, band] = p_b dL/dP_band^T / N, dL/dp_b += p_a[:, band] dL/dP_band / N.
        out_rows = grad_a_t[first:last]
        torch.addmm(out_rows, grad_band, local_b.T, beta=0.0, alpha=scale, out=out_rows)
        grad_b.addmm_(local_a[:, first:last], grad_band, alpha=scale)

    grad_a = grad_a_t.T if compute_grad else None
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
    # error of a float32 band sum from growing with the band's size (one running dot product did).
    off_part = joint.mul_(log_joint).sum() - block_part
    if not compute_grad:
        return diag_part, off_part

    torch.add(grad.new_full((), off_coef), log_joint, alpha=off_coef, out=grad)
    block_grad = _diagonal_blocks(grad, first, k, segment_dim)
    block_grad.zero_()
    block_grad.diagonal(dim1=-2, dim2=-1).copy_(diag_log.add_(1.0).mul_(diag_coef))
    return diag_part, off_part
