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

import torch
import torchvision
from lightly.data import LightlyDataset
from torch import nn
from tqdm import tqdm

from music_ssl.integrations.idx import IdxImages, holds_idx_split
from music_ssl.integrations.lightly import MUSICProjectionHead, views_transform


class MUSIC(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        # One hidden layer (512-1024-1024), read as 32 segments of 32 attributes: the recommended head.
        self.projection_head = MUSICProjectionHead(512, 1024, 1024, num_layers=2, segment_dim=32)

    def forward(self, x):
        x = self.backbone(x).flatten(start_dim=1)
        z = self.projection_head(x)
        return z


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
        description="MUSIC with lightly and plain PyTorch.",
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
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=default_workers(),
        help="data loader processes; by default this machine's cores, at most 8",
    )
    args = parser.parse_args(argv)
    if args.n_local_views < 0:
        parser.error(f"--n-local-views must be 0 or more, got {args.n_local_views}")
    return args


def main(argv=None):
    args = parse_args(argv)

    resnet = torchvision.models.resnet18()
    backbone = nn.Sequential(*list(resnet.children())[:-1])
    model = MUSIC(backbone)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)

    transform = make_transform(args)
    dataset = make_dataset(args.dataset, args.data_dir, transform, args.download)

    dataloader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.num_workers,
    )
    if len(dataloader) == 0:
        raise ValueError(
            f"--batch-size {args.batch_size} is larger than the dataset ({len(dataset)} images)."
        )

    criterion = model.projection_head.loss()  # the head's segments, the default temperature
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

    print("Starting Training")
    losses = []
    for epoch in range(args.epochs):
        sums = {}  # the epoch's sum of the loss, its three terms and the segment diagnostics
        num_batches = 0
        progress = tqdm(dataloader, desc=f"epoch {epoch}", unit="batch", leave=False)
        for batch in progress:
            # Two views, or two global views and the local views: the first two are global.
            views = [x.to(device) for x in batch[0]]
            z = [model(x) for x in views]
            out = criterion.terms(z, num_global=2)
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            for key, value in out.log_dict().items():
                sums[key] = sums.get(key, 0.0) + float(value)
            num_batches += 1
            losses.append(out.loss.item())
            progress.set_postfix(loss=f"{losses[-1]:.4f}")
            if len(losses) == args.max_steps:
                break
        print(f"epoch {epoch:>02}: " + ", ".join(f"{k} {v / num_batches:.4f}" for k, v in sums.items()))
        if len(losses) == args.max_steps:
            break
    return losses


if __name__ == "__main__":
    main()
