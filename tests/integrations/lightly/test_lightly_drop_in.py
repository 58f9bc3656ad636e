"""MUSIC's loss, head and transform are called exactly as lightly's Barlow Twins counterparts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("lightly", reason="pip install 'music-ssl[lightly]'")

from lightly.data import LightlyDataset  # noqa: E402
from lightly.loss import BarlowTwinsLoss  # noqa: E402
from lightly.models.modules import BarlowTwinsProjectionHead  # noqa: E402
from lightly.transforms import BYOLTransform  # noqa: E402
from lightly.transforms.gaussian_blur import GaussianBlur  # noqa: E402
from lightly.transforms.solarize import RandomSolarization  # noqa: E402

from music_ssl.integrations.lightly import (  # noqa: E402
    MUSICLoss,
    MUSICProjectionHead,
    MUSICTransform,
    MUSICView1Transform,
    MUSICView2Transform,
    recipe,
)


def linear_shapes(head: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in head.modules() if isinstance(m, nn.Linear)]


def test_head_has_the_shape_of_barlow_twins_head() -> None:
    music_head = MUSICProjectionHead(512, 2048, 2048, num_layers=3, segment_dim=32)
    barlow_head = BarlowTwinsProjectionHead(512, 2048, 2048)
    assert linear_shapes(music_head) == linear_shapes(barlow_head)
    x = torch.randn(4, 512)
    assert music_head(x).shape == barlow_head(x).shape == (4, 2048)


def test_loss_takes_what_barlow_twins_loss_takes() -> None:
    z0, z1 = torch.randn(8, 64, requires_grad=True), torch.randn(8, 64, requires_grad=True)
    for criterion in (BarlowTwinsLoss(), MUSICLoss(segment_dim=8)):
        loss = criterion(z0, z1)
        assert loss.shape == ()
        loss.backward()
    assert z0.grad is not None and torch.isfinite(z0.grad).all()


def test_transform_returns_views_like_byol_transform(image_folder: Path) -> None:
    small = {"input_size": 32, "gaussian_blur": 0.0}
    music = MUSICTransform(MUSICView1Transform(**small), MUSICView2Transform(**small))
    byol = BYOLTransform()
    image = LightlyDataset(input_dir=str(image_folder))[0][0]
    music_views, byol_views = music(image), byol(image)
    assert len(music_views) == len(byol_views) == 2
    assert [view.shape for view in music_views] == [(3, 32, 32), (3, 32, 32)]


def probability_of(view: MUSICView1Transform, kind: type) -> float:
    (step,) = [t for t in view.transform.transforms if isinstance(t, kind)]
    return step.prob


def test_views_follow_vicreg_asymmetric_augmentations() -> None:
    view_1, view_2 = MUSICTransform().transforms
    assert (probability_of(view_1, GaussianBlur), probability_of(view_1, RandomSolarization)) == (1.0, 0.0)
    assert (probability_of(view_2, GaussianBlur), probability_of(view_2, RandomSolarization)) == (0.1, 0.2)


def step_named(view: MUSICView1Transform, name: str):
    """The view's step of a class name (torchvision's v1 or v2 transforms, as lightly picks them)."""
    (step,) = [t for t in view.transform.transforms if type(t).__name__ == name]
    return step


def test_views_are_built_with_the_recipe_parameters() -> None:
    view_1, view_2 = MUSICTransform().transforms
    for view, expected in ((view_1, recipe.VIEW_1), (view_2, recipe.VIEW_2)):
        crop = step_named(view, "RandomResizedCrop")
        assert tuple(crop.size) == (expected["input_size"],) * 2 and crop.scale == (
            expected["min_scale"],
            1.0,
        )
        jitter = step_named(view, "RandomApply").transforms[0]
        assert step_named(view, "RandomApply").p == expected["cj_prob"]
        bright, contrast, sat, hue = (0.4, 0.4, 0.2, 0.1)
        assert jitter.brightness == pytest.approx((1 - bright, 1 + bright))
        assert jitter.contrast == pytest.approx((1 - contrast, 1 + contrast))
        assert jitter.saturation == pytest.approx((1 - sat, 1 + sat))
        assert jitter.hue == pytest.approx((-hue, hue))
        assert step_named(view, "RandomGrayscale").p == expected["random_gray_scale"]
        assert step_named(view, "RandomHorizontalFlip").p == expected["hf_prob"]
        assert step_named(view, "GaussianBlur").prob == expected["gaussian_blur"]
        assert step_named(view, "RandomSolarization").prob == expected["solarize_prob"]


def test_view_keywords_build_both_views_as_vicreg_transform_takes_them(image_folder: Path) -> None:
    image = LightlyDataset(input_dir=str(image_folder))[0][0]
    transform = MUSICTransform(input_size=32, gaussian_blur=0.0)
    assert [view.shape for view in transform(image)] == [(3, 32, 32), (3, 32, 32)]
    view_1, view_2 = transform.transforms
    # Each view keeps its own recipe defaults where no keyword overrides them.
    solarization = [probability_of(view, RandomSolarization) for view in (view_1, view_2)]
    assert solarization == [0.0, 0.2]


def test_view_keywords_beside_explicit_views_are_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"view_1_transform/view_2_transform and also \['input_size'\]"):
        MUSICTransform(view_1_transform=MUSICView1Transform(), input_size=32)
