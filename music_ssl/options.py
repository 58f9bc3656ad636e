"""The loss's options as one validated, immutable value, from `MUSICLoss` / `music_loss` to the kernels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch.distributed as dist

from music_ssl import _validation as check


class LossMath(NamedTuple):
    """The options the math reads, as `MUSICOptions.math()` gives them; "auto" gathering is True here
    (it gathers exactly when there is more than one rank, which is when gathering does anything)."""

    segment_dim: int
    temperature: float
    diag_weight: float
    off_weight: float
    inv_weight: float
    gather_distributed: bool


@dataclass(frozen=True)
class MUSICOptions:
    """Every option of the MUSIC loss, checked once when built (see `MUSICLoss` for their meaning).

    Built when a `MUSICLoss` is constructed, so a bad option fails there, eagerly, and a compiled step
    (`torch.compile`, also with `dynamic=True`) never traces a check of a Python number.
    """

    segment_dim: int = 32
    temperature: float = 1.0
    diag_weight: float = 1.0
    off_weight: float = 1.0
    inv_weight: float = 1.0
    gather_distributed: bool | str = "auto"
    implementation: str = "auto"

    def __post_init__(self) -> None:
        checked = {
            "segment_dim": check.segment_dim(self.segment_dim),
            "temperature": check.temperature(self.temperature),
            "diag_weight": check.weight("diag_weight", self.diag_weight),
            "off_weight": check.weight("off_weight", self.off_weight),
            "inv_weight": check.weight("inv_weight", self.inv_weight),
            "gather_distributed": check.gather(self.gather_distributed),
            "implementation": check.implementation(self.implementation),
        }
        if checked["gather_distributed"] is True and not dist.is_available():
            raise ValueError(
                "gather_distributed is True but torch.distributed is not available. "
                "Please set gather_distributed=False or install a torch version with distributed support."
            )
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # normalized: ints stay ints, weights become floats

    def math(self) -> LossMath:
        """The options the math reads, in the order the implementations take them."""
        return LossMath(
            self.segment_dim,
            self.temperature,
            self.diag_weight,
            self.off_weight,
            self.inv_weight,
            self.gather_distributed is not False,
        )
