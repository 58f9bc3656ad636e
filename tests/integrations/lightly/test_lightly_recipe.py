"""The ImageNet recipe in lightly's terms: the translation of `recipes.IMAGENET`, tested without lightly."""

from __future__ import annotations

import pytest

from music_ssl.integrations import recipes
from music_ssl.integrations.lightly import recipe


def test_the_lightly_method_follows_the_authors_imagenet_recipe():
    assert recipe.RECIPE is recipes.IMAGENET


@pytest.mark.parametrize(
    ("total_steps", "max_epochs", "expected"),
    [(1000, 100, 100), (20, 1, 19), (2, 1, 1), (1, 1, 0), (1000, -1, 100), (1000, None, 100)],
)
def test_warmup_is_ten_epochs_capped_to_leave_one_cosine_step(total_steps, max_epochs, expected):
    assert recipe.RECIPE.warmup_epochs == 10 and recipe.RECIPE.epochs == 100
    assert recipe.warmup_steps(total_steps, max_epochs) == expected


def jitter(view: dict) -> tuple[float, ...]:
    """Brightness, contrast, saturation and hue as lightly's VICRegViewTransform computes them."""
    strength = view["cj_strength"]
    return tuple(strength * view[key] for key in ("cj_bright", "cj_contrast", "cj_sat", "cj_hue"))


@pytest.mark.parametrize("index", [0, 1])
def test_views_are_the_recipes_in_vicreg_view_transform_keywords(index):
    view, expected = (recipe.VIEW_1, recipe.VIEW_2)[index], recipes.IMAGENET.views[index]
    assert view["input_size"] == expected.crop_size and (view["min_scale"], 1.0) == expected.crop_scale
    assert jitter(view) == (expected.brightness, expected.contrast, expected.saturation, expected.hue)
    assert view["cj_prob"] == expected.color_jitter
    assert (view["random_gray_scale"], view["hf_prob"]) == (expected.grayscale, expected.horizontal_flip)
    assert (view["gaussian_blur"], view["sigmas"]) == (expected.gaussian_blur, expected.blur_sigma)
    assert view["solarize_prob"] == expected.solarization


def test_views_keep_lightlys_color_jitter_strength():
    """A cj_strength given to a view transform scales lightly's own default jitter, as in VICReg's."""
    for view in (recipe.VIEW_1, recipe.VIEW_2):
        assert view["cj_strength"] == 0.5
    assert {key for key in recipe.VIEW_1 if recipe.VIEW_1[key] != recipe.VIEW_2[key]} == {
        "gaussian_blur",
        "solarize_prob",
    }
