"""The fused custom operator passes torch.library.opcheck: its schema, fake (shape) implementation,
autograd registration and behaviour under torch.compile's tracing agree with what it computes."""

import pytest
import torch

import music_ssl.fused  # noqa: F401  (registers music_ssl::music_loss)
from music_ssl.options import MUSICOptions


@pytest.mark.parametrize("compute_grad", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_opcheck(compute_grad, dtype):
    generator = torch.Generator().manual_seed(0)
    z_a, z_b = (
        torch.randn(12, 32, generator=generator).to(dtype).requires_grad_(compute_grad) for _ in range(2)
    )
    math = MUSICOptions(8, 0.5, gather_distributed=False, implementation="chunked").math(compute_grad)
    args = (z_a, z_b, *math, "chunked", False, compute_grad)
    torch.library.opcheck(torch.ops.music_ssl.music_loss.default, args)
