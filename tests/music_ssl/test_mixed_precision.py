"""16-bit inputs with loss scaling: every implementation's gradients equal the reference's.

Mixed-precision training hands the loss float16 or bfloat16 projections and multiplies the loss by a
scale (GradScaler starts at 2**16) so that small gradients survive the cast back to 16 bits. The loss
computes in float32 and keeps its gradient in float32 until it meets the incoming (scaled) gradient,
then casts once, as autograd does for the reference: the two agree to within one rounding of the
output dtype, underflow disappears as the scale grows, and nothing overflows where the reference does
not.
"""

import pytest
import torch
from torch import nn

from music_ssl import MUSICLoss, music_loss, triton_kernel
from tests.music_ssl import implementations_under_test

SCALES = [2.0**k for k in range(17)]
interpreter = pytest.mark.skipif(
    not triton_kernel.is_available("cpu"),
    reason=f"needs Triton's interpreter on CPU tensors: {triton_kernel.unavailable_reason('cpu')}",
)
IMPLEMENTATIONS = implementations_under_test.params(fused_only=True)


def _inputs(n, d, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [(2.0 * torch.randn(n, d, generator=generator)).to(dtype) for _ in range(2)]


def _scaled_gradients(z_a, z_b, implementation, segment_dim):
    """{scale: input gradients of scale * loss} for every scale, from one forward pass."""
    z = [x.clone().requires_grad_() for x in (z_a, z_b)]
    loss = music_loss(*z, segment_dim=segment_dim, temperature=0.5, implementation=implementation)
    return {scale: torch.autograd.grad(loss * scale, z, retain_graph=True) for scale in SCALES}


def _assert_one_rounding_apart(got, want, dtype, scale):
    """Elementwise: a rounding of `dtype` apart (subnormals included), plus float32 noise of the largest
    entry (the two compute the float32 gradient in different orders)."""
    info = torch.finfo(dtype)
    assert got.dtype == dtype
    assert torch.isfinite(got).all() == torch.isfinite(want).all()
    got, want = got.double(), want.double()
    float32_noise = 64 * torch.finfo(torch.float32).eps * want.abs().max()
    bound = 2 * info.eps * want.abs() + 2 * info.smallest_normal * info.eps + float32_noise
    excess = (got - want).abs() - bound
    assert excess.max().item() <= 0, (
        f"scale {scale}: {(excess > 0).sum().item()} entries differ by more than a rounding"
    )


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_scaled_gradients_match_the_reference_at_every_scale(implementation, dtype):
    # C = 32 over 4 segments with N = 96: many dL/dz entries are far below float16's normal range.
    z_a, z_b = _inputs(96, 128, dtype)
    want = _scaled_gradients(z_a, z_b, "reference", 32)
    got = _scaled_gradients(z_a, z_b, implementation, 32)
    zeros = []
    for scale in SCALES:
        for g, w in zip(got[scale], want[scale], strict=True):
            assert torch.isfinite(w).all(), f"the reference overflows at scale {scale}"
            _assert_one_rounding_apart(g, w, dtype, scale)
        zeros.append((got[scale][0] == 0).float().mean().item())
    if dtype == torch.float16:
        # Scaling does its job: entries lost to underflow at scale 1 come back.
        assert zeros[0] > 0.01
        assert zeros[-1] < zeros[0] / 10


def _train(implementation, steps=4):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 64))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    # At the authors' temperature: four float16 steps at lr 0.5 amplify rounding enough that a sharper
    # softmax (the default 0.25) leaves single parameters one float16 step apart between implementations.
    loss_fn = MUSICLoss(segment_dim=16, temperature=1.0, implementation=implementation)
    generator = torch.Generator().manual_seed(4)
    losses = []
    for _ in range(steps):
        x_a, x_b = torch.randn(2, 48, 16, generator=generator)
        with torch.autocast("cpu", dtype=torch.float16):
            z_a, z_b = model(x_a), model(x_b)
            assert z_a.dtype == torch.float16
            loss = loss_fn(z_a, z_b)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
    return model, scaler.get_scale(), losses


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_grad_scaler_training_matches_the_reference(implementation):
    want_model, want_scale, want_losses = _train("reference")
    got_model, got_scale, got_losses = _train(implementation)
    assert got_scale == want_scale == 2.0**16  # no step was skipped for an inf gradient
    torch.testing.assert_close(got_losses, want_losses, rtol=1e-4, atol=1e-5)
    for got, want in zip(got_model.parameters(), want_model.parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-5)
