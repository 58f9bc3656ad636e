"""The registry of the MUSIC loss's implementations, and the one place that chooses among them.

Each implementation is one `Implementation` entry of `REGISTRY`, which is the whole dispatch: the entry
computes the loss, and declares where it can run, the input dtypes it computes itself, what runs in its
place, where "auto" may pick it, and on which devices it runs only in an interpreter. The built-in ones
are registered by `music_ssl.implementations`, which documents them; this module imports nothing of the
package, so every layer may consult it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor


class JointKernel(Protocol):
    """What a fused implementation supplies: the weighted sums of P log P over the diagonal entries of
    diagonal blocks and over off-diagonal blocks of the joint P = p_a^T p_b / N (the joint terms before
    their normalization), and dL/dp of both views for the local rows; the contract's reference is
    `music_ssl.chunked.chunked_joint_terms`."""

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


def _always() -> bool:
    return True


@dataclass(frozen=True)
class Implementation:
    """One way to compute the loss."""

    name: str
    # (views, num_global, options, terms) -> the loss, or its MUSICOutput with terms; the views (a tuple of
    # (N, D) tensors, the first num_global of them global) and the options checked.
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
    # The device types on which it runs only in an interpreter, far slower than compiled (Triton's on the
    # CPU): test suites and benchmarks run it there on small shapes only.
    interpreted_on: tuple[str, ...] = ()
    # What the ranks may exchange when it estimates the joint over a process group's batch
    # (`music_ssl.distributed`, ``exchange=``): their rows, and with "reduce" their sums.
    exchanges: tuple[str, ...] = ("gather",)

    @property
    def fused(self) -> bool:
        return self.kernel is not None


# Implementation name -> "Type: message" of its first compile or launch failure under "auto".
FAILURES: dict[str, str] = {}

# `auto_devices` of an entry that runs on any device torch computes on, known or not (the chunked kernel is
# plain torch).
ANY_DEVICE = ("*",)

REGISTRY: dict[str, Implementation] = {}
# The names `music_ssl.implementations` registered, which stay, in their order.
BUILT_IN: list[str] = []
# An implementation's name is part of its operator's name, music_ssl::music_loss_<name>.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def choices() -> tuple[str, ...]:
    """What ``implementation=`` accepts: "auto" and every registered name."""
    return ("auto", *REGISTRY)


def register(implementation: Implementation, built_in: bool = False) -> None:
    """Adds ``implementation`` to `REGISTRY`, and so to what ``implementation=`` accepts; a fused one's
    operator (its loss's ``build``) is defined only once the name is accepted, so a refused call changes
    nothing. ``built_in``: for the package's own entries, which cannot be unregistered.

    Raises:
        ValueError: the name is not an identifier (letters, digits and underscores), is "auto", or is
            registered already.
    """
    name = implementation.name
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"implementation name {name!r} is not accepted: expected letters, digits and underscores, not "
            "starting with a digit (it names the operator music_ssl::music_loss_<name>)."
        )
    if name in choices():
        hint = "" if name == "auto" or name in BUILT_IN else f"; implementations.unregister({name!r}) first"
        raise ValueError(f"An implementation named {name!r} is already registered{hint}.")
    build = getattr(implementation.loss, "build", None)
    if callable(build):
        build(_free_operator_name(name))
    REGISTRY[name] = implementation
    if built_in:
        BUILT_IN.append(name)


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
    """Removes a registered implementation (not a built-in one), so that the name can be registered again.

    Raises:
        ValueError: ``name`` is built in or not registered.
    """
    if name in BUILT_IN or name not in REGISTRY:
        registered = tuple(n for n in REGISTRY if n not in BUILT_IN)
        raise ValueError(
            f"implementation {name!r} cannot be unregistered: expected one a user registered, one of "
            f"{registered}; the built-in {tuple(BUILT_IN)} stay."
        )
    del REGISTRY[name]
    FAILURES.pop(name, None)


def compiled_on(device: torch.device) -> list[str]:
    """The registered implementations that run on ``device`` compiled, not in an interpreter (those a
    benchmark times there), in the registry's order."""
    return [
        name
        for name, entry in REGISTRY.items()
        if not entry.unavailable_reason(device) and device.type not in entry.interpreted_on
    ]


def auto_order() -> list[Implementation]:
    """The entries in the order "auto" considers them: those users registered, the latest first, then the
    built-in ones in the order they were registered."""
    users = [entry for name, entry in REGISTRY.items() if name not in BUILT_IN]
    return [*reversed(users), *(REGISTRY[name] for name in BUILT_IN if name in REGISTRY)]


def _auto_choice(device: torch.device, exchange: str) -> Implementation:
    """The first entry that "auto" may pick on ``device``, can run there, computes ``exchange`` and has not
    failed to compile; where no entry that "auto" may pick computes ``exchange``, the first that does and
    runs on ``device`` (the reference computes every exchange)."""
    able = [entry for entry in auto_order() if exchange == "auto" or exchange in entry.exchanges]
    for implementation in able:
        if (
            (device.type in implementation.auto_devices or "*" in implementation.auto_devices)
            and implementation.proven()
            and implementation.name not in FAILURES
            and not implementation.unavailable_reason(device)
        ):
            return implementation
    for implementation in able:
        if not implementation.unavailable_reason(device):
            return implementation
    raise ValueError(
        f"No implementation of the MUSIC loss runs on {device} with exchange={exchange!r}; registered: "
        f"{tuple(REGISTRY)}."
    )


def choose(
    requested: str, device: torch.device, dtype: torch.dtype, exchange: str = "auto"
) -> Implementation:
    """The implementation that runs for inputs on ``device`` of ``dtype`` and the ranks' ``exchange``.
    (Under "auto" a compile or launch failure of its kernel runs its fallback instead: `FusedLoss`.)

    Raises:
        ValueError: an explicitly requested implementation cannot run on ``device`` or does not compute
            ``exchange``.
    """
    if requested != "auto" and requested not in REGISTRY:
        raise ValueError(
            f"implementation={requested!r} is not registered (any more): expected one of {choices()}; a loss "
            "built with an implementation that was unregistered since needs it registered again."
        )
    implementation = _auto_choice(device, exchange) if requested == "auto" else REGISTRY[requested]
    if exchange != "auto" and exchange not in implementation.exchanges:
        able = tuple(entry.name for entry in REGISTRY.values() if exchange in entry.exchanges)
        raise ValueError(
            f"implementation={implementation.name!r} does not compute exchange={exchange!r} (it computes "
            f"{implementation.exchanges}); use implementation='auto' or one of {able}, or "
            "exchange='gather'."
        )
    if implementation.dtypes is not None and dtype not in implementation.dtypes:
        assert implementation.fallback is not None
        return choose(implementation.fallback, device, dtype, exchange)
    if requested != "auto":
        reason = implementation.unavailable_reason(device)
        if reason:
            alternative = f"implementation={implementation.fallback!r} or " if implementation.fallback else ""
            raise ValueError(
                f"implementation={implementation.name!r} cannot run here: {reason} Use {alternative}'auto', "
                "which picks one that runs on this device."
            )
    return implementation
