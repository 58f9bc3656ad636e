"""MUSIC as a solo-learn method: cfg handling, outputs, multi-crop through the core's loss and real fits."""

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
from music_ssl import MUSICLoss, MUSICOptions, MUSICProjectionHead, music_loss, music_loss_terms  # noqa: E402
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
    "train_music_code_entropy",
    "train_music_code_entropy_min",
]


def make_cfg(folder, *overrides: str, small_crops: int = 0, config_name: str = "music_cifar"):
    """A packaged config as solo's main_pretrain.py sees it, shrunk for CPU, on an image folder;
    ``small_crops`` adds a pipeline of that many 16 px crops."""
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.2"):
        cfg = compose(
            config_name=config_name,
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
    assert weights == (MUSICOptions().temperature, 1.0, 1.0, 1.0)  # the core's defaults


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
    with pytest.raises(ValueError, match="needs at least two views") as error:
        MUSIC(cfg)
    assert "num_large_crops=1 and num_small_crops=0" in str(error.value)


def test_small_crops_without_a_large_crop_are_refused(fashion_mnist_folder):
    # the first pipeline sets the large crop size; with no crop of it, every view would be local
    cfg = make_cfg(fashion_mnist_folder, "augmentations.0.num_crops=0", small_crops=2)
    assert (cfg.data.num_large_crops, cfg.data.num_small_crops) == (0, 2)
    with pytest.raises(ValueError, match="num_large_crops=0 and num_small_crops=2"):
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


def record_core_calls(monkeypatch) -> list[tuple[list, dict]]:
    """The views and keywords of every call of the loss by the method, which still computes it."""
    calls = []
    original = music_module.music_loss_terms_func

    def recording(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(music_module, "music_loss_terms_func", recording)
    return calls


def step(model, monkeypatch, large: int, small: int, small_size: int = 16):
    """One training step on random crops: the loss, what was logged, the projections in crop order and
    the loss's calls."""
    logged, projections = {}, []
    calls = record_core_calls(monkeypatch)
    monkeypatch.setattr(model, "log_dict", lambda metrics, **kwargs: logged.update(metrics))
    model.projector.register_forward_hook(lambda module, inputs, output: projections.append(output))
    crops = [torch.randn(BATCH, 3, 32, 32) for _ in range(large)]
    crops += [torch.randn(BATCH, 3, small_size, small_size) for _ in range(small)]
    batch = [torch.arange(BATCH), crops, torch.randint(0, 5, (BATCH,))]
    return model.training_step(batch, 0), logged, projections, calls


@pytest.mark.parametrize(("large", "small"), [(2, 0), (2, 2), (1, 3)])
def test_training_step_is_the_core_loss_of_every_crop(fashion_mnist_folder, monkeypatch, large, small):
    cfg = make_cfg(fashion_mnist_folder, f"augmentations.0.num_crops={large}", small_crops=small)
    assert (cfg.data.num_large_crops, cfg.data.num_small_crops) == (large, small)
    model = MUSIC(cfg)
    loss, logged, projections, calls = step(model, monkeypatch, large, small)

    # one call of the core with every projection, large crops first, the large crops global
    assert len(projections) == large + small
    assert len(calls) == 1
    (views,), kwargs = calls[0]
    assert [id(z) for z in views] == [id(z) for z in projections]
    assert kwargs["num_global"] == large
    options = dict(segment_dim=8, temperature=1.0, diag_weight=1.0, off_weight=1.0, inv_weight=1.0)
    expected = music_loss(projections, num_global=large, **options)
    terms = music_loss_terms(projections, num_global=large, **options)
    assert loss.ndim == 0 and torch.isfinite(loss)
    class_loss = loss - expected
    assert 0 < class_loss.item() < 10 * math.log(5)
    # everything logged is the core's own log_dict of that call, diagnostics over all views included
    expected_logs = terms.log_dict(prefix="train_")
    assert set(LOGGED) <= set(logged)
    for name in expected_logs:
        torch.testing.assert_close(logged[name], expected_logs[name], msg=name)
    torch.testing.assert_close(logged["train_music_loss"], expected.detach())
    loss.backward()
    assert model.projector.layers[0].weight.grad is not None


def test_training_step_of_the_multicrop_config_uses_every_small_crop(fashion_mnist_folder, monkeypatch):
    cfg = make_cfg(fashion_mnist_folder, config_name="music_cifar_multicrop")
    assert (cfg.data.num_large_crops, cfg.data.num_small_crops) == (2, 6)
    model = MUSIC(cfg)
    loss, _, projections, calls = step(model, monkeypatch, 2, 6, small_size=18)
    (views,), kwargs = calls[0]
    assert len(calls) == 1 and len(views) == 8 and kwargs["num_global"] == 2
    # every crop's projection gets a gradient; the small crops' can only come from the MUSIC loss
    for z in projections:
        z.retain_grad()
    loss.backward()
    for index, z in enumerate(projections):
        assert z.grad is not None and z.grad.abs().sum() > 0, f"crop {index} does not reach the loss"


@pytest.mark.parametrize("small_crops", [0, 2], ids=["two-large-crops", "two-large-two-small-crops"])
def test_fast_dev_run_fit_on_fashion_mnist(fashion_mnist_folder, monkeypatch, small_crops):
    cfg = make_cfg(fashion_mnist_folder, small_crops=small_crops)
    assert (cfg.data.num_large_crops, cfg.data.num_small_crops) == (2, small_crops)
    model = MUSIC(cfg)
    calls = record_core_calls(monkeypatch)
    sizes = []
    model.backbone.register_forward_pre_hook(lambda module, args: sizes.append(tuple(args[0].shape[-2:])))
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

    # solo-learn's own pipeline made the small crops, and the one training step's loss received them all
    assert sizes == [(32, 32)] * 2 + [(16, 16)] * small_crops
    assert len(calls) == 1
    (views,), kwargs = calls[0]
    assert [tuple(z.shape) for z in views] == [(BATCH, 64)] * (2 + small_crops)
    assert kwargs["num_global"] == 2
    metrics = trainer.callback_metrics
    for name in LOGGED:
        assert name in metrics, f"{name} not logged; got {sorted(metrics)}"
        assert torch.isfinite(metrics[name])
    assert "train_class_loss" in metrics
    assert 0 <= metrics["train_music_attribute_entropy_min"] <= metrics["train_music_attribute_entropy"]
    assert metrics["train_music_attribute_entropy"] <= math.log(cfg.method_kwargs.segment_dim) + 1e-5
