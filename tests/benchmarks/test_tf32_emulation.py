"""TF32 as the hardware computes it, predicted before the first GPU run: the float64 emulation of the
kernel's products puts the rounded kernel inside the GPU check's tolerances with margin (and shows that
truncated operands would fail it), and the kernel, run in Triton's interpreter with TF32 products, rounds
its operands exactly as the emulation does."""

from __future__ import annotations

import pytest
import torch

from benchmarks import tf32_emulation
from benchmarks.triton_accuracy import TERMS, TOLERANCE, relative_error
from music_ssl import music_loss_terms, triton_kernel
from music_ssl.triton_kernel import joint
from music_ssl.triton_kernel.joint import to_tf32_

MARGIN = 3  # predicted errors at most a third of the stated tolerance


def test_rounding_keeps_ten_mantissa_bits_to_nearest_and_truncation_drops_the_rest():
    x = torch.tensor([1 + 2**-11, 1 + 2**-11 + 2**-20, 1 + 2**-10 - 2**-20, -(1 + 2**-11 + 2**-20), 0.0])
    rounded = to_tf32_(x.clone())
    truncated = to_tf32_(x.clone(), rounding=False)
    assert rounded.tolist() == [1 + 2**-10, 1 + 2**-10, 1 + 2**-10, -(1 + 2**-10), 0.0]  # ties away from 0
    assert truncated.tolist() == [1.0, 1.0, 1.0, -1.0, 0.0]
    assert (rounded.view(torch.int32) & 0x1FFF).eq(0).all()  # a TF32 value: 13 low bits clear


@pytest.mark.timeout(600)
def test_the_gpu_checks_shape_is_predicted_inside_its_tolerances_and_truncation_outside():
    """(256, 8192, 32), one of the GPU check's accuracy shapes, in float64 (about 20 s on two cores)."""
    rounded, truncated = tf32_emulation.predicted_errors(256, 8192, 32)
    for name in TERMS:
        assert rounded[name] * MARGIN <= TOLERANCE[("tf32", "terms")], (name, rounded)
    for name in ("grad_z_a", "grad_z_b"):
        assert rounded[name] * MARGIN <= TOLERANCE[("tf32", "grads")], (name, rounded)
    assert rounded["within_tolerance"]
    # What the first GPU run would have measured with operands truncated by the tensor cores.
    assert not truncated["within_tolerance"]
    assert min(truncated[name] for name in ("diag", "off")) > TOLERANCE[("tf32", "terms")]


@pytest.mark.skipif(
    not triton_kernel.is_available("cpu"),
    reason=f"needs Triton's interpreter on CPU tensors: {triton_kernel.unavailable_reason('cpu')}",
)
def test_the_kernel_with_tf32_products_rounds_its_operands_as_the_emulation_does(monkeypatch):
    """The interpreter multiplies float32 exactly, so with TF32 products forced the kernel's result is that
    of its operands as it rounds them: it equals the rounded emulation, not the exact one."""
    monkeypatch.setattr(joint, "input_precision", lambda tf32_hardware, matmul_precision: "tf32")
    generator = torch.Generator().manual_seed(0)
    z_a = torch.randn(40, 96, generator=generator)
    z_b = z_a + torch.randn(40, 96, generator=generator)
    z = [x.clone().requires_grad_() for x in (z_a, z_b)]
    out = music_loss_terms(*z, 8, gather_distributed=False, implementation="triton")
    grads = torch.autograd.grad(out.loss, z)
    distance = {}
    for operands in ("exact", "ieee", "tf32_truncated", "tf32_rounded"):
        terms, want_grads = tf32_emulation._loss_and_gradients(z_a, z_b, 8, operands)
        distance[operands] = max(relative_error(g, w) for g, w in zip(grads, want_grads, strict=True))
        if operands == "tf32_rounded":
            torch.testing.assert_close(out.diag.double(), terms["diag"], rtol=1e-5, atol=0)
    # The kernel computes P and dL/dP in float32, so a few operands round the other way than in float64:
    # the rounded emulation is within 1e-4, the others (exact float32 products, truncation) several times
    # farther (2e-4 and 5e-4 here).
    others = min(value for name, value in distance.items() if name != "tf32_rounded")
    assert distance["tf32_rounded"] < 1e-4 and 4 * distance["tf32_rounded"] < others, distance
