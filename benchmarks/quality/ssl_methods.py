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

With multi-crop (a profile's ``local_views``), `multi_view_loss` makes a loss take every view, the two
global ones first: MUSIC's core takes them all (``num_global=2``); Barlow Twins and VICReg, two-view
losses, are averaged over the pairs MUSIC's loss averages over (`GlobalPairsMean`: global-global and
global-local, never local-local); LeJEPA and VISReg get the global views as their global ones and the
local views as their local ones, so each view is pulled toward the centre of the global views and the
regularizer sees every view, as their designs intend.
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
# The ceiling every self-supervised accuracy reads against: the same backbone and head trained with the
# labels of the same images, on the same augmented views, schedule and optimizer (cross-entropy on each
# view), then probed like the others.
SUPERVISED = "supervised"
# Every method a study can train and report, in the order of their columns.
ALL_METHODS = (*FIELD_METHODS, SUPERVISED)
# The methods that take multi-crop views (`multi_view_loss`); SimCLR's NT-Xent and W-MSE, as lightly
# ships them, take two.
MULTI_CROP_METHODS = ("music", "barlow_twins", "vicreg", "lejepa", "visreg")
# Multi-crop's global views come first among the views; every other view is a local one.
GLOBAL_VIEWS = 2

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
    SUPERVISED: {},
}

# The projector output width of the methods whose own head sets one (lightly's SimCLRProjectionHead and
# LeJEPAProjectionHead defaults; W-MSE whitens its embedding, so the width is its embedding_dim option).
OWN_OUTPUT_DIM: dict[str, int] = {"simclr": 128, "lejepa": 64}


def projector_output_dim(method: str, params: dict[str, Any], shared: int, num_classes: int = 10) -> int:
    """The projector output width ``method`` trains with; ``shared`` is the profile's. The supervised
    ceiling's head ends in one logit per class."""
    if method == SUPERVISED:
        return num_classes
    if method == "wmse":
        return int(loss_params(method, params)["embedding_dim"])
    return OWN_OUTPUT_DIM.get(method, shared)


def global_pairs(num_views: int, num_global: int = GLOBAL_VIEWS) -> list[tuple[int, int]]:
    """The pairs of views ``(i, j)``, ``i < j``, with ``i`` a global view: global-global and global-local,
    never local-local (the pairs MUSIC's multi-view loss averages over)."""
    return [(i, j) for i in range(num_global) for j in range(i + 1, num_views)]


class GlobalPairsMean(nn.Module):
    """A two-view loss over several views, the first ``num_global`` global: the mean of ``loss(z_i, z_j)``
    over `global_pairs`. With two views it is the two-view loss."""

    def __init__(self, loss: nn.Module, num_global: int = GLOBAL_VIEWS) -> None:
        super().__init__()
        self.loss = loss
        self.num_global = num_global

    def forward(self, *views: Tensor) -> Tensor:
        pairs = global_pairs(len(views), self.num_global)
        return torch.stack([self.loss(views[i], views[j]) for i, j in pairs]).mean()


class _ViewList(nn.Module):
    """MUSIC's loss on several views: the core takes the list, the first ``num_global`` views global."""

    def __init__(self, loss: nn.Module, num_global: int = GLOBAL_VIEWS) -> None:
        super().__init__()
        self.loss = loss
        self.num_global = num_global

    def forward(self, *views: Tensor) -> Tensor:
        return self.loss(list(views), num_global=self.num_global)


class _GlobalAndLocalViews(nn.Module):
    """A lightly loss called as ``loss(local_proj=..., global_proj=...)``: the first two views are the
    global ones, any further views the local ones. Given two views alone, a loss that needs a local view
    (``local_needed``) gets the global views as local ones too, any other loss none."""

    def __init__(self, loss: nn.Module, local_needed: bool) -> None:
        super().__init__()
        self.loss = loss
        self.local_needed = local_needed

    def forward(self, *views: Tensor) -> Tensor:
        global_views = torch.stack(views[:GLOBAL_VIEWS])
        if len(views) > GLOBAL_VIEWS:
            local = torch.stack(views[GLOBAL_VIEWS:])
        else:
            local = global_views if self.local_needed else global_views[:0]
        return self.loss(local_proj=local, global_proj=global_views)


class _ConcatenatedViews(nn.Module):
    """A lightly loss that takes the views concatenated along the batch (W-MSE)."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        return self.loss(torch.cat([z_a, z_b]))


class LabelledViews(nn.Module):
    """The supervised ceiling's loss: cross-entropy of every view's logits against the images' labels,
    averaged over the views; called as ``loss(*views, labels=labels)``."""

    def forward(self, *views: Tensor, labels: Tensor) -> Tensor:
        return torch.stack([nn.functional.cross_entropy(z, labels) for z in views]).mean()


def build_loss(method: str, params: dict[str, Any]) -> nn.Module:
    """A loss called as ``loss(z_a, z_b)`` (the supervised ceiling's with ``labels=`` as well). ``params``
    holds only the loss's own options (``lr`` and other training keys are ignored)."""
    if method == SUPERVISED:
        return LabelledViews()
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

        return _GlobalAndLocalViews(LeJEPALoss(lambda_param=float(params["lambda_param"])), local_needed=True)
    if method == "visreg":
        from lightly.loss import VISRegLoss

        return _GlobalAndLocalViews(
            VISRegLoss(lambda_param=float(params["lambda_param"])), local_needed=False
        )
    if method == "wmse":
        from lightly.loss import WMSELoss

        return _ConcatenatedViews(
            WMSELoss(embedding_dim=int(params["embedding_dim"]), w_size=int(params["w_size"]))
        )
    raise ValueError(f"method={method!r}; expected one of {ALL_METHODS}")


def multi_view_loss(method: str, loss: nn.Module) -> nn.Module:
    """``method``'s loss from `build_loss`, called as ``loss(*views)`` on the two global views followed by
    the local ones, each ``(N, D)``."""
    if method == "music":
        return _ViewList(loss)
    if method in ("barlow_twins", "vicreg"):
        return GlobalPairsMean(loss)
    if method in ("lejepa", "visreg", SUPERVISED):
        return loss  # `_GlobalAndLocalViews` and `LabelledViews` take the views as they come
    raise ValueError(
        f"method={method!r} takes two views; multi-crop views are for {', '.join(MULTI_CROP_METHODS)}"
    )


def loss_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """The loss options in ``params``, with the paper defaults for missing ones."""
    if method not in DEFAULT_LOSS_PARAMS:
        raise ValueError(f"method={method!r}; expected one of {ALL_METHODS}")
    out = {k: params.get(k, v) for k, v in DEFAULT_LOSS_PARAMS[method].items()}
    if method == "music":
        out.update({k: params[k] for k in MUSIC_WEIGHTS if k in params})
    return out
