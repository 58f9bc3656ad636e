"""Every fused implementation's custom operator passes torch.library.opcheck: its schema, fake (shape)
implementation, autograd registration and behaviour under torch.compile's tracing agree with what it
computes."""

import pytest
import torch

from music_ssl import implementations
from music_ssl.options import MUSICOptions
from tests.music_ssl import implementations_under_test


@pytest.mark.parametrize("implementation", implementations_under_test.params(fused_only=True))
@pytest.mark.parametrize("terms", [True, False])
@pytest.mark.parametrize("compute_grad", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("num_views,num_global", [(2, 2), (4, 2)], ids=["two-views", "multi-crop"])
def test_opcheck(implementation, terms, compute_grad, dtype, num_views, num_global):
    entry = implementations.REGISTRY[implementation]
    if entry.dtypes is not None and dtype not in entry.dtypes:
        pytest.skip(f"{implementation} hands {dtype} inputs to {entry.fallback}, whose operator is checked")
    generator = torch.Generator().manual_seed(0)
    views = [
        torch.randn(12, 32, generator=generator).to(dtype).requires_grad_(compute_grad)
        for _ in range(num_views)
    ]
    o = MUSICOptions(8, 0.5, gather_distributed=False, implementation=implementation)
    weights = (o.diag_weight, o.off_weight, o.inv_weight)
    args = (
        views,
        list(o.rank_settings),
        o.group_key,
        compute_grad,
        num_global,
        o.segment_dim,
        o.temperature,
        *weights,
    )
    torch.library.opcheck(entry.loss.operator, (*args, False, compute_grad, terms))
