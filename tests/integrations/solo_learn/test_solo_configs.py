"""The packaged solo-learn configs: self-contained, composable by Hydra, carrying the authors' recipes.

These tests need omegaconf/hydra only, not solo-learn.
"""

from __future__ import annotations

from importlib import resources

import pytest
import torch

omegaconf = pytest.importorskip("omegaconf")
from omegaconf import OmegaConf  # noqa: E402

from music_ssl import MUSICProjectionHead  # noqa: E402
from music_ssl.integrations.solo_learn import CONFIG_MODULE  # noqa: E402
from music_ssl.integrations.solo_learn.method_kwargs import resolve_method_kwargs  # noqa: E402
from music_ssl.integrations.solo_learn.view_pairs import view_pairs  # noqa: E402

PRETRAIN_CONFIGS = ["music_cifar", "music_imagenet100", "music_imagenet"]
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


def _linear_shapes(cfg, feature_dim: int) -> list[tuple[int, int]]:
    """The projector the method builds from the config's method_kwargs, as Linear (in, out) shapes."""
    kwargs = resolve_method_kwargs(OmegaConf.to_container(cfg.method_kwargs))
    with torch.device("meta"):  # shapes only: no 8192 x 8192 weights to initialise
        head = MUSICProjectionHead(
            input_dim=feature_dim,
            hidden_dim=kwargs["proj_hidden_dim"],
            output_dim=kwargs["proj_output_dim"],
            num_layers=kwargs["proj_num_layers"],
            segment_dim=kwargs["segment_dim"],
        )
    return [(m.in_features, m.out_features) for m in head.modules() if m.__class__.__name__ == "Linear"]


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
    kwargs = resolve_method_kwargs(OmegaConf.to_container(cfg.method_kwargs))
    assert kwargs["proj_output_dim"] % kwargs["segment_dim"] == 0
    weights = (kwargs["temperature"], kwargs["diag_weight"], kwargs["off_weight"], kwargs["inv_weight"])
    assert weights == (1, 1, 1, 1)
    for aug in cfg.augmentations:
        assert AUGMENTATION_KEYS <= set(aug.keys()) <= AUGMENTATION_KEYS | {"mean", "std"}
    # two large crops, the one pair solo-learn's main_pretrain.py allows for method=music
    assert _crop_counts(cfg) == (2, 0)
    assert [(p.first, p.second) for p in view_pairs(*_crop_counts(cfg))] == [(0, 1)]
    assert cfg.scheduler.name == "warmup_cosine" and cfg.scheduler.warmup_epochs == 10


def test_cifar_config_matches_reference_recipe():
    cfg = _load("music_cifar")
    assert cfg.backbone.name == "resnet18"
    # 512-1024-1024-1024: two hidden layers, 32 segments of 32 attributes
    kwargs = cfg.method_kwargs
    assert _linear_shapes(cfg, feature_dim=512) == [(512, 1024), (1024, 1024), (1024, 1024)]
    assert kwargs.segment_dim == 32 and kwargs.proj_output_dim // kwargs.segment_dim == 32
    # solo-learn scales lr by batch_size * devices / 256: 0.1 x 512 / 256 = 0.2
    assert cfg.optimizer.name == "sgd" and cfg.optimizer.kwargs.momentum == 0.9
    assert cfg.optimizer.lr * cfg.optimizer.batch_size * len(cfg.devices) / 256 == pytest.approx(0.2)
    assert cfg.optimizer.weight_decay == pytest.approx(5e-4)
    assert cfg.max_epochs == 800


def test_cifar_config_uses_the_authors_symmetric_augmentations():
    cfg = _load("music_cifar")
    # one pipeline, two crops: both views drawn from the same augmentations
    (aug,) = cfg.augmentations
    assert aug.crop_size == 32 and aug.num_crops == 2
    assert aug.rrc.enabled and (aug.rrc.crop_min_scale, aug.rrc.crop_max_scale) == (0.2, 1.0)
    assert aug.horizontal_flip.prob == 0.5
    jitter = aug.color_jitter
    assert (jitter.prob, jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
        0.8,
        0.4,
        0.4,
        0.4,
        0.1,
    )
    assert aug.grayscale.prob == 0.2
    assert aug.gaussian_blur.prob == 0.0 and aug.solarization.prob == 0.0 and aug.equalization.prob == 0.0
    assert list(aug.mean) == [0.4914, 0.4822, 0.4465]
    assert list(aug.std) == [0.2023, 0.1994, 0.2010]


def test_imagenet_config_matches_reference_recipe():
    cfg = _load("music_imagenet")
    assert cfg.backbone.name == "resnet50"
    kwargs = cfg.method_kwargs
    # Linear(2048, 8192) + BN + ReLU + Linear(8192, 8160): 102 segments of 80 attributes
    assert _linear_shapes(cfg, feature_dim=2048) == [(2048, 8192), (8192, 8160)]
    assert kwargs.segment_dim == 80 and kwargs.proj_output_dim // kwargs.segment_dim == 102
    global_batch = cfg.optimizer.batch_size * len(cfg.devices)
    assert global_batch == 2048
    assert cfg.optimizer.name == "lars" and cfg.optimizer.lr == pytest.approx(0.6)
    assert cfg.optimizer.weight_decay == pytest.approx(1e-6)
    assert cfg.max_epochs == 100
    # VICReg-style asymmetry: first view always blurred, only the second solarized
    first, second = cfg.augmentations
    assert first.gaussian_blur.prob == 1.0 and first.solarization.prob == 0.0
    assert second.gaussian_blur.prob == pytest.approx(0.1) and second.solarization.prob == pytest.approx(0.2)


def test_imagenet100_config_is_consistent():
    cfg = _load("music_imagenet100")
    assert cfg.data.dataset == "imagenet100" and cfg.backbone.name == "resnet18"
    assert cfg.method_kwargs.segment_dim == 80 and cfg.method_kwargs.proj_output_dim == 8160
    assert _linear_shapes(cfg, feature_dim=512) == [(512, 8192), (8192, 8160)]


def test_linear_config_matches_reference_probe():
    cfg = _load("music_linear")
    assert cfg.pretrain_method == "music"
    assert OmegaConf.is_missing(cfg, "pretrained_feature_extractor")
    assert cfg.optimizer.name == "sgd"
    assert cfg.optimizer.lr * cfg.optimizer.batch_size * len(cfg.devices) / 256 == pytest.approx(30.0)
    assert cfg.max_epochs == 100


@pytest.mark.parametrize("name", [*PRETRAIN_CONFIGS, "music_linear"])
def test_hydra_composes_packaged_config(name):
    pytest.importorskip("hydra")
    from hydra import compose, initialize_config_module

    overrides = ["data.dataset=custom", "data.train_path=/data/train"]
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.2"):
        cfg = compose(config_name=name, overrides=overrides)
    assert cfg.data.dataset == "custom" and cfg.data.train_path == "/data/train"
    assert cfg.name.startswith("music-")
