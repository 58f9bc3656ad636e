"""MUSIC's codes as a feature: packing into bytes, agreement between codes, segments as clusterings."""

import itertools

import pytest
import torch

from music_ssl import (
    bits_per_attribute,
    cluster_sizes,
    code_agreement,
    pack_codes,
    segment_clusterings,
    segment_codes,
    segment_probabilities,
    soft_agreement,
    unpack_codes,
)


def _codes(n, s, c, seed=0):
    return torch.randint(0, c, (n, s), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("segment_dim", "bits"), [(2, 1), (3, 2), (8, 3), (9, 4), (32, 5), (80, 7), (1024, 10)]
)
def test_bits_per_attribute(segment_dim, bits):
    assert bits_per_attribute(segment_dim) == bits


@pytest.mark.parametrize(
    ("num_segments", "segment_dim"), itertools.product([1, 3, 8, 102], [2, 5, 32, 80, 1024])
)
def test_packing_round_trips_in_the_fewest_bytes(num_segments, segment_dim):
    codes = _codes(17, num_segments, segment_dim, seed=num_segments * segment_dim)
    packed = pack_codes(codes, segment_dim)
    assert packed.dtype == torch.uint8
    assert packed.shape == (17, -(-num_segments * bits_per_attribute(segment_dim) // 8))
    torch.testing.assert_close(unpack_codes(packed, num_segments, segment_dim), codes)


def test_packed_bit_layout_is_little_endian_per_attribute():
    # attributes 1, 2, 3 of C = 4 (2 bits each): bit string 10 01 11 -> byte 0b00111001
    packed = pack_codes(torch.tensor([[1, 2, 3]]), segment_dim=4)
    assert packed.tolist() == [[0b00111001]]


def test_agreement_counts_equal_segments():
    codes_a, codes_b = _codes(23, 6, 4, seed=1), _codes(11, 6, 4, seed=2)
    want = torch.tensor([[int((a == b).sum()) for b in codes_b] for a in codes_a])
    for block_rows in (1, 5, 1024):
        torch.testing.assert_close(code_agreement(codes_a, codes_b, 4, block_rows=block_rows), want)
    assert (code_agreement(codes_a, codes_a, 4).diagonal() == 6).all()


def test_agreement_is_exact_under_autocast_and_for_many_segments():
    # 301 agreeing segments: a count that bfloat16 cannot hold (it rounds to 300 or 302)
    codes = _codes(3, 301, 2, seed=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        agreement = code_agreement(codes, codes, 2)
    assert agreement.dtype == torch.long
    assert (agreement.diagonal() == 301).all()
    want = torch.tensor([[int((a == b).sum()) for b in codes] for a in codes])
    assert torch.equal(agreement, want)


def test_soft_agreement_of_hard_codes_is_the_agreement():
    z_a, z_b = torch.randn(9, 48), torch.randn(7, 48)
    hard_a, hard_b = (segment_probabilities(z * 1e4, 8).double() for z in (z_a, z_b))  # one-hot in the limit
    got = soft_agreement(hard_a, hard_b)
    want = code_agreement(segment_codes(z_a, 8), segment_codes(z_b, 8), 8).double()
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    p = segment_probabilities(z_a, 8)
    expected = sum((p[:, s, None, :] * p[None, :, s, :]).sum(-1) for s in range(6))
    torch.testing.assert_close(soft_agreement(p, p), expected)


def test_segments_as_clusterings_and_their_sizes():
    codes = torch.tensor([[0, 2], [1, 2], [0, 0], [0, 1]])
    clusterings = segment_clusterings(codes, 3)
    assert [c.tolist() for c in clusterings] == [[0, 1, 0, 0], [2, 2, 0, 1]]
    assert cluster_sizes(codes, 3).tolist() == [[3, 1, 0], [1, 1, 2]]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: pack_codes(torch.tensor([[0, 4]]), 4), ValueError, r"attributes outside \[0, 4\).*max 4"),
        (lambda: pack_codes(torch.tensor([[0.0, 1.0]]), 4), TypeError, "integer attributes.*torch.float32"),
        (lambda: pack_codes(torch.tensor([0, 1]), 4), ValueError, r"2-D \(N, S\)"),
        (lambda: pack_codes(torch.tensor([[0, 1]]), 1), ValueError, "segment_dim must be >= 2"),
        (lambda: unpack_codes(torch.zeros(2, 3, dtype=torch.uint8), 3, 4), ValueError, "take 1"),
        (lambda: unpack_codes(torch.zeros(2, 1), 3, 4), TypeError, "uint8 tensor"),
        (lambda: code_agreement(_codes(2, 3, 4), _codes(2, 4, 4), 4), ValueError, "same number of segments"),
        (lambda: soft_agreement(torch.rand(2, 3, 4), torch.rand(2, 3, 5)), ValueError, r"same \(S, C\)"),
    ],
)
def test_bad_input_is_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
