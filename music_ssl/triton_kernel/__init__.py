"""The joint-entropy terms of MUSIC as Triton kernels: the bands of "chunked", fused on the GPU.

- `availability`: whether triton is there, recent enough, and in which mode (GPU or interpreter);
- `configs`: tile shapes on the GPU (autotuned);
- `kernels`: the two jitted kernels;
- `planning`: band sizes and split reductions;
- `interpreter`: what only Triton's interpreter needs (releases it cannot run, its tiles, its splits);
- `versions`: release numbers as the checks compare them;
- `joint`: the host driver, `triton_joint_terms`, and the choice of product precision.

Availability: CUDA tensors with triton importable, or CPU tensors under Triton's interpreter
(`TRITON_INTERPRET=1`, set before triton is first imported; `music_ssl` imports this package only when
"triton" is first asked for).
"""

from music_ssl.triton_kernel.availability import interpreter_active, is_available, triton, unavailable_reason
from music_ssl.triton_kernel.joint import triton_joint_terms

__all__ = ["interpreter_active", "is_available", "triton", "triton_joint_terms", "unavailable_reason"]
