"""The choice of implementation: auto's fallback when the Triton kernel fails on a GPU, and the
precision of the kernel's products following torch.get_float32_matmul_precision()."""

import inspect
import warnings

import pytest
import torch

from music_ssl import implementations, music_loss
from music_ssl.triton_kernel import joint
from tests.music_ssl.test_implementation_choice_gpu import chosen, triton_runs_everywhere


@pytest.fixture
def failing_triton(monkeypatch, no_failures):
    """A GPU on which the Triton kernel fails to compile: auto would pick it, and it raises."""

    def fail(*args, **kwargs):
        raise RuntimeError("PTX assembly failed for sm_120 (simulated)")

    monkeypatch.setattr(implementations, "AUTO_USES_TRITON", True)
    triton_runs_everywhere(monkeypatch, auto_on_cpu=True)
    monkeypatch.setattr(joint, "triton_joint_terms", fail)  # the driver the kernel entry calls


def _inputs():
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(16, 64, generator=generator, requires_grad=True) for _ in range(2)]


def test_auto_warns_once_and_falls_back_to_chunked(failing_triton):
    z_a, z_b = _inputs()
    assert chosen("auto", z_a.device, z_a.dtype) == "triton"
    with pytest.warns(RuntimeWarning, match=r"sm_120 \(simulated\).*uses 'chunked' from now on"):
        loss = music_loss(z_a, z_b, segment_dim=16, implementation="auto")
    want = music_loss(z_a, z_b, segment_dim=16, implementation="chunked")
    torch.testing.assert_close(loss, want)
    grads = torch.autograd.grad(loss, (z_a, z_b))
    want_grads = torch.autograd.grad(want, (z_a, z_b))
    for got, expected in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(got, expected)

    # Later calls go straight to chunked, without a second warning.
    assert chosen("auto", z_a.device, z_a.dtype) == "chunked"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(music_loss(z_a, z_b, segment_dim=16, implementation="auto"), want)


def test_every_entry_computes_from_the_views_options_and_terms_alone():
    """An entry's loss takes what the user gave, checked (the views, how many are global, the options,
    whether the terms are wanted), and nothing an entry might not use: whether a kernel failure may fall
    back follows from the options' implementation inside the fused operator."""
    for name, entry in implementations.REGISTRY.items():
        parameters = list(inspect.signature(entry.loss).parameters)
        assert parameters == ["views", "num_global", "options", "terms"], name


def test_explicit_triton_raises_the_failure(failing_triton):
    z_a, z_b = _inputs()
    with pytest.raises(RuntimeError, match=r"sm_120 \(simulated\).*Use implementation='chunked'"):
        music_loss(z_a, z_b, segment_dim=16, implementation="triton")
    assert implementations.FAILURES == {}  # an explicit choice does not switch auto off


@pytest.mark.parametrize(
    "tf32_hardware,precision,expected",
    [
        # Full float32 accuracy on tensor cores: three TF32 products of split operands, not FMA.
        (True, "highest", "tf32x3"),
        (True, "high", "tf32"),
        (True, "medium", "tf32"),
        (False, "high", "ieee"),
        (False, "medium", "ieee"),
    ],
)
def test_product_precision_follows_torch(tf32_hardware, precision, expected):
    assert joint.input_precision(tf32_hardware, precision) == expected


def test_kernel_launch_reads_torch_matmul_precision(monkeypatch):
    """The driver asks torch at every call: a TF32-capable device gets TF32 products only when
    torch.set_float32_matmul_precision allows them (launches recorded, not run)."""
    seen = []
    monkeypatch.setattr(joint.availability, "interpreter_active", lambda: False)
    monkeypatch.setattr(joint, "has_tf32", lambda device: True)
    monkeypatch.setattr(joint.availability, "unavailable_reason", lambda device: "")

    def record(kernel, interpret, grid, *args, **meta):
        seen.append(meta["INPUT_PRECISION"])

    monkeypatch.setattr(joint, "_launch", record)
    p = torch.softmax(torch.randn(8, 32), dim=-1)
    previous = torch.get_float32_matmul_precision()
    try:
        for setting in ("highest", "high"):
            torch.set_float32_matmul_precision(setting)
            seen.clear()
            joint.triton_joint_terms(p, p, (0, 8), 16, 1.0, 1.0, 1.0, False)
            assert seen == ["tf32x3" if setting == "highest" else "tf32"]
    finally:
        torch.set_float32_matmul_precision(previous)
