"""The CIFAR-10 ResNet-18 benchmark script: its parts, and a short spt.Manager run on Fashion-MNIST."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import pytest
import torch

if importlib.util.find_spec("stable_pretraining") is None:
    pytest.skip(
        "stable-pretraining is not installed: pip install music-ssl[stable-pretraining]",
        allow_module_level=True,
    )

import stable_pretraining as spt

from music_ssl.integrations import recipes
from music_ssl.integrations.idx import DEBIAN_FASHION_MNIST
from music_ssl.integrations.recipes import CIFAR10
from music_ssl.integrations.stable_pretraining import cifar10_resnet18 as benchmark

RELEASE = f"stable-pretraining {spt.__version__}"


@pytest.fixture
def fashion_mnist_dir() -> Path:
    if not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST idx files not found under {DEBIAN_FASHION_MNIST} (make data)")
    return DEBIAN_FASHION_MNIST


def test_the_defaults_are_the_authors_cifar10_recipe():
    args = benchmark.parse_args([])
    assert (args.backbone, args.segment_dim, args.proj_dim) == (
        CIFAR10.backbone,
        CIFAR10.segment_dim,
        CIFAR10.output_dim,
    )
    assert (args.batch_size, args.base_lr) == (CIFAR10.batch_size, CIFAR10.base_learning_rate)
    assert (args.epochs, args.warmup_epochs) == (CIFAR10.epochs, CIFAR10.warmup_epochs)
    assert args.image_size == CIFAR10.views[0].crop_size
    assert benchmark.NORMALIZE["cifar10"] == {"mean": CIFAR10.mean, "std": CIFAR10.std}


def test_the_module_trains_the_recipes_projector_loss_and_optimizer():
    args = benchmark.parse_args(["--devices", "1"])
    module = benchmark.music_module(args, torch.nn.Identity(), CIFAR10.feature_dim, 1000, 10)
    linears = [m for m in module.projector.modules() if isinstance(m, torch.nn.Linear)]
    dims = [CIFAR10.feature_dim] + [CIFAR10.hidden_dim] * (CIFAR10.num_layers - 1) + [CIFAR10.output_dim]
    assert [(m.in_features, m.out_features) for m in linears] == list(zip(dims[:-1], dims[1:], strict=True))
    loss = module.music_loss
    assert (loss.segment_dim, loss.temperature) == (CIFAR10.segment_dim, CIFAR10.temperature)
    assert (loss.diag_weight, loss.off_weight, loss.inv_weight) == (
        CIFAR10.diag_weight,
        CIFAR10.off_weight,
        CIFAR10.inv_weight,
    )
    assert loss.gather_distributed == "auto"  # the one distributed policy of every host
    optimizer = module.optim["optimizer"]
    assert optimizer["type"].lower() == CIFAR10.optimizer and not CIFAR10.exclude_bias_and_norm
    assert optimizer["lr"] == CIFAR10.learning_rate(CIFAR10.batch_size)
    assert (optimizer["momentum"], optimizer["weight_decay"]) == (CIFAR10.momentum, CIFAR10.weight_decay)
    assert module.optim["scheduler"] == {
        "type": "LinearWarmupCosineAnnealing",
        "total_steps": 1000,
        "peak_step": 10,
    }


def test_the_views_are_the_recipes_which_blur_and_solarize_neither():
    """view_transform builds crop, flip, color jitter and grayscale: all the CIFAR-10 recipe asks for."""
    for view in CIFAR10.views:
        assert view.gaussian_blur == 0.0 and view.solarization == 0.0


def test_recipe_schedule_warms_up_for_its_warm_up_epochs():
    epochs, warmup_epochs = CIFAR10.epochs, CIFAR10.warmup_epochs
    assert benchmark.schedule_steps(epochs, warmup_epochs, 97, None) == (epochs * 97, warmup_epochs * 97)


def test_a_step_budget_keeps_the_warm_up_share():
    assert benchmark.schedule_steps(800, 10, 97, max_steps=800) == (800, 10)
    assert benchmark.schedule_steps(2, 10, 5, max_steps=None) == (10, 9)  # never the whole run


def test_every_process_steps_through_its_share_of_the_images():
    two = benchmark.parse_args(
        ["--devices", "2", "--epochs", "4", "--warmup-epochs", "1", "--batch-size", "8"]
    )
    assert benchmark.run_schedule(two, num_images=80) == (4 * 5, 5)
    # As Lightning's sampler: 29 images on 2 processes are 15 each (one padded), 3 batches of 5, not 2.
    five = benchmark.parse_args(
        ["--devices", "2", "--epochs", "1", "--warmup-epochs", "0", "--batch-size", "5"]
    )
    assert benchmark.run_schedule(five, num_images=29)[0] == 3


def test_idx_images_reads_fashion_mnist(fashion_mnist_dir):
    train = benchmark.IdxImages(fashion_mnist_dir, "train")
    image, label = train[0]
    assert len(train) == 60000 and image.size == (28, 28) and image.mode == "L"
    assert label == 9  # the first training image is an ankle boot
    assert len(benchmark.IdxImages(fashion_mnist_dir, "t10k")) == 10000


def test_missing_idx_files_are_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"has no train-images-idx3-ubyte.gz"):
        benchmark.IdxImages(tmp_path, "train")


def write_image_folder(root: Path, images, per_class: dict[str, dict[int, int]]) -> None:
    """Writes PNGs into root/split/class_k/: per_class[split][k] images of class k."""
    for split, counts in per_class.items():
        for label, count in counts.items():
            folder = root / split / f"class_{label}"
            folder.mkdir(parents=True)
            indices = [i for i in range(200) if images[i][1] == label][:count]
            for index in indices:
                images[index][0].convert("RGB").save(folder / f"{index}.png")


def test_an_image_folder_gives_train_and_val_splits_with_its_classes(fashion_mnist_dir, tmp_path):
    images = benchmark.IdxImages(fashion_mnist_dir, "t10k")
    write_image_folder(tmp_path, images, {"train": {0: 3, 7: 2}, "val": {0: 1, 7: 2}})

    train, val, num_classes = benchmark.load_splits("folder", tmp_path)
    assert (len(train), len(val), num_classes) == (5, 3, 2)
    assert sorted(label for _, label in train) == [0, 0, 0, 1, 1]
    view = benchmark.view_transform(32, benchmark.NORMALIZE["folder"])
    sample = view({"image": train[0][0], "label": train[0][1]})
    assert sample["image"].shape == (3, 32, 32) and sample["image"].dtype == torch.float32


def test_an_image_folder_whose_splits_differ_in_classes_is_a_clear_error(fashion_mnist_dir, tmp_path):
    images = benchmark.IdxImages(fashion_mnist_dir, "t10k")
    write_image_folder(tmp_path, images, {"train": {0: 1, 7: 1}, "val": {7: 1}})
    with pytest.raises(ValueError, match=r"val/ holds the classes \['class_7'\] and train/"):
        benchmark.load_splits("folder", tmp_path)


@pytest.mark.parametrize(("call", "argument"), [("load_splits", "dataset"), ("build_backbone", "backbone")])
def test_unknown_choices_are_clear_errors(call, argument):
    with pytest.raises(ValueError, match=rf"{argument} must be one of .*, got 'imagenet'"):
        getattr(benchmark, call)("imagenet", *(["."] if call == "load_splits" else []))


@pytest.mark.parametrize(("name", "features"), [("small", 128), ("resnet18", 512)])
def test_backbones_give_the_announced_features(name, features):
    backbone, dim = benchmark.build_backbone(name)
    assert dim == features
    assert backbone.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, features)


@pytest.fixture
def restore_spt_cache_dir():
    """The benchmark moves spt's global cache_dir to its --out folder; later tests get the old one back."""
    config = spt.get_config()
    previous = config.cache_dir
    yield
    config.cache_dir = previous


@pytest.mark.usefixtures("restore_spt_cache_dir")
def test_a_short_run_through_the_manager_reports_probe_and_knn_accuracies(fashion_mnist_dir, tmp_path):
    argv = ["--dataset", "fashion-mnist", "--data-dir", str(fashion_mnist_dir), "--backbone", "small"]
    argv += ["--batch-size", "64", "--train-size", "256", "--val-size", "128", "--epochs", "1"]
    argv += ["--warmup-epochs", "0", "--num-workers", "0", "--out", str(tmp_path)]
    try:
        results = benchmark.main(argv)
    except Exception as error:
        pytest.fail(f"{RELEASE}: the benchmark script failed: {type(error).__name__}: {error}")

    assert results["steps"] == 4, f"{RELEASE}: {results}"
    for name in benchmark.REPORTED:
        assert name in results and math.isfinite(results[name]), f"{RELEASE}: {name} missing from {results}"
    saved = json.loads((tmp_path / "music-fashion-mnist-small.json").read_text())
    assert saved["eval/knn_probe_accuracy"] == results["eval/knn_probe_accuracy"]
    assert list(tmp_path.glob("runs/*/*/*/metrics.csv")), f"{RELEASE}: spt.Manager wrote no metrics.csv"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--segment-dim", "48"],
            r"--proj-dim \(1024\) must be a multiple of --segment-dim \(48\).*--proj-dim 1008",
        ),
        (
            ["--proj-dim", "100", "--segment-dim", "32"],
            r"--proj-dim \(100\) must be a multiple of --segment-dim \(32\)",
        ),
        (["--segment-dim", "1"], "--segment-dim must be at least 2, got 1"),
    ],
)
def test_sizes_are_checked_in_the_flags_own_names(argv, message, capsys):
    with pytest.raises(SystemExit):
        benchmark.parse_args(argv)
    error = capsys.readouterr().err
    assert re.search(message, error), error
    assert "output_dim" not in error


def test_the_learning_rate_follows_the_global_batch():
    """The recipe's rate per 256 images of the global batch: on two devices of 16 images, that of 32."""
    one = benchmark.parse_args(["--devices", "1"])
    assert benchmark.learning_rate(one) == CIFAR10.learning_rate(CIFAR10.batch_size)
    two = benchmark.parse_args(["--batch-size", "16", "--devices", "2"])
    assert benchmark.learning_rate(two) == CIFAR10.learning_rate(32)
    nodes = benchmark.parse_args(["--batch-size", "256", "--devices", "4", "--num-nodes", "2"])
    assert benchmark.learning_rate(nodes) == recipes.learning_rate(CIFAR10.base_learning_rate, 256 * 8)
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--devices", "0"])
