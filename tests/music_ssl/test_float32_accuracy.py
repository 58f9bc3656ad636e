"""The float32 loss and its terms are as accurate in every implementation as in the reference.

Confident logits (10 to 50 times the unit scale) on views that mostly agree concentrate the joint on few
entries; the sums of P log P then run over chunks of hundreds of thousands of entries, and a sum whose error
grows with its length drifts far from the float64 truth while the reference's stays near float32's
resolution.
"""

import pytest
import torch

from music_ssl import music_loss_terms, triton_kernel

TERMS = ("loss", "inv", "diag", "off")
# Below this relative error a float32 term is as exact as the reference's own at these shapes.
FLOOR = 4e-7


def _confident_views(n: int, dim: int, scale: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    z_a = torch.randn(n, dim, generator=generator, dtype=torch.float64) * scale
    z_b = 0.9 * z_a + 0.1 * scale * torch.randn(n, dim, generator=generator, dtype=torch.float64)
    return z_a, z_b


def _relative_errors(z_a, z_b, segment_dim, implementation) -> dict[str, float]:
    truth = music_loss_terms(z_a, z_b, segment_dim=segment_dim, implementation="reference")
    got = music_loss_terms(z_a.float(), z_b.float(), segment_dim=segment_dim, implementation=implementation)
    errors = {}
    for term in TERMS:
        want = getattr(truth, term)
        errors[term] = (abs(getattr(got, term).double() - want) / want.abs().clamp_min(1e-12)).item()
    return errors


def _check(z_a, z_b, segment_dim, implementation):
    reference = _relative_errors(z_a, z_b, segment_dim, "reference")
    got = _relative_errors(z_a, z_b, segment_dim, implementation)
    for term in TERMS:
        bound = max(4 * reference[term], FLOOR)
        assert got[term] <= bound, f"{implementation} {term}: {got[term]:.1e} > {bound:.1e} ({reference})"


@pytest.mark.parametrize(
    ("segment_dim", "num_segments", "scale"),
    [
        (2, 64, 50.0),
        (32, 16, 10.0),
        (32, 16, 20.0),
        (128, 8, 20.0),
        (512, 4, 20.0),
        (512, 2, 50.0),
        (1024, 2, 50.0),
    ],
)
def test_chunked_float32_terms_are_as_accurate_as_the_reference(segment_dim, num_segments, scale):
    z_a, z_b = _confident_views(256, segment_dim * num_segments, scale, seed=segment_dim)
    _check(z_a, z_b, segment_dim, "chunked")


@pytest.mark.skipif(
    not triton_kernel.is_available("cpu"), reason="needs Triton's interpreter (TRITON_INTERPRET=1)"
)
@pytest.mark.parametrize(
    ("segment_dim", "num_segments", "scale"), [(2, 32, 50.0), (32, 8, 20.0), (128, 2, 20.0)]
)
def test_triton_float32_terms_are_as_accurate_as_the_reference(segment_dim, num_segments, scale):
    z_a, z_b = _confident_views(64, segment_dim * num_segments, scale, seed=segment_dim)
    _check(z_a, z_b, segment_dim, "triton")
