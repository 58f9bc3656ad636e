"""The fused custom operator passes torch.library.opcheck: its schema, fake (shape) implementation,
autograd registration and behaviour under torch.compile's tracing agree with what it computes."""

import pytest
import torch

import music_ssl.fused  # noqa: F401  (registers music_ssl::music_loss)


@pytest.mark.parametrize("compute_grad", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_opcheck(compute_grad, dtype):
    generator = torch.Generator().manual_seed(0)
    z_a, z_b = (
        torch.randn(12, 32, generator=generator).to(dtype).requires_grad_(compute_grad) for _ in range(2)
    )
    args = (z_a, z_b, 8, 0.5, 1.0, 1.0, 1.0, False, "chunked", False, compute_grad)
    torch.library.opcheck(torch.ops.music_ssl.music_loss.default, args)
