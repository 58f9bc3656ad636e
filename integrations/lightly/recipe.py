"""The MUSIC authors' ImageNet recipe in lightly's terms, without lightly or Lightning.

The recipe itself is `music_ssl.integrations.recipes.IMAGENET`; this module only translates it for
lightly: `imagenet_resnet50.MUSIC` and the view transforms in `transform.py` read their settings here, so
the translation is checked by tests that need neither lightly nor its benchmark runner.
"""

from __future__ import annotations

from typing import Any

from music_ssl.integrations.recipes import IMAGENET, View

RECIPE = IMAGENET

# lightly's VICRegViewTransform multiplies cj_bright, cj_contrast, cj_sat and cj_hue by cj_strength; its
# default 0.5 is kept, so that a cj_strength passed to a view transform still means what lightly says.
_CJ_STRENGTH = 0.5


def vicreg_view_kwargs(view: View) -> dict[str, Any]:
    """A recipe's view as keyword arguments of lightly's VICRegViewTransform (which crops up to the whole
    image: ``view.crop_scale`` ends at 1.0)."""
    return {
        "input_size": view.crop_size,
        "cj_prob": view.color_jitter,
        "cj_strength": _CJ_STRENGTH,
        "cj_bright": view.brightness / _CJ_STRENGTH,
        "cj_contrast": view.contrast / _CJ_STRENGTH,
        "cj_sat": view.saturation / _CJ_STRENGTH,
        "cj_hue": view.hue / _CJ_STRENGTH,
        "min_scale": view.crop_scale[0],
        "random_gray_scale": view.grayscale,
        "gaussian_blur": view.gaussian_blur,
        "sigmas": view.blur_sigma,
        "solarize_prob": view.solarization,
        "hf_prob": view.horizontal_flip,
    }


VIEW_1: dict[str, Any] = vicreg_view_kwargs(RECIPE.views[0])
VIEW_2: dict[str, Any] = vicreg_view_kwargs(RECIPE.views[1])


def warmup_steps(total_steps: int, max_epochs: int | None) -> int:
    """Steps of the recipe's warm-up epochs; the recipe's warm-up share of its epochs when the trainer is
    bounded by steps only.

    Args:
        total_steps: optimizer steps of the whole run (Lightning's ``estimated_stepping_batches``).
        max_epochs: the trainer's epoch limit; None or <= 0 when it is bounded by steps only.
    """
    if max_epochs is None or max_epochs <= 0:
        return int(total_steps * RECIPE.warmup_epochs / RECIPE.epochs)
    # lightly's CosineWarmupScheduler rejects a warm-up longer than training, as in runs under 10 epochs,
    # and lightly 1.5.0 also a cosine phase of no step (its scheduler steps once more after the last batch).
    return min(int(total_steps / max_epochs * RECIPE.warmup_epochs), max(total_steps - 1, 0))
