"""The three losses under comparison, built from one parameter dict each.

MUSIC is music-ssl's `MUSICLoss`; the peers are lightly's `BarlowTwinsLoss` and `VICRegLoss`, used
unchanged. Everything else (backbone, projector, augmentations, optimizer, schedule) is shared.
"""

from __future__ import annotations

from typing import Any

from torch import nn

# The self-supervised methods pretrained and compared, MUSIC first.
SSL_METHODS = ("music", "barlow_twins", "vicreg")

# MUSIC's term weights (all 1 in the paper); searched by the music_options study, left out of results when
# they keep their default.
MUSIC_WEIGHTS = ("inv_weight", "diag_weight", "off_weight")

# Paper defaults: MUSIC's CIFAR configuration, Barlow Twins' lambda, VICReg's (lambda, mu, nu).
DEFAULT_LOSS_PARAMS: dict[str, dict[str, Any]] = {
    "music": {"segment_dim": 32, "temperature": 1.0},
    "barlow_twins": {"lambda_param": 0.005},
    "vicreg": {"lambda_param": 25.0, "mu_param": 25.0, "nu_param": 1.0},
}


def build_loss(method: str, params: dict[str, Any]) -> nn.Module:
    """``params`` holds only the loss's own options (``lr`` and other training keys are ignored)."""
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
    raise ValueError(f"method={method!r}; expected one of {SSL_METHODS}")


def loss_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """The loss options in ``params``, with the paper defaults for missing ones."""
    out = {k: params.get(k, v) for k, v in DEFAULT_LOSS_PARAMS[method].items()}
    if method == "music":
        out.update({k: params[k] for k in MUSIC_WEIGHTS if k in params})
    return out
