"""What a fused implementation runs in place of its own kernel, and when: inputs beyond what the kernel
indexes, and, under "auto", a kernel that could not be built or started on this device (told apart from
every other error by Triton's exception types and its own messages)."""

from __future__ import annotations

import dataclasses
import functools
import subprocess
import typing
import warnings

import torch

if typing.TYPE_CHECKING:
    from music_ssl.registry import JointKernel

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


@dataclasses.dataclass
class Fallback:
    """What a fused implementation's operator runs in place of its own kernel: for inputs larger than
    ``max_elements``, and, when a call allows it ("auto"), after a compile or launch failure, which it
    records in ``failures`` (implementation name -> "Type: message") and warns about once."""

    name: str
    kernel: JointKernel
    failures: dict[str, str]
    max_elements: int | None = None

    def wrap(self, name: str, kernel: JointKernel, fall_back: bool) -> JointKernel:
        """``kernel`` of the implementation ``name``, running this fallback where it must;
        ``fall_back``: whether this call may after a compile or launch failure ("auto" chose it)."""
        return functools.partial(self.run, name, kernel, fall_back)

    def run(self, name: str, kernel: JointKernel, fall_back: bool, *args):
        """The joint terms of ``kernel``, or of this fallback's kernel (see the class)."""
        elements = args[0].numel()  # the global batch's probabilities, (N, D)
        if self.max_elements is not None and elements > self.max_elements:
            if fall_back:
                return self.kernel(*args)
            raise ValueError(
                f"implementation={name!r} takes at most {self.max_elements} elements of the global "
                f"batch's (N, D) probabilities, got {tuple(args[0].shape)} ({elements}); use "
                f"implementation={self.name!r} or 'auto', which uses it for such sizes."
            )
        try:
            return kernel(*args)
        except Exception as error:
            if not is_compile_or_launch_failure(error):
                raise
            if not fall_back:
                raise RuntimeError(
                    f"The {name} MUSIC kernel failed on this device ({type(error).__name__}: {error}). "
                    f"Use implementation={self.name!r} (the same results) instead."
                ) from error
            if name not in self.failures:
                self.failures[name] = f"{type(error).__name__}: {error}"
                warnings.warn(
                    f"The {name} MUSIC kernel failed on this device ({self.failures[name]}); "
                    f"implementation='auto' uses {self.name!r} from now on (same results, slower). Pass "
                    f"implementation={name!r} to raise the error.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return self.kernel(*args)
