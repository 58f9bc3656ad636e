"""Which implementation computes the loss: the one place where the choice is made.

- "reference": plain PyTorch with autograd, the D x D joint in memory; the source of truth.
- "chunked": the fused PyTorch path, any device and dtype.
- "triton": the fused GPU kernel, float16/bfloat16/float32 inputs; float64 inputs (a verification dtype)
  go to "chunked", which computes in float64.
- "auto": "triton" on a CUDA device where it is available, "chunked" everywhere else. If the Triton
  kernel fails to compile or launch (a GPU or a Triton release it was never run on), "auto" warns once
  with the reason and uses "chunked" from then on; an explicit "triton" raises that error instead.
"""

from __future__ import annotations

import warnings

import torch

# The first failure of the Triton kernel under "auto" in this process, as "Type: message".
_triton_failure = ""


def _triton_unavailable_reason(device: torch.device) -> str:
    from music_ssl import triton_kernel

    return triton_kernel.unavailable_reason(device)


def _auto_picks_triton(device: torch.device) -> bool:
    # Only on CUDA: on the CPU, Triton could only run in its (slow) interpreter.
    return device.type == "cuda" and not _triton_failure and not _triton_unavailable_reason(device)


def resolve_implementation(implementation: str, device: torch.device, dtype: torch.dtype) -> str:
    """The implementation that runs: "reference", "chunked", "triton", or "triton_or_chunked" (the
    Triton kernel with the fallback of "auto")."""
    if implementation in ("reference", "chunked"):
        return implementation
    if dtype == torch.float64:
        return "chunked"
    if implementation == "auto":
        return "triton_or_chunked" if _auto_picks_triton(device) else "chunked"
    reason = _triton_unavailable_reason(device)
    if reason:
        raise ValueError(
            f"implementation='triton' cannot run here: {reason} "
            "Use implementation='chunked' (any device) or 'auto'."
        )
    return "triton"


def record_triton_failure(error: Exception) -> None:
    """Remembers that the Triton kernel failed under "auto" and warns, once per process."""
    global _triton_failure
    if _triton_failure:
        return
    _triton_failure = f"{type(error).__name__}: {error}"
    warnings.warn(
        f"The Triton MUSIC kernel failed on this device ({_triton_failure}); implementation='auto' uses "
        "'chunked' from now on (same results, slower). Pass implementation='triton' to raise the error.",
        RuntimeWarning,
        stacklevel=2,
    )
