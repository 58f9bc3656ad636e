"""What one evaluation of the MUSIC loss returns when callers ask for its parts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from music_ssl import checks


class MUSICOutput(NamedTuple):
    """The MUSIC loss and its parts, from a single evaluation.

    Attributes:
        loss: The weighted loss ``w_diag * diag + w_off * off + w_inv * invariance``; differentiable. With
            more than two views, each term is the mean of the two-view terms over the pairs of views that
            enter the loss (see `MUSICLoss`).
        inv: L_inv, the per-sample agreement term: the mean over this rank's batch, weighted under
            gathering by (ranks x local batch / global batch) so that its mean over ranks is the global
            batch's L_inv (the weight is 1 for equal batches and in a single process); detached.
        diag: L_diag, the negative entropy of the diagonal of every segment's joint; detached.
        off: L_off, the mean negative joint entropy of pairs of different segments; detached.
        attribute_entropy: Shape (S,). Entropy in nats of each segment's attribute distribution over the
            (global) batch, averaged over the views; log(segment_dim) means every attribute is used
            equally, 0 means the segment collapsed onto one attribute. Detached.
        confidence: Shape (S,). Mean probability of each sample's most likely attribute, per segment;
            1/segment_dim is uniform, 1 is a hard code. Detached.
    """

    loss: Tensor
    inv: Tensor
    diag: Tensor
    off: Tensor
    attribute_entropy: Tensor
    confidence: Tensor

    @property
    def invariance(self) -> Tensor:
        """``inv`` under its former name; kept as an alias."""
        return self.inv

    def collapsed_segments(self, segment_dim: int, fraction: float = 0.5) -> list[int]:
        """The segments whose attribute entropy fell below ``fraction`` of its maximum, log(segment_dim):
        they use few of their attributes over the batch. Empty in healthy training (see docs/monitoring.md);
        a check to switch on, e.g. ``if out.collapsed_segments(32): warnings.warn(...)``. One host sync."""
        checks.segment_dim(segment_dim)
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise TypeError(
                f"fraction must be a float in (0, 1), got {fraction!r} of type {type(fraction).__name__}."
            )
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be a float in (0, 1), got {fraction!r}.")
        bound = fraction * math.log(segment_dim)
        return [int(s) for s in torch.nonzero(self.attribute_entropy < bound).flatten().tolist()]

    def log_dict(self, prefix: str = "") -> dict[str, Tensor]:
        """Scalars ready for ``LightningModule.log_dict``, named ``{prefix}music_*``."""
        return {
            f"{prefix}music_loss": self.loss.detach(),
            f"{prefix}music_inv": self.inv,
            f"{prefix}music_diag": self.diag,
            f"{prefix}music_off": self.off,
            f"{prefix}music_attribute_entropy": self.attribute_entropy.mean(),
            f"{prefix}music_attribute_entropy_min": self.attribute_entropy.min(),
            f"{prefix}music_confidence": self.confidence.mean(),
        }


def segment_diagnostics(p: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Attribute-usage entropy and confidence per segment from the (N, S, C) attribute probabilities of
    each view, averaged over the views."""
    with torch.no_grad():
        marginal = sum(view.mean(dim=0) for view in p) / len(p)
        entropy = -torch.special.xlogy(marginal, marginal).sum(dim=-1)
        confidence = sum(view.amax(dim=-1).mean(dim=0) for view in p) / len(p)
    return entropy, confidence  # type: ignore[return-value]
