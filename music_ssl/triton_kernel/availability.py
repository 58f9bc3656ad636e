"""Whether the Triton kernels can run: triton's presence and release, and the interpreter mode (and the
releases whose interpreter cannot run them).

Triton's interpreter (`TRITON_INTERPRET=1`) runs the kernels on CPU tensors, for tests. The flag is read
twice, both at import: by triton.language, which wraps its own jitted helpers (tl.cdiv, tl.sum, ...),
and by `jit` below, which wraps ours. Setting it later switches neither, so a process whose two imports
saw different flags cannot launch anything, and says so.
"""

from __future__ import annotations

import itertools
import os

import torch

try:
    import triton
    import triton.language as tl
except Exception as error:  # A broken install can raise more than ImportError (e.g. a missing libcuda).
    triton = None
    tl = None
    _IMPORT_ERROR = f"triton cannot be imported ({type(error).__name__}: {error})"
else:
    _IMPORT_ERROR = ""

# tl.dot's input_precision arrived in Triton 3.0 (torch >= 2.4); older releases cannot compile the kernels.
MIN_TRITON = (3, 0)

# Whether each function wrapped by `jit` was wrapped for the interpreter.
_JIT_MODES: list[bool] = []


def interpreter_flag() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on", "y")


def interpreted(function) -> bool:
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:
        return False
    return isinstance(function, InterpretedFunction)


def jit(function):
    """triton.jit, which reads TRITON_INTERPRET now (at import); the plain function without triton."""
    if triton is None:
        return function
    jitted = triton.jit(function)
    _JIT_MODES.append(interpreted(jitted))
    return jitted


def kernels_interpreted() -> bool:
    """Whether our kernels were wrapped for Triton's interpreter."""
    return bool(_JIT_MODES) and all(_JIT_MODES)


def language_interpreted() -> bool:
    """Whether triton.language was imported in interpreter mode."""
    return interpreted(tl.cdiv)


def too_old() -> bool:
    return triton is not None and release(triton.__version__) < MIN_TRITON


def interpreter_active() -> bool:
    """Whether kernels launch in Triton's interpreter (CPU tensors; for tests): TRITON_INTERPRET=1 was set
    when triton and the kernels were imported."""
    return triton is not None and kernels_interpreted() and language_interpreted()


def unavailable_reason(device: torch.device | str) -> str:
    """Why the Triton kernel cannot run on `device` (empty when it can)."""
    device = torch.device(device)
    if device.type not in ("cuda", "cpu"):
        return f"tensors are on {device.type}; the Triton kernel needs a CUDA device."
    if triton is None:
        return f"{_IMPORT_ERROR}; install triton (it ships with CUDA builds of torch)."
    if too_old():
        return (
            f"triton {triton.__version__} is too old: the kernel needs triton >= "
            f"{'.'.join(map(str, MIN_TRITON))} (tl.dot's input_precision; it ships with torch >= 2.4)."
        )
    if kernels_interpreted() != language_interpreted():
        return (
            "TRITON_INTERPRET changed between the import of triton and of music_ssl.triton_kernel; set it "
            "(or not) before the first import of either."
        )
    if device.type == "cpu" and not interpreter_active():
        if interpreter_flag():
            return (
                "tensors are on cpu and TRITON_INTERPRET=1 was set after triton was imported; set it "
                "before the first import of triton to run the kernel in Triton's interpreter."
            )
        return (
            "tensors are on cpu; Triton needs a CUDA device (or TRITON_INTERPRET=1, set before triton is "
            "imported, to run the kernel in Triton's interpreter, for testing)."
        )
    if interpreter_active():
        import numpy

        return interpreter_defect(triton.__version__, numpy.__version__)
    return ""


def is_available(device: torch.device | str) -> bool:
    """Whether the kernel can run on `device`: CUDA with triton importable, or CPU under the interpreter."""
    return not unavailable_reason(device)


def release(version: str) -> tuple[int, ...]:
    """(3, 6) from "3.6.0", "3.6.0+git1234" or "3.6"."""
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        parts.append(int(digits or 0))
    return tuple(parts)


def interpreter_defect(triton_version: str, numpy_version: str) -> str:
    """Why Triton's interpreter cannot run these kernels with these versions (empty when it can).

    - Triton 3.0 (torch 2.4's) and 3.1: the interpreter does not pass constexpr arguments to tl.arange as
      constexpr ("arange's arguments must be of type tl.constexpr").
    - Triton before 3.7 with numpy >= 2.4: the interpreter turned loop bounds into ints with int() on
      one-element arrays, which numpy 2.4 refuses, so every kernel with a runtime loop bound fails
      (triton-lang/triton#9171, fixed in 3.7).
    """
    if release(triton_version) < (3, 2):
        return (
            f"Triton {triton_version}'s interpreter cannot run these kernels (it does not pass constexpr "
            "arguments as constexpr to tl.arange); install a newer triton to run them in the interpreter."
        )
    if release(triton_version) < (3, 7) and release(numpy_version) >= (2, 4):
        return (
            f"Triton {triton_version}'s interpreter cannot run kernels with loops under numpy "
            f"{numpy_version} (triton-lang/triton#9171); install triton >= 3.7 or numpy < 2.4."
        )
    return ""
