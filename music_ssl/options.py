"""The loss's options as one validated, immutable value, from `MUSICLoss` / `music_loss` to the operator."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

import torch.distributed as dist

from music_ssl import checks, distributed, registry

# The type of ``process_group`` (a torch built without torch.distributed has none: only None is accepted).
if typing.TYPE_CHECKING:
    from torch.distributed import ProcessGroup
else:
    ProcessGroup = dist.ProcessGroup if dist.is_available() else type(None)


@dataclass(frozen=True)
class MUSICOptions:
    """Every option of the MUSIC loss, checked once when built (see `MUSICLoss` for their meaning).

    Built when a `MUSICLoss` is constructed, so a bad option fails there, eagerly, and a compiled step
    (`torch.compile`, also with `dynamic=True`) never traces a check of a Python number. A changed option
    is a new value: ``dataclasses.replace(options, temperature=0.5)`` checks it again.

    What a call needs besides the options themselves is derived here once: ``rank_settings``, the numbers
    every rank of the group must agree on before one joint is estimated over their batches
    (`music_ssl.distributed`), and ``group_key``, the name of ``process_group`` in an operator's arguments.
    """

    segment_dim: int = 32
    temperature: float = 0.25
    diag_weight: float = 1.0
    off_weight: float = 1.0
    inv_weight: float = 1.0
    gather_distributed: bool | str = "auto"
    implementation: str = "auto"
    process_group: ProcessGroup | None = None
    exchange: str = "auto"
    rank_settings: tuple[float, ...] = dataclasses.field(init=False, repr=False, compare=False)
    group_key: str = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        checked = {
            "segment_dim": checks.segment_dim(self.segment_dim),
            "temperature": checks.temperature(self.temperature),
            "diag_weight": checks.weight("diag_weight", self.diag_weight),
            "off_weight": checks.weight("off_weight", self.off_weight),
            "inv_weight": checks.weight("inv_weight", self.inv_weight),
            "gather_distributed": checks.gather(self.gather_distributed),
            "implementation": checks.choice("implementation", self.implementation, registry.choices()),
            "process_group": checks.process_group(self.process_group),
            "exchange": checks.choice("exchange", self.exchange, distributed.EXCHANGE_CHOICES),
        }
        if checked["gather_distributed"] is True and not dist.is_available():
            raise ValueError(
                "gather_distributed is True but torch.distributed is not available. "
                "Please set gather_distributed=False or install a torch version with distributed support."
            )
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # normalized: ints stay ints, weights become floats
        # The choices as their index (`distributed.RANK_SETTINGS_FIELDS` gives the order).
        encoded = {
            "gather_distributed": distributed.GATHER_CHOICES.index(self.gather_distributed),
            "exchange": distributed.EXCHANGE_CHOICES.index(self.exchange),
            "implementation": registry.choices().index(self.implementation),
        }
        rank_settings = tuple(
            float(encoded.get(name, getattr(self, name))) for name in distributed.RANK_SETTINGS_FIELDS
        )
        object.__setattr__(self, "rank_settings", rank_settings)
        object.__setattr__(self, "group_key", distributed.group_key(self.process_group))

    def __deepcopy__(self, memo: dict) -> MUSICOptions:
        # A process group cannot be copied (a copy of a model that holds the loss, as for an EMA teacher,
        # would fail on it): the copy is the same options, sharing the group.
        return dataclasses.replace(self)

    def check_width(self, dim: int) -> None:
        """Raises the error a call would raise for projections ``dim`` wide: not whole segments, or a single
        segment while off_weight > 0 (the off-diagonal term needs two). For checking a configuration
        before training (a projection head's output_dim)."""
        checks.positive_int("dim", dim)
        checks.segment_width("projections of", (1, dim), self.segment_dim)
        checks.segments(dim // self.segment_dim, self.off_weight)
