"""Which views of a lightly batch are global, and which are projected together; imports no lightly.

A lightly multi-view transform gives a batch its views as a list of (N, C, H, W) tensors in the
transform's order: `MUSICTransform` two views of one size, `MUSICMultiCropTransform` (as lightly's
`DINOTransform`) the global views first, then the smaller local ones. The global views are told from
the local ones by their size: the leading views of the first view's size are global, and every later
view must be smaller.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

TRANSFORMS = "transform=MUSICTransform() or MUSICMultiCropTransform() (music_ssl.integrations.lightly)"


def size_groups(views: Sequence[Tensor]) -> list[slice]:
    """The views in runs of one image size, in order: the first run is the global views, and the backbone
    can take each run as one batch.

    Args:
        views: The batch's views, each (N, C, H, W), the global (largest) views first.

    Returns:
        One slice of ``views`` per run of consecutive views of one size (H, W); with two views of one size,
        ``[slice(0, 2)]``.

    Raises:
        ValueError: If ``views`` is not a list or tuple of at least two tensors, or a view after the global
            views is not smaller than they are (the views are out of order).
    """
    if not isinstance(views, list | tuple) or len(views) < 2:
        count = len(views) if isinstance(views, list | tuple) else f"a {type(views).__name__}"
        raise ValueError(
            f"MUSIC trains on at least two views of every image, got {count}: build the dataset with "
            f"{TRANSFORMS}, which return two views, or two global views and local ones."
        )
    for index, view in enumerate(views):
        if not isinstance(view, Tensor) or view.dim() < 3:
            found = tuple(view.shape) if isinstance(view, Tensor) else type(view).__name__
            raise ValueError(f"view {index} must be an image tensor (N, C, H, W), got {found}.")
    sizes = [tuple(view.shape[-2:]) for view in views]
    groups, start = [], 0
    for index in range(1, len(views) + 1):
        if index == len(views) or sizes[index] != sizes[start]:
            groups.append(slice(start, index))
            start = index
    global_area = sizes[0][0] * sizes[0][1]
    for index in range(groups[0].stop, len(views)):
        if sizes[index][0] * sizes[index][1] >= global_area:
            raise ValueError(
                f"view {index} ({sizes[index][0]}x{sizes[index][1]} px) follows a smaller view but is not "
                f"smaller than the global views ({sizes[0][0]}x{sizes[0][1]} px); view sizes (H, W): "
                f"{sizes}. Give the global (largest) views first, then the smaller local views, as "
                f"{TRANSFORMS} do."
            )
    return groups
