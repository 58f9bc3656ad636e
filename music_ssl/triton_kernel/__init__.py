"""The joint terms of MUSIC as Triton kernels: the chunks of "chunked", fused on the GPU.

- `availability`: whether triton is there, recent enough, and in which mode (GPU or interpreter), and
  the releases whose interpreter cannot run the kernels;
- `kernels`: the two jitted kernels and their autotuned GPU tiles;
- `joint`: the host driver, `triton_joint_terms`: chunks, split reductions, the choice of product
  precision and the TF32 rounding of operands, the interpreter's fixed tiles; `compile_ahead`, the same
  launches compiled and not run.

Availability: CUDA tensors with triton importable, or CPU tensors under Triton's interpreter
(`TRITON_INTERPRET=1`, set before triton is first imported; `music_ssl` imports this package only when
"triton" is first asked for).
"""

from music_ssl.triton_kernel.availability import interpreter_active, is_available, triton, unavailable_reason
from music_ssl.triton_kernel.joint import compile_ahead, triton_joint_terms

__all__ = [
    "compile_ahead",
    "interpreter_active",
    "is_available",
    "triton",
    "triton_joint_terms",
    "unavailable_reason",
]
