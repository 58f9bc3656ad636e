"""The ImageNet recipe the lightly adapter follows: numbers and rules, tested without lightly installed."""

from __future__ import annotations

import pytest

from music_ssl.integrations.lightly import recipe


def test_projector_is_the_authors_imagenet_projector():
    assert (recipe.FEATURE_DIM, recipe.HIDDEN_DIM, recipe.OUTPUT_DIM) == (2048, 8192, 8160)
    assert recipe.NUM_LAYERS == 2  # Linear(2048, 8192) + BN + ReLU + Linear(8192, 8160)
    assert recipe.OUTPUT_DIM // recipe.SEGMENT_DIM == 102 and recipe.OUTPUT_DIM % recipe.SEGMENT_DIM == 0
    assert recipe.TEMPERATURE == 1.0


@pytest.mark.parametrize(
    ("batch_size_per_device", "world_size", "expected"),
    [(256, 8, 4.8), (128, 2, 0.6), (8, 1, 0.6 * 8 / 256)],
)
def test_learning_rate_scales_with_the_global_batch(batch_size_per_device, world_size, expected):
    assert recipe.learning_rate(batch_size_per_device, world_size) == pytest.approx(expected)


def test_learning_rate_takes_another_base():
    assert recipe.learning_rate(512, 1, base=0.1) == pytest.approx(0.2)


@pytest.mark.parametrize(("batch_size_per_device", "world_size"), [(0, 1), (8, 0), (8.0, 1), (True, 1)])
def test_learning_rate_refuses_bad_sizes(batch_size_per_device, world_size):
    with pytest.raises(ValueError, match="must be a positive int"):
        recipe.learning_rate(batch_size_per_device, world_size)


@pytest.mark.parametrize(
    ("total_steps", "max_epochs", "expected"),
    [(1000, 100, 100), (20, 1, 19), (2, 1, 1), (1, 1, 0), (1000, -1, 100), (1000, None, 100)],
)
def test_warmup_is_ten_epochs_capped_to_leave_one_cosine_step(total_steps, max_epochs, expected):
    assert recipe.warmup_steps(total_steps, max_epochs) == expected


def jitter(view: dict) -> tuple[float, ...]:
    """Brightness, contrast, saturation and hue as lightly's VICRegViewTransform computes them."""
    strength = view["cj_strength"]
    return tuple(strength * view[key] for key in ("cj_bright", "cj_contrast", "cj_sat", "cj_hue"))


def test_views_are_vicreg_asymmetric_augmentations():
    view_1, view_2 = recipe.VIEW_1, recipe.VIEW_2
    for view in (view_1, view_2):
        assert view["input_size"] == 224 and view["min_scale"] == 0.08
        assert jitter(view) == pytest.approx((0.4, 0.4, 0.2, 0.1)) and view["cj_prob"] == 0.8
        assert view["random_gray_scale"] == 0.2 and view["hf_prob"] == 0.5
        assert view["sigmas"] == (0.1, 2.0)
    assert (view_1["gaussian_blur"], view_1["solarize_prob"]) == (1.0, 0.0)
    assert (view_2["gaussian_blur"], view_2["solarize_prob"]) == (0.1, 0.2)
    assert {key for key in view_1 if view_1[key] != view_2[key]} == {"gaussian_blur", "solarize_prob"}
