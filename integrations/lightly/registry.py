"""Adds MUSIC to the METHODS table of lightly's benchmark runner."""

from __future__ import annotations

from typing import Any


def register(
    methods: dict[str, dict[str, Any]], name: str = "music", multi_crop: bool = False
) -> dict[str, dict[str, Any]]:
    """Adds MUSIC to a runner's METHODS dict, so that `--methods music` selects it.

    The dict is the one of lightly's `benchmarks/imagenet/resnet50/main.py`: every method name maps to
    `{"model": LightningModule class, "transform": training transform}`.

    Args:
        methods: The runner's METHODS dict; updated in place.
        name: The key MUSIC is registered under.
        multi_crop: Train on `imagenet_resnet50.multi_crop_transform` (two global views of 224 px and six
            local views of 96 px) instead of the recipe's two views, `imagenet_resnet50.transform`.

    Returns:
        The same dict, for chaining.

    Raises:
        ValueError: If name is already taken by another method or by MUSIC with other views.
        TypeError: If multi_crop is not a bool.

    Examples:
        >>> import main  # lightly's benchmarks/imagenet/resnet50/main.py
        >>> register(main.METHODS)
        >>> main.main(**vars(main.parser.parse_args(["--methods", "music"])))
        >>> register(main.METHODS, name="music_multicrop", multi_crop=True)  # --methods music_multicrop
    """
    if not isinstance(multi_crop, bool):
        raise TypeError(f"multi_crop must be a bool, got {multi_crop!r} of type {type(multi_crop).__name__}.")
    # Imported here so that `import music_ssl.integrations.lightly` stays cheap: torchvision's
    # ResNet-50 and pytorch_lightning are only needed by the benchmark.
    from . import imagenet_resnet50

    transform = imagenet_resnet50.multi_crop_transform if multi_crop else imagenet_resnet50.transform
    entry = {"model": imagenet_resnet50.MUSIC, "transform": transform}
    existing = methods.get(name)
    if existing is not None and (
        existing.get("model") is not entry["model"] or existing.get("transform") is not transform
    ):
        raise ValueError(
            f"methods already has an entry {name!r} for {existing.get('model')!r} with "
            f"{type(existing.get('transform')).__name__}; pass another name, e.g. "
            f"register(methods, name='music_ssl')."
        )
    methods[name] = entry
    return methods
