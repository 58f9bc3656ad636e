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
        code_entropy: Shape (S,). Entropy in nats of how the (global) batch's hard codes, each sample's
            most likely attribute, spread over each segment's attributes, averaged over the views;
            exp(code_entropy) is the number of attributes the codes effectively use. It can be far below
            attribute_entropy: soft distributions that each favour one of a few attributes average to a
            near-uniform marginal while the codes use only those few. Detached.
    """

    loss: Tensor
    inv: Tensor
    diag: Tensor
    off: Tensor
    attribute_entropy: Tensor
    confidence: Tensor
    code_entropy: Tensor

    @property
    def invariance(self) -> Tensor:
        """``inv`` under its former name; kept as an alias."""
        return self.inv

    def collapsed_segments(self, segment_dim: int, fraction: float = 0.5, codes: bool = False) -> list[int]:
        """The segments whose attribute entropy fell below ``fraction`` of its maximum, log(segment_dim):
        they use few of their attributes over the batch; with ``codes=True``, the segments whose hard codes
        do (`code_entropy`). Empty in healthy training (see docs/monitoring.md); a check to switch on, e.g.
        ``if out.collapsed_segments(32, codes=True): warnings.warn(...)``. One host sync."""
        checks.segment_dim(segment_dim)
        if not isinstance(codes, bool):
            raise TypeError(f"codes must be a bool, got {codes!r} of type {type(codes).__name__}.")
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise TypeError(
                f"fraction must be a float in (0, 1), got {fraction!r} of type {type(fraction).__name__}."
            )
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be a float in (0, 1), got {fraction!r}.")
        bound = fraction * math.log(segment_dim)
        entropy = self.code_entropy if codes else self.attribute_entropy
        return [int(s) for s in torch.nonzero(entropy < bound).flatten().tolist()]

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
            f"{prefix}music_code_entropy": self.code_entropy.mean(),
            f"{prefix}music_code_entropy_min": self.code_entropy.min(),
        }


def segment_diagnostics(p: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """Attribute-usage entropy, confidence and hard-code entropy per segment from the (N, S, C) attribute
    probabilities of each view, averaged over the views."""
    return diagnostics(segment_sums(p), p[0].shape[0] * len(p))


def segment_sums(p: Sequence[Tensor]) -> Tensor:
    """What the diagnostics sum over samples, from the (N, S, C) attribute probabilities of each view,
    summed over the views: (3, S, C), the attribute probabilities, the hard codes' counts, and (in its
    first column) each sample's largest probability. Sums, so that ranks can add theirs."""
    with torch.no_grad():
        num_segments, segment_dim = p[0].shape[1:]
        sums = p[0].new_zeros((3, num_segments, segment_dim))
        for view in p:
            sums[0] += view.sum(dim=0)
            codes = view.argmax(dim=-1).T  # (S, N)
            sums[1].scatter_add_(1, codes, view.new_ones(codes.shape))
            sums[2, :, 0] += view.amax(dim=-1).sum(dim=0)
    return sums


def diagnostics(sums: Tensor, count: int) -> tuple[Tensor, Tensor, Tensor]:
    """Attribute entropy, confidence and code entropy per segment (`MUSICOutput`), averaged over the
    views, from the `segment_sums` of ``count`` rows (samples times views)."""
    with torch.no_grad():
        means = sums.detach() / max(count, 1)
    return _entropy(means[0]), means[2, :, 0].clone(), _entropy(means[1])


def _entropy(share: Tensor) -> Tensor:
    return -torch.special.xlogy(share, share).sum(dim=-1)
