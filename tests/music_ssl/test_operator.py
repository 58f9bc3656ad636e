"""Every fused implementation's custom operator passes torch.library.opcheck: its schema, fake (shape)
implementation, autograd registration and behaviour under torch.compile's tracing agree with what it
computes."""

import pytest
import torch

from music_ssl import implementations
from music_ssl.options import MUSICOptions
from tests.music_ssl import backends


@pytest.mark.parametrize("implementation", backends.params(fused_only=True))
@pytest.mark.parametrize("terms", [True, False])
@pytest.mark.parametrize("compute_grad", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_opcheck(implementation, terms, compute_grad, dtype):
    entry = implementations.REGISTRY[implementation]
    if entry.dtypes is not None and dtype not in entry.dtypes:
        pytest.skip(f"{implementation} hands {dtype} inputs to {entry.fallback}, whose operator is checked")
    generator = torch.Generator().manual_seed(0)
    z_a, z_b = (
        torch.randn(12, 32, generator=generator).to(dtype).requires_grad_(compute_grad) for _ in range(2)
    )
    o = MUSICOptions(8, 0.5, gather_distributed=False, implementation=implementation)
    flat = (o.segment_dim, o.temperature, o.diag_weight, o.off_weight, o.inv_weight, o.agreement)
    args = (z_a, z_b, *flat, o.gather_index, compute_grad, o.group_name, False, compute_grad, terms)
    torch.library.opcheck(entry.loss.operator, args)
