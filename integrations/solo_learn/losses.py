"""MUSIC loss as a solo-learn style pure function (``solo/losses/<name>.py`` shape)."""

from __future__ import annotations

import warnings

import torch

from music_ssl import MUSICOutput, music_loss, music_loss_terms


def music_loss_func(
    z1: torch.Tensor,
    z2: torch.Tensor,
    segment_dim: int = 32,
    temperature: float = 1.0,
    diag_weight: float = 1.0,
    off_weight: float = 1.0,
    inv_weight: float = 1.0,
    implementation: str = "auto",
    return_terms: bool = False,
    process_group: torch.distributed.ProcessGroup | None = None,
) -> torch.Tensor:
    """Computes MUSIC's loss given projected features z1 from view 1 and z2 from view 2.

    Like solo's other losses, it works on the global batch when torch.distributed is initialized:
    the cross-view joint distribution of the attributes is summed over all ranks of the process group
    while training (a call without gradients, as in validation, uses this rank's batch and runs no
    collective; see ``music_ssl.MUSICLoss``'s gather_distributed="auto").

    Args:
        z1 (torch.Tensor): NxD Tensor containing projected features from view 1.
        z2 (torch.Tensor): NxD Tensor containing projected features from view 2.
        segment_dim (int, optional): number of attributes C in each segment; D must be a multiple
            of it. Defaults to 32.
        temperature (float, optional): softmax temperature. Defaults to 1.0.
        diag_weight (float, optional): weight of the agreement (diagonal) entropy term. Defaults to 1.0.
        off_weight (float, optional): weight of the inter-segment joint entropy term. Defaults to 1.0.
        inv_weight (float, optional): weight of the per-sample invariance term. Defaults to 1.0.
        implementation (str, optional): "auto", "reference", "chunked" or "triton", as in
            ``music_ssl.MUSICLoss``. Defaults to "auto".
        return_terms (bool, optional): deprecated, use ``music_loss_terms_func``, which returns the
            ``MUSICOutput``. Defaults to False.
        process_group (torch.distributed.ProcessGroup, optional): the data-parallel group whose batches
            make up the global batch. Defaults to None, the default group.

    Returns:
        torch.Tensor: MUSIC's loss.
    """
    if not isinstance(return_terms, bool):
        raise TypeError(
            f"return_terms must be a bool, got {return_terms!r} of type {type(return_terms).__name__}."
        )
    options = {
        "segment_dim": segment_dim,
        "temperature": temperature,
        "diag_weight": diag_weight,
        "off_weight": off_weight,
        "inv_weight": inv_weight,
        "gather_distributed": "auto",
        "implementation": implementation,
        "process_group": process_group,
    }
    if return_terms:
        warnings.warn(
            "return_terms=True is deprecated and will be removed in music-ssl 0.4; call "
            "music_loss_terms_func instead, which returns the MUSICOutput.",
            FutureWarning,
            stacklevel=2,
        )
        return music_loss_terms(z1, z2, **options)  # type: ignore[return-value]
    return music_loss(z1, z2, **options)


def music_loss_terms_func(
    z1: torch.Tensor,
    z2: torch.Tensor,
    segment_dim: int = 32,
    temperature: float = 1.0,
    diag_weight: float = 1.0,
    off_weight: float = 1.0,
    inv_weight: float = 1.0,
    implementation: str = "auto",
    process_group: torch.distributed.ProcessGroup | None = None,
) -> MUSICOutput:
    """``music_loss_func`` and its parts from one evaluation: a ``MUSICOutput`` with the loss, its three
    terms and the per-segment diagnostics. The arguments are ``music_loss_func``'s."""
    return music_loss_terms(
        z1,
        z2,
        segment_dim=segment_dim,
        temperature=temperature,
        diag_weight=diag_weight,
        off_weight=off_weight,
        inv_weight=inv_weight,
        gather_distributed="auto",
        implementation=implementation,
        process_group=process_group,
    )
