"""Gradient penalties differentiate the loss's gradient: exact with the reference, refused by the fused
paths (whose backward is not itself differentiable), never a silent wrong gradient."""

import pytest
import torch
from torch import nn

from music_ssl import MUSICLoss, triton_kernel
from tests.music_ssl import implementations_under_test

interpreter = pytest.mark.skipif(
    not triton_kernel.is_available("cpu"),
    reason=f"needs Triton's interpreter on CPU tensors: {triton_kernel.unavailable_reason('cpu')}",
)


def _penalised_step(implementation):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 64))
    x_a, x_b = torch.randn(2, 24, 16)
    loss = MUSICLoss(segment_dim=16, implementation=implementation)(model(x_a), model(x_b))
    grads = torch.autograd.grad(loss, list(model.parameters()), create_graph=True)
    penalty = sum(g.pow(2).sum() for g in grads)
    (loss + penalty).backward()
    return [p.grad for p in model.parameters()]


def test_reference_double_backward_matches_finite_differences():
    torch.manual_seed(0)
    z_a, z_b = (torch.randn(12, 32, dtype=torch.float64, requires_grad=True) for _ in range(2))

    def penalised(z_a, z_b):
        loss = MUSICLoss(segment_dim=8, implementation="reference")(z_a, z_b)
        grad_a, grad_b = torch.autograd.grad(loss, (z_a, z_b), create_graph=True)
        return loss + grad_a.pow(2).sum() + grad_b.pow(2).sum()

    assert torch.autograd.gradcheck(penalised, (z_a, z_b))


@pytest.mark.parametrize("implementation", implementations_under_test.params(fused_only=True, auto=True))
def test_fused_paths_refuse_double_backward(implementation):
    with pytest.raises(RuntimeError, match="implementation='reference'"):
        _penalised_step(implementation)


@pytest.mark.parametrize("implementation", implementations_under_test.params(fused_only=True))
def test_fused_first_order_gradient_unchanged_by_create_graph_elsewhere(implementation):
    """A backward without create_graph is unaffected: same gradients as the reference."""
    torch.manual_seed(0)
    z = torch.randn(2, 24, 64)
    grads = {}
    for name in ("reference", implementation):
        z_a, z_b = (x.clone().requires_grad_() for x in z)
        MUSICLoss(segment_dim=16, implementation=name)(z_a, z_b).backward()
        grads[name] = (z_a.grad, z_b.grad)
    for got, want in zip(grads[implementation], grads["reference"], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)
