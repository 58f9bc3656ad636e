"""Every implementation works where only shapes propagate: the meta device and FakeTensorMode (what
torch.compile, torch.export and model-size tools run the loss on)."""

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from music_ssl import music_loss, music_loss_terms
from tests.music_ssl import implementations_under_test

IMPLEMENTATIONS = implementations_under_test.params(interpreted=False, auto=True)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_meta_device(implementation, dtype):
    z_a, z_b = (torch.randn(8, 64, device="meta", dtype=dtype, requires_grad=True) for _ in range(2))
    out = music_loss_terms(z_a, z_b, segment_dim=16, implementation=implementation)
    assert out.loss.device.type == "meta" and out.loss.shape == ()
    assert out.loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert out.attribute_entropy.shape == out.confidence.shape == (4,)
    (grad_a,) = torch.autograd.grad(out.loss, z_a)
    assert grad_a.shape == (8, 64) and grad_a.dtype == dtype and grad_a.device.type == "meta"


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_fake_tensor_mode(implementation):
    with FakeTensorMode():
        z_a, z_b = (torch.randn(8, 64, requires_grad=True) for _ in range(2))
        loss = music_loss(z_a, z_b, segment_dim=16, implementation=implementation)
        (grad_a,) = torch.autograd.grad(loss, z_a)
    assert loss.shape == () and grad_a.shape == (8, 64)
