"""The ImageNet benchmark method under Lightning DDP, two CPU processes: the joint over the global batch
and a learning rate that follows it, as in the authors' recipe (docs/math.md, "Distributed training")."""

from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("lightly", reason="pip install 'music-ssl[lightly]'")
pytest.importorskip("pytorch_lightning", reason="pip install 'music-ssl[lightly]'")

from pytorch_lightning import Trainer  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from music_ssl import MUSICProjectionHead  # noqa: E402
from music_ssl.integrations.lightly import imagenet_resnet50  # noqa: E402
from music_ssl.integrations.recipes import IMAGENET  # noqa: E402
from tests.integrations.two_processes import (
    WORLD_SIZE,
    assert_joint_over_the_global_batch,
    assert_same_parameters,
    run_on_two_processes,
    step_loader,
    trainer_arguments,  # noqa: E402
)

BATCH_SIZE = 8  # per process
NUM_CLASSES = 10  # the online classifier reports top-5 accuracy


def small_music() -> imagenet_resnet50.MUSIC:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 16, kernel_size=4, stride=4), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return imagenet_resnet50.MUSIC(
        batch_size_per_device=BATCH_SIZE,
        num_classes=NUM_CLASSES,
        backbone=backbone,
        feature_dim=16,
        hidden_dim=32,
        output_dim=32,
        segment_dim=8,
    )


class TwoViews(Dataset):
    """Fixed random image pairs in the runner's batch layout: ([view_1, view_2], target, filename)."""

    def __init__(self, size: int) -> None:
        generator = torch.Generator().manual_seed(1)
        self.views = torch.randn(size, 2, 3, 16, 16, generator=generator)
        self.targets = torch.randint(NUM_CLASSES, (size,), generator=generator)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return list(self.views[index]), self.targets[index], f"{index}.png"


def train_one_step(rank: int, root: str) -> dict:
    model = small_music()
    seen = {}

    terms = model.criterion.terms

    def record(z_a, z_b=None, *, num_global=None):
        """The criterion's terms, recorded: what the training step evaluates; the training
        step gives its two views as one list."""
        output = terms(z_a, z_b, num_global=num_global)
        if z_b is None:
            z_a, z_b = z_a
        seen.update(z_a=z_a.detach(), z_b=z_b.detach(), loss=output.loss.detach())
        seen.update(diag=output.diag.detach(), off=output.off.detach())
        return output

    model.criterion.terms = record
    trainer = Trainer(
        accelerator="cpu",
        devices=WORLD_SIZE,
        strategy="ddp",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    # Lightning's distributed sampler gives each process its share of the 32 pairs.
    trainer.fit(model, train_dataloaders=DataLoader(TwoViews(32), batch_size=BATCH_SIZE))
    groups = {group["name"]: group for group in trainer.optimizers[0].param_groups}
    return {**seen, "world_size": trainer.world_size, "lr": groups["music"]["initial_lr"]}


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    return run_on_two_processes(train_one_step, str(tmp_path_factory.mktemp("lightly_ddp")))


@pytest.mark.timeout(300)
def test_the_loss_is_that_of_the_global_batch(ranks):
    """The mean of the ranks' losses, and every rank's joint terms, are those of one process that sees
    both ranks' projections concatenated."""
    assert [rank["world_size"] for rank in ranks] == [WORLD_SIZE] * WORLD_SIZE
    assert sum(len(rank["z_a"]) for rank in ranks) == WORLD_SIZE * BATCH_SIZE
    assert_joint_over_the_global_batch(ranks, small_music().criterion)


@pytest.mark.timeout(300)
def test_the_learning_rate_follows_the_global_batch(ranks):
    for rank in ranks:
        assert rank["lr"] == IMAGENET.learning_rate(BATCH_SIZE, world_size=WORLD_SIZE)
        assert rank["lr"] == pytest.approx(WORLD_SIZE * IMAGENET.learning_rate(BATCH_SIZE, world_size=1))


TRAINED_STEPS = 3


def bn_free_music(batch_size_per_device: int, exchange: str = "auto") -> imagenet_resnet50.MUSIC:
    """``small_music`` with a BatchNorm-free head: ranks that each normalize their own shard could not
    equal one process exactly (docs/implementation.md); its loss with ``exchange``."""
    model = small_music()
    model.batch_size_per_device = batch_size_per_device
    torch.manual_seed(0)
    model.projection_head = MUSICProjectionHead(16, 32, 32, segment_dim=8, batch_norm=False)
    model.criterion.exchange = exchange
    return model


def train_steps(devices: int, root: str, exchange: str = "auto") -> dict:
    """TRAINED_STEPS steps of the benchmark module on ``devices`` processes: on two, Lightning's DDP with
    its own distributed sampler; on one, the same global batches (`global_batches`). Every parameter
    after them."""
    model = bn_free_music(BATCH_SIZE * WORLD_SIZE // devices, exchange)
    trainer = Trainer(**trainer_arguments(devices, TRAINED_STEPS, root))
    pairs = TwoViews(TRAINED_STEPS * WORLD_SIZE * BATCH_SIZE)
    images = step_loader(pairs, devices, BATCH_SIZE)
    trainer.fit(model, train_dataloaders=images)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _train_on_rank(rank: int, root: str, exchange: str) -> dict:
    return train_steps(WORLD_SIZE, root, exchange)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("exchange", ["gather", "reduce"])
def test_lightning_ddp_training_equals_one_process_on_the_global_batch(tmp_path, exchange):
    """Through the lightly adapter and Lightning's own DDP: after a few LARS steps every rank holds the
    parameters one process reaches on the concatenated batches (backbone, head and online classifier),
    whichever the ranks exchange."""
    ranks = run_on_two_processes(_train_on_rank, str(tmp_path / "ddp"), exchange)
    want = train_steps(1, str(tmp_path / "one"), exchange)
    assert_same_parameters(ranks, want)
