"""Asymmetric two-view augmentations for MUSIC, built from lightly's VICReg view transform."""

from __future__ import annotations

from lightly.transforms.multi_view_transform import MultiViewTransform
from lightly.transforms.utils import IMAGENET_NORMALIZE
from lightly.transforms.vicreg_transform import VICRegViewTransform


class MUSICView1Transform(VICRegViewTransform):
    """First view for MUSIC: always blurred, never solarized.

    The MUSIC ImageNet recipe uses VICReg's asymmetric augmentations [0]: the same crop, flip,
    color jitter (0.4, 0.4, 0.2, 0.1 with p=0.8) and gray scale for both views, but Gaussian
    blur with p=1.0 and no solarization on the first view. lightly's `VICRegTransform` applies
    one symmetric view transform twice, so the two views are spelled out here.

    All keyword arguments of `VICRegViewTransform` are accepted; only the defaults differ.

    - [0]: VICReg, 2022, https://arxiv.org/abs/2105.04906
    """

    def __init__(
        self,
        input_size: int = 224,
        cj_strength: float = 0.5,
        min_scale: float = 0.08,
        gaussian_blur: float = 1.0,
        solarize_prob: float = 0.0,
        sigmas: tuple[float, float] = (0.1, 2.0),
        normalize: dict[str, list[float]] | None = IMAGENET_NORMALIZE,
        **kwargs,
    ) -> None:
        super().__init__(
            input_size=input_size,
            cj_strength=cj_strength,
            min_scale=min_scale,
            gaussian_blur=gaussian_blur,
            solarize_prob=solarize_prob,
            sigmas=sigmas,
            normalize=normalize,
            **kwargs,
        )


class MUSICView2Transform(MUSICView1Transform):
    """Second view for MUSIC: rarely blurred (p=0.1), solarized with p=0.2."""

    def __init__(self, gaussian_blur: float = 0.1, solarize_prob: float = 0.2, **kwargs) -> None:
        super().__init__(gaussian_blur=gaussian_blur, solarize_prob=solarize_prob, **kwargs)


class MUSICTransform(MultiViewTransform):
    """Returns two views of an image for MUSIC, one from each view transform.

    Input to this transform:
        PIL Image.
    Output of this transform:
        List of two Tensors, `[view_1, view_2]`.

    Examples:
        >>> transform = MUSICTransform()  # ImageNet recipe, 224 px
        >>> small = MUSICTransform(
        ...     view_1_transform=MUSICView1Transform(input_size=32, gaussian_blur=0.0),
        ...     view_2_transform=MUSICView2Transform(input_size=32, gaussian_blur=0.0),
        ... )

    Args:
        view_1_transform: Transform of the first view, `MUSICView1Transform()` if None.
        view_2_transform: Transform of the second view, `MUSICView2Transform()` if None.
    """

    def __init__(
        self,
        view_1_transform: MUSICView1Transform | None = None,
        view_2_transform: MUSICView2Transform | None = None,
    ) -> None:
        view_1_transform = view_1_transform or MUSICView1Transform()
        view_2_transform = view_2_transform or MUSICView2Transform()
        super().__init__(transforms=[view_1_transform, view_2_transform])
