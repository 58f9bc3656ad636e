"""Several views: every implementation against the float64 spec of docs/math.md (the mean of the two-view
loss over the pairs that hold a global view), the two-view call as its special case, and the checks."""

import itertools

import pytest
import torch

from music_ssl import MUSICLoss, music_loss, music_loss_terms, triton_kernel
from tests.music_ssl import implementations_under_test
from tests.music_ssl.spec import spec_loss, spec_multi_view_loss, spec_multi_view_terms

CPU_IMPLEMENTATIONS = implementations_under_test.params(interpreted=False)
# Every view count from 2 to 8 with the global counts 1, 2 and all of them.
CASES = sorted({(v, g) for v in range(2, 9) for g in (1, 2, v) if g <= v})


def _views(num_views, n=13, d=24, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [
        (2.0 * torch.randn(n, d, generator=generator, dtype=dtype)).requires_grad_() for _ in range(num_views)
    ]


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
@pytest.mark.parametrize("num_views,num_global", CASES, ids=[f"V{v}-G{g}" for v, g in CASES])
def test_every_implementation_matches_the_spec(implementation, num_views, num_global):
    views = _views(num_views, seed=num_views * 10 + num_global)
    expected = spec_multi_view_loss(views, num_global, 6, temperature=0.7)
    expected_grads = torch.autograd.grad(expected, views)
    out = music_loss_terms(
        views, segment_dim=6, temperature=0.7, num_global=num_global, implementation=implementation
    )
    grads = torch.autograd.grad(out.loss, views)
    torch.testing.assert_close(out.loss, expected, rtol=1e-10, atol=1e-12)
    for got, want in zip(
        (out.inv, out.diag, out.off), spec_multi_view_terms(views, num_global, 6, 0.7), strict=True
    ):
        torch.testing.assert_close(got, want.detach(), rtol=1e-10, atol=1e-12)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-12)


@pytest.mark.skipif(
    not triton_kernel.is_available("cpu"),
    reason=f"needs Triton's interpreter on CPU tensors: {triton_kernel.unavailable_reason('cpu')}",
)
@pytest.mark.parametrize("num_views,num_global", [(3, 1), (4, 2)])
def test_the_triton_kernel_matches_the_reference(num_views, num_global):
    views = _views(num_views, n=9, d=16, dtype=torch.float32)
    losses, grads = [], []
    for implementation in ("reference", "triton"):
        loss = music_loss(views, segment_dim=8, num_global=num_global, implementation=implementation)
        losses.append(loss)
        grads.append(torch.autograd.grad(loss, views))
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    for got, want in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("implementation", implementations_under_test.params(interpreted=False, auto=True))
def test_two_views_in_a_list_are_the_two_view_loss(implementation):
    z_a, z_b = _views(2)
    loss_fn = MUSICLoss(segment_dim=8, implementation=implementation)
    pair = loss_fn(z_a, z_b)
    for num_global in (None, 1, 2):
        torch.testing.assert_close(loss_fn([z_a, z_b], num_global=num_global), pair, rtol=0, atol=0)
    torch.testing.assert_close(pair, spec_loss(z_a, z_b, 8), rtol=1e-10, atol=1e-12)


def test_local_views_are_compared_with_global_views_only():
    """Local-local pairs do not enter: changing how two local views agree changes nothing that a pair
    with a global view does not see."""
    views = _views(4)
    loss = music_loss(views, segment_dim=8, num_global=2)
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]
    mean = sum(music_loss(views[i], views[j], segment_dim=8) for i, j in pairs) / len(pairs)
    torch.testing.assert_close(loss, mean, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("implementation", CPU_IMPLEMENTATIONS)
def test_the_order_of_local_views_and_of_global_views_does_not_matter(implementation):
    views = _views(5)
    loss = music_loss(views, segment_dim=8, num_global=2, implementation=implementation)
    for order in itertools.islice(itertools.permutations(range(2, 5)), 1, None):
        shuffled = [views[1], views[0], *(views[k] for k in order)]
        other = music_loss(shuffled, segment_dim=8, num_global=2, implementation=implementation)
        torch.testing.assert_close(other, loss, rtol=1e-12, atol=1e-12)


def test_diagnostics_average_every_view():
    views = _views(3)
    loss_fn = MUSICLoss(segment_dim=8)
    out = loss_fn.terms(views, num_global=3)
    p = torch.stack(
        [torch.softmax(z.detach().reshape(13, 3, 8) / loss_fn.temperature, dim=-1) for z in views]
    )
    marginal = p.mean(dim=(0, 1))
    torch.testing.assert_close(out.attribute_entropy, -(marginal * marginal.log()).sum(-1))
    torch.testing.assert_close(out.confidence, p.amax(-1).mean(dim=(0, 1)))
    share = torch.nn.functional.one_hot(p.argmax(-1), 8).to(p.dtype).mean(dim=(0, 1))
    torch.testing.assert_close(out.code_entropy, -torch.special.xlogy(share, share).sum(-1))


def _z(n=8, d=32, dtype=torch.float32):
    return torch.randn(n, d, dtype=dtype)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda f: f([_z()], num_global=1), ValueError, r"at least two \(N, D\) projections, got 1"),
        (lambda f: f([], num_global=1), ValueError, "at least two"),
        (
            lambda f: f([_z(), _z(), _z()]),
            ValueError,
            r"num_global must be given with more than two views \(got 3\)",
        ),
        (
            lambda f: f([_z(), _z(), _z()], num_global=0),
            ValueError,
            r"num_global must be from 1 to the number of views \(3\), got 0",
        ),
        (lambda f: f([_z(), _z()], num_global=3), ValueError, r"from 1 to the number of views \(2\), got 3"),
        (
            lambda f: f([_z(), _z(), _z()], num_global=2.0),
            TypeError,
            "num_global must be an int .* got 2.0 of type float",
        ),
        (lambda f: f([_z(), _z(), _z()], num_global=True), TypeError, "num_global must be an int"),
        (
            lambda f: f([_z(), _z(), _z(d=64)], num_global=2),
            ValueError,
            r"views\[0\] and views\[2\] must have the same shape, got \(8, 32\) and \(8, 64\)",
        ),
        (
            lambda f: f([_z(), _z(n=4), _z()], num_global=2),
            ValueError,
            r"views\[0\] and views\[1\] must have the same shape",
        ),
        (
            lambda f: f([_z(), _z(), _z(dtype=torch.float64)], num_global=2),
            ValueError,
            r"views\[0\] and views\[2\] must have the same dtype, got torch.float32 and torch.float64",
        ),
        (
            lambda f: f([_z(), _z(), _z().to("meta")], num_global=2),
            ValueError,
            r"views\[0\] and views\[2\] must have the same device, got cpu and meta",
        ),
        (lambda f: f([_z(), "x"], num_global=2), TypeError, r"views\[1\] must be a torch.Tensor"),
        (lambda f: f([_z(d=36), _z(d=36)], num_global=2), ValueError, r"divisible by segment_dim \(8\)"),
        (lambda f: f(_z()), TypeError, "z_b is missing"),
    ],
)
def test_bad_views(call, error, match):
    for form in (
        MUSICLoss(segment_dim=8),
        MUSICLoss(segment_dim=8).terms,
        lambda *args, **kwargs: music_loss(*args, segment_dim=8, **kwargs),
        lambda *args, **kwargs: music_loss_terms(*args, segment_dim=8, **kwargs),
    ):
        with pytest.raises(error, match=match):
            call(form)


def test_a_third_view_passed_as_an_argument_points_to_the_list():
    with pytest.raises(TypeError, match=r"more than two views go in one list.*num_global=2"):
        MUSICLoss(segment_dim=8)(_z(), _z(), _z())
