"""Argument checks shared by every entry point: one error style, raised before any math runs.

Imports nothing of the package: checking an argument loads no implementation."""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor


def segment_dim(segment_dim: object) -> int:
    if isinstance(segment_dim, bool) or not isinstance(segment_dim, int):
        raise TypeError(
            f"segment_dim must be an int >= 2, got {segment_dim!r} of type {type(segment_dim).__name__}."
        )
    if segment_dim < 2:
        raise ValueError(
            f"segment_dim must be >= 2 (a segment is a distribution over at least two attributes), "
            f"got {segment_dim}."
        )
    return segment_dim


def temperature(temperature: object) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, Real):
        raise TypeError(f"temperature must be a positive float, got {temperature!r}.")
    # Comparisons, not math.isfinite, which torch.compile cannot trace (NaN fails both).
    value = float(temperature)
    if not 0 < value < math.inf:
        raise ValueError(f"temperature must be a positive, finite float, got {temperature}.")
    return value


def weight(name: str, weight: object) -> float:
    if isinstance(weight, bool) or not isinstance(weight, Real):
        raise TypeError(f"{name} must be a non-negative float, got {weight!r}.")
    value = float(weight)
    if not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a non-negative, finite float, got {weight}.")
    return value


def flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r} of type {type(value).__name__}.")
    return value


def gather(value: object) -> bool | str:
    if value is True or value is False or value == "auto":
        return value
    raise (ValueError if isinstance(value, str) else TypeError)(
        f"gather_distributed must be True, False or 'auto', got {value!r} of type {type(value).__name__}."
    )


def process_group(group: object) -> object:
    import torch.distributed as dist

    if group is None or (dist.is_available() and isinstance(group, dist.ProcessGroup)):
        return group
    if dist.is_available() and group is dist.GroupMember.NON_GROUP_MEMBER:
        raise ValueError(
            "process_group is torch.distributed.GroupMember.NON_GROUP_MEMBER: new_group returned it because "
            "this process is not one of the group's ranks; pass the data-parallel group this rank belongs to."
        )
    raise TypeError(
        f"process_group must be None (the default group) or a torch.distributed.ProcessGroup, as "
        f"torch.distributed.new_group returns it, got {group!r} of type {type(group).__name__}."
    )


def positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {value!r} of type {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}.")
    return value


def choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be a str, one of {choices}, got {value!r} of type {type(value).__name__}."
        )
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")
    return value


def output_dim(output_dim: int, segment_dim: int) -> None:
    if output_dim % segment_dim != 0:
        raise ValueError(
            f"output_dim ({output_dim}) must be divisible by segment_dim ({segment_dim}); "
            f"e.g. use output_dim={max(1, output_dim // segment_dim) * segment_dim}."
        )


def projection(name: str, z: object) -> None:
    """A projection is a 2-D floating tensor (batch, dim)."""
    if not isinstance(z, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (batch, dim), got {type(z).__name__}.")
    if not z.is_floating_point():
        raise TypeError(
            f"{name} must have a floating dtype (float16, bfloat16, float32 or float64), got {z.dtype}."
        )
    if z.dim() != 2:
        raise ValueError(f"{name} must be 2-D (batch, dim), got shape {tuple(z.shape)}.")


def segment_width(names: str, shape: tuple[int, ...], segment_dim: int) -> None:
    """The width of a projection is a positive multiple of segment_dim: whole segments, at least one."""
    dim = shape[1]
    if dim == 0:
        raise ValueError(
            f"{names} width 0 (shape {shape}); MUSIC needs at least one segment of segment_dim "
            f"({segment_dim}) attributes."
        )
    if dim % segment_dim != 0:
        raise ValueError(
            f"The projection dimension ({dim}) must be divisible by segment_dim ({segment_dim}); "
            f"choose a segment_dim that divides {dim} or change the projection head's output_dim."
        )


def views(z_a: object, z_b: object, segment_dim: int, temperature: float, off_weight: float) -> None:
    """Everything one call of the loss checks about its views, given options already checked."""
    projections(z_a, z_b, segment_dim)
    assert isinstance(z_a, Tensor)
    temperature_fits(temperature, z_a.dtype)
    segments(z_a.shape[1] // segment_dim, off_weight)


def projections(z_a: object, z_b: object, segment_dim: int) -> None:
    projection("z_a", z_a)
    projection("z_b", z_b)
    assert isinstance(z_a, Tensor) and isinstance(z_b, Tensor)
    if z_a.shape != z_b.shape:
        raise ValueError(
            f"z_a and z_b must have the same shape, got {tuple(z_a.shape)} and {tuple(z_b.shape)}."
        )
    if z_a.device != z_b.device:
        raise ValueError(f"z_a and z_b must be on the same device, got {z_a.device} and {z_b.device}.")
    if z_a.dtype != z_b.dtype:
        raise ValueError(
            f"z_a and z_b must have the same dtype, got {z_a.dtype} and {z_b.dtype}; cast one to the other's "
            "(e.g. z_b.to(z_a.dtype)), so that the loss is symmetric in the two views."
        )
    segment_width("z_a and z_b have", tuple(z_a.shape), segment_dim)


def temperature_fits(temperature: float, dtype: torch.dtype) -> None:
    """The logits are divided by the temperature in the dtype the loss computes in (float32, float64 for
    float64 inputs: `music_ssl.fused.compute_dtype`): 1 / temperature must be finite there."""
    computed = torch.promote_types(dtype, torch.float32)
    smallest = torch.finfo(computed).tiny
    if temperature < smallest:
        raise ValueError(
            f"temperature={temperature:g} is below the smallest normal {computed} number "
            f"({smallest:.3g}), so logits / temperature overflow for {dtype} inputs; use a temperature "
            f">= {smallest:.3g} (in practice around 0.1 to 1)."
        )


def segments(num_segments: int, off_weight: float) -> None:
    if num_segments == 1 and off_weight > 0:
        raise ValueError(
            "off_weight > 0 needs at least two segments (the off-diagonal term is the joint entropy of pairs "
            f"of different segments), got a single segment with off_weight={off_weight}; "
            "use off_weight=0.0 or a smaller segment_dim."
        )
