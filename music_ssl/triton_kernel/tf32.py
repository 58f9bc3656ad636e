"""float32 values as TF32 tensor cores read them, and as the kernel rounds them first.

A TF32 operand keeps float32's sign and 8-bit exponent and the top 10 of its 23 mantissa bits. The
tensor-core instruction the kernel's `tl.dot(..., input_precision="tf32")` lowers to on Hopper (wgmma
with .tf32 operands, fed straight from shared memory) reads a float32 operand by dropping the low 13
bits: truncation, a bias of about -2^-11 relative on every product, which adds up in a sum of products
instead of averaging out (about -7e-4 relative on P). torch's own TF32 matmuls round first. So does the
kernel: every operand of its products is rounded to the nearest TF32 value (ties away from zero, as
PTX's cvt.rna.tf32.f32) before it reaches the tensor cores, whose truncation then drops only zeros. A
rounded operand errs by at most 2^-11 relative, without bias, and the errors of a sum of products
average out (about 1e-6 relative on the loss's terms; `benchmarks/tf32_emulation.py`).

The kernel does this in Triton (`kernels._round_to_tf32`, for dL/dP as it is written) and here, on the
host, for the probabilities it copies anyway; these constants are shared by both.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Half of the last kept mantissa bit, added before the 13 dropped bits are cleared: round to nearest.
HALF_ULP = 1 << 12
# Clears the 13 low mantissa bits (0xFFFFE000 as an int32).
KEEP = -(1 << 13)


def to_tf32_(x: Tensor, rounding: bool = True) -> Tensor:
    """``x`` (float32, finite), in place, as a TF32 operand carries it: rounded to the nearest TF32 value
    (ties away from zero), or with ``rounding=False`` truncated, as the tensor cores read an unrounded
    operand."""
    if x.dtype != torch.float32:
        raise TypeError(f"x must be float32, got {x.dtype}")
    bits = x.view(torch.int32)
    if rounding:
        bits.add_(HALF_ULP)
    bits.bitwise_and_(KEEP)
    return x
