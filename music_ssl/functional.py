"""`music_loss`: the functional form of MUSICLoss."""

from __future__ import annotations

from typing import Literal, overload

import torch
from torch import Tensor

from music_ssl import _validation as check
from music_ssl import implementations
from music_ssl.fused import music_loss_fused
from music_ssl.options import MUSICOptions, ProcessGroup
from music_ssl.output import MUSICOutput
from music_ssl.reference import music_loss_reference


@overload
def music_loss(
    z_a: Tensor,
    z_b: Tensor,
    segment_dim: int = 32,
    temperature: float = 1.0,
    diag_weight: float = 1.0,
    off_weight: float = 1.0,
    inv_weight: float = 1.0,
    gather_distributed: bool | str = "auto",
    implementation: str = "auto",
    return_terms: Literal[False] = False,
    process_group: ProcessGroup | None = None,
) -> Tensor: ...


@overload
def music_loss(
    z_a: Tensor,
    z_b: Tensor,
    segment_dim: int = 32,
    temperature: float = 1.0,
    diag_weight: float = 1.0,
    off_weight: float = 1.0,
    inv_weight: float = 1.0,
    gather_distributed: bool | str = "auto",
    implementation: str = "auto",
    *,
    return_terms: Literal[True],
    process_group: ProcessGroup | None = None,
) -> MUSICOutput: ...


@overload
def music_loss(
    z_a: Tensor,
    z_b: Tensor,
    segment_dim: int = 32,
    temperature: float = 1.0,
    diag_weight: float = 1.0,
    off_weight: float = 1.0,
    inv_weight: float = 1.0,
    gather_distributed: bool | str = "auto",
    implementation: str = "auto",
    return_terms: bool = False,
    process_group: ProcessGroup | None = None,
) -> Tensor | MUSICOutput: ...


def music_loss(
    z_a: Tensor,
    z_b: Tensor,
    segment_dim: int = 32,
    temperature: float = 1.0,
    diag_weight: float = 1.0,
    off_weight: float = 1.0,
    inv_weight: float = 1.0,
    gather_distributed: bool | str = "auto",
    implementation: str = "auto",
    return_terms: bool = False,
    process_group: ProcessGroup | None = None,
) -> Tensor | MUSICOutput:
    """MUSIC loss of two views' projections; see `MUSICLoss` for the arguments.

    Returns:
        The scalar loss (float32, or float64 for float64 inputs), or a `MUSICOutput` with the loss, its
        three terms and per-segment diagnostics when ``return_terms=True``.
    """
    options = MUSICOptions(
        segment_dim,
        temperature,
        diag_weight,
        off_weight,
        inv_weight,
        gather_distributed,
        implementation,
        process_group,
    )
    return music_loss_with(z_a, z_b, options, check.flag("return_terms", return_terms))


def music_loss_with(
    z_a: Tensor, z_b: Tensor, options: MUSICOptions, return_terms: bool
) -> Tensor | MUSICOutput:
    """`music_loss` with options already validated (as `MUSICLoss` holds them): only the views are checked."""
    check.projections(z_a, z_b, options.segment_dim)
    check.temperature_fits(options.temperature, z_a.dtype)
    check.segments(z_a.shape[1] // options.segment_dim, options.off_weight)

    # The distributed policy reads the grad mode alone, a per-step switch that every rank of a
    # data-parallel step shares, not whether this rank's views require grad (an empty rank's placeholder
    # may not).
    math = options.math(grad_enabled=torch.is_grad_enabled())
    name, fall_back = implementations.choose(options.implementation, z_a.device, z_a.dtype)
    if implementations.REGISTRY[name].joint_entropies is None:
        output = music_loss_reference(z_a, z_b, math)
    else:
        output = music_loss_fused(z_a, z_b, math, name, fall_back)
    return output if return_terms else output.loss
