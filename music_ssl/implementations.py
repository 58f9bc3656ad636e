"""The implementations of the MUSIC loss, and the one place that chooses among them.

An implementation is a way to compute the loss; users name one with ``implementation=``. Each declares
itself once, in `REGISTRY`: its name, the joint-entropy kernel that the fused operator calls (none for
the reference, which differentiates the plain formula with autograd), when it cannot run, the input
dtypes it computes itself, and what runs in its place (for other dtypes, and after a compile or launch
failure under "auto").

- "reference": plain PyTorch with autograd, the D x D joint in memory; the source of truth.
- "chunked": the fused PyTorch path, any device and dtype; the joint is never held whole.
- "triton": the fused GPU kernel, float16/bfloat16/float32 inputs; float64 inputs (a verification dtype)
  go to "chunked", which computes in float64. Tested in Triton's interpreter; not yet run on a GPU.
- "auto" (the default) is a choice, not an implementation: "chunked" everywhere, until the Triton kernel
  has passed the GPU check (`benchmarks/gpu_check.sh`) on real hardware; then `AUTO_USES_TRITON` is
  switched on and "auto" picks "triton" on CUDA devices where it can run.

With "auto" picking Triton, a kernel that fails to compile or launch (a GPU or a Triton release it was
never run on) makes "auto" warn once with the reason and use the fallback from then on. Any other error
(out of memory, bad input) propagates as from any torch operation and changes no later choice; an
explicit "triton" raises every error.
"""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from music_ssl.chunked import chunked_joint_entropies

# Whether "auto" runs the Triton kernel on CUDA devices. Off: the kernel has not yet run on a GPU. The GPU
# check's report says, once everything it measures passes, that this is the line to switch (and on which
# GPU and Triton release it passed).
AUTO_USES_TRITON = False

# Triton's own words when a kernel cannot be built or started: its launcher's "Triton Error [CUDA]: ...",
# MLIR's lowering, ptxas and the PTX/cubin stages. Not "launch" or "compile": torch appends both to every
# CUDA error ("consider passing CUDA_LAUNCH_BLOCKING=1", "Compile with TORCH_USE_CUDA_DSA").
_BUILD_OR_START_WORDS = (
    "Triton Error",
    "PassManager::run failed",
    "ptxas",
    "PTX",
    "cubin",
    "out of resource",
)
# A device that faulted: the kernel (or the context) is broken, and another implementation would not help.
_DEVICE_FAULTS = (
    "illegal memory access",
    "illegal address",
    "misaligned address",
    "illegal instruction",
    "device-side assert",
    "unspecified launch failure",
    "out of memory",
)


class JointEntropies(Protocol):
    """What a fused implementation supplies: the weighted sums of P log P over the diagonal entries of
    diagonal blocks and over off-diagonal blocks of the joint P = p_a^T p_b / N, and dL/dp of both views
    for the local rows; see `music_ssl.chunked.chunked_joint_entropies`, the contract's reference."""

    def __call__(
        self,
        p_a: Tensor,
        p_b: Tensor,
        local_rows: tuple[int, int],
        segment_dim: int,
        diag_coef: float,
        off_coef: float,
        grad_scale: float,
        compute_grad: bool,
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]: ...


def _runs_anywhere(device: torch.device) -> str:
    return ""


def _triton_unavailable_reason(device: torch.device) -> str:
    # Imported when first asked for: triton reads TRITON_INTERPRET at its own import.
    from music_ssl import triton_kernel

    return triton_kernel.unavailable_reason(device)


def _triton_joint_entropies(*args):
    from music_ssl import triton_kernel

    return triton_kernel.triton_joint_entropies(*args)


@dataclass(frozen=True)
class Implementation:
    """One way to compute the loss."""

    name: str
    # The fused operator's joint kernel; None for an implementation that differentiates the plain formula.
    joint_entropies: JointEntropies | None
    # Why it cannot run on a device ("" when it can).
    unavailable_reason: Callable[[torch.device], str] = _runs_anywhere
    # The input dtypes it computes itself (None: all); inputs of other dtypes go to `fallback`.
    dtypes: tuple[torch.dtype, ...] | None = None
    # What computes in its place: for other dtypes, for inputs too large for it, and under "auto" after a
    # compile or launch failure.
    fallback: str | None = None
    # The most elements a (global batch, D) probability matrix may have (None: no limit).
    max_elements: int | None = None


REGISTRY = {
    implementation.name: implementation
    for implementation in (
        Implementation("reference", None),
        Implementation("chunked", chunked_joint_entropies),
        Implementation(
            "triton",
            _triton_joint_entropies,
            _triton_unavailable_reason,
            dtypes=(torch.float16, torch.bfloat16, torch.float32),
            fallback="chunked",
            max_elements=2**31 - 1,  # the kernels' pointer offsets are int32
        ),
    )
}

# What ``implementation=`` accepts.
CHOICES = ("auto", *REGISTRY)

# Implementation name -> "Type: message" of its first compile or launch failure under "auto".
_failures: dict[str, str] = {}


def _auto_choice(device: torch.device) -> str:
    # Only on CUDA: on the CPU, Triton could only run in its (slow) interpreter.
    if (
        AUTO_USES_TRITON
        and device.type == "cuda"
        and "triton" not in _failures
        and not REGISTRY["triton"].unavailable_reason(device)
    ):
        return "triton"
    return "chunked"


def choose(requested: str, device: torch.device, dtype: torch.dtype) -> tuple[str, bool]:
    """(the implementation that runs, whether a compile or launch failure runs its fallback instead).

    Raises:
        ValueError: an explicitly requested implementation cannot run on ``device``.
    """
    name = _auto_choice(device) if requested == "auto" else requested
    implementation = REGISTRY[name]
    if implementation.dtypes is not None and dtype not in implementation.dtypes:
        assert implementation.fallback is not None
        return choose(implementation.fallback, device, dtype)
    if requested != "auto":
        reason = implementation.unavailable_reason(device)
        if reason:
            alternative = f"implementation={implementation.fallback!r} or " if implementation.fallback else ""
            raise ValueError(
                f"implementation={name!r} cannot run here: {reason} Use {alternative}'auto' "
                "('chunked' runs on any device)."
            )
    return name, requested == "auto" and implementation.fallback is not None


def is_compile_or_launch_failure(error: BaseException) -> bool:
    """Whether ``error`` says a kernel could not be built or started on this device, the only failures
    that "auto" falls back from: by Triton's exception types and its own messages. Out of memory, bad
    input and a device fault (an illegal memory access, a device-side assert) are not among them."""
    if isinstance(error, torch.OutOfMemoryError | ValueError | TypeError):
        return False
    message = str(error)
    if any(fault in message.lower() for fault in _DEVICE_FAULTS):
        return False
    if type(error).__module__.partition(".")[0] == "triton":  # CompilationError, OutOfResources, ...
        return True
    if isinstance(error, subprocess.CalledProcessError):  # ptxas, run by Triton as a subprocess
        return True
    if isinstance(error, RuntimeError | NotImplementedError):
        return any(word in message for word in _BUILD_OR_START_WORDS)
    return False


def _record_failure(name: str, fallback: str, error: Exception) -> None:
    """Remembers that `name` failed to compile or launch under "auto" and warns, once."""
    if name in _failures:
        return
    _failures[name] = f"{type(error).__name__}: {error}"
    warnings.warn(
        f"The {name} MUSIC kernel failed on this device ({_failures[name]}); implementation='auto' uses "
        f"{fallback!r} from now on (same results, slower). Pass implementation={name!r} to raise the error.",
        RuntimeWarning,
        stacklevel=3,
    )


def joint_entropies(name: str, fall_back: bool, *args):
    """Runs the joint kernel of implementation `name`; a compile or launch failure runs the fallback's
    when ``fall_back`` (and warns once), and is raised with the fallback named otherwise."""
    implementation = REGISTRY[name]
    assert implementation.joint_entropies is not None, f"{name!r} has no joint kernel"
    elements = args[0].numel()  # the global batch's probabilities, (N, D)
    if implementation.max_elements is not None and elements > implementation.max_elements:
        if fall_back:
            return joint_entropies(implementation.fallback, False, *args)
        raise ValueError(
            f"implementation={name!r} takes at most {implementation.max_elements} elements of the global "
            f"batch's (N, D) probabilities, got {tuple(args[0].shape)} ({elements}); use "
            f"implementation={implementation.fallback!r} or 'auto', which uses it for such sizes."
        )
    try:
        return implementation.joint_entropies(*args)
    except Exception as error:
        if implementation.fallback is None or not is_compile_or_launch_failure(error):
            raise
        if not fall_back:
            raise RuntimeError(
                f"The {name} MUSIC kernel failed on this device ({type(error).__name__}: {error}). "
                f"Use implementation={implementation.fallback!r} (the same results) instead."
            ) from error
        _record_failure(name, implementation.fallback, error)
        return joint_entropies(implementation.fallback, False, *args)
