"""method=music under DDP on two CPU processes, as solo-learn users run it: a Lightning Trainer trains it
as one process would on the global batch, and solo-learn's own main_pretrain.py trains it to a checkpoint
(docs/math.md, "Distributed training")."""

from __future__ import annotations

import sys

import pytest
import torch

pytest.importorskip(
    "solo",
    reason="solo-learn is not installable from PyPI at a usable version: install it from its GitHub "
    "repository (pip install 'setuptools<82'; pip install --no-build-isolation -e <solo-learn checkout>) "
    "to run these tests",
)

from hydra import compose, initialize_config_module  # noqa: E402
from lightning.pytorch import Trainer  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from solo.args.pretrain import parse_cfg  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402

from music_ssl.integrations.solo_learn import CONFIG_MODULE, MUSIC  # noqa: E402
from tests.integrations.solo_learn.scripts import image_folder_run, run, solo_script  # noqa: E402
from tests.integrations.two_processes import (  # noqa: E402
    WORLD_SIZE,
    assert_same_parameters,
    run_on_two_processes,
    step_loader,
    trainer_arguments,
)

BATCH_SIZE = 8  # per process
TRAINED_STEPS = 3


def bn_free_cfg(devices: int, exchange: str = "auto"):
    """The packaged CIFAR-10 config with a ViT backbone (LayerNorm) and a one-Linear projector: no
    BatchNorm, which ranks that each normalize their own shard could not match exactly
    (docs/implementation.md). Each of ``devices`` processes takes its share of a global batch of 16."""
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.2"):
        cfg = compose(
            config_name="music_cifar",
            overrides=[
                "backbone.name=vit_tiny",
                "+backbone.kwargs.img_size=16",
                "+backbone.kwargs.patch_size=8",
                "method_kwargs.proj_output_dim=32",
                "method_kwargs.proj_num_layers=1",
                "method_kwargs.segment_dim=8",
                f"method_kwargs.exchange={exchange}",
                f"optimizer.batch_size={BATCH_SIZE * WORLD_SIZE // devices}",
                "optimizer.lr=1.6",  # solo-learn scales it by the global batch over 256: 0.1
                "scheduler.warmup_epochs=0",
                "max_epochs=1",
                f"devices={list(range(devices))}",  # solo-learn counts them to scale the learning rate
                "accelerator=cpu",
                "precision=32",
            ],
        )
    OmegaConf.set_struct(cfg, False)
    return parse_cfg(cfg)


class TwoViews(Dataset):
    """Fixed random image pairs in solo-learn's batch layout: (index, [view_1, view_2], target)."""

    def __init__(self, size: int) -> None:
        generator = torch.Generator().manual_seed(1)
        self.views = torch.randn(size, 2, 3, 16, 16, generator=generator)
        self.targets = torch.randint(10, (size,), generator=generator)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return index, list(self.views[index]), self.targets[index]


def train_steps(devices: int, root: str, exchange: str = "auto") -> dict:
    """TRAINED_STEPS steps of method=music under a Lightning Trainer on ``devices`` processes: on two, DDP
    with its own distributed sampler; on one, the same global batches. Every parameter after them."""
    torch.manual_seed(0)
    model = MUSIC(bn_free_cfg(devices, exchange))
    trainer = Trainer(**trainer_arguments(devices, TRAINED_STEPS, root))
    pairs = TwoViews(TRAINED_STEPS * WORLD_SIZE * BATCH_SIZE)
    loader = step_loader(pairs, devices, BATCH_SIZE)
    trainer.fit(model, loader)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _train_on_rank(rank: int, root: str, exchange: str) -> dict:
    return train_steps(WORLD_SIZE, root, exchange)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("exchange", ["gather", "reduce"])
def test_lightning_ddp_training_equals_one_process_on_the_global_batch(tmp_path, exchange):
    """After a few SGD steps under solo-learn's optimizer and schedule, every rank holds the parameters
    one process reaches on the ranks' batches concatenated (backbone, projector and online classifier),
    whichever the ranks exchange."""
    ranks = run_on_two_processes(_train_on_rank, str(tmp_path / "ddp"), exchange)
    want = train_steps(1, str(tmp_path / "one"), exchange)
    assert_same_parameters(ranks, want)


@pytest.mark.timeout(600)
def test_main_pretrain_on_two_processes_writes_a_checkpoint(fashion_mnist_folder, tmp_path):
    """solo-learn's main_pretrain.py with devices=2 strategy=ddp on CPU (Lightning starts the second
    process through Hydra): each process trains on its half of the 40 images, and a checkpoint is saved."""
    pretrain = solo_script("main_pretrain.py")
    # solo-learn scales the learning rate by len(devices), which an int fails and Lightning's CPU
    # accelerator refuses a list: the string '2' is one device to solo-learn, two to Lightning.
    # SyncBatchNorm needs GPUs.
    ddp = ["accelerator=cpu", "devices='2'", "strategy=ddp", "precision=32", "sync_batchnorm=False"]
    args = ["--config-name", "music_cifar", "auto_resume.enabled=False"]
    args += [*image_folder_run(fashion_mnist_folder, tmp_path), *ddp]
    run([sys.executable, str(pretrain), *args], tmp_path)
    (checkpoint,) = (tmp_path / "trained_models" / "music").glob("*/*.ckpt")
    # one process would step through 40 // 8 = 5 batches; each of two steps through 20 // 8 = 2
    assert torch.load(checkpoint, map_location="cpu")["global_step"] == 2
