"""MUSIC loss as a solo-learn style pure function (``solo/losses/<name>.py`` shape)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from music_ssl import MUSICOutput, music_loss, music_loss_terms


def _views(z1: object, z2: object, function: str) -> tuple[object, object]:
    """``(z1, z2)`` as the core takes them, after checking that they are two views, or a sequence of
    views in ``z1`` with ``z2`` omitted; the core checks the views themselves and ``num_global``."""
    if isinstance(z1, list | tuple):
        if z2 is not None:
            raise TypeError(
                "z2 must be omitted when z1 is a sequence of views, got z2 of type "
                f"{type(z2).__name__}: pass every view in z1, {function}([z_1, ..., z_V], num_global=G), "
                f"or two tensors, {function}(z1, z2)."
            )
        return list(z1), None
    if z2 is None:
        raise TypeError(
            f"z2 is missing: pass two views, {function}(z1, z2), or a list of every view, "
            f"{function}([z_1, ..., z_V], num_global=G); got z1 of type {type(z1).__name__} alone."
        )
    return z1, z2


def music_loss_func(
    z1: torch.Tensor | Sequence[torch.Tensor],
    z2: torch.Tensor | None = None,
    segment_dim: int = 32,
    temperature: float = 0.25,
    diag_weight: float = 1.0,
    off_weight: float = 1.0,
    inv_weight: float = 1.0,
    implementation: str = "auto",
    return_terms: bool = False,
    process_group: torch.distributed.ProcessGroup | None = None,
    *,
    num_global: int | None = None,
    exchange: str = "auto",
) -> torch.Tensor:
    """Computes MUSIC's loss given projected features z1 from view 1 and z2 from view 2, or given a list
    of the projected features of every view.

    Multi-crop: ``z1`` may be a list of V >= 2 projections, the ``num_global`` global (large) crops
    first, then the local (small) ones, with ``z2`` omitted. The loss is then the mean of the two-view
    loss over every pair of views that holds at least one global view (global-global and global-local
    pairs; two local views are never compared), as ``music_ssl.music_loss`` computes it in one call.
    With two views it is exactly the two-view loss.

    Like solo's other losses, it works on the global batch when torch.distributed is initialized:
    the cross-view joint distribution of the attributes is summed over all ranks of the process group
    while training (a call without gradients, as in validation, uses this rank's batch and runs no
    collective; see ``music_ssl.MUSICLoss``'s gather_distributed="auto").

    Args:
        z1 (torch.Tensor | Sequence[torch.Tensor]): NxD Tensor containing projected features from
            view 1, or a list of the NxD projected features of every view (global views first).
        z2 (torch.Tensor, optional): NxD Tensor containing projected features from view 2; omitted
            when z1 is a list of views. Defaults to None.
        segment_dim (int, optional): number of attributes C in each segment; D must be a multiple
            of it. Defaults to 32.
        temperature (float, optional): softmax temperature. Defaults to 0.25 (the authors used 1.0).
        diag_weight (float, optional): weight of the agreement (diagonal) entropy term. Defaults to 1.0.
        off_weight (float, optional): weight of the inter-segment joint entropy term. Defaults to 1.0.
        inv_weight (float, optional): weight of the per-sample invariance term. Defaults to 1.0.
        implementation (str, optional): "auto" or a registered implementation, as in
            ``music_ssl.MUSICLoss`` (``music_ssl.implementations.choices()``). Defaults to "auto".
        return_terms (bool, optional): deprecated, use ``music_loss_terms_func``, which returns the
            ``MUSICOutput``. Defaults to False.
        process_group (torch.distributed.ProcessGroup, optional): the data-parallel group whose batches
            make up the global batch. Defaults to None, the default group.
        num_global (int, optional): keyword-only; how many of the views in z1, the first ones, are
            global, from 1 to the number of views. Required with more than two views; two views are
            both global. Defaults to None.
        exchange (str, optional): keyword-only; what the ranks exchange for the joint over the global
            batch, "auto", "gather" or "reduce", as in ``music_ssl.MUSICLoss``. Defaults to "auto".

    Returns:
        torch.Tensor: MUSIC's loss.

    Raises:
        TypeError: if z2 is given beside a list of views, or missing beside a single tensor.
        ValueError: if num_global is missing with more than two views or not from 1 to the number of
            views, or the views do not fit together (the core's checks).
    """
    if not isinstance(return_terms, bool):
        raise TypeError(
            f"return_terms must be a bool, got {return_terms!r} of type {type(return_terms).__name__}."
        )
    z1, z2 = _views(z1, z2, "music_loss_func")
    options = {
        "segment_dim": segment_dim,
        "temperature": temperature,
        "diag_weight": diag_weight,
        "off_weight": off_weight,
        "inv_weight": inv_weight,
        "gather_distributed": "auto",
        "implementation": implementation,
        "process_group": process_group,
        "num_global": num_global,
        "exchange": exchange,
    }
    if return_terms:
        warnings.warn(
            "return_terms=True is deprecated and will be removed in music-ssl 0.5; call "
            "music_loss_terms_func instead, which returns the MUSICOutput.",
            FutureWarning,
            stacklevel=2,
        )
        return music_loss_terms(z1, z2, **options)  # type: ignore[return-value]
    return music_loss(z1, z2, **options)


def music_loss_terms_func(
    z1: torch.Tensor | Sequence[torch.Tensor],
    z2: torch.Tensor | None = None,
    segment_dim: int = 32,
    temperature: float = 0.25,
    diag_weight: float = 1.0,
    off_weight: float = 1.0,
    inv_weight: float = 1.0,
    implementation: str = "auto",
    process_group: torch.distributed.ProcessGroup | None = None,
    *,
    num_global: int | None = None,
    exchange: str = "auto",
) -> MUSICOutput:
    """``music_loss_func`` and its parts from one evaluation: a ``MUSICOutput`` with the loss, its three
    terms and the per-segment diagnostics. The arguments are ``music_loss_func``'s: two views z1, z2, or
    a list of every view in z1 with z2 omitted and keyword-only ``num_global``. With more than two views,
    loss, inv, diag and off are the means over the compared pairs of views, and the attribute entropy,
    confidence and code entropy are averaged over all views."""
    z1, z2 = _views(z1, z2, "music_loss_terms_func")
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
        num_global=num_global,
        exchange=exchange,
    )
