"""MUSIC as a solo-learn method: cfg handling, outputs, multi-crop pairing and a real fit."""

from __future__ import annotations

import math

import pytest

pytest.importorskip(
    "solo",
    reason="solo-learn is not installable from PyPI at a usable version: install it from its GitHub "
    "repository (pip install 'setuptools<82'; pip install --no-build-isolation -e <solo-learn checkout>) "
    "to run these tests",
)

import torch  # noqa: E402
from hydra import compose, initialize_config_module  # noqa: E402
from lightning.pytorch import Trainer  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from solo.args.pretrain import parse_cfg  # noqa: E402
from solo.data.pretrain_dataloader import (  # noqa: E402
    FullTransformPipeline,
    NCropAugmentation,
    build_transform_pipeline,
    prepare_dataloader,
    prepare_datasets,
)

import music_ssl.integrations.solo_learn.music as music_module  # noqa: E402
from music_ssl import MUSICLoss, MUSICProjectionHead  # noqa: E402
from music_ssl.integrations.solo_learn import CONFIG_MODULE, MUSIC  # noqa: E402

BATCH = 8
LOGGED = [
    "train_music_loss",
    "train_music_inv",
    "train_music_diag",
    "train_music_off",
    "train_music_attribute_entropy",
    "train_music_attribute_entropy_min",
    "train_music_confidence",
]


def make_cfg(folder, *overrides: str, small_crops: int = 0):
    """``music_cifar`` as solo's main_pretrain.py sees it, shrunk for CPU, on an image folder."""
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.2"):
        cfg = compose(
            config_name="music_cifar",
            overrides=[
                "data.dataset=custom",
                f"data.train_path={folder / 'train'}",
                f"data.val_path={folder / 'val'}",
                "data.num_workers=0",
                f"optimizer.batch_size={BATCH}",
                "method_kwargs.proj_hidden_dim=64",
                "method_kwargs.proj_output_dim=64",
                "method_kwargs.segment_dim=8",
                "accelerator=cpu",
                "devices='1'",
                "strategy=auto",
                "precision=32",
                "sync_batchnorm=False",
                "checkpoint.enabled=False",
                "auto_resume.enabled=False",
                *overrides,
            ],
        )
    OmegaConf.set_struct(cfg, False)
    if small_crops:
        small = OmegaConf.to_container(cfg.augmentations[0])
        small.update(crop_size=16, num_crops=small_crops)
        cfg.augmentations.append(small)
    return parse_cfg(cfg)


def test_cfg_defaults_are_filled(fashion_mnist_folder):
    cfg = make_cfg(fashion_mnist_folder)
    for key in ("proj_num_layers", "segment_dim", "temperature", "diag_weight", "off_weight", "inv_weight"):
        del cfg.method_kwargs[key]
    cfg = MUSIC.add_and_assert_specific_cfg(cfg)
    kwargs = cfg.method_kwargs
    assert kwargs.proj_num_layers == 3 and kwargs.segment_dim == 32 and kwargs.implementation == "auto"
    weights = (kwargs.temperature, kwargs.diag_weight, kwargs.off_weight, kwargs.inv_weight)
    assert weights == (1.0, 1.0, 1.0, 1.0)


@pytest.mark.parametrize("key", ["proj_hidden_dim", "proj_output_dim"])
@pytest.mark.parametrize("how", ["missing", "absent"])
def test_cfg_requires_projector_dims(fashion_mnist_folder, key, how):
    cfg = make_cfg(fashion_mnist_folder)
    if how == "missing":
        cfg.method_kwargs[key] = "???"
    else:
        del cfg.method_kwargs[key]
    with pytest.raises(ValueError, match=f"method_kwargs.{key} is required"):
        MUSIC.add_and_assert_specific_cfg(cfg)


@pytest.mark.parametrize(
    ("override", "build"),
    [
        ("method_kwargs.diag_weight=-1.0", lambda: MUSICLoss(diag_weight=-1.0)),
        ("method_kwargs.off_weight=abc", lambda: MUSICLoss(off_weight="abc")),
        ("method_kwargs.inv_weight=-2", lambda: MUSICLoss(inv_weight=-2)),
        ("method_kwargs.temperature=0", lambda: MUSICLoss(temperature=0)),
        ("method_kwargs.implementation=cuda", lambda: MUSICLoss(implementation="cuda")),
        ("method_kwargs.proj_output_dim=60", lambda: MUSICProjectionHead(1, 64, 60, segment_dim=8)),
        (
            "method_kwargs.proj_num_layers=0",
            lambda: MUSICProjectionHead(1, 64, 64, num_layers=0, segment_dim=8),
        ),
    ],
)
def test_bad_option_fails_when_the_method_is_built_with_the_core_message(
    fashion_mnist_folder, override, build
):
    with pytest.raises((TypeError, ValueError)) as core:
        build()
    cfg = make_cfg(fashion_mnist_folder, override)
    with pytest.raises(type(core.value)) as error:
        MUSIC(cfg)
    assert str(core.value) in str(error.value)


def test_one_large_crop_without_small_crops_is_refused(fashion_mnist_folder):
    cfg = make_cfg(fashion_mnist_folder, "augmentations.0.num_crops=1")
    assert (cfg.data.num_large_crops, cfg.data.num_small_crops) == (1, 0)
    with pytest.raises(ValueError, match="needs at least one pair of views"):
        MUSIC(cfg)


@pytest.mark.parametrize("num_layers", [2, 3])
def test_projector_is_the_music_head_and_learnable(fashion_mnist_folder, num_layers):
    model = MUSIC(make_cfg(fashion_mnist_folder, f"method_kwargs.proj_num_layers={num_layers}"))
    assert isinstance(model.projector, MUSICProjectionHead)
    linears = [m for m in model.projector.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == num_layers
    assert linears[0].in_features == model.features_dim
    assert linears[-1].out_features == 64 and linears[-1].bias is None
    assert model.projector.num_segments == 64 // 8
    names = [group["name"] for group in model.learnable_params]
    assert names == ["backbone", "classifier", "projector"]


def test_forward_shapes(fashion_mnist_folder):
    cfg = make_cfg(fashion_mnist_folder)
    model = MUSIC(cfg)
    out = model(torch.randn(BATCH, 3, 32, 32))
    assert out["logits"].shape == (BATCH, cfg.data.num_classes) == (BATCH, 5)
    assert out["feats"].shape == (BATCH, model.features_dim)
    assert out["z"].shape == (BATCH, cfg.method_kwargs.proj_output_dim)


def test_training_step_averages_over_large_and_small_crop_pairs(fashion_mnist_folder, monkeypatch):
    cfg = make_cfg(fashion_mnist_folder, small_crops=2)
    assert (cfg.data.num_large_crops, cfg.data.num_small_crops) == (2, 2)
    model = MUSIC(cfg)

    pairs, outputs, logged = [], [], {}
    original = music_module.music_loss_func

    def recording(z1, z2, **kwargs):
        out = original(z1, z2, **kwargs)
        pairs.append((z1, z2))
        outputs.append(out)
        return out

    monkeypatch.setattr(music_module, "music_loss_func", recording)
    monkeypatch.setattr(model, "log_dict", lambda metrics, **kwargs: logged.update(metrics))
    # projections in crop order: large 1, large 2 (forward), small 1, small 2 (multicrop_forward)
    projections = []
    model.projector.register_forward_hook(lambda module, inputs, output: projections.append(output))
    large = [torch.randn(BATCH, 3, 32, 32) for _ in range(2)]
    small = [torch.randn(BATCH, 3, 16, 16) for _ in range(2)]
    batch = [torch.arange(BATCH), large + small, torch.randint(0, 5, (BATCH,))]
    loss = model.training_step(batch, 0)

    # (large 1, large 2) then every (large, small) pair, each with weight 1/5
    crop = {id(z): i for i, z in enumerate(projections)}
    assert [(crop[id(z1)], crop[id(z2)]) for z1, z2 in pairs] == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]
    assert loss.ndim == 0 and torch.isfinite(loss)
    music_loss = torch.stack([out.loss for out in outputs]).mean()
    torch.testing.assert_close(logged["train_music_loss"], music_loss.detach())
    class_loss = loss - music_loss
    assert 0 < class_loss.item() < 10 * math.log(5)
    # the least used segment of any pair, not a mean of the pairs' minima
    lowest = torch.stack([out.attribute_entropy.min() for out in outputs]).min()
    torch.testing.assert_close(logged["train_music_attribute_entropy_min"], lowest)
    loss.backward()
    assert model.projector.layers[0].weight.grad is not None


def test_fast_dev_run_fit_on_fashion_mnist(fashion_mnist_folder):
    cfg = make_cfg(fashion_mnist_folder)
    model = MUSIC(cfg)
    transform = FullTransformPipeline(
        [
            NCropAugmentation(build_transform_pipeline(cfg.data.dataset, aug), aug.num_crops)
            for aug in cfg.augmentations
        ]
    )
    dataset = prepare_datasets(cfg.data.dataset, transform, train_data_path=cfg.data.train_path)
    loader = prepare_dataloader(dataset, batch_size=BATCH, num_workers=0)
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        precision=32,
        fast_dev_run=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, loader)

    metrics = trainer.callback_metrics
    for name in LOGGED:
        assert name in metrics, f"{name} not logged; got {sorted(metrics)}"
        assert torch.isfinite(metrics[name])
    assert "train_class_loss" in metrics
    assert 0 <= metrics["train_music_attribute_entropy_min"] <= metrics["train_music_attribute_entropy"]
    assert metrics["train_music_attribute_entropy"] <= math.log(cfg.method_kwargs.segment_dim) + 1e-5
