"""Every implementation against the float64 spec: values, terms and gradients."""

import pytest
import torch

from music_ssl import MUSICLoss, chunked, music_loss, music_loss_terms
from tests.music_ssl import implementations_under_test
from tests.music_ssl.spec import spec_loss, spec_terms

CPU_IMPLEMENTATIONS = implementations_under_test.params(interpreted=False)
# (N, D, C): batch and dimensions that are no multiple of any chunk size, one segment, many segments.
SHAPES = [(2, 4, 2), (7, 12, 3), (37, 96, 8), (33, 130, 13), (64, 1024, 32), (5, 40, 40)]


def _inputs(n, d, dtype=torch.float64, scale=2.0):
    z_a = (scale * torch.randn(n, d, dtype=dtype)).requires_grad_()
    z_b = (scale * torch.randn(n, d, dtype=dtype)).requires_grad_()
    return z_a, z_b


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
@pytest.mark.parametrize("n,d,c", SHAPES)
def test_matches_spec_values_and_gradients(implementation, n, d, c):
    z_a, z_b = _inputs(n, d)
    off_weight = 1.0 if d // c > 1 else 0.0
    expected = spec_loss(z_a, z_b, c, off_weight=off_weight)
    expected_grads = torch.autograd.grad(expected, (z_a, z_b))
    out = music_loss_terms(z_a, z_b, segment_dim=c, off_weight=off_weight, implementation=implementation)
    grads = torch.autograd.grad(out.loss, (z_a, z_b))
    assert out.loss.dtype == torch.float64
    torch.testing.assert_close(out.loss, expected, rtol=1e-10, atol=1e-12)
    inv, diag, off = spec_terms(z_a, z_b, c)
    torch.testing.assert_close(out.inv, inv.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.diag, diag.detach(), rtol=1e-10, atol=1e-12)
    if d // c > 1:
        torch.testing.assert_close(out.off, off.detach(), rtol=1e-10, atol=1e-12)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
@pytest.mark.parametrize("temperature", [0.1, 0.5, 2.0])
@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0), (0.5, 2.0, 0.0), (0.0, 0.3, 1.5), (2.0, 0.0, 0.7)])
def test_temperatures_and_weights(implementation, temperature, weights):
    z_a, z_b = _inputs(19, 60)
    diag_w, off_w, inv_w = weights
    kwargs = dict(temperature=temperature, diag_weight=diag_w, off_weight=off_w, inv_weight=inv_w)
    expected = spec_loss(z_a, z_b, 6, **kwargs)
    expected_grads = torch.autograd.grad(expected, (z_a, z_b))
    loss = music_loss(z_a, z_b, segment_dim=6, implementation=implementation, **kwargs)
    grads = torch.autograd.grad(loss, (z_a, z_b))
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-12)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("chunk_rows", [1, 5, 16, 17, 100, 4096])
def test_chunk_sizes(chunk_rows, monkeypatch):
    """Chunks of one segment, of several, of a size that is not a multiple of the segment, and of all rows."""
    z_a, z_b = _inputs(23, 80)
    expected = spec_loss(z_a, z_b, 8)
    expected_grads = torch.autograd.grad(expected, (z_a, z_b))
    monkeypatch.setattr(chunked, "CHUNK_ROWS", chunk_rows)
    loss = music_loss(z_a, z_b, 8, gather_distributed=False, implementation="chunked")
    grads = torch.autograd.grad(loss, (z_a, z_b))
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-12)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
def test_float32_matches_float64_reference(implementation):
    z_a, z_b = _inputs(256, 1024, dtype=torch.float32)
    loss = music_loss(z_a, z_b, implementation=implementation)
    grads = torch.autograd.grad(loss, (z_a, z_b))
    z64 = [z.detach().double().requires_grad_() for z in (z_a, z_b)]
    expected = music_loss(*z64, implementation="reference")
    expected_grads = torch.autograd.grad(expected, z64)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, expected_grads, strict=True):
        assert got.dtype == torch.float32
        assert (got.double() - want).abs().max() <= 1e-4 * want.abs().max()


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
def test_gradcheck(implementation):
    z_a, z_b = _inputs(6, 12)
    torch.autograd.gradcheck(
        lambda a, b: music_loss(a, b, segment_dim=4, temperature=0.7, implementation=implementation),
        (z_a, z_b),
    )


def test_module_equals_functional_and_auto_is_chunked_on_cpu():
    z_a, z_b = _inputs(16, 64)
    loss_fn = MUSICLoss(segment_dim=16, temperature=0.5, diag_weight=0.7, off_weight=1.3, inv_weight=0.9)
    kwargs = dict(segment_dim=16, temperature=0.5, diag_weight=0.7, off_weight=1.3, inv_weight=0.9)
    assert torch.equal(loss_fn(z_a, z_b), music_loss(z_a, z_b, implementation="chunked", **kwargs))
    assert "segment_dim=16" in repr(loss_fn)


def test_default_loss_on_lightly_sized_projections():
    z_a, z_b = _inputs(8, 8192, dtype=torch.float32)
    loss = MUSICLoss()(z_a, z_b)
    assert loss.shape == () and torch.isfinite(loss)


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
def test_no_grad_path_gives_same_terms(implementation):
    z_a, z_b = _inputs(20, 48)
    with_grad = music_loss_terms(z_a, z_b, segment_dim=8, implementation=implementation)
    with torch.no_grad():
        without = music_loss_terms(z_a, z_b, segment_dim=8, implementation=implementation)
    for got, want in zip(without, with_grad, strict=True):
        torch.testing.assert_close(got, want.detach())
    assert not without.loss.requires_grad


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
def test_terms_and_diagnostics(implementation):
    z_a, z_b = _inputs(50, 40)
    out = music_loss_terms(z_a, z_b, segment_dim=10, implementation=implementation)
    torch.testing.assert_close(out.loss.detach(), out.diag + out.off + out.inv)
    assert out.attribute_entropy.shape == (4,) and out.confidence.shape == (4,)
    assert (out.attribute_entropy >= 0).all() and (
        out.attribute_entropy <= torch.log(torch.tensor(10.0))
    ).all()
    assert (out.confidence >= 0.1).all() and (out.confidence <= 1).all()
    temperature = MUSICLoss().temperature  # the default
    p_a = torch.softmax(z_a.detach().reshape(50, 4, 10) / temperature, -1)
    p_b = torch.softmax(z_b.detach().reshape(50, 4, 10) / temperature, -1)
    marginal = (p_a.mean(0) + p_b.mean(0)) / 2
    torch.testing.assert_close(out.attribute_entropy, -(marginal * marginal.log()).sum(-1))
    # The hard codes' share of each attribute per segment, averaged over the two views.
    share = sum(torch.nn.functional.one_hot(p.argmax(-1), 10).double().mean(0) for p in (p_a, p_b)) / 2
    torch.testing.assert_close(out.code_entropy, -torch.special.xlogy(share, share).sum(-1))
    logged = out.log_dict(prefix="train_")
    assert set(logged) == {
        "train_music_loss",
        "train_music_inv",
        "train_music_diag",
        "train_music_off",
        "train_music_attribute_entropy",
        "train_music_attribute_entropy_min",
        "train_music_confidence",
        "train_music_code_entropy",
        "train_music_code_entropy_min",
    }
    assert all(v.dim() == 0 and not v.requires_grad for v in logged.values())
