"""The loss's options as one validated, immutable value, from `MUSICLoss` / `music_loss` to the kernels."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import torch.distributed as dist

from music_ssl import _validation as check
from music_ssl import distributed

# The type of ``process_group`` (a torch built without torch.distributed has none: only None is accepted).
ProcessGroup = dist.ProcessGroup if dist.is_available() else type(None)


class LossMath(NamedTuple):
    """What the math of one call reads, as `MUSICOptions.math()` gives it: primitives only, as a custom
    operator's schema takes them."""

    segment_dim: int
    temperature: float
    diag_weight: float
    off_weight: float
    inv_weight: float
    # Whether this call estimates the joint over the process group's batch (the distributed policy's
    # answer for this call), the group's name for `distributed.process_group`, and the numbers every rank
    # of the group must agree on (`distributed.agreement`).
    gather: bool
    group: str
    agreement: list[float]


@dataclass(frozen=True)
class MUSICOptions:
    """Every option of the MUSIC loss, checked once when built (see `MUSICLoss` for their meaning).

    Built when a `MUSICLoss` is constructed, so a bad option fails there, eagerly, and a compiled step
    (`torch.compile`, also with `dynamic=True`) never traces a check of a Python number. A changed option
    is a new value: ``dataclasses.replace(options, temperature=0.5)`` checks it again.
    """

    segment_dim: int = 32
    temperature: float = 1.0
    diag_weight: float = 1.0
    off_weight: float = 1.0
    inv_weight: float = 1.0
    gather_distributed: bool | str = "auto"
    implementation: str = "auto"
    process_group: ProcessGroup | None = None

    def __post_init__(self) -> None:
        checked = {
            "segment_dim": check.segment_dim(self.segment_dim),
            "temperature": check.temperature(self.temperature),
            "diag_weight": check.weight("diag_weight", self.diag_weight),
            "off_weight": check.weight("off_weight", self.off_weight),
            "inv_weight": check.weight("inv_weight", self.inv_weight),
            "gather_distributed": check.gather(self.gather_distributed),
            "implementation": check.implementation(self.implementation),
            "process_group": check.process_group(self.process_group),
        }
        if checked["gather_distributed"] is True and not dist.is_available():
            raise ValueError(
                "gather_distributed is True but torch.distributed is not available. "
                "Please set gather_distributed=False or install a torch version with distributed support."
            )
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # normalized: ints stay ints, weights become floats
        object.__setattr__(self, "_group_name", distributed.group_name(self.process_group))
        object.__setattr__(self, "_agreement", list(distributed.agreement(self)))

    def __deepcopy__(self, memo: dict) -> MUSICOptions:
        # A process group cannot be copied (a copy of a model that holds the loss, as for an EMA teacher,
        # would fail on it): the copy is the same options, sharing the group.
        return dataclasses.replace(self)

    def math(self, grad_enabled: bool) -> LossMath:
        """What one call's math reads; ``grad_enabled``: torch's grad mode for the call."""
        return LossMath(
            self.segment_dim,
            self.temperature,
            self.diag_weight,
            self.off_weight,
            self.inv_weight,
            distributed.gathers(self.gather_distributed, self.process_group, grad_enabled),
            self._group_name,  # type: ignore[attr-defined]
            self._agreement,  # type: ignore[attr-defined]
        )
