"""The implementations of the MUSIC loss, and the one place that chooses among them.

An implementation is a way to compute the loss; users name one with ``implementation=``. Each is one
entry of `REGISTRY`, which is the whole dispatch: the entry computes the loss, and declares where it can
run, the input dtypes it computes itself, what runs in its place, and where "auto" may pick it.

- "reference": plain PyTorch with autograd, the D x D joint in memory; the source of truth.
- "chunked": the fused operator with its PyTorch kernel, any device and dtype; the joint is never held
  whole.
- "triton": the fused operator with the Triton kernel, float16/bfloat16/float32 inputs; float64 inputs (a
  verification dtype) go to "chunked", which computes in float64. Tested in Triton's interpreter; not yet
  run on a GPU.
- "auto" (the default) is a choice, not an implementation: the first entry that declares the input's
  device among its ``auto_devices`` (or any device, "*"), is `proven` and can run there, taking the
  implementations users registered first (the latest first), then the built-in ones in the order above. Of the
  built-in ones, "chunked" on every device, until the Triton kernel has passed the GPU check
  (`benchmarks/gpu_check.sh`) on real hardware; then `AUTO_USES_TRITON` is switched on and "auto" picks
  "triton" on CUDA devices where it can run.

With "auto" picking Triton, a kernel that fails to compile or launch (a GPU or a Triton release it was
never run on) makes "auto" warn once with the reason and use the fallback from then on. Any other error
(out of memory, bad input) propagates as from any torch operation and changes no later choice; an
explicit "triton" raises every error.

A new implementation is one `register` call (see docs/implementation.md, "Adding an implementation"),
undone by `unregister`; the test suite reads its lists of implementations from `REGISTRY`. The registry
itself, and the choice, live in `music_ssl.registry` (below every implementation); its names are this
module's too.
"""

from __future__ import annotations

import torch

from music_ssl import triton_kernel
from music_ssl.chunked import chunked_joint_terms
from music_ssl.fallback import Fallback
from music_ssl.fused import FusedLoss
from music_ssl.reference import reference_loss
from music_ssl.registry import (  # noqa: F401 (the registry's public names, as users know them here)
    ANY_DEVICE,
    BUILT_IN,
    FAILURES,
    REGISTRY,
    Implementation,
    JointKernel,
    auto_order,
    choices,
    choose,
    compiled_on,
    register,
    unregister,
)

# Whether "auto" runs the Triton kernel on CUDA devices. Off: the kernel has not yet run on a GPU. The GPU
# check's report says, once everything it measures passes, that this is the line to switch (and on which
# GPU and Triton release it passed).
AUTO_USES_TRITON = False


def fused_implementation(
    name: str,
    kernel: JointKernel,
    fallback: tuple[str, JointKernel] | None = None,
    max_elements: int | None = None,
    **declared,
) -> Implementation:
    """The entry of a fused implementation whose joint terms ``kernel`` computes; ``fallback``: the name
    and kernel of the implementation that runs in its place, ``max_elements``: the most elements of the
    global batch's (N, D) probabilities it takes; ``declared``: the other fields of `Implementation`."""
    backup = None if fallback is None else Fallback(*fallback, FAILURES, max_elements)
    # Under exchange="reduce" the operator adds the ranks' joints and computes its terms from the whole
    # D x D joint with the chunked epilogue, whatever the kernel.
    declared.setdefault("exchanges", ("gather", "reduce"))
    return Implementation(
        name,
        FusedLoss(name, kernel, backup),
        kernel=kernel,
        fallback=None if fallback is None else fallback[0],
        **declared,
    )


register(Implementation("reference", reference_loss, exchanges=("gather", "reduce")), built_in=True)
register(
    fused_implementation(
        "triton",
        triton_kernel.triton_joint_terms,  # imports triton at its first call
        fallback=("chunked", chunked_joint_terms),
        max_elements=2**31 - 1,  # the kernels' pointer offsets are int32
        auto_devices=("cuda",),  # on the CPU, Triton runs only in its (slow) interpreter
        proven=lambda: AUTO_USES_TRITON,
        unavailable_reason=triton_kernel.unavailable_reason,  # imports triton at its first call
        dtypes=(torch.float16, torch.bfloat16, torch.float32),
        interpreted_on=("cpu",),
    ),
    built_in=True,
)
register(fused_implementation("chunked", chunked_joint_terms, auto_devices=ANY_DEVICE), built_in=True)
