"""The MUSIC authors' ImageNet recipe as numbers and small rules, without lightly or Lightning.

`imagenet_resnet50.MUSIC` and the view transforms in `transform.py` read their settings here, so the
recipe (docs/math.md) is checked by tests that need neither lightly nor its benchmark runner.
"""

from __future__ import annotations

from typing import Any

# Projector 2048-8192-8160 (two Linear layers), read as 102 segments of 80 attributes, temperature 1.
FEATURE_DIM = 2048
HIDDEN_DIM = 8192
OUTPUT_DIM = 8160
NUM_LAYERS = 2
SEGMENT_DIM = 80
TEMPERATURE = 1.0

# LARS with lr = BASE_LEARNING_RATE x global batch / REFERENCE_BATCH_SIZE, 10 warm-up epochs then cosine.
BASE_LEARNING_RATE = 0.6
REFERENCE_BATCH_SIZE = 256
WEIGHT_DECAY = 1e-6
MOMENTUM = 0.9
WARMUP_EPOCHS = 10

# VICReg's asymmetric views, as keyword arguments of lightly's VICRegViewTransform. Color jitter is
# cj_strength x (cj_bright, cj_contrast, cj_sat, cj_hue) = (0.4, 0.4, 0.2, 0.1), applied with p 0.8.
VIEW_1: dict[str, Any] = {
    "input_size": 224,
    "cj_prob": 0.8,
    "cj_strength": 0.5,
    "cj_bright": 0.8,
    "cj_contrast": 0.8,
    "cj_sat": 0.4,
    "cj_hue": 0.2,
    "min_scale": 0.08,
    "random_gray_scale": 0.2,
    "gaussian_blur": 1.0,
    "sigmas": (0.1, 2.0),
    "solarize_prob": 0.0,
    "hf_prob": 0.5,
}
# The second view differs only in being rarely blurred and sometimes solarized.
VIEW_2: dict[str, Any] = {**VIEW_1, "gaussian_blur": 0.1, "solarize_prob": 0.2}


def learning_rate(batch_size_per_device: int, world_size: int, base: float = BASE_LEARNING_RATE) -> float:
    """LARS learning rate of the recipe: ``base x global batch / 256``.

    Args:
        batch_size_per_device: batch size on every device.
        world_size: number of devices (processes) training together.
        base: learning rate at a global batch of 256.

    Raises:
        ValueError: if a batch size or the world size is not a positive int.
    """

    for name, value in (("batch_size_per_device", batch_size_per_device), ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return base * batch_size_per_device * world_size / REFERENCE_BATCH_SIZE


def warmup_steps(total_steps: int, max_epochs: int | None) -> int:
    """Steps of the 10 warm-up epochs; 10% of training when the trainer is bounded by steps only.

    Args:
        total_steps: optimizer steps of the whole run (Lightning's ``estimated_stepping_batches``).
        max_epochs: the trainer's epoch limit; None or <= 0 when it is bounded by steps only.
    """

    if max_epochs is None or max_epochs <= 0:
        return int(0.1 * total_steps)
    # lightly's CosineWarmupScheduler rejects a warm-up longer than training, as in runs under 10 epochs,
    # and lightly 1.5.0 also a cosine phase of no step (its scheduler steps once more after the last batch).
    return min(int(total_steps / max_epochs * WARMUP_EPOCHS), max(total_steps - 1, 0))
