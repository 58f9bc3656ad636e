"""A training step compiled with torch.compile(fullgraph=True): the fused loss is one custom operator,
so the compiled step has no graph break and gives the eager step's loss and gradients."""

import functools

import pytest
import torch

from music_ssl import MUSICLoss, MUSICProjectionHead, music_loss
from tests.music_ssl import implementations_under_test


def _step(implementation, compiled):
    torch.manual_seed(0)
    head = MUSICProjectionHead(input_dim=16, hidden_dim=32, output_dim=64, segment_dim=16)
    loss_fn = MUSICLoss(segment_dim=16, implementation=implementation)

    def forward(x_a, x_b):
        return loss_fn(head(x_a), head(x_b))

    if compiled:
        torch._dynamo.reset()
        forward = torch.compile(forward, fullgraph=True)
    x_a, x_b = torch.randn(2, 32, 16)
    losses = []
    for _ in range(2):  # the second call runs the cached compiled graph
        head.zero_grad()
        loss = forward(x_a, x_b)
        loss.backward()
        losses.append(loss.detach())
    return losses, [p.grad.clone() for p in head.parameters()]


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "implementation", implementations_under_test.params(fused_only=True, auto=True, interpreted=False)
)
def test_compiled_step_matches_eager(implementation):
    want_losses, want_grads = _step(implementation, compiled=False)
    got_losses, got_grads = _step(implementation, compiled=True)
    torch.testing.assert_close(got_losses, want_losses, rtol=1e-5, atol=1e-6)
    for got, want in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.timeout(600)
def test_compiled_terms_and_no_grad_evaluation():
    """return_terms and evaluation without gradients also compile without a graph break."""
    loss_fn = MUSICLoss(segment_dim=8, implementation="chunked")
    z_a, z_b = torch.randn(2, 16, 32)

    @torch.compile(fullgraph=True, backend="aot_eager")
    def terms(z_a, z_b):
        with torch.no_grad():
            return loss_fn.terms(z_a, z_b)

    torch._dynamo.reset()
    got = terms(z_a, z_b)
    want = loss_fn.terms(z_a, z_b)
    for name in want._fields:
        torch.testing.assert_close(getattr(got, name), getattr(want, name), rtol=1e-5, atol=1e-6)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("form", ["module", "functional"])
@pytest.mark.parametrize("implementation", implementations_under_test.params(auto=True, interpreted=False))
def test_dynamic_shapes_compile_once_and_match_eager(implementation, form):
    """torch.compile(dynamic=True, fullgraph=True): one graph serves every batch size, with eager's loss
    and gradients, for the module and for the functional form, whose options are checked inside the
    traced function (by comparisons Dynamo folds, not math.isfinite, which it cannot trace)."""
    from torch._dynamo.testing import CompileCounterWithBackend

    torch.manual_seed(0)
    head = MUSICProjectionHead(input_dim=16, hidden_dim=32, output_dim=64, segment_dim=16)
    loss_fn = MUSICLoss(segment_dim=16, temperature=0.5, implementation=implementation)
    if form == "functional":
        loss_fn = functools.partial(
            music_loss, segment_dim=16, temperature=0.5, implementation=implementation
        )

    def forward(x_a, x_b):
        return loss_fn(head(x_a), head(x_b))

    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(forward, backend=counter, dynamic=True, fullgraph=True)
    frames = []
    for batch_size in (32, 24, 40):
        x_a, x_b = torch.randn(2, batch_size, 16)
        results = []
        for step in (compiled, forward):
            head.zero_grad()
            loss = step(x_a, x_b)
            loss.backward()
            results.append((loss.detach(), [p.grad.clone() for p in head.parameters()]))
        (got_loss, got_grads), (want_loss, want_grads) = results
        torch.testing.assert_close(got_loss, want_loss, rtol=1e-5, atol=1e-6)
        for got, want in zip(got_grads, want_grads, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
        frames.append(counter.frame_count)
    assert frames[0] > 0 and frames == frames[:1] * 3  # compiled at the first size, never again


def test_bad_options_fail_when_the_loss_is_built_not_when_traced():
    with pytest.raises(ValueError, match="temperature must be a positive, finite float, got -1.0"):
        MUSICLoss(temperature=-1.0)
    with pytest.raises(ValueError, match="segment_dim must be >= 2"):
        MUSICLoss(segment_dim=1)
