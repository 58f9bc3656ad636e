"""Augmentations for MUSIC, built from lightly's VICReg view transform: two asymmetric views, or two global
views and several small local ones (multi-crop)."""

from __future__ import annotations

from collections.abc import Sequence

from lightly.transforms.multi_view_transform import MultiViewTransform
from lightly.transforms.utils import IMAGENET_NORMALIZE
from lightly.transforms.vicreg_transform import VICRegViewTransform
from torchvision import transforms as transforms_v1
from torchvision.transforms import v2 as transforms_v2

from . import recipe

# Multi-crop defaults, DINO's [0]: the global views crop 40-100 % of the image's area, the local views
# 5-40 %, so that the two kinds split the scales between them; six local views of 96 px next to two global
# views of 224 px.
GLOBAL_CROP_SCALE = (0.4, 1.0)
LOCAL_CROP_SCALE = (0.05, 0.4)
N_LOCAL_VIEWS = 6
LOCAL_VIEW_SIZE = 96


def _crop_scale(name: str, scale: object) -> tuple[float, float]:
    """``scale`` as a (min, max) area fraction with 0 < min <= max <= 1, or a ValueError naming ``name``."""
    if (
        isinstance(scale, Sequence)
        and len(scale) == 2
        and all(isinstance(s, int | float) and not isinstance(s, bool) for s in scale)
        and 0 < scale[0] <= scale[1] <= 1
    ):
        return float(scale[0]), float(scale[1])
    raise ValueError(
        f"{name} must be (min, max) fractions of the image's area with 0 < min <= max <= 1, got {scale!r}; "
        f"e.g. {name}={LOCAL_CROP_SCALE if name.startswith('local') else GLOBAL_CROP_SCALE}."
    )


class MUSICView1Transform(VICRegViewTransform):
    """First view for MUSIC: always blurred, never solarized.

    The MUSIC ImageNet recipe uses VICReg's asymmetric augmentations [0]: the same crop, flip,
    color jitter (0.4, 0.4, 0.2, 0.1 with p=0.8) and gray scale for both views, but Gaussian
    blur with p=1.0 and no solarization on the first view. lightly's `VICRegTransform` applies
    one symmetric view transform twice, so the two views are spelled out here.

    All keyword arguments of `VICRegViewTransform` are accepted; only the defaults differ (they are
    `recipe.VIEW_1`). ``crop_scale``, a (min, max) fraction of the image's area, bounds the random crop
    from above too (``min_scale`` alone crops up to the whole image); the two are not given together.

    - [0]: VICReg, 2022, https://arxiv.org/abs/2105.04906
    """

    defaults = recipe.VIEW_1

    def __init__(
        self,
        normalize: dict[str, list[float]] | None = IMAGENET_NORMALIZE,
        crop_scale: tuple[float, float] | None = None,
        **kwargs,
    ) -> None:
        if crop_scale is not None:
            if "min_scale" in kwargs:
                raise TypeError(
                    f"{type(self).__name__} got crop_scale={crop_scale!r} and "
                    f"min_scale={kwargs['min_scale']!r}: pass one of them (crop_scale=(min, max) bounds the "
                    "crop on both sides)."
                )
            crop_scale = _crop_scale("crop_scale", crop_scale)
            kwargs["min_scale"] = crop_scale[0]
        super().__init__(normalize=normalize, **{**self.defaults, **kwargs})
        if crop_scale is not None:
            # VICRegViewTransform always crops up to the whole image; set the upper bound on its crop.
            (crop,) = [
                step
                for step in self.transform.transforms
                if isinstance(step, transforms_v1.RandomResizedCrop | transforms_v2.RandomResizedCrop)
            ]
            crop.scale = crop_scale


class MUSICView2Transform(MUSICView1Transform):
    """Second view for MUSIC: rarely blurred (p=0.1), solarized with p=0.2."""

    defaults = recipe.VIEW_2


class MUSICLocalViewTransform(MUSICView1Transform):
    """A local view for multi-crop MUSIC: a small crop (5-40 % of the image) at 96 px.

    The color jitter and gray scale of the recipe's views, Gaussian blur with p=0.5 and no solarization,
    as DINO [0] augments its local views. Keywords of `VICRegViewTransform` (and ``crop_scale``) change
    them.

    - [0]: DINO, 2021, https://arxiv.org/abs/2104.14294
    """

    defaults = {**recipe.VIEW_1, "input_size": LOCAL_VIEW_SIZE, "gaussian_blur": 0.5, "solarize_prob": 0.0}

    def __init__(
        self,
        normalize: dict[str, list[float]] | None = IMAGENET_NORMALIZE,
        crop_scale: tuple[float, float] | None = LOCAL_CROP_SCALE,
        **kwargs,
    ) -> None:
        super().__init__(normalize=normalize, crop_scale=crop_scale, **kwargs)


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


class MUSICMultiCropTransform(MultiViewTransform):
    """Returns two global views of an image and ``n_local_views`` smaller local views, global first.

    Multi-crop in the shape of lightly's `DINOTransform`: the two global views are MUSIC's asymmetric
    views (`MUSICView1Transform`, `MUSICView2Transform`) at ``input_size``, the local views
    `MUSICLocalViewTransform` at ``local_view_size``. Give the projections of all of them to the loss,
    ``MUSICLoss()(z_list, num_global=2)``: it averages MUSIC over every pair with a global view.

    Defaults, as DINO [0] and why: six local views of 96 px next to global views of 224 px, the local views
    cropping 5-40 % of the image's area and the global ones 40-100 % (the recipe's two-view crops start at
    8 %; here the small scales go to the local views). A 96 px view has about a fifth of the pixels of a
    224 px one, so the six local views cost about one more global view. For small images pass the sizes,
    e.g. 32 px images with 16 px local views, and no blur (as the recipe's CIFAR-10 views):
    ``MUSICMultiCropTransform(input_size=32, local_view_size=16, gaussian_blur=0.0)``.

    Input to this transform:
        PIL Image.
    Output of this transform:
        List of 2 + n_local_views Tensors: `[global_1, global_2, local_1, ..., local_n]`.

    Examples:
        >>> transform = MUSICMultiCropTransform()  # 2 x 224 px + 6 x 96 px
        >>> small = MUSICMultiCropTransform(input_size=32, local_view_size=16, gaussian_blur=0.0)

    - [0]: DINO, 2021, https://arxiv.org/abs/2104.14294

    Args:
        input_size: Size of the global views in pixels.
        global_crop_scale: (min, max) fraction of the image's area that a global view crops.
        n_local_views: Number of local views (0 gives the two global views alone).
        local_view_size: Size of the local views in pixels, smaller than ``input_size``.
        local_crop_scale: (min, max) fraction of the image's area that a local view crops.
        **view_kwargs: Keyword arguments of `VICRegViewTransform` (``gaussian_blur``, ``normalize``,
            ``cj_prob``, ...) given to every view, global and local; each view keeps its own defaults
            for the others.

    Raises:
        ValueError: If a size or ``n_local_views`` is not a positive (non-negative) int, the local views
            are not smaller than the global ones, or a crop scale is not 0 < min <= max <= 1.
        TypeError: If ``view_kwargs`` hold ``min_scale`` or ``crop_scale`` (the crop scales above set them).
    """

    def __init__(
        self,
        input_size: int = 224,
        global_crop_scale: tuple[float, float] = GLOBAL_CROP_SCALE,
        n_local_views: int = N_LOCAL_VIEWS,
        local_view_size: int = LOCAL_VIEW_SIZE,
        local_crop_scale: tuple[float, float] = LOCAL_CROP_SCALE,
        **view_kwargs: object,
    ) -> None:
        for name, value, smallest in (
            ("input_size", input_size, 1),
            ("local_view_size", local_view_size, 1),
            ("n_local_views", n_local_views, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
                kind = "a positive int" if smallest else "an int >= 0"
                raise ValueError(f"{name} must be {kind}, got {value!r}.")
        if n_local_views and local_view_size >= input_size:
            raise ValueError(
                f"local_view_size must be smaller than input_size={input_size}, got {local_view_size}: local "
                f"views are the small crops; e.g. local_view_size={max(input_size // 2, 1)}."
            )
        for name in ("min_scale", "crop_scale"):
            if name in view_kwargs:
                raise TypeError(
                    f"MUSICMultiCropTransform got {name}={view_kwargs[name]!r}: the crops are set by "
                    "global_crop_scale=(min, max) and local_crop_scale=(min, max)."
                )
        global_crop_scale = _crop_scale("global_crop_scale", global_crop_scale)
        local_crop_scale = _crop_scale("local_crop_scale", local_crop_scale)
        global_kwargs = {**view_kwargs, "input_size": input_size, "crop_scale": global_crop_scale}
        local_view = MUSICLocalViewTransform(
            **{**view_kwargs, "input_size": local_view_size, "crop_scale": local_crop_scale}
        )
        super().__init__(
            transforms=[
                MUSICView1Transform(**global_kwargs),
                MUSICView2Transform(**global_kwargs),
                *[local_view] * n_local_views,
            ]
        )
        self.n_local_views = n_local_views


def views_transform(
    input_size: int = 224, n_local_views: int = 0, local_view_size: int | None = None, **view_kwargs
) -> MultiViewTransform:
    """The views MUSIC trains on: `MUSICTransform`'s two views without local views, else
    `MUSICMultiCropTransform`'s two global views, then ``n_local_views`` local ones of ``local_view_size``
    pixels (default: half of ``input_size``). ``view_kwargs`` go to every view (e.g. gaussian_blur=0.0)."""
    if n_local_views == 0:
        return MUSICTransform(input_size=input_size, **view_kwargs)
    return MUSICMultiCropTransform(
        input_size=input_size,
        n_local_views=n_local_views,
        local_view_size=input_size // 2 if local_view_size is None else local_view_size,
        **view_kwargs,
    )
