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


@pytest.mark.parametrize(
    "call",
    [
        lambda c: code_agreement(_codes(2, 3, 4), _codes(2, 3, 4), c),
        lambda c: cluster_sizes(_codes(2, 3, 4), c),
        lambda c: segment_clusterings(_codes(2, 3, 4), c),
    ],
    ids=["code_agreement", "cluster_sizes", "segment_clusterings"],
)
def test_every_helper_checks_segment_dim_as_pack_codes_does(call):
    with pytest.raises(TypeError, match="segment_dim must be an int >= 2, got 4.0 of type float"):
        call(4.0)
    with pytest.raises(ValueError, match="segment_dim must be >= 2"):
        call(1)


def test_an_empty_batch_of_codes_works_everywhere():
    """An empty shard or query batch: zero rows in, zero rows out, never a crash inside reshape."""
    empty = torch.zeros(0, 5, dtype=torch.long)
    packed = pack_codes(empty, 32)
    assert packed.shape == (0, 4) and packed.dtype == torch.uint8
    assert unpack_codes(packed, 5, 32).shape == (0, 5)
    assert code_agreement(empty, _codes(3, 5, 32), 32).shape == (0, 3)
    assert code_agreement(_codes(3, 5, 32), empty, 32).shape == (3, 0)
    assert cluster_sizes(empty, 32).sum() == 0 and cluster_sizes(empty, 32).shape == (5, 32)
    assert [c.shape for c in segment_clusterings(empty, 32)] == [(0,)] * 5
    assert soft_agreement(torch.rand(0, 5, 32), torch.rand(3, 5, 32)).shape == (0, 3)


def test_soft_agreement_is_float32_under_autocast():
    """bfloat16 scores would come in steps of 1/8 near 4 and tie neighbours; the scores are float32."""
    torch.manual_seed(0)
    probabilities = segment_probabilities(torch.randn(64, 8 * 16), 16)
    want = soft_agreement(probabilities, probabilities)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = soft_agreement(probabilities, probabilities)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)
