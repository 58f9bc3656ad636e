"""MUSIC loss as a solo-learn style pure function (``solo/losses/<name>.py`` shape)."""

from __future__ import annotations

import torch

from music_ssl import MUSICOutput, music_loss


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
) -> torch.Tensor | MUSICOutput:
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
        return_terms (bool, optional): return a ``MUSICOutput`` with the loss, its three terms and
            per-segment diagnostics instead of the loss alone. Defaults to False.
        process_group (torch.distributed.ProcessGroup, optional): the data-parallel group whose batches
            make up the global batch. Defaults to None, the default group.

    Returns:
        torch.Tensor | MUSICOutput: MUSIC's loss, or the loss with its terms.
    """

    return music_loss(
        z1,
        z2,
        segment_dim=segment_dim,
        temperature=temperature,
        diag_weight=diag_weight,
        off_weight=off_weight,
        inv_weight=inv_weight,
        gather_distributed="auto",
        implementation=implementation,
        return_terms=return_terms,
        process_group=process_group,
    )
