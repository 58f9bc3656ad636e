"""The packaged solo-learn configs: self-contained, composable by Hydra, carrying the authors' recipes.

Every number of a recipe is checked against `music_ssl.integrations.recipes`, the one place it is written.
These tests need omegaconf/hydra only, not solo-learn.
"""

from __future__ import annotations

from dataclasses import replace
from importlib import resources

import pytest

omegaconf = pytest.importorskip("omegaconf")
from omegaconf import OmegaConf  # noqa: E402

from music_ssl.integrations import recipes  # noqa: E402
from music_ssl.integrations.recipes import CIFAR10, CIFAR10_LINEAR_PROBE, IMAGENET, IMAGENET100  # noqa: E402
from music_ssl.integrations.solo_learn import CONFIG_MODULE  # noqa: E402
from music_ssl.integrations.solo_learn.method_kwargs import resolve_method_kwargs  # noqa: E402

RECIPES = {
    "music_cifar": CIFAR10,
    "music_cifar_multicrop": CIFAR10,
    "music_imagenet100": IMAGENET100,
    "music_imagenet": IMAGENET,
}
PRETRAIN_CONFIGS = list(RECIPES)
# The small crops of music_cifar_multicrop: the CIFAR-10 recipe's augmentations on a smaller part of the
# image, at solo-learn's multi-crop CIFAR size (the authors train with two views only).
CIFAR10_SMALL_CROP = replace(CIFAR10.views[0], crop_size=18, crop_scale=(0.08, 0.5))
# Every config's views in solo-learn's crop order: the large crops (the recipe's), then the small crops.
VIEWS = {name: recipe.views for name, recipe in RECIPES.items()}
VIEWS["music_cifar_multicrop"] = CIFAR10.views + (CIFAR10_SMALL_CROP,) * 6
# (num_large_crops, num_small_crops) that solo-learn's parse_cfg derives from each config
CROP_COUNTS = {name: (len(views), 0) for name, views in VIEWS.items()}
CROP_COUNTS["music_cifar_multicrop"] = (2, 6)
# method_kwargs key -> Recipe field
METHOD_KWARGS = {
    "proj_hidden_dim": "hidden_dim",
    "proj_output_dim": "output_dim",
    "proj_num_layers": "num_layers",
    "segment_dim": "segment_dim",
    "temperature": "temperature",
    "diag_weight": "diag_weight",
    "off_weight": "off_weight",
    "inv_weight": "inv_weight",
}
AUGMENTATION_KEYS = {
    "crop_size",
    "num_crops",
    "rrc",
    "color_jitter",
    "grayscale",
    "gaussian_blur",
    "solarization",
    "equalization",
    "horizontal_flip",
}


def _text(name: str) -> str:
    return resources.files(CONFIG_MODULE).joinpath(f"{name}.yaml").read_text()


def _load(name: str):
    return OmegaConf.create(_text(name))


def _crop_counts(cfg) -> tuple[int, int]:
    """Large and small crops, counted as solo-learn's parse_cfg counts them (by the first crop size)."""
    large_size = cfg.augmentations[0].crop_size
    large = sum(aug.num_crops for aug in cfg.augmentations if aug.crop_size == large_size)
    small = sum(aug.num_crops for aug in cfg.augmentations if aug.crop_size != large_size)
    return large, small


@pytest.mark.parametrize("name", [*PRETRAIN_CONFIGS, "music_linear"])
def test_config_is_self_contained(name):
    cfg = _load(name)
    # only _self_ and Hydra's own logging overrides: nothing resolved from solo-learn's scripts/ folder
    assert cfg.defaults[0] == "_self_"
    for entry in cfg.defaults[1:]:
        assert list(entry.keys())[0].startswith("override hydra/"), entry
    assert cfg.wandb.enabled is False
    assert cfg.hydra.run.dir == "."


@pytest.mark.parametrize("name", [*PRETRAIN_CONFIGS, "music_linear"])
def test_config_header_cites_the_math_page(name):
    header = [line for line in _text(name).splitlines() if line.startswith("#")]
    assert any("docs/math.md" in line for line in header)


@pytest.mark.parametrize("name", PRETRAIN_CONFIGS)
def test_pretrain_config_uses_music_and_inline_augmentations(name):
    cfg = _load(name)
    assert cfg.method == "music"
    for aug in cfg.augmentations:
        assert AUGMENTATION_KEYS <= set(aug.keys()) <= AUGMENTATION_KEYS | {"mean", "std"}
    # two large crops, as solo-learn's main_pretrain.py requires of method=music; small crops only where
    # the config asks for them, every one of them a crop the loss receives
    assert _crop_counts(cfg) == CROP_COUNTS[name]
    assert _crop_counts(cfg)[0] == 2
    assert sum(aug.num_crops for aug in cfg.augmentations) == len(VIEWS[name])


@pytest.mark.parametrize(("name", "recipe"), RECIPES.items())
def test_pretrain_config_carries_its_recipes_model_and_loss(name, recipe):
    cfg = _load(name)
    assert cfg.backbone.name == recipe.backbone
    kwargs = resolve_method_kwargs(OmegaConf.to_container(cfg.method_kwargs))
    assert {key: kwargs[key] for key in METHOD_KWARGS} == {
        key: getattr(recipe, field) for key, field in METHOD_KWARGS.items()
    }
    assert kwargs["implementation"] == "auto"


@pytest.mark.parametrize(("name", "recipe"), RECIPES.items())
def test_pretrain_config_carries_its_recipes_optimizer_and_schedule(name, recipe):
    cfg = _load(name)
    optimizer = cfg.optimizer
    assert optimizer.name == recipe.optimizer
    # solo-learn multiplies optimizer.lr by the global batch / 256, as the recipes scale their rates
    assert optimizer.lr == recipe.base_learning_rate
    assert optimizer.batch_size * len(cfg.devices) == recipe.batch_size
    assert optimizer.weight_decay == recipe.weight_decay
    assert optimizer.kwargs.momentum == recipe.momentum
    if recipe.optimizer == "lars":
        assert optimizer.kwargs.eta == recipe.lars_trust_coefficient and optimizer.kwargs.clip_lr is False
        # solo-learn's LARS keeps 1-d parameters (BatchNorm, biases) out of weight decay and the trust ratio
        assert optimizer.kwargs.exclude_bias_n_norm == recipe.exclude_bias_and_norm
    else:
        assert optimizer.get("exclude_bias_n_norm_wd", False) == recipe.exclude_bias_and_norm
    assert cfg.scheduler.name == "warmup_cosine" and cfg.scheduler.warmup_epochs == recipe.warmup_epochs
    assert cfg.max_epochs == recipe.epochs


@pytest.mark.parametrize(("name", "recipe"), RECIPES.items())
def test_pretrain_config_carries_its_recipes_views(name, recipe):
    cfg = _load(name)
    # a pipeline with num_crops: n gives n views; the views are in crop order, the recipe's first
    pipelines = [aug for aug in cfg.augmentations for _ in range(aug.num_crops)]
    assert VIEWS[name][: len(recipe.views)] == recipe.views
    assert len(pipelines) == len(VIEWS[name])
    for aug, view in zip(pipelines, VIEWS[name], strict=True):
        assert aug.crop_size == view.crop_size
        assert aug.rrc.enabled and (aug.rrc.crop_min_scale, aug.rrc.crop_max_scale) == view.crop_scale
        assert aug.horizontal_flip.prob == view.horizontal_flip
        jitter = aug.color_jitter
        assert (jitter.prob, jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
            view.color_jitter,
            view.brightness,
            view.contrast,
            view.saturation,
            view.hue,
        )
        assert aug.grayscale.prob == view.grayscale
        assert aug.gaussian_blur.prob == view.gaussian_blur
        assert aug.solarization.prob == view.solarization
        assert aug.equalization.prob == 0.0  # no recipe equalizes
        if recipe.mean is None:
            assert "mean" not in aug and "std" not in aug  # solo-learn's statistics of the dataset
        else:
            assert (tuple(aug.mean), tuple(aug.std)) == (recipe.mean, recipe.std)


def test_linear_config_carries_the_authors_probe():
    cfg = _load("music_linear")
    assert cfg.pretrain_method == "music"
    assert OmegaConf.is_missing(cfg, "pretrained_feature_extractor")
    assert cfg.optimizer.name == CIFAR10_LINEAR_PROBE.optimizer
    # solo-learn scales the rate by the global batch / 256: the probe's rate at this config's batch
    global_batch = cfg.optimizer.batch_size * len(cfg.devices)
    assert recipes.learning_rate(cfg.optimizer.lr, global_batch) == CIFAR10_LINEAR_PROBE.learning_rate
    assert cfg.max_epochs == CIFAR10_LINEAR_PROBE.epochs


@pytest.mark.parametrize("name", [*PRETRAIN_CONFIGS, "music_linear"])
def test_hydra_composes_packaged_config(name):
    pytest.importorskip("hydra")
    from hydra import compose, initialize_config_module

    overrides = ["data.dataset=custom", "data.train_path=/data/train"]
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.2"):
        cfg = compose(config_name=name, overrides=overrides)
    assert cfg.data.dataset == "custom" and cfg.data.train_path == "/data/train"
    assert cfg.name.startswith("music-")
