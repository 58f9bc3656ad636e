# This example requires the following dependencies to be installed:
# pip install "music-ssl[lightly]"

# Note: The model and training settings do not follow the reference settings
# from the paper. The settings are chosen such that the example can easily be
# run on a small dataset with a single GPU.
#
# Usage:
#   python music.py --dataset cifar10 --data-dir datasets/cifar10 --download
#   python music.py --dataset fashion_mnist --data-dir datasets/fashion_mnist --download
#   python music.py --dataset fashion_mnist --data-dir /usr/share/datasets/fashion-mnist  # local idx files
#   python music.py --dataset folder --data-dir path/to/images  # a folder of images, any layout lightly reads
#   python music.py --dataset cifar10 --data-dir datasets/cifar10 --n-local-views 6  # 2 x 32 + 6 x 16 px

import argparse
import os

import pytorch_lightning as pl
import torch
import torchvision
from lightly.data import LightlyDataset
from torch import nn

from music_ssl.integrations.idx import IdxImages, holds_idx_split
from music_ssl.integrations.lightly import MUSICProjectionHead, views_transform


class MUSIC(pl.LightningModule):
    def __init__(self):
        super().__init__()
        resnet = torchvision.models.resnet18()
        self.backbone = nn.Sequential(*list(resnet.children())[:-1])
        # One hidden layer (512-1024-1024), read as 32 segments of 32 attributes: the recommended head.
        self.projection_head = MUSICProjectionHead(512, 1024, 1024, num_layers=2, segment_dim=32)
        # The loss reads the head's segments, at the recommended (default) temperature.
        self.criterion = self.projection_head.loss()

    def forward(self, x):
        x = self.backbone(x).flatten(start_dim=1)
        z = self.projection_head(x)
        return z

    def training_step(self, batch, batch_index):
        # Two views, or two global views and the local views: the first two are global.
        z = [self.forward(x) for x in batch[0]]
        out = self.criterion.terms(z, num_global=2)
        self.log("train_loss", out.loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=1)
        # The three loss terms and the attribute entropy / confidence of the segments.
        self.log_dict(out.log_dict(prefix="train_"), on_step=True, on_epoch=True, batch_size=1)
        for key, value in out.log_dict(prefix="train_").items():
            self.epoch_sums[key] = self.epoch_sums.get(key, 0.0) + float(value)
        self.epoch_steps += 1
        return out.loss

    def on_train_epoch_start(self):
        # The epoch's sums of the loss, its three terms and the segment diagnostics, printed at its end.
        self.epoch_sums, self.epoch_steps = {}, 0

    def on_train_epoch_end(self):
        means = {key: value / max(1, self.epoch_steps) for key, value in sorted(self.epoch_sums.items())}
        print(f"epoch {self.current_epoch:>02}: " + ", ".join(f"{k} {v:.4f}" for k, v in means.items()))

    def configure_optimizers(self):
        optim = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        return optim


def to_rgb(image):
    # Fashion-MNIST images are grayscale; the backbone and the color augmentations expect RGB.
    return image.convert("RGB")


def make_transform(args):
    # The recipe's two views, or multi-crop with --n-local-views; no blur for small images.
    return views_transform(args.input_size, args.n_local_views, args.local_view_size, gaussian_blur=0.0)


def make_dataset(name, data_dir, transform, download):
    if name == "cifar10":
        return torchvision.datasets.CIFAR10(data_dir, download=download, transform=transform)
    if name == "fashion_mnist":
        transform = torchvision.transforms.Compose([to_rgb, transform])
        if holds_idx_split(data_dir, "train"):  # the idx files themselves, as in Debian's folder
            return IdxImages(data_dir, "train", transform=transform)
        return torchvision.datasets.FashionMNIST(data_dir, download=download, transform=transform)
    # A folder containing images or videos.
    return LightlyDataset(input_dir=data_dir, transform=transform)


def default_workers():
    # One loader process per core this process may use, at most 8: more only compete for the cores.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(8, cores)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="MUSIC with lightly and PyTorch Lightning.",
    )
    parser.add_argument(
        "--dataset",
        choices=["cifar10", "fashion_mnist", "folder"],
        default="cifar10",
        help="what to train on",
    )
    parser.add_argument("--data-dir", default="datasets/cifar10", help="where the dataset is, or goes")
    parser.add_argument("--download", action="store_true", help="download the torchvision dataset")
    parser.add_argument("--input-size", type=int, default=32, help="side of the global views in pixels")
    parser.add_argument(
        "--n-local-views", type=int, default=0, help="multi-crop: local views next to the two global views"
    )
    parser.add_argument(
        "--local-view-size",
        type=int,
        default=None,
        help="side of the local views in pixels; None: half of --input-size",
    )
    parser.add_argument("--batch-size", type=int, default=256, help="images per step")
    parser.add_argument("--epochs", type=int, default=10, help="passes over the dataset")
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=default_workers(),
        help="data loader processes; by default this machine's cores, at most 8",
    )
    parser.add_argument(
        "--accelerator", default="gpu" if torch.cuda.is_available() else "cpu", help="Lightning's accelerator"
    )
    parser.add_argument("--log-dir", default=".", help="where Lightning writes logs and checkpoints")
    args = parser.parse_args(argv)
    if args.n_local_views < 0:
        parser.error(f"--n-local-views must be 0 or more, got {args.n_local_views}")
    return args


def main(argv=None):
    args = parse_args(argv)

    model = MUSIC()

    transform = make_transform(args)
    dataset = make_dataset(args.dataset, args.data_dir, transform, args.download)

    dataloader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.num_workers,
    )

    trainer = pl.Trainer(
        max_epochs=args.epochs,
        max_steps=args.max_steps,
        devices=1,
        accelerator=args.accelerator,
        default_root_dir=args.log_dir,
    )
    trainer.fit(model=model, train_dataloaders=dataloader)
    return trainer


if __name__ == "__main__":
    main()
