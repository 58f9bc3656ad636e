"""Forward-mode AD and torch.func transforms: the reference gives the true derivatives, the fused
implementations refuse with an error that names the reference, never a zero or missing tangent."""

import pytest
import torch
import torch.autograd.forward_ad as forward_ad

from music_ssl import MUSICLoss, music_loss
from tests.music_ssl import implementations_under_test

FUSED = implementations_under_test.params(fused_only=True, auto=True, interpreted=False)


def _inputs():
    generator = torch.Generator().manual_seed(0)
    z_a, z_b, direction = (torch.randn(8, 32, generator=generator, dtype=torch.float64) for _ in range(3))
    return z_a, z_b, direction


def _loss(implementation, z_b):
    return lambda z_a: music_loss(z_a, z_b, segment_dim=8, implementation=implementation)


def _central_difference(function, z_a, direction, step=1e-6):
    return (function(z_a + step * direction) - function(z_a - step * direction)) / (2 * step)


def test_reference_jvp_is_the_directional_derivative():
    z_a, z_b, direction = _inputs()
    function = _loss("reference", z_b)
    _, tangent = torch.func.jvp(function, (z_a,), (direction,))
    torch.testing.assert_close(tangent, _central_difference(function, z_a, direction), rtol=1e-6, atol=1e-9)
    with forward_ad.dual_level():
        dual = forward_ad.make_dual(z_a, direction)
        torch.testing.assert_close(forward_ad.unpack_dual(function(dual)).tangent, tangent)


def test_reference_func_grad_equals_autograd():
    z_a, z_b, _ = _inputs()
    leaf = z_a.clone().requires_grad_()
    (want,) = torch.autograd.grad(_loss("chunked", z_b)(leaf), leaf)
    torch.testing.assert_close(torch.func.grad(_loss("reference", z_b))(z_a), want)


@pytest.mark.parametrize("implementation", FUSED)
def test_fused_paths_refuse_forward_ad_and_func_transforms(implementation):
    z_a, z_b, direction = _inputs()
    function = _loss(implementation, z_b)
    message = r"Forward-mode AD and torch.func transforms.*implementation='reference'"
    with pytest.raises(RuntimeError, match=message):
        torch.func.jvp(function, (z_a,), (direction,))
    with pytest.raises(RuntimeError, match=message):
        torch.func.grad(function)(z_a)
    pairs = lambda a, b: music_loss(a, b, segment_dim=8, implementation=implementation)  # noqa: E731
    with pytest.raises(RuntimeError, match=message):
        torch.func.vmap(pairs)(z_a.reshape(2, 4, 32), z_b.reshape(2, 4, 32))
    with forward_ad.dual_level(), pytest.raises(RuntimeError, match=message):
        function(forward_ad.make_dual(z_a, direction))
    with forward_ad.dual_level(), pytest.raises(RuntimeError, match=message):
        MUSICLoss(segment_dim=8, implementation=implementation)(z_b, forward_ad.make_dual(z_a, direction))
