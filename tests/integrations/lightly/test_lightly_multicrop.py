"""MUSICMultiCropTransform, in the shape of lightly's DINOTransform, and how a batch's views are grouped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from music_ssl.integrations.lightly.views import size_groups

lightly = pytest.importorskip("lightly", reason="pip install 'music-ssl[lightly]'")

from lightly.data import LightlyDataset  # noqa: E402
from lightly.transforms import DINOTransform  # noqa: E402
from lightly.transforms.gaussian_blur import GaussianBlur  # noqa: E402
from lightly.transforms.solarize import RandomSolarization  # noqa: E402

import music_ssl.integrations.lightly as adapter  # noqa: E402
from music_ssl.integrations.lightly import (  # noqa: E402
    MUSICLocalViewTransform,
    MUSICMultiCropTransform,
    MUSICView1Transform,
    MUSICView2Transform,
    recipe,
)


def step_named(view: MUSICView1Transform, name: str):
    (step,) = [t for t in view.transform.transforms if type(t).__name__ == name]
    return step


def crop_of(view: MUSICView1Transform) -> tuple[tuple[int, ...], tuple[float, float]]:
    crop = step_named(view, "RandomResizedCrop")
    return tuple(crop.size), tuple(crop.scale)


def test_default_views_are_dinos_two_global_224_px_and_six_local_96_px(image_folder: Path) -> None:
    image = LightlyDataset(input_dir=str(image_folder))[0][0]
    music, dino = MUSICMultiCropTransform(), DINOTransform()
    music_views, dino_views = music(image), dino(image)
    assert [v.shape for v in music_views] == [v.shape for v in dino_views]
    assert [v.shape for v in music_views] == [(3, 224, 224)] * 2 + [(3, 96, 96)] * 6
    global_1, global_2, *local = music.transforms
    assert (type(global_1), type(global_2)) == (MUSICView1Transform, MUSICView2Transform)
    assert len(local) == music.n_local_views == 6 and all(type(v) is MUSICLocalViewTransform for v in local)
    assert crop_of(global_1) == crop_of(global_2) == ((224, 224), (0.4, 1.0))
    assert crop_of(local[0]) == ((96, 96), (0.05, 0.4))


def test_global_views_keep_the_recipes_asymmetry_and_local_views_are_blurred_half_the_time() -> None:
    global_1, global_2, local, *_ = MUSICMultiCropTransform().transforms
    probabilities = [
        (step_named(view, "GaussianBlur").prob, step_named(view, "RandomSolarization").prob)
        for view in (global_1, global_2, local)
    ]
    assert probabilities == [
        (recipe.VIEW_1["gaussian_blur"], recipe.VIEW_1["solarize_prob"]),
        (recipe.VIEW_2["gaussian_blur"], recipe.VIEW_2["solarize_prob"]),
        (0.5, 0.0),
    ]
    assert isinstance(step_named(local, "GaussianBlur"), GaussianBlur)
    assert isinstance(step_named(local, "RandomSolarization"), RandomSolarization)
    for view in (global_1, global_2, local):
        assert step_named(view, "RandomApply").p == recipe.VIEW_1["cj_prob"]
        assert step_named(view, "RandomGrayscale").p == recipe.VIEW_1["random_gray_scale"]


def test_small_images_32_px_global_and_16_px_local_views(image_folder: Path) -> None:
    image = LightlyDataset(input_dir=str(image_folder))[0][0]
    transform = MUSICMultiCropTransform(input_size=32, local_view_size=16, n_local_views=3, gaussian_blur=0.0)
    assert [v.shape for v in transform(image)] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 3
    # View keywords reach every view, global and local.
    assert [step_named(view, "GaussianBlur").prob for view in transform.transforms] == [0.0] * 5
    assert size_groups([v.unsqueeze(0) for v in transform(image)]) == [slice(0, 2), slice(2, 5)]


def test_views_transform_gives_two_views_or_multi_crop_with_half_size_local_views(image_folder: Path) -> None:
    image = LightlyDataset(input_dir=str(image_folder))[0][0]
    two = adapter.views_transform(32, gaussian_blur=0.0)
    assert isinstance(two, adapter.MUSICTransform)
    assert [v.shape for v in two(image)] == [(3, 32, 32)] * 2
    crops = adapter.views_transform(32, 3, gaussian_blur=0.0)
    assert [v.shape for v in crops(image)] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 3
    assert [step_named(view, "GaussianBlur").prob for view in crops.transforms] == [0.0] * 5


def test_crop_scales_and_the_local_views_count_are_arguments() -> None:
    transform = MUSICMultiCropTransform(
        global_crop_scale=(0.08, 1.0), n_local_views=0, local_crop_scale=(0.1, 0.3)
    )
    assert [crop_of(view)[1] for view in transform.transforms] == [(0.08, 1.0)] * 2
    assert MUSICView1Transform(crop_scale=(0.2, 0.5)).transform.transforms[0].scale == (0.2, 0.5)


def test_the_transforms_are_exported_where_music_transform_is() -> None:
    assert {"MUSICMultiCropTransform", "MUSICLocalViewTransform"} <= set(adapter.__all__)


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        (
            {"local_view_size": 224},
            ValueError,
            r"local_view_size must be smaller than input_size=224, got 224",
        ),
        ({"input_size": 32}, ValueError, r"local_view_size must be smaller than input_size=32, got 96.*=16"),
        ({"n_local_views": -1}, ValueError, r"n_local_views must be an int >= 0, got -1"),
        ({"input_size": 0}, ValueError, r"input_size must be a positive int, got 0"),
        (
            {"local_crop_scale": (0.5, 0.1)},
            ValueError,
            r"local_crop_scale must be \(min, max\).*got \(0.5, 0.1\)",
        ),
        ({"global_crop_scale": (0.4, 1.5)}, ValueError, r"global_crop_scale must be .*got \(0.4, 1.5\)"),
        ({"min_scale": 0.2}, TypeError, r"got min_scale=0.2: the crops are set by global_crop_scale"),
    ],
)
def test_invalid_arguments_name_the_argument_and_what_is_accepted(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        MUSICMultiCropTransform(**kwargs)


def test_crop_scale_beside_min_scale_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"crop_scale=\(0.2, 0.5\) and min_scale=0.1: pass one of them"):
        MUSICView1Transform(crop_scale=(0.2, 0.5), min_scale=0.1)


def images(*sizes: int) -> list[torch.Tensor]:
    return [torch.zeros(2, 3, size, size) for size in sizes]


def test_size_groups_runs_of_one_size_the_first_being_global() -> None:
    assert size_groups(images(32, 32)) == [slice(0, 2)]
    assert size_groups(images(32, 32, 32)) == [slice(0, 3)]
    assert size_groups(images(224, 224, 96, 96, 96)) == [slice(0, 2), slice(2, 5)]
    assert size_groups(images(224, 224, 96, 64, 64)) == [slice(0, 2), slice(2, 3), slice(3, 5)]


@pytest.mark.parametrize(
    "views", [images(32), [], torch.zeros(2, 2, 3, 32, 32)], ids=["one", "none", "tensor"]
)
def test_size_groups_needs_at_least_two_views(views) -> None:
    with pytest.raises(ValueError, match=r"at least two views of every image, got .*MUSICMultiCropTransform"):
        size_groups(views)


@pytest.mark.parametrize("sizes", [(16, 32, 32), (32, 16, 32)], ids=["local-first", "global-after-local"])
def test_size_groups_refuses_global_views_after_local_ones(sizes) -> None:
    with pytest.raises(ValueError, match=r"view [12] \(32x32 px\) follows a smaller view"):
        size_groups(images(*sizes))


def test_views_transform_refuses_local_views_of_zero_pixels():
    from music_ssl.integrations.lightly import views_transform

    with pytest.raises(ValueError, match="local_view_size"):
        views_transform(32, 2, local_view_size=0)
