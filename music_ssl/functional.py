"""`music_loss`: the functional form of MUSICLoss."""

from __future__ import annotations

from typing import Literal, overload

from torch import Tensor

from music_ssl import _validation as check
from music_ssl.dispatch import resolve_implementation
from music_ssl.fused import music_loss_fused
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
    gather_distributed: bool = False,
    implementation: str = "auto",
    return_terms: Literal[False] = False,
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
    gather_distributed: bool = False,
    implementation: str = "auto",
    *,
    return_terms: Literal[True],
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
    gather_distributed: bool = False,
    implementation: str = "auto",
    return_terms: bool = False,
) -> Tensor | MUSICOutput: ...


def music_loss(
    z_a: Tensor,
    z_b: Tensor,
    segment_dim: int = 32,
    temperature: float = 1.0,
    diag_weight: float = 1.0,
    off_weight: float = 1.0,
    inv_weight: float = 1.0,
    gather_distributed: bool = False,
    implementation: str = "auto",
    return_terms: bool = False,
) -> Tensor | MUSICOutput:
    """MUSIC loss of two views' projections; see `MUSICLoss` for the arguments.

    Returns:
        The scalar loss (float32, or float64 for float64 inputs), or a `MUSICOutput` with the loss, its
        three terms and per-segment diagnostics when ``return_terms=True``.
    """
    segment_dim = check.check_segment_dim(segment_dim)
    temperature = check.check_temperature(temperature)
    diag_weight = check.check_weight("diag_weight", diag_weight)
    off_weight = check.check_weight("off_weight", off_weight)
    inv_weight = check.check_weight("inv_weight", inv_weight)
    implementation = check.check_implementation(implementation)
    gather_distributed = check.check_flag("gather_distributed", gather_distributed)
    return_terms = check.check_flag("return_terms", return_terms)
    check.check_projections(z_a, z_b, segment_dim)
    check.check_temperature_fits(temperature, z_a.dtype)
    check.check_segments(z_a.shape[1] // segment_dim, off_weight)

    args = (z_a, z_b, segment_dim, temperature, diag_weight, off_weight, inv_weight, gather_distributed)
    chosen = resolve_implementation(implementation, z_a.device, z_a.dtype)
    output = music_loss_reference(*args) if chosen == "reference" else music_loss_fused(*args, kernel=chosen)
    return output if return_terms else output.loss
