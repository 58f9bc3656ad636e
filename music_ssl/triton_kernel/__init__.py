"""The joint terms of MUSIC as Triton kernels: the chunks of "chunked", fused on the GPU.

- `availability`: whether triton is there, recent enough, and in which mode (GPU or interpreter), and
  the releases whose interpreter cannot run the kernels;
- `kernels`: the two jitted kernels and their autotuned GPU tiles;
- `joint`: the host driver, `triton_joint_terms`: chunks, split reductions, the choice of product
  precision and the TF32 rounding of operands, the interpreter's fixed tiles; `compile_ahead`, the same
  launches compiled and not run.

Availability: CUDA tensors with triton importable, or CPU tensors under Triton's interpreter
(`TRITON_INTERPRET=1`, set before triton is first imported). Importing this package imports no triton:
its names load their module when first used, so `music_ssl` can register the "triton" implementation
with `triton_joint_terms` as its kernel and still leave triton unimported until the kernel runs or its
availability is asked.
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
    import torch

# The names this package gives, and the module of each (imported when a name is first used).
_HOMES = {
    "compile_ahead": "joint",
    "interpreter_active": "availability",
    "is_available": "availability",
    "triton": "availability",
}

__all__ = sorted([*_HOMES, "triton_joint_terms", "unavailable_reason"])


def triton_joint_terms(*args: typing.Any, **kwargs: typing.Any) -> typing.Any:
    """`music_ssl.triton_kernel.joint.triton_joint_terms` (the registry's `JointKernel`), whose module (and
    triton) is imported at the first call."""
    from music_ssl.triton_kernel.joint import triton_joint_terms as joint_terms

    return joint_terms(*args, **kwargs)


def unavailable_reason(device: torch.device | str) -> str:
    """`music_ssl.triton_kernel.availability.unavailable_reason` (the registry entry's declaration): why the
    kernel cannot run on ``device``, "" when it can; imports triton, which reads TRITON_INTERPRET then."""
    importlib.import_module(f"{__name__}.joint")  # the kernels' jit wrapping, which the answer reads
    from music_ssl.triton_kernel.availability import unavailable_reason as reason

    return reason(device)


def __getattr__(name: str) -> typing.Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # The driver first, whatever the name: it imports the kernels, whose jit wrapping (interpreted or not)
    # the availability's answers read.
    importlib.import_module(f"{__name__}.joint")
    value = globals()[name] = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    return value
