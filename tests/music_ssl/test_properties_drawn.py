"""Drawn cases, so that the next edge is found by the suite and not by a user: batch size, width, segment
size, dtype, memory layout, options and which views require grad are drawn together, and every
implementation must give the reference's loss, terms and gradients, or raise the reference's error."""

import pytest
import torch

from music_ssl import music_loss_terms
from tests.music_ssl import implementations_under_test

hypothesis = pytest.importorskip("hypothesis", reason="pip install hypothesis (in music-ssl[test])")
st = hypothesis.strategies

IMPLEMENTATIONS = implementations_under_test.names(fused_only=True, auto=True)
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
# Relative tolerance of the terms and of the gradients per input dtype: every implementation computes in
# float32 (float64 for float64), so only the summation order and the final cast of dL/dz differ.
TOLERANCE = {torch.float64: 1e-9, torch.float32: 2e-5, torch.bfloat16: 2e-2, torch.float16: 2e-3}


@st.composite
def cases(draw):
    segment_dim = draw(st.integers(2, 12))
    num_segments = draw(st.integers(1, 5))
    return {
        "n": draw(st.integers(0, 10)),
        "segment_dim": segment_dim,
        # Sometimes not a multiple of segment_dim, sometimes no width at all.
        "dim": draw(st.sampled_from([segment_dim * num_segments] * 4 + [segment_dim * num_segments + 1, 0])),
        "dtype": draw(st.sampled_from(DTYPES)),
        "dtype_b": draw(st.sampled_from([None] * 5 + DTYPES)),  # None: the same as the first view's
        "layout": draw(st.sampled_from(["contiguous", "transposed", "every_other_column"])),
        "scale": draw(st.floats(0.1, 20.0)),
        "temperature": draw(st.one_of(st.floats(0.1, 4.0), st.just(1e-45))),
        "weights": draw(st.tuples(*(st.sampled_from([0.0, 0.5, 1.0, 2.5]) for _ in range(3)))),
        "requires_grad": draw(st.sampled_from([(True, True), (True, False), (False, True), (False, False)])),
        "seed": draw(st.integers(0, 2**16)),
    }


def _view(case, generator, dtype) -> torch.Tensor:
    n, dim = case["n"], case["dim"]
    values = torch.randn(n, dim, generator=generator, dtype=torch.float64) * case["scale"]
    if case["layout"] == "transposed":
        return values.T.contiguous().to(dtype).T  # column-major
    if case["layout"] == "every_other_column":
        wide = torch.zeros(n, 2 * dim, dtype=dtype)
        wide[:, ::2] = values.to(dtype)
        return wide[:, ::2]
    return values.to(dtype)


def _run(case, implementation):
    generator = torch.Generator().manual_seed(case["seed"])
    views = [_view(case, generator, dtype) for dtype in (case["dtype"], case["dtype_b"] or case["dtype"])]
    views = [v.requires_grad_(wanted) for v, wanted in zip(views, case["requires_grad"], strict=True)]
    diag_weight, off_weight, inv_weight = case["weights"]
    try:
        out = music_loss_terms(
            *views,
            segment_dim=case["segment_dim"],
            temperature=case["temperature"],
            diag_weight=diag_weight,
            off_weight=off_weight,
            inv_weight=inv_weight,
            implementation=implementation,
        )
    except (ValueError, TypeError) as error:
        return ("error", type(error), str(error))
    wanted = [v for v in views if v.requires_grad]
    grads = torch.autograd.grad(out.loss, wanted) if wanted else ()
    return ("value", out, grads)


@hypothesis.settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
@hypothesis.given(case=cases())
def test_every_implementation_agrees_with_the_reference(case):
    want = _run(case, "reference")
    for implementation in IMPLEMENTATIONS:
        got = _run(case, implementation)
        assert got[0] == want[0], (implementation, got, want)
        if want[0] == "error":
            assert got[1:] == want[1:], implementation
            continue
        rtol = TOLERANCE[case["dtype"]]
        for name in want[1]._fields:
            expected = getattr(want[1], name).detach()
            actual = getattr(got[1], name).detach()
            assert actual.dtype == expected.dtype and actual.shape == expected.shape, (implementation, name)
            torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol, msg=f"{implementation} {name}")
        for actual, expected in zip(got[2], want[2], strict=True):
            assert actual.dtype == expected.dtype
            scale = expected.abs().max().item() or 1.0
            torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * scale, msg=implementation)
