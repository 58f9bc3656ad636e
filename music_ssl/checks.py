"""Argument checks shared by every entry point: one error style, raised before any math runs.

Imports nothing of the package: checking an argument loads no implementation."""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor

DOUBLE_BACKWARD_MESSAGE = (
    "The {name!r} MUSIC implementation (a fused one: its gradient comes from a custom operator, and "
    "'auto' picks a fused one) does not support double backward (differentiating a gradient, e.g. a "
    "gradient penalty or backward(create_graph=True)). Use MUSICLoss(implementation='reference'), whose "
    "backward is differentiable."
)

TRANSFORM_MESSAGE = (
    "Forward-mode AD and torch.func transforms (jvp, jacfwd, grad, vmap, ...) do not reach through the "
    "{name!r} MUSIC implementation (a fused one, and 'auto' picks a fused one): its gradients come from a "
    "custom operator that only reverse-mode autograd calls. Use MUSICLoss(implementation='reference'), "
    "whose derivatives are plain autograd's."
)


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


def views(
    z_a: object,
    z_b: object,
    num_global: object,
    segment_dim: int,
    temperature: float,
    off_weight: float,
) -> tuple[tuple[Tensor, ...], int]:
    """Everything one call of the loss checks about its views, given options already checked: two views
    ``z_a``, ``z_b``, or a sequence of V >= 2 views in ``z_a`` (``z_b`` None), the first ``num_global`` of
    them global. Returns the views and how many are global."""
    if isinstance(z_b, int) and not isinstance(z_b, bool) and isinstance(z_a, list | tuple):
        raise TypeError(
            f"With a list of views, pass how many are global by name: loss(views, num_global={z_b}); got "
            f"the views and {z_b!r} as the second positional argument, which is z_b, the second view."
        )
    if z_b is None and isinstance(z_a, list | tuple):
        named = [(f"views[{index}]", z) for index, z in enumerate(z_a)]
        if len(named) < 2:
            raise ValueError(
                f"MUSIC compares views: pass a sequence of at least two (N, D) projections, got {len(named)}."
            )
    else:
        if z_b is None:
            raise TypeError(
                "z_b is missing: pass two views, loss(z_a, z_b), or a list of every view, "
                f"loss([z_1, z_2, ...], num_global=G); got z_a of type {type(z_a).__name__} alone."
            )
        named = [("z_a", z_a), ("z_b", z_b)]
    for name, z in named:
        projection(name, z)
    first_name, first = named[0]
    assert isinstance(first, Tensor)
    for name, z in named[1:]:
        assert isinstance(z, Tensor)
        for what, mine, theirs in (
            ("shape", tuple(first.shape), tuple(z.shape)),
            ("device", first.device, z.device),
            ("dtype", first.dtype, z.dtype),
        ):
            if mine != theirs:
                raise ValueError(_differ(first_name, name, what, mine, theirs))
    both = "z_a and z_b have" if first_name == "z_a" else "the views have"
    segment_width(both, tuple(first.shape), segment_dim)
    temperature_fits(temperature, first.dtype)
    segments(first.shape[1] // segment_dim, off_weight)
    return tuple(z for _, z in named), global_count(num_global, len(named))


def _differ(first: str, other: str, what: str, mine: object, theirs: object) -> str:
    message = f"{first} and {other} must have the same {what}, got {mine} and {theirs}"
    if what == "shape":
        return message + " (every view is (N, D): the same images, projected to the same width)."
    if what == "dtype":
        return (
            message + f"; cast one to the other's (e.g. {other}.to({first}.dtype)), so that the loss is "
            "symmetric in the views."
        )
    return message + "."


def global_count(num_global: object, num_views: int) -> int:
    """How many of ``num_views`` views are global (the first ones); None is accepted for two views."""
    if num_global is None:
        if num_views == 2:
            return 2
        raise ValueError(
            f"num_global must be given with more than two views (got {num_views}): how many of them, the "
            "first ones, are global views; every pair with at least one global view enters the loss. Use "
            f"num_global={num_views} when every view is global."
        )
    if isinstance(num_global, bool) or not isinstance(num_global, int):
        raise TypeError(
            f"num_global must be an int from 1 to the number of views ({num_views}), got {num_global!r} "
            f"of type {type(num_global).__name__}."
        )
    if not 1 <= num_global <= num_views:
        raise ValueError(f"num_global must be from 1 to the number of views ({num_views}), got {num_global}.")
    return num_global


def temperature_fits(temperature: float, dtype: torch.dtype) -> None:
    """The logits are divided by the temperature in the dtype the loss computes in (float32, float64 for
    float64 inputs: `music_ssl.segments.compute_dtype`): 1 / temperature must be finite there."""
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
