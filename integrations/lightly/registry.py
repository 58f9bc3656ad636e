"""Adds MUSIC to the METHODS table of lightly's benchmark runner."""

from __future__ import annotations

from typing import Any


def register(methods: dict[str, dict[str, Any]], name: str = "music") -> dict[str, dict[str, Any]]:
    """Adds MUSIC to a runner's METHODS dict, so that `--methods music` selects it.

    The dict is the one of lightly's `benchmarks/imagenet/resnet50/main.py`: every method name maps to
    `{"model": LightningModule class, "transform": training transform}`.

    Args:
        methods: The runner's METHODS dict; updated in place.
        name: The key MUSIC is registered under.

    Returns:
        The same dict, for chaining.

    Raises:
        ValueError: If name is already taken by another method.

    Examples:
        >>> import main  # lightly's benchmarks/imagenet/resnet50/main.py
        >>> register(main.METHODS)
        >>> main.main(**vars(main.parser.parse_args(["--methods", "music"])))
    """
    # Imported here so that `import music_ssl.integrations.lightly` stays cheap: torchvision's
    # ResNet-50 and pytorch_lightning are only needed by the benchmark.
    from . import imagenet_resnet50

    entry = {"model": imagenet_resnet50.MUSIC, "transform": imagenet_resnet50.transform}
    existing = methods.get(name)
    if existing is not None and existing.get("model") is not entry["model"]:
        raise ValueError(
            f"methods already has an entry {name!r} for {existing.get('model')!r}; "
            f"pass another name, e.g. register(methods, name='music_ssl')."
        )
    methods[name] = entry
    return methods
