"""MUSIC's discrete codes as a feature: packed into bytes, compared by agreement, read as clusterings.

Every image gets S attributes (`segment_codes`: the most likely of C in each segment), a code of
S x ceil(log2 C) bits. Two codes are compared by the number of segments whose attributes agree (hard),
or by its expectation under the attribute probabilities (soft).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from music_ssl import checks
from music_ssl.segments import compute_dtype


def bits_per_attribute(segment_dim: int) -> int:
    """Bits that hold one attribute of a segment of `segment_dim` attributes (ceil(log2 C), at least 1)."""
    checks.segment_dim(segment_dim)
    return max(1, math.ceil(math.log2(segment_dim)))


def _check_codes(name: str, codes: object, segment_dim: int) -> Tensor:
    checks.segment_dim(segment_dim)
    if not isinstance(codes, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, S), got {type(codes).__name__}.")
    if codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer attributes (segment_codes' output), got {codes.dtype}.")
    if codes.dim() != 2:
        raise ValueError(f"{name} must be 2-D (N, S), got shape {tuple(codes.shape)}.")
    if codes.numel() and (codes.min() < 0 or codes.max() >= segment_dim):
        raise ValueError(
            f"{name} holds attributes outside [0, {segment_dim}): min {int(codes.min())}, "
            f"max {int(codes.max())}; pass the segment_dim the codes were made with."
        )
    return codes


def pack_codes(codes: Tensor, segment_dim: int) -> Tensor:
    """Codes (N, S) -> bytes (N, ceil(S * bits / 8)) as uint8, `bits_per_attribute(segment_dim)` bits each.

    Attribute s of a row takes bits [s * bits, (s + 1) * bits) of the row's little-endian bit string.
    """
    bits = bits_per_attribute(segment_dim)
    codes = _check_codes("codes", codes, segment_dim).long()
    n, s = codes.shape
    shifts = torch.arange(bits, device=codes.device)
    stream = ((codes.unsqueeze(-1) >> shifts) & 1).reshape(n, s * bits)
    pad = (-stream.shape[1]) % 8
    # The byte count is spelt out: reshape cannot infer a -1 dimension of an empty batch.
    stream = torch.nn.functional.pad(stream, (0, pad)).reshape(n, (s * bits + pad) // 8, 8)
    weights = 1 << torch.arange(8, device=codes.device)
    return (stream * weights).sum(-1).to(torch.uint8)


def unpack_codes(packed: Tensor, num_segments: int, segment_dim: int) -> Tensor:
    """The inverse of `pack_codes`: bytes (N, B) -> codes (N, num_segments) as int64."""
    bits = bits_per_attribute(segment_dim)
    checks.positive_int("num_segments", num_segments)
    if not isinstance(packed, Tensor) or packed.dtype != torch.uint8 or packed.dim() != 2:
        raise TypeError(f"packed must be a (N, B) uint8 tensor from pack_codes, got {packed!r:.80}.")
    needed = math.ceil(num_segments * bits / 8)
    if packed.shape[1] != needed:
        raise ValueError(
            f"packed has {packed.shape[1]} bytes per code; {num_segments} segments of {segment_dim} "
            f"attributes ({bits} bits each) take {needed}."
        )
    n = packed.shape[0]
    stream = (packed.long().unsqueeze(-1) >> torch.arange(8, device=packed.device)) & 1
    stream = stream.reshape(n, 8 * needed)[:, : num_segments * bits].reshape(n, num_segments, bits)
    return (stream << torch.arange(bits, device=packed.device)).sum(-1)


def _one_hot(codes: Tensor, segment_dim: int) -> Tensor:
    """(N, S) attributes -> (N, S * C) float32 indicators: row n has a 1 at s * C + codes[n, s]."""
    n, s = codes.shape
    columns = codes.long() + torch.arange(s, device=codes.device) * segment_dim
    out = torch.zeros(n, s * segment_dim, dtype=torch.float32, device=codes.device)
    return out.scatter_(1, columns, 1.0)


def code_agreement(codes_a: Tensor, codes_b: Tensor, segment_dim: int, block_rows: int = 1024) -> Tensor:
    """(N, M) int64: for every pair of codes, the number of segments whose attributes agree (0 to S).

    The count is a matrix product of one-hot codes, sum_s [a_s == b_s] = onehot(a) . onehot(b), in float32,
    which holds every count exactly (autocast is turned off for it). Computed `block_rows` rows of each
    operand at a time, so the one-hot blocks take O(block_rows * S * C) memory besides the (N, M) output.
    """
    codes_a = _check_codes("codes_a", codes_a, segment_dim)
    codes_b = _check_codes("codes_b", codes_b, segment_dim)
    if codes_a.shape[1] != codes_b.shape[1]:
        raise ValueError(
            f"codes_a and codes_b must have the same number of segments, got {codes_a.shape[1]} and "
            f"{codes_b.shape[1]}."
        )
    checks.positive_int("block_rows", block_rows)
    out = torch.empty(codes_a.shape[0], codes_b.shape[0], dtype=torch.long, device=codes_a.device)
    with torch.autocast(device_type=codes_a.device.type, enabled=False):
        for b_start in range(0, codes_b.shape[0], block_rows):
            one_hot_b = _one_hot(codes_b[b_start : b_start + block_rows], segment_dim).T
            for a_start in range(0, codes_a.shape[0], block_rows):
                one_hot_a = _one_hot(codes_a[a_start : a_start + block_rows], segment_dim)
                counts = one_hot_a @ one_hot_b
                out[a_start : a_start + block_rows, b_start : b_start + block_rows] = counts.round().long()
    return out


def soft_agreement(probabilities_a: Tensor, probabilities_b: Tensor) -> Tensor:
    """(N, M): the expected number of agreeing segments when every segment draws its attribute from its
    distribution, sum_s sum_c p_a[s, c] p_b[s, c], for attribute probabilities of shape (N, S, C) and
    (M, S, C) (`segment_probabilities`). One matrix product, in float32 (float64 for float64
    probabilities) also under autocast, whose bfloat16 would round scores to steps of 1/8 and tie
    neighbours."""
    for name, p in (("probabilities_a", probabilities_a), ("probabilities_b", probabilities_b)):
        if not isinstance(p, Tensor) or p.dim() != 3 or not p.is_floating_point():
            raise TypeError(f"{name} must be a floating (N, S, C) tensor from segment_probabilities.")
    if probabilities_a.shape[1:] != probabilities_b.shape[1:]:
        raise ValueError(
            f"probabilities_a and probabilities_b must have the same (S, C), got "
            f"{tuple(probabilities_a.shape[1:])} and {tuple(probabilities_b.shape[1:])}."
        )
    dtype = compute_dtype(probabilities_a.dtype)
    with torch.autocast(device_type=probabilities_a.device.type, enabled=False):
        return probabilities_a.flatten(1).to(dtype) @ probabilities_b.flatten(1).to(dtype).T


def segment_clusterings(codes: Tensor, segment_dim: int) -> list[Tensor]:
    """Each segment as a clustering of the N samples into at most `segment_dim` clusters: a list of S
    tensors of shape (N,), the cluster of every sample (its attribute in that segment)."""
    codes = _check_codes("codes", codes, segment_dim)
    return list(codes.long().unbind(dim=1))


def cluster_sizes(codes: Tensor, segment_dim: int) -> Tensor:
    """(S, C) int64: how many samples each segment puts in each of its clusters (attributes)."""
    codes = _check_codes("codes", codes, segment_dim).long()
    sizes = torch.zeros(codes.shape[1], segment_dim, dtype=torch.long, device=codes.device)
    return sizes.scatter_add_(1, codes.T, torch.ones_like(codes.T))
