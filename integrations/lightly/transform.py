"""Asymmetric two-view augmentations for MUSIC, built from lightly's VICReg view transform."""

from __future__ import annotations

from lightly.transforms.multi_view_transform import MultiViewTransform
from lightly.transforms.utils import IMAGENET_NORMALIZE
from lightly.transforms.vicreg_transform import VICRegViewTransform

from . import recipe


class MUSICView1Transform(VICRegViewTransform):
    """First view for MUSIC: always blurred, never solarized.

    The MUSIC ImageNet recipe uses VICReg's asymmetric augmentations [0]: the same crop, flip,
    color jitter (0.4, 0.4, 0.2, 0.1 with p=0.8) and gray scale for both views, but Gaussian
    blur with p=1.0 and no solarization on the first view. lightly's `VICRegTransform` applies
    one symmetric view transform twice, so the two views are spelled out here.

    All keyword arguments of `VICRegViewTransform` are accepted; only the defaults differ (they are
    `recipe.VIEW_1`).

    - [0]: VICReg, 2022, https://arxiv.org/abs/2105.04906
    """

    defaults = recipe.VIEW_1

    def __init__(self, normalize: dict[str, list[float]] | None = IMAGENET_NORMALIZE, **kwargs) -> None:
        super().__init__(normalize=normalize, **{**self.defaults, **kwargs})


class MUSICView2Transform(MUSICView1Transform):
    """Second view for MUSIC: rarely blurred (p=0.1), solarized with p=0.2."""

    defaults = recipe.VIEW_2


class MUSICTransform(MultiViewTransform):
    """Returns two views of an image for MUSIC, one from each view transform.

    Input to this transform:
        PIL Image.
    Output of this transform:
        List of two Tensors, `[view_1, view_2]`.

    Examples:
        >>> transform = MUSICTransform()  # ImageNet recipe, 224 px
        >>> small = MUSICTransform(input_size=32)  # CIFAR-sized images: both views at 32 px
        >>> custom = MUSICTransform(
        ...     view_1_transform=MUSICView1Transform(input_size=32, gaussian_blur=0.0),
        ...     view_2_transform=MUSICView2Transform(input_size=32, gaussian_blur=0.0),
        ... )

    Args:
        view_1_transform: Transform of the first view, `MUSICView1Transform(**view_kwargs)` if None.
        view_2_transform: Transform of the second view, `MUSICView2Transform(**view_kwargs)` if None.
        **view_kwargs: Keyword arguments of `VICRegViewTransform` (``input_size``, ``gaussian_blur``,
            ``normalize``, ...) given to both default view transforms, as `VICRegTransform(input_size=32)`
            takes them; not allowed beside explicit view transforms.
    """

    def __init__(
        self,
        view_1_transform: MUSICView1Transform | None = None,
        view_2_transform: MUSICView2Transform | None = None,
        **view_kwargs: object,
    ) -> None:
        if view_kwargs and (view_1_transform is not None or view_2_transform is not None):
            raise TypeError(
                f"MUSICTransform got view_1_transform/view_2_transform and also {sorted(view_kwargs)}: "
                "pass the keyword arguments to the view transforms you build, or build neither."
            )
        view_1_transform = view_1_transform or MUSICView1Transform(**view_kwargs)
        view_2_transform = view_2_transform or MUSICView2Transform(**view_kwargs)
        super().__init__(transforms=[view_1_transform, view_2_transform])
