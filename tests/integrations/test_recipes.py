"""The recipes module against the authors' numbers as docs/math.md writes them ("Reference configurations
of the authors"), so that a typo in the module cannot pass for the recipe; and its learning-rate rule.

Every other test reads the recipes from the module; the numbers are written out only here.
"""

from __future__ import annotations

import dataclasses
import doctest

import pytest
import torch

from music_ssl import MUSICProjectionHead
from music_ssl.integrations import recipes
from music_ssl.integrations.recipes import CIFAR10, CIFAR10_LINEAR_PROBE, IMAGENET, IMAGENET100


def linear_shapes(recipe: recipes.Recipe) -> list[tuple[int, int]]:
    with torch.device("meta"):  # shapes only: no 8192 x 8192 weights to initialise
        head = MUSICProjectionHead(
            recipe.feature_dim, recipe.hidden_dim, recipe.output_dim, recipe.num_layers, recipe.segment_dim
        )
    return [(m.in_features, m.out_features) for m in head.modules() if isinstance(m, torch.nn.Linear)]


def test_imagenet_is_the_authors_resnet50_recipe():
    # Linear(2048, 8192) + BatchNorm + ReLU + Linear(8192, 8160, no bias); C = 80 (S = 102); tau = 1
    assert IMAGENET.backbone == "resnet50"
    assert linear_shapes(IMAGENET) == [(2048, 8192), (8192, 8160)]
    assert (IMAGENET.segment_dim, IMAGENET.num_segments, IMAGENET.temperature) == (80, 102, 1.0)
    # LARS, base learning rate 0.6 x batch / 256, weight decay 1e-6, 10 warm-up epochs then cosine decay;
    # batch 2048; 100 epochs
    assert (IMAGENET.optimizer, IMAGENET.base_learning_rate, IMAGENET.weight_decay) == ("lars", 0.6, 1e-6)
    assert (IMAGENET.warmup_epochs, IMAGENET.batch_size, IMAGENET.epochs) == (10, 2048, 100)
    assert IMAGENET.learning_rate(IMAGENET.batch_size) == pytest.approx(0.6 * 2048 / 256)


def test_imagenet_views_are_vicregs_asymmetric_augmentations():
    # RandomResizedCrop(224, scale 0.08-1.0), horizontal flip p 0.5, ColorJitter(0.4, 0.4, 0.2, 0.1) with
    # p 0.8, grayscale p 0.2; blur p 1.0 / 0.1, solarization p 0 / 0.2 on the first / second view
    first, second = IMAGENET.views
    for view in (first, second):
        assert (view.crop_size, view.crop_scale, view.horizontal_flip) == (224, (0.08, 1.0), 0.5)
        jitter = (view.color_jitter, view.brightness, view.contrast, view.saturation, view.hue)
        assert jitter == (0.8, 0.4, 0.4, 0.2, 0.1) and view.grayscale == 0.2
    assert (first.gaussian_blur, first.solarization) == (1.0, 0.0)
    assert (second.gaussian_blur, second.solarization) == (0.1, 0.2)
    assert IMAGENET.mean is None and IMAGENET.std is None  # the hosts' ImageNet statistics


def test_cifar10_is_the_authors_resnet18_recipe():
    # Projector 512-1024-1024-1024, C = 32 (S = 32); SGD, learning rate 0.2 (0.1 x 512 / 256), momentum
    # 0.9, weight decay 5e-4; batch 512; 800 epochs, 10 warm-up epochs then cosine
    assert CIFAR10.backbone == "resnet18"
    assert linear_shapes(CIFAR10) == [(512, 1024), (1024, 1024), (1024, 1024)]
    assert (CIFAR10.segment_dim, CIFAR10.num_segments, CIFAR10.temperature) == (32, 32, 1.0)
    assert (CIFAR10.optimizer, CIFAR10.base_learning_rate, CIFAR10.batch_size) == ("sgd", 0.1, 512)
    assert CIFAR10.learning_rate(CIFAR10.batch_size) == pytest.approx(0.2)
    assert (CIFAR10.momentum, CIFAR10.weight_decay) == (0.9, 5e-4)
    assert (CIFAR10.epochs, CIFAR10.warmup_epochs) == (800, 10)
    # linear probe: SGD, learning rate 30, 100 epochs
    assert dataclasses.astuple(CIFAR10_LINEAR_PROBE) == ("sgd", 30.0, 100)


def test_cifar10_views_are_the_same_and_neither_blurs_nor_solarizes():
    # RandomResizedCrop(32, scale 0.2-1.0), horizontal flip p 0.5, ColorJitter(0.4, 0.4, 0.4, 0.1) with
    # p 0.8, grayscale p 0.2, no blur, no solarization; CIFAR-10's mean and standard deviation
    first, second = CIFAR10.views
    assert first == second
    assert (first.crop_size, first.crop_scale, first.horizontal_flip) == (32, (0.2, 1.0), 0.5)
    jitter = (first.color_jitter, first.brightness, first.contrast, first.saturation, first.hue)
    assert jitter == (0.8, 0.4, 0.4, 0.4, 0.1) and first.grayscale == 0.2
    assert (first.gaussian_blur, first.solarization) == (0.0, 0.0)
    assert CIFAR10.mean == (0.4914, 0.4822, 0.4465) and CIFAR10.std == (0.2023, 0.1994, 0.2010)


def test_every_recipe_trains_with_the_default_weights():
    for recipe in (IMAGENET, IMAGENET100, CIFAR10):
        assert (recipe.diag_weight, recipe.off_weight, recipe.inv_weight) == (1.0, 1.0, 1.0)
        assert recipe.output_dim % recipe.segment_dim == 0


def test_imagenet100_is_the_imagenet_recipe_with_a_resnet18():
    changed = {
        field.name
        for field in dataclasses.fields(IMAGENET)
        if getattr(IMAGENET, field.name) != getattr(IMAGENET100, field.name)
    }
    assert changed == {"backbone", "feature_dim", "batch_size", "epochs"}
    assert (IMAGENET100.backbone, IMAGENET100.feature_dim) == ("resnet18", 512)


@pytest.mark.parametrize(
    ("batch_size_per_device", "world_size", "global_batch"), [(256, 8, 2048), (128, 2, 256), (8, 1, 8)]
)
def test_the_learning_rate_follows_the_global_batch(batch_size_per_device, world_size, global_batch):
    expected = IMAGENET.base_learning_rate * global_batch / recipes.REFERENCE_BATCH_SIZE
    assert IMAGENET.learning_rate(batch_size_per_device, world_size) == pytest.approx(expected)
    assert recipes.learning_rate(0.1, batch_size_per_device, world_size) == pytest.approx(
        0.1 * global_batch / 256
    )


@pytest.mark.parametrize(("batch_size_per_device", "world_size"), [(0, 1), (8, 0), (8.0, 1), (True, 1)])
def test_the_learning_rate_refuses_bad_sizes(batch_size_per_device, world_size):
    with pytest.raises(ValueError, match="must be a positive int"):
        recipes.learning_rate(0.6, batch_size_per_device, world_size)


def test_recipes_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CIFAR10.epochs = 1  # type: ignore[misc]


def test_the_modules_examples_run_as_written():
    failures, tried = doctest.testmod(recipes)
    assert tried >= 2 and failures == 0
