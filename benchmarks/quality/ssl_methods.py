"""The self-supervised methods the quality benchmark trains, each built from one parameter dict (the loss
functions the speed and memory benchmarks time are `benchmarks.loss_methods`).

MUSIC is music-ssl's `MUSICLoss`; every peer is a loss lightly ships, used unchanged. Everything else
(backbone, projector depth and width, augmentations, optimizer, schedule) is shared; a peer whose method
needs its own projector output width (SimCLR's 128, LeJEPA's and W-MSE's 64) gets that width, as its own
head in lightly has it (`OWN_OUTPUT_DIM`).

Peers that lightly calls with global and local views (LeJEPA, VISReg) are given the two views as two
global views. For LeJEPA, whose loss needs at least one local view, the same two views are passed as the
local ones too: every term of its loss is a mean over views, so duplicated views leave the value and the
gradient those of the two views alone.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

# The main run's methods, MUSIC first: the paper's comparison, kept as fast as it was.
SSL_METHODS = ("music", "barlow_twins", "vicreg")
# The field study's: the main run's and the losses a user would pick instead, one import away in lightly.
PEER_METHODS = ("simclr", "lejepa", "visreg", "wmse")
FIELD_METHODS = (*SSL_METHODS, *PEER_METHODS)

# MUSIC's term weights (all 1 in the paper); searched by the music_options study, left out of results when
# they keep their default.
MUSIC_WEIGHTS = ("inv_weight", "diag_weight", "off_weight")

# Paper defaults: MUSIC's CIFAR configuration, Barlow Twins' lambda, VICReg's (lambda, mu, nu); lightly's
# defaults for NT-Xent (SimCLR's temperature 0.5) and LeJEPA (lambda 0.05, the reference's); VISReg at the
# 0.6 its paper recommends for small datasets; W-MSE at its CIFAR setting (64-d embedding whitened in
# sub-batches of 128).
DEFAULT_LOSS_PARAMS: dict[str, dict[str, Any]] = {
    "music": {"segment_dim": 32, "temperature": 1.0},
    "barlow_twins": {"lambda_param": 0.005},
    "vicreg": {"lambda_param": 25.0, "mu_param": 25.0, "nu_param": 1.0},
    "simclr": {"temperature": 0.5},
    "lejepa": {"lambda_param": 0.05},
    "visreg": {"lambda_param": 0.6},
    "wmse": {"embedding_dim": 64, "w_size": 128},
}

# The projector output width of the methods whose own head sets one (lightly's SimCLRProjectionHead and
# LeJEPAProjectionHead defaults; W-MSE whitens its embedding, so the width is its embedding_dim option).
OWN_OUTPUT_DIM: dict[str, int] = {"simclr": 128, "lejepa": 64}


def projector_output_dim(method: str, params: dict[str, Any], shared: int) -> int:
    """The projector output width ``method`` trains with; ``shared`` is the profile's."""
    if method == "wmse":
        return int(loss_params(method, params)["embedding_dim"])
    return OWN_OUTPUT_DIM.get(method, shared)


class _TwoGlobalViews(nn.Module):
    """A lightly loss called as ``loss(local_proj=..., global_proj=...)``, given two views as global ones."""

    def __init__(self, loss: nn.Module, local_needed: bool) -> None:
        super().__init__()
        self.loss = loss
        self.local_needed = local_needed

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        views = torch.stack([z_a, z_b])
        local = views if self.local_needed else views[:0]
        return self.loss(local_proj=local, global_proj=views)


class _ConcatenatedViews(nn.Module):
    """A lightly loss that takes the views concatenated along the batch (W-MSE)."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        return self.loss(torch.cat([z_a, z_b]))


def build_loss(method: str, params: dict[str, Any]) -> nn.Module:
    """A loss called as ``loss(z_a, z_b)``. ``params`` holds only the loss's own options (``lr`` and other
    training keys are ignored)."""
    if method == "music":
        from music_ssl import MUSICLoss

        return MUSICLoss(
            segment_dim=int(params["segment_dim"]),
            temperature=float(params["temperature"]),
            **{k: float(params[k]) for k in MUSIC_WEIGHTS if k in params},
        )
    if method == "barlow_twins":
        from lightly.loss import BarlowTwinsLoss

        return BarlowTwinsLoss(lambda_param=float(params["lambda_param"]))
    if method == "vicreg":
        from lightly.loss import VICRegLoss

        return VICRegLoss(
            lambda_param=float(params["lambda_param"]),
            mu_param=float(params["mu_param"]),
            nu_param=float(params["nu_param"]),
        )
    if method == "simclr":
        from lightly.loss import NTXentLoss

        return NTXentLoss(temperature=float(params["temperature"]))
    if method == "lejepa":
        from lightly.loss import LeJEPALoss

        return _TwoGlobalViews(LeJEPALoss(lambda_param=float(params["lambda_param"])), local_needed=True)
    if method == "visreg":
        from lightly.loss import VISRegLoss

        return _TwoGlobalViews(VISRegLoss(lambda_param=float(params["lambda_param"])), local_needed=False)
    if method == "wmse":
        from lightly.loss import WMSELoss

        return _ConcatenatedViews(
            WMSELoss(embedding_dim=int(params["embedding_dim"]), w_size=int(params["w_size"]))
        )
    raise ValueError(f"method={method!r}; expected one of {FIELD_METHODS}")


def loss_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """The loss options in ``params``, with the paper defaults for missing ones."""
    if method not in DEFAULT_LOSS_PARAMS:
        raise ValueError(f"method={method!r}; expected one of {FIELD_METHODS}")
    out = {k: params.get(k, v) for k, v in DEFAULT_LOSS_PARAMS[method].items()}
    if method == "music":
        out.update({k: params[k] for k in MUSIC_WEIGHTS if k in params})
    return out
