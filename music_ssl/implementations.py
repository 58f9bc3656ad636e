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
  backends users registered first (the latest first), then the built-in ones in the order above. Of the
  built-in ones, "chunked" on every device, until the Triton kernel has passed the GPU check
  (`benchmarks/gpu_check.sh`) on real hardware; then `AUTO_USES_TRITON` is switched on and "auto" picks
  "triton" on CUDA devices where it can run.

With "auto" picking Triton, a kernel that fails to compile or launch (a GPU or a Triton release it was
never run on) makes "auto" warn once with the reason and use the fallback from then on. Any other error
(out of memory, bad input) propagates as from any torch operation and changes no later choice; an
explicit "triton" raises every error.

A new backend is one `register` call (see docs/implementation.md, "Adding a backend"), undone by
`unregister`; the test suite reads its lists of implementations from `REGISTRY`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from music_ssl import fused
from music_ssl.fallback import Fallback
from music_ssl.reference import reference_loss


class JointKernel(Protocol):
    """What a fused implementation supplies: the weighted sums of P log P over the diagonal entries of
    diagonal blocks and over off-diagonal blocks of the joint P = p_a^T p_b / N (the joint terms before
    their normalization), and dL/dp of both views for the local rows; the contract's reference is
    `music_ssl.fused.chunked_joint_terms`."""

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


# Whether "auto" runs the Triton kernel on CUDA devices. Off: the kernel has not yet run on a GPU. The GPU
# check's report says, once everything it measures passes, that this is the line to switch (and on which
# GPU and Triton release it passed).
AUTO_USES_TRITON = False


def _runs_anywhere(device: torch.device) -> str:
    return ""


def _triton_unavailable_reason(device: torch.device) -> str:
    # Imported when first asked for: triton reads TRITON_INTERPRET at its own import.
    from music_ssl import triton_kernel

    return triton_kernel.unavailable_reason(device)


def _triton_joint_terms(*args):
    from music_ssl import triton_kernel

    return triton_kernel.triton_joint_terms(*args)


def _always() -> bool:
    return True


@dataclass(frozen=True)
class Implementation:
    """One way to compute the loss."""

    name: str
    # (z_a, z_b, options, terms, fall_back) -> the loss, or its MUSICOutput with terms; views and options
    # checked. fall_back: whether a compile or launch failure may run the fallback ("auto" chose it).
    loss: Callable[..., object]
    # The fused operator's joint kernel (`JointKernel`); None for an implementation whose gradients
    # are plain autograd's (it supports double backward and forward-mode AD).
    kernel: JointKernel | None = None
    # The device types on which "auto" may pick it, once `proven()` ("*": any device); () : never. "auto"
    # takes the first such entry (`auto_order`) that can run on the input's device.
    auto_devices: tuple[str, ...] = ()
    proven: Callable[[], bool] = _always
    # Why it cannot run on a device ("" when it can).
    unavailable_reason: Callable[[torch.device], str] = _runs_anywhere
    # The input dtypes it computes itself (None: all); inputs of other dtypes go to `fallback`.
    dtypes: tuple[torch.dtype, ...] | None = None
    # What computes in its place: for other dtypes, for inputs too large for it, and under "auto" after a
    # compile or launch failure.
    fallback: str | None = None

    @property
    def fused(self) -> bool:
        return self.kernel is not None


# Implementation name -> "Type: message" of its first compile or launch failure under "auto".
FAILURES: dict[str, str] = {}

# `auto_devices` of an entry that runs on any device torch computes on, known or not (the chunked kernel is
# plain torch).
ANY_DEVICE = ("*",)

REGISTRY: dict[str, Implementation] = {}
# What ``implementation=`` accepts.
CHOICES: tuple[str, ...] = ("auto",)
BUILT_IN = ("reference", "triton", "chunked")
# An implementation's name is part of its operator's name, music_ssl::music_loss_<name>.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def register(implementation: Implementation) -> None:
    """Adds ``implementation`` to `REGISTRY`, and so to what ``implementation=`` accepts; a fused one's
    operator is defined only once the name is accepted, so a refused call changes nothing.

    Raises:
        ValueError: the name is not an identifier (letters, digits and underscores), is "auto", or is
            registered already.
    """
    global CHOICES
    name = implementation.name
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"implementation name {name!r} is not accepted: expected letters, digits and underscores, not "
            "starting with a digit (it names the operator music_ssl::music_loss_<name>)."
        )
    if name in CHOICES:
        hint = "" if name == "auto" or name in BUILT_IN else f"; implementations.unregister({name!r}) first"
        raise ValueError(f"An implementation named {name!r} is already registered{hint}.")
    if isinstance(implementation.loss, fused.FusedLoss):
        implementation.loss.build(_free_operator_name(name))
    REGISTRY[name] = implementation
    CHOICES = ("auto", *REGISTRY)


# The operator names defined in this process: torch cannot remove an operator, so a name registered again
# after `unregister` gets a new one.
_OPERATOR_NAMES: set[str] = set()


def _free_operator_name(name: str) -> str:
    operator_name, copy = name, 1
    while operator_name in _OPERATOR_NAMES:
        copy += 1
        operator_name = f"{name}_{copy}"
    _OPERATOR_NAMES.add(operator_name)
    return operator_name


def unregister(name: str) -> None:
    """Removes a registered backend (not a built-in one), so that the name can be registered again.

    Raises:
        ValueError: ``name`` is built in or not registered.
    """
    global CHOICES
    if name in BUILT_IN or name not in REGISTRY:
        registered = tuple(n for n in REGISTRY if n not in BUILT_IN)
        raise ValueError(
            f"implementation {name!r} cannot be unregistered: expected one a user registered, one of "
            f"{registered}; the built-in {BUILT_IN} stay."
        )
    del REGISTRY[name]
    FAILURES.pop(name, None)
    CHOICES = ("auto", *REGISTRY)


def auto_order() -> list[Implementation]:
    """The entries in the order "auto" considers them: those users registered, the latest first, then the
    built-in ones ("reference", "triton", "chunked")."""
    users = [entry for name, entry in REGISTRY.items() if name not in BUILT_IN]
    return [*reversed(users), *(REGISTRY[name] for name in BUILT_IN if name in REGISTRY)]


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
    return Implementation(
        name,
        fused.FusedLoss(name, kernel, backup),
        kernel=kernel,
        fallback=None if fallback is None else fallback[0],
        **declared,
    )


register(Implementation("reference", reference_loss))
register(
    fused_implementation(
        "triton",
        _triton_joint_terms,
        fallback=("chunked", fused.chunked_joint_terms),
        max_elements=2**31 - 1,  # the kernels' pointer offsets are int32
        auto_devices=("cuda",),  # on the CPU, Triton runs only in its (slow) interpreter
        proven=lambda: AUTO_USES_TRITON,
        unavailable_reason=_triton_unavailable_reason,
        dtypes=(torch.float16, torch.bfloat16, torch.float32),
    )
)
register(fused_implementation("chunked", fused.chunked_joint_terms, auto_devices=ANY_DEVICE))


def _auto_choice(device: torch.device) -> Implementation:
    """The first entry that "auto" may pick on ``device``, can run there and has not failed to compile."""
    for implementation in auto_order():
        if (
            (device.type in implementation.auto_devices or "*" in implementation.auto_devices)
            and implementation.proven()
            and implementation.name not in FAILURES
            and not implementation.unavailable_reason(device)
        ):
            return implementation
    raise ValueError(f"No implementation of the MUSIC loss runs on {device}; registered: {tuple(REGISTRY)}.")


def choose(requested: str, device: torch.device, dtype: torch.dtype) -> tuple[Implementation, bool]:
    """(the implementation that runs, whether a compile or launch failure may run its fallback instead).

    Raises:
        ValueError: an explicitly requested implementation cannot run on ``device``.
    """
    if requested != "auto" and requested not in REGISTRY:
        raise ValueError(
            f"implementation={requested!r} is not registered (any more): expected one of {CHOICES}; a loss "
            "built with a backend that was unregistered since needs it registered again."
        )
    implementation = _auto_choice(device) if requested == "auto" else REGISTRY[requested]
    if implementation.dtypes is not None and dtype not in implementation.dtypes:
        assert implementation.fallback is not None
        return choose(implementation.fallback, device, dtype)
    if requested != "auto":
        reason = implementation.unavailable_reason(device)
        if reason:
            alternative = f"implementation={implementation.fallback!r} or " if implementation.fallback else ""
            raise ValueError(
                f"implementation={implementation.name!r} cannot run here: {reason} Use {alternative}'auto', "
                "which picks one that runs on this device."
            )
    return implementation, requested == "auto" and implementation.fallback is not None
