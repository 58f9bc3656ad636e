"""MUSIC on CIFAR-10 with a ResNet-18, in the shape of stable-pretraining's ``benchmarks/cifar10`` scripts.

The MUSIC authors' CIFAR-10 recipe (docs/math.md), read from ``music_ssl.integrations.recipes.CIFAR10``:
ResNet-18 with the CIFAR stem, its projector and segments, SGD, warm-up then cosine per step, the same
augmentations for both views. The learning rate follows the global batch (every process's batch together),
and under several processes the loss estimates the joint over it. An online linear probe and a kNN
classifier report accuracy on the validation split after every epoch. spt.Manager writes the metrics to a
CSV file under ``--out`` (no account needed); ``--logger wandb`` also sends them to Weights & Biases.

Usage:
    python -m music_ssl.integrations.stable_pretraining.cifar10_resnet18 --data-dir data/cifar10
    # Fashion-MNIST from its idx files, a small backbone, 300 steps:
    python -m music_ssl.integrations.stable_pretraining.cifar10_resnet18 --dataset fashion-mnist \\
        --data-dir /usr/share/datasets/fashion-mnist --backbone small --batch-size 256 --max-steps 300
    # Any image folder with train/ and val/ subfolders, one folder per class:
    python -m music_ssl.integrations.stable_pretraining.cifar10_resnet18 --dataset folder --data-dir PATH
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from music_ssl import MUSICLoss, MUSICProjectionHead
from music_ssl.integrations import recipes
from music_ssl.integrations.backbones import SmallCNN, resnet18_cifar
from music_ssl.integrations.idx import IdxImages

# stable-pretraining, Lightning, torchvision and torchmetrics are imported where they are used, so that
# --help and a bad argument answer at once instead of after a minute of imports.
if TYPE_CHECKING:
    import stable_pretraining as spt
    from stable_pretraining.data import transforms

RECIPE = recipes.CIFAR10

DATASETS = ("cifar10", "fashion-mnist", "folder")
BACKBONES = ("resnet18", "small")
NORMALIZE = {
    # The recipe's CIFAR-10 statistics; Fashion-MNIST's grey level repeated over RGB; ImageNet's for folders.
    "cifar10": {"mean": RECIPE.mean, "std": RECIPE.std},
    "fashion-mnist": {"mean": (0.2860,) * 3, "std": (0.3530,) * 3},
    "folder": {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
}
# Metrics read back after training; the probes log them under these names.
REPORTED = ("eval/linear_probe_top1", "eval/knn_probe_accuracy", "fit/loss_epoch")


def load_splits(dataset: str, data_dir: str | Path, download: bool = False):
    """(train, val, num_classes) of (PIL image, label) datasets."""
    import torchvision

    if dataset == "cifar10":
        train = torchvision.datasets.CIFAR10(root=str(data_dir), train=True, download=download)
        val = torchvision.datasets.CIFAR10(root=str(data_dir), train=False, download=download)
        return train, val, 10
    if dataset == "fashion-mnist":
        return IdxImages(data_dir, "train"), IdxImages(data_dir, "t10k"), 10
    if dataset == "folder":
        train = torchvision.datasets.ImageFolder(Path(data_dir) / "train")
        val = torchvision.datasets.ImageFolder(Path(data_dir) / "val")
        if val.classes != train.classes:
            # ImageFolder numbers the classes of each folder on its own: labels would not match.
            raise ValueError(
                f"data_dir={str(data_dir)!r}: val/ holds the classes {val.classes} and train/ "
                f"{train.classes}; both need the same class folders."
            )
        return train, val, len(train.classes)
    raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}.")


def view_transform(size: int, normalize: dict, view: recipes.View = RECIPE.views[0]) -> transforms.Compose:
    """One view of the recipe's augmentations, cropped to ``size`` pixels (the CIFAR-10 recipe blurs and
    solarizes neither view, so neither step is built)."""
    from stable_pretraining.data import transforms

    return transforms.Compose(
        transforms.RGB(),
        transforms.RandomResizedCrop((size, size), scale=view.crop_scale),
        transforms.RandomHorizontalFlip(p=view.horizontal_flip),
        transforms.ColorJitter(
            brightness=view.brightness,
            contrast=view.contrast,
            saturation=view.saturation,
            hue=view.hue,
            p=view.color_jitter,
        ),
        transforms.RandomGrayscale(p=view.grayscale),
        transforms.ToImage(**normalize),
    )


def small_backbone(width: int = 32) -> nn.Module:
    """Four Conv-BN-ReLU stages, each halving the resolution: a (N, 4 * width) feature for quick runs."""
    return SmallCNN(3, widths=(width, 2 * width, 4 * width, 4 * width), strides=(2, 2, 2, 2))


def build_backbone(name: str) -> tuple[nn.Module, int]:
    """(backbone, feature dimension), both from ``music_ssl.integrations.backbones``."""
    if name == "resnet18":
        backbone = resnet18_cifar(3)
    elif name == "small":
        backbone = small_backbone(32)
    else:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}.")
    return backbone, backbone.out_dim


def schedule_steps(
    epochs: int, warmup_epochs: int, steps_per_epoch: int, max_steps: int | None
) -> tuple[int, int]:
    """(total, warm-up) optimizer steps: a --max-steps budget keeps the recipe's warm-up share of training."""
    total = epochs * steps_per_epoch
    if max_steps is not None:
        total = min(total, max_steps)
    warmup = max(1, round(total * warmup_epochs / epochs))
    return total, min(warmup, total - 1)


def world_size(args: argparse.Namespace) -> int:
    """Processes training together: --devices on each of --num-nodes nodes."""
    return args.devices * args.num_nodes


def learning_rate(args: argparse.Namespace) -> float:
    """The recipe's SGD learning rate: --base-lr per 256 images of the global batch (every process's)."""
    return recipes.learning_rate(args.base_lr, args.batch_size, world_size(args))


def run_schedule(args: argparse.Namespace, num_images: int) -> tuple[int, int]:
    """(total, warm-up) optimizer steps for ``num_images`` training images: Lightning's distributed sampler
    gives every process ceil(num_images / processes) of them (padding the last share), which the loader
    cuts into whole batches of --batch-size (drop_last)."""
    steps_per_epoch = max(1, -(-num_images // world_size(args)) // args.batch_size)
    return schedule_steps(args.epochs, args.warmup_epochs, steps_per_epoch, args.max_steps)


def music_module(
    args: argparse.Namespace, backbone: nn.Module, feature_dim: int, total_steps: int, warmup_steps: int
) -> spt.Module:
    """The recipe's ``spt.Module``: its projector and loss, SGD at `learning_rate`, warm-up then cosine."""
    import stable_pretraining as spt

    from music_ssl.integrations.stable_pretraining import music_forward

    return spt.Module(
        backbone=backbone,
        projector=MUSICProjectionHead(
            feature_dim,
            args.proj_dim,
            args.proj_dim,
            num_layers=RECIPE.num_layers,
            segment_dim=args.segment_dim,
        ),
        forward=music_forward,
        # The joint over the global batch whenever several processes train, as the authors train.
        music_loss=MUSICLoss(
            segment_dim=args.segment_dim,
            temperature=RECIPE.temperature,
            diag_weight=RECIPE.diag_weight,
            off_weight=RECIPE.off_weight,
            inv_weight=RECIPE.inv_weight,
            gather_distributed="auto",
        ),
        optim={
            "optimizer": {
                "type": "SGD",
                "lr": learning_rate(args),
                "momentum": RECIPE.momentum,
                "weight_decay": RECIPE.weight_decay,
            },
            "scheduler": {
                "type": "LinearWarmupCosineAnnealing",
                "total_steps": total_steps,
                "peak_step": warmup_steps,
            },
            "interval": "step",
        },
        hparams=vars(args),
    )


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description as written, every argument with its default."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument("--dataset", choices=DATASETS, default="cifar10")
    parser.add_argument("--data-dir", default="data/cifar10")
    parser.add_argument("--no-download", dest="download", action="store_false", help="CIFAR-10 only")
    parser.add_argument("--image-size", type=int, default=RECIPE.views[0].crop_size)
    parser.add_argument("--backbone", choices=BACKBONES, default=RECIPE.backbone)
    parser.add_argument("--segment-dim", type=int, default=RECIPE.segment_dim)
    parser.add_argument(
        "--proj-dim", type=int, default=RECIPE.output_dim, help="hidden and output width of the projector"
    )
    parser.add_argument(
        "--batch-size", type=int, default=RECIPE.batch_size, help="images per device and step"
    )
    parser.add_argument(
        "--devices",
        type=int,
        default=None,
        help="processes per node (default: every CUDA GPU, or 1 on CPU); the learning rate and the joint "
        "follow the global batch, batch size x devices x nodes",
    )
    parser.add_argument("--num-nodes", type=int, default=1)
    parser.add_argument(
        "--base-lr", type=float, default=RECIPE.base_learning_rate, help="learning rate per 256 images"
    )
    parser.add_argument("--epochs", type=int, default=RECIPE.epochs)
    parser.add_argument("--warmup-epochs", type=int, default=RECIPE.warmup_epochs)
    parser.add_argument(
        "--max-steps", type=int, default=None, help="stop early; the schedule fits this budget"
    )
    parser.add_argument("--train-size", type=int, default=None, help="use the first N training images")
    parser.add_argument("--val-size", type=int, default=None, help="use the first N validation images")
    parser.add_argument("--num-workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--precision", default=None, help="Lightning precision; 16-mixed on GPU by default")
    parser.add_argument(
        "--logger", choices=("csv", "wandb"), default="csv", help="csv: only the run's metrics.csv"
    )
    parser.add_argument("--out", default="results/stable_pretraining")
    parser.add_argument("--seed", type=int, default=0)
    for action in parser._actions:  # an argument without help text still shows its default
        if action.help is None:
            action.help = "(default: %(default)s)"
    args = parser.parse_args(argv)
    # Checked here, in the flags' own names: the head would name its output_dim, a word the user never typed.
    if args.devices is None:
        args.devices = torch.cuda.device_count() or 1
    for flag, value in (("--devices", args.devices), ("--num-nodes", args.num_nodes)):
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    for flag, value in (("--segment-dim", args.segment_dim), ("--proj-dim", args.proj_dim)):
        if value < 2:
            parser.error(f"{flag} must be at least 2, got {value}")
    if args.proj_dim % args.segment_dim:
        multiple = max(1, args.proj_dim // args.segment_dim) * args.segment_dim
        parser.error(
            f"--proj-dim ({args.proj_dim}) must be a multiple of --segment-dim ({args.segment_dim}): the "
            f"projection is split into segments of --segment-dim attributes; e.g. --proj-dim {multiple}"
        )
    if args.dataset != "cifar10" and not Path(args.data_dir).is_dir():
        parser.error(
            f"--data-dir {args.data_dir} is not a folder; --dataset {args.dataset} reads "
            + (
                "the idx files of Fashion-MNIST from it"
                if args.dataset == "fashion-mnist"
                else "train/ and val/"
            )
        )
    return args


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    import lightning as pl
    import stable_pretraining as spt
    import torchmetrics
    from lightning.pytorch.loggers import WandbLogger
    from stable_pretraining.data import transforms

    normalize = NORMALIZE[args.dataset]
    train_images, val_images, num_classes = load_splits(args.dataset, args.data_dir, args.download)
    if args.train_size is not None:
        train_images = torch.utils.data.Subset(train_images, range(min(args.train_size, len(train_images))))
    if args.val_size is not None:
        val_images = torch.utils.data.Subset(val_images, range(min(args.val_size, len(val_images))))

    views = [view_transform(args.image_size, normalize, view) for view in RECIPE.views]
    train_dataset = spt.data.FromTorchDataset(
        train_images, names=["image", "label"], transform=transforms.MultiViewTransform(views)
    )
    val_dataset = spt.data.FromTorchDataset(
        val_images,
        names=["image", "label"],
        transform=transforms.Compose(
            transforms.RGB(),
            transforms.Resize((args.image_size, args.image_size)),
            transforms.ToImage(**normalize),
        ),
    )
    loader = dict(
        batch_size=args.batch_size, num_workers=args.num_workers, persistent_workers=args.num_workers > 0
    )
    train_dataloader = torch.utils.data.DataLoader(train_dataset, shuffle=True, drop_last=True, **loader)
    val_dataloader = torch.utils.data.DataLoader(val_dataset, **loader)
    data = spt.data.DataModule(train=train_dataloader, val=val_dataloader)

    backbone, feature_dim = build_backbone(args.backbone)
    total_steps, warmup_steps = run_schedule(args, len(train_dataset))
    module = music_module(args, backbone, feature_dim, total_steps, warmup_steps)
    linear_probe = spt.callbacks.OnlineProbe(
        module,
        name="linear_probe",
        input="embedding",
        target="label",
        probe=nn.Linear(feature_dim, num_classes),
        loss=nn.CrossEntropyLoss(),
        metrics={
            "top1": torchmetrics.classification.MulticlassAccuracy(num_classes),
            "top5": torchmetrics.classification.MulticlassAccuracy(num_classes, top_k=min(5, num_classes)),
        },
    )
    knn_probe = spt.callbacks.OnlineKNN(
        name="knn_probe",
        input="embedding",
        target="label",
        queue_length=min(20000, 2 * len(train_dataset)),
        metrics={"accuracy": torchmetrics.classification.MulticlassAccuracy(num_classes)},
        input_dim=feature_dim,
        k=10,
    )
    out = Path(args.out).resolve()
    # spt.Manager keeps every run (metrics.csv, hparams, last.ckpt) in {cache_dir}/runs/DATE/TIME/ID/ and
    # adds its CSV logger there whatever the Trainer holds; a cache_dir must be absolute (0.1.x).
    spt.set(cache_dir=str(out))
    if args.logger == "wandb":
        logger = WandbLogger(project=f"music-{args.dataset}", name=f"music-{args.backbone}", log_model=False)
    else:
        logger = False
    trainer = pl.Trainer(
        accelerator="gpu" if torch.cuda.is_available() else "cpu",
        devices=args.devices,
        num_nodes=args.num_nodes,
        max_epochs=args.epochs,
        max_steps=total_steps,
        num_sanity_val_steps=0,
        callbacks=[linear_probe, knn_probe],
        precision=args.precision or ("16-mixed" if torch.cuda.is_available() else "32-true"),
        logger=logger,
        enable_checkpointing=False,
    )
    manager = spt.Manager(trainer=trainer, module=module, data=data, seed=args.seed)
    manager()

    results = {
        name: float(trainer.callback_metrics[name]) for name in REPORTED if name in trainer.callback_metrics
    }
    results["steps"] = trainer.global_step
    out.mkdir(parents=True, exist_ok=True)
    (out / f"music-{args.dataset}-{args.backbone}.json").write_text(
        json.dumps({"args": vars(args), **results}, indent=2)
    )
    print(json.dumps(results, indent=2))
    if not all(math.isfinite(value) for value in results.values()):
        raise SystemExit(f"non-finite result: {results}")
    return results


if __name__ == "__main__":
    main()
