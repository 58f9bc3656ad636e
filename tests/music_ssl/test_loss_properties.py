"""The properties docs/math.md requires of every implementation."""

import math

import pytest
import torch

from music_ssl import music_loss, music_loss_terms
from tests.music_ssl import implementations_under_test

CPU_IMPLEMENTATIONS = implementations_under_test.params(interpreted=False)


def _one_hot_logits(codes: torch.Tensor, segment_dim: int, margin: float = 60.0) -> torch.Tensor:
    """(N, S) attribute indices -> (N, S * C) logits whose softmax is one-hot up to exp(-margin)."""
    n, s = codes.shape
    logits = torch.zeros(n, s, segment_dim, dtype=torch.float64)
    logits.scatter_(2, codes.unsqueeze(-1), margin)
    return logits.reshape(n, s * segment_dim)


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
def test_complete_collapse_gives_zero(implementation):
    z = _one_hot_logits(torch.full((32, 4), 2), segment_dim=5)
    out = music_loss_terms(z, z.clone(), segment_dim=5, implementation=implementation)
    for term in (out.inv, out.diag, out.off, out.loss):
        assert abs(term.item()) < 1e-12
    assert torch.allclose(out.attribute_entropy, torch.zeros(4, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(out.confidence, torch.ones(4, dtype=torch.float64))


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
def test_hard_uniform_independent_code_reaches_global_minimum(implementation):
    # C = 5 is prime: codes a*i + b*j mod C with pairwise independent (a, b) make every pair of
    # segments uniform over C x C on the N = C^2 grid of (i, j).
    c = 5
    i, j = torch.meshgrid(torch.arange(c), torch.arange(c), indexing="ij")
    i, j = i.flatten(), j.flatten()
    codes = torch.stack([i, j, (i + j) % c, (i + 2 * j) % c], dim=1)
    z = _one_hot_logits(codes.repeat(2, 1), segment_dim=c)
    out = music_loss_terms(z, z.clone(), segment_dim=c, implementation=implementation)
    assert out.loss.item() == pytest.approx(-3 * math.log(c), abs=1e-9)
    assert out.diag.item() == pytest.approx(-math.log(c), abs=1e-9)
    assert out.off.item() == pytest.approx(-2 * math.log(c), abs=1e-9)
    assert out.inv.item() == pytest.approx(0.0, abs=1e-9)
    torch.testing.assert_close(out.attribute_entropy, torch.full((4,), math.log(c), dtype=torch.float64))


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
def test_random_inputs_stay_above_global_minimum(implementation):
    for scale in (0.1, 1.0, 10.0):
        z_a, z_b = scale * torch.randn(2, 64, 48, dtype=torch.float64)
        loss = music_loss(z_a, z_b, segment_dim=6, implementation=implementation)
        assert loss.item() > -3 * math.log(6)


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
def test_symmetric_in_the_views(implementation):
    z_a, z_b = torch.randn(2, 29, 72, dtype=torch.float64)
    ab = music_loss_terms(z_a, z_b, segment_dim=9, implementation=implementation)
    ba = music_loss_terms(z_b, z_a, segment_dim=9, implementation=implementation)
    for x, y in zip(ab, ba, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
def test_invariant_to_permuting_the_batch(implementation):
    z_a, z_b = torch.randn(2, 41, 64, dtype=torch.float64)
    perm = torch.randperm(41)
    loss = music_loss(z_a, z_b, segment_dim=8, implementation=implementation)
    permuted = music_loss(z_a[perm], z_b[perm], segment_dim=8, implementation=implementation)
    torch.testing.assert_close(loss, permuted, rtol=1e-12, atol=1e-12)
    mismatched = music_loss(z_a[perm], z_b, segment_dim=8, implementation=implementation)
    assert not torch.allclose(loss, mismatched)


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
def test_gradient_descent_lowers_the_loss(implementation):
    z_a = torch.randn(64, 64, requires_grad=True)
    z_b = torch.randn(64, 64, requires_grad=True)
    optimizer = torch.optim.SGD([z_a, z_b], lr=20.0)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = music_loss(z_a, z_b, segment_dim=8, implementation=implementation)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.2
    assert all(later <= earlier + 1e-6 for earlier, later in zip(losses, losses[1:], strict=False))


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
@pytest.mark.parametrize("magnitude", [60.0, 1e3, 1e30])
def test_saturated_logits_give_finite_loss_and_gradients(implementation, magnitude):
    signs = torch.randint(0, 2, (2, 16, 32)).float() * 2 - 1
    z_a, z_b = (magnitude * signs).requires_grad_().unbind(0)
    z_a.retain_grad()
    loss = music_loss(z_a, z_b, segment_dim=8, implementation=implementation)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(z_a.grad).all()


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
def test_collapse_with_saturated_logits_has_finite_gradients(implementation):
    z = torch.zeros(16, 32)
    z[:, ::8] = 100.0
    z_a, z_b = z.clone().requires_grad_(), z.clone().requires_grad_()
    loss = music_loss(z_a, z_b, segment_dim=8, implementation=implementation)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z_a.grad).all() and torch.isfinite(z_b.grad).all()


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(implementation, dtype):
    z_a = torch.randn(32, 64).to(dtype).requires_grad_()
    z_b = torch.randn(32, 64).to(dtype).requires_grad_()
    loss = music_loss(z_a, z_b, segment_dim=8, implementation=implementation)
    loss.backward()
    assert loss.dtype == torch.float32
    assert z_a.grad.dtype == dtype and torch.isfinite(z_a.grad.float()).all()
    expected = music_loss(
        z_a.detach().double(), z_b.detach().double(), segment_dim=8, implementation="reference"
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
def test_autocast_does_not_lower_the_precision(implementation):
    model = torch.nn.Linear(16, 64)
    x_a, x_b = torch.randn(2, 32, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z_a, z_b = model(x_a), model(x_b)
        assert z_a.dtype == torch.bfloat16
        loss = music_loss(z_a, z_b, segment_dim=8, implementation=implementation)
    loss.backward()
    assert loss.dtype == torch.float32
    expected = music_loss(
        z_a.detach().double(), z_b.detach().double(), segment_dim=8, implementation="reference"
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.isfinite(model.weight.grad).all()
