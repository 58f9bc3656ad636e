"""``method_kwargs`` of ``method=music``: defaults and validation, without solo-learn.

The solo method calls `resolve_method_kwargs` from its config hook, so a bad option fails when the
method is built, with the message of music-ssl's own checks, instead of at the first training step.
"""

from __future__ import annotations

import dataclasses
import difflib
import warnings
from collections.abc import Mapping
from typing import Any

import torch

from music_ssl import MUSICOptions, MUSICProjectionHead

REQUIRED = ("proj_hidden_dim", "proj_output_dim")

# The loss's options a config holds: every option of `MUSICOptions` but those the trainer sets (whether to
# gather over its processes, and their group), so that a new option of the loss is one here too.
SET_BY_THE_TRAINER = ("gather_distributed", "process_group")
LOSS_OPTIONS = tuple(
    field.name
    for field in dataclasses.fields(MUSICOptions)
    if field.init and field.name not in SET_BY_THE_TRAINER
)

# proj_num_layers counts Linear layers, as MUSICProjectionHead's num_layers does: 3 is solo-learn's
# Barlow Twins / VICReg projector shape (two Linear+BatchNorm+ReLU blocks, then the output Linear). The
# loss's defaults are the core's.
DEFAULTS: dict[str, Any] = {
    "proj_num_layers": 3,
    **{name: getattr(MUSICOptions(), name) for name in LOSS_OPTIONS},
}

ACCEPTED = (*REQUIRED, *DEFAULTS)


def resolve_method_kwargs(method_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Fills the defaults of ``method_kwargs`` and checks every option with music-ssl's own checks.

    Args:
        method_kwargs: the ``method_kwargs`` node of a solo-learn config, as a mapping. A key whose
            value is OmegaConf's ``???`` must be left out by the caller (it counts as absent).

    Returns:
        dict[str, Any]: every key of `ACCEPTED`, the given values first, then the `DEFAULTS`, with
        numbers normalised as the core normalises them (weights and temperature as floats); other
        given keys are returned unchanged.

    Warns:
        UserWarning: for keys that are not options of method=music (another method's options, kept
            when a solo-learn config of that method is run with ``method=music``).

    Raises:
        ValueError: if a required key is absent, a value is out of range, or a key is a near miss of
            an option's name (a typo, e.g. ``segmnet_dim``).
        TypeError: if a value has the wrong type.
    """

    if "proj_num_hidden_layers" in method_kwargs:
        hidden = method_kwargs["proj_num_hidden_layers"]
        suggestion = hidden + 1 if isinstance(hidden, int) and not isinstance(hidden, bool) else "N"
        raise ValueError(
            f"method_kwargs.proj_num_hidden_layers={hidden!r} is not an option of method=music: the "
            "projector's depth is method_kwargs.proj_num_layers, the number of Linear layers as in "
            f"music_ssl.MUSICProjectionHead(num_layers=...); use proj_num_layers={suggestion}."
        )
    unknown = sorted(set(method_kwargs) - set(ACCEPTED))
    for key in unknown:
        # A near miss of one of our names is a typo, which would train silently with the default.
        close = difflib.get_close_matches(str(key), ACCEPTED, n=1, cutoff=0.8)
        if close:
            raise ValueError(
                f"method_kwargs.{key}={method_kwargs[key]!r} is not an option of method=music; did you mean "
                f"method_kwargs.{close[0]}? Its options are {list(ACCEPTED)}."
            )
    if unknown:
        # Not an error: another method's config run with method=music keeps that method's options.
        warnings.warn(
            f"method_kwargs {unknown} are not options of method=music and are ignored; "
            f"its options are {list(ACCEPTED)}.",
            stacklevel=2,
        )
    missing = [key for key in REQUIRED if key not in method_kwargs]
    if missing:
        raise ValueError(
            f"method_kwargs.{missing[0]} is required by method=music (the projector's dimensions); "
            f"set it in the config, e.g. method_kwargs.{missing[0]}=1024."
        )

    kwargs = {**DEFAULTS, **method_kwargs}
    try:
        options = MUSICOptions(**{name: kwargs[name] for name in LOSS_OPTIONS})
    except (TypeError, ValueError) as error:
        raise type(error)(f"method_kwargs of method=music: {error}") from error
    kwargs.update({name: getattr(options, name) for name in LOSS_OPTIONS})  # as the loss holds them
    try:
        # Built on the meta device: the head's own checks run, no weight is allocated. input_dim is
        # the backbone's, known only when the method is built; any valid value checks the rest.
        with torch.device("meta"):
            head = MUSICProjectionHead(
                input_dim=1,
                hidden_dim=kwargs["proj_hidden_dim"],
                output_dim=kwargs["proj_output_dim"],
                num_layers=kwargs["proj_num_layers"],
                segment_dim=kwargs["segment_dim"],
            )
    except (TypeError, ValueError) as error:
        raise type(error)(
            f"method_kwargs of method=music: {error} (proj_hidden_dim, proj_output_dim and "
            "proj_num_layers are MUSICProjectionHead's hidden_dim, output_dim and num_layers)"
        ) from error
    try:
        options.check_width(head.output_dim)
    except ValueError as error:
        raise ValueError(f"method_kwargs of method=music: {error}") from error
    return kwargs
