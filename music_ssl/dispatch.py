"""Which implementation computes the loss, and what it falls back to: the one place where both are decided.

- "reference": plain PyTorch with autograd, the D x D joint in memory; the source of truth.
- "chunked": the fused PyTorch path, any device and dtype; the joint is never held whole.
- "triton": the fused GPU kernel, float16/bfloat16/float32 inputs; float64 inputs (a verification dtype)
  go to "chunked", which computes in float64. Tested in Triton's interpreter; not yet run on a GPU.
- "auto" (the default): "chunked" everywhere, until the Triton kernel has passed the GPU check
  (`benchmarks/gpu_check.sh`) on real hardware; then `AUTO_USES_TRITON` is switched on and "auto" picks
  "triton" on CUDA devices where it can run.

With "auto" picking Triton, a kernel that fails to compile or launch (a GPU or a Triton release it was
never run on) makes "auto" warn once with the reason and use "chunked" from then on. Any other error
(out of memory, bad input) propagates as from any torch operation and changes no later choice; an
explicit "triton" raises every error.
"""

from __future__ import annotations

import subprocess
import warnings

import torch

from music_ssl.chunked import chunked_joint_entropies

# Whether "auto" runs the Triton kernel on CUDA devices. Off: the kernel has not yet run on a GPU. The GPU
# check's report says, once everything it measures passes, that this is the line to switch (and on which
# GPU and Triton release it passed).
AUTO_USES_TRITON = False

# The first compile or launch failure of the Triton kernel under "auto" in this process, as "Type: message".
_triton_failure = ""

# Words of the errors that Triton and the CUDA driver raise when a kernel cannot be built or started.
_COMPILE_OR_LAUNCH_WORDS = ("triton", "ptx", "cubin", "compil", "launch", "out of resource")


def _triton_unavailable_reason(device: torch.device) -> str:
    from music_ssl import triton_kernel

    return triton_kernel.unavailable_reason(device)


def _auto_picks_triton(device: torch.device) -> bool:
    # Only on CUDA: on the CPU, Triton could only run in its (slow) interpreter.
    return (
        AUTO_USES_TRITON
        and device.type == "cuda"
        and not _triton_failure
        and not _triton_unavailable_reason(device)
    )


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


def is_compile_or_launch_failure(error: BaseException) -> bool:
    """Whether ``error`` says the Triton kernel could not be built or started on this device, the only
    failures that "auto" falls back from. Out of memory and bad input are not among them."""
    if isinstance(error, torch.OutOfMemoryError | ValueError | TypeError):
        return False
    if type(error).__module__.partition(".")[0] == "triton":  # CompilationError, OutOfResources, ...
        return True
    # ptxas run as a subprocess, the driver's "Triton Error [CUDA]: ..." and similar.
    if isinstance(error, RuntimeError | NotImplementedError | subprocess.CalledProcessError):
        message = str(error).lower()
        return any(word in message for word in _COMPILE_OR_LAUNCH_WORDS)
    return False


def record_triton_failure(error: Exception) -> None:
    """Remembers that the Triton kernel failed to compile or launch under "auto" and warns, once."""
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


def _triton_with(on_failure):
    """The Triton joint kernel; a compile or launch failure goes to `on_failure(error, args)`."""

    def run(*args):
        from music_ssl.triton_kernel import triton_joint_entropies

        try:
            return triton_joint_entropies(*args)
        except Exception as error:
            if not is_compile_or_launch_failure(error):
                raise
            return on_failure(error, args)

    return run


def _raise(error: Exception, args) -> None:
    raise RuntimeError(
        f"The Triton MUSIC kernel failed on this device ({type(error).__name__}: {error}). "
        "Use implementation='chunked' (the same results) instead."
    ) from error


def _fall_back(error: Exception, args):
    record_triton_failure(error)
    return chunked_joint_entropies(*args)


# The joint kernel behind each fused name that `resolve_implementation` returns; see
# `music_ssl.chunked.chunked_joint_entropies` for the signature they share.
JOINT_KERNELS = {
    "chunked": chunked_joint_entropies,
    "triton": _triton_with(_raise),
    "triton_or_chunked": _triton_with(_fall_back),
}
