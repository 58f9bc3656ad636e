"""`music_loss`: the functional form of MUSICLoss, and the choice of implementation."""

from __future__ import annotations

import torch
from torch import Tensor

from music_ssl import _validation as check
from music_ssl.chunked import chunked_joint_entropies
from music_ssl.fused import music_loss_fused
from music_ssl.output import MUSICOutput
from music_ssl.reference import music_loss_reference


def triton_available(device: torch.device) -> bool:
    """Whether the Triton kernel can run on `device` (a CUDA device with triton importable)."""
    from music_ssl import triton_joint

    return triton_joint.is_available(device)


def resolve_implementation(implementation: str, device: torch.device) -> str:
    """Maps "auto" to the fastest implementation for `device`; rejects "triton" where it cannot run."""
    if implementation == "auto":
        # Only on CUDA: on the CPU, Triton could only run in its (slow) interpreter.
        return "triton" if device.type == "cuda" and triton_available(device) else "chunked"
    if implementation == "triton" and not triton_available(device):
        from music_ssl import triton_joint

        raise ValueError(
            f"implementation='triton' cannot run here: {triton_joint.unavailable_reason(device)} "
            "Use implementation='chunked' (any device) or 'auto'."
        )
    return implementation


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
    check.check_projections(z_a, z_b, segment_dim)
    check.check_segments(z_a.shape[1] // segment_dim, off_weight)
    if not gather_distributed:
        check.check_batch_size(z_a.shape[0])

    args = (z_a, z_b, segment_dim, temperature, diag_weight, off_weight, inv_weight, gather_distributed)
    chosen = resolve_implementation(implementation, z_a.device)
    if chosen == "reference":
        output = music_loss_reference(*args)
    elif chosen == "chunked":
        output = music_loss_fused(*args, joint_entropies=chunked_joint_entropies)
    else:
        from music_ssl.triton_joint import triton_joint_entropies

        output = music_loss_fused(*args, joint_entropies=triton_joint_entropies)
    return output if return_terms else output.loss
