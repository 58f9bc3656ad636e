"""The CIFAR-10 script's spt.Module under Lightning DDP, two CPU processes: ``music_forward``'s loss is that
of the global batch, and the learning rate and the schedule follow the global batch, as in the authors'
recipe (docs/math.md, "Distributed training")."""

from __future__ import annotations

import importlib.util

import pytest
import torch

if importlib.util.find_spec("stable_pretraining") is None:
    pytest.skip(
        "stable-pretraining is not installed: pip install music-ssl[stable-pretraining]",
        allow_module_level=True,
    )

import lightning as pl  # noqa: E402
import stable_pretraining as spt  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from music_ssl import MUSICProjectionHead  # noqa: E402
from music_ssl.integrations.recipes import CIFAR10  # noqa: E402
from music_ssl.integrations.stable_pretraining import cifar10_resnet18 as benchmark  # noqa: E402
from music_ssl.integrations.stable_pretraining import music_forward  # noqa: E402
from tests.integrations.two_processes import (
    WORLD_SIZE,
    assert_joint_over_the_global_batch,
    assert_same_parameters,
    run_on_two_processes,
    step_loader,
    trainer_arguments,  # noqa: E402
)

RELEASE = f"stable-pretraining {spt.__version__}"
IMAGES, BATCH_SIZE = 32, 4  # 8 batches of the whole set: 4 steps an epoch on each of two processes
EPOCHS, WARMUP_EPOCHS = 2, 1
ARGV = ["--backbone", "small", "--batch-size", str(BATCH_SIZE), "--devices", str(WORLD_SIZE)]
ARGV += [
    "--proj-dim",
    "32",
    "--segment-dim",
    "8",
    "--epochs",
    str(EPOCHS),
    "--warmup-epochs",
    str(WARMUP_EPOCHS),
]


class TwoViews(Dataset):
    """Fixed random image pairs in the layout of ``MultiViewTransform([t1, t2])``."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(1)
        self.images = torch.randn(IMAGES, 2, 3, 16, 16, generator=generator)

    def __len__(self) -> int:
        return IMAGES

    def __getitem__(self, index: int) -> dict:
        label = torch.tensor(index % 10)
        return {"views": [{"image": image, "label": label} for image in self.images[index]]}


def train(rank: int, root: str) -> dict:
    spt.set(cache_dir=root)  # where stable-pretraining's default callbacks write
    args = benchmark.parse_args(ARGV)
    torch.manual_seed(0)
    backbone, feature_dim = benchmark.build_backbone(args.backbone)
    # As the script builds it: the whole training set, which Lightning's distributed sampler shares out.
    loader = DataLoader(TwoViews(), batch_size=args.batch_size, shuffle=True, drop_last=True)
    total_steps, warmup_steps = benchmark.run_schedule(args, len(loader.dataset))
    module = benchmark.music_module(args, backbone, feature_dim, total_steps, warmup_steps)
    seen = {}

    terms = module.music_loss.terms

    def record(z_a, z_b=None, *, num_global=None):
        """The loss's terms, recorded on the first step: what the training step evaluates; the training
        step gives its two views as one list."""
        output = terms(z_a, z_b, num_global=num_global)
        if z_b is None:
            z_a, z_b = z_a
        if not seen:
            seen.update(z_a=z_a.detach(), z_b=z_b.detach(), loss=output.loss.detach())
            seen.update(diag=output.diag.detach(), off=output.off.detach())
        return output

    module.music_loss.terms = record
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=args.devices,
        num_nodes=args.num_nodes,
        strategy="ddp",
        max_epochs=args.epochs,
        max_steps=total_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(module, train_dataloaders=loader)
    return {
        **seen,
        "world_size": trainer.world_size,
        "lr": trainer.optimizers[0].param_groups[0]["initial_lr"],
        "steps": trainer.global_step,
        "batches_per_epoch": trainer.num_training_batches,
        "total_steps": total_steps,
        "warmup_steps": warmup_steps,
    }


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    try:
        return run_on_two_processes(train, str(tmp_path_factory.mktemp("spt_ddp")))
    except Exception as error:
        pytest.fail(f"{RELEASE}: training the script's module on two processes failed: {error}")


@pytest.mark.timeout(300)
def test_the_loss_is_that_of_the_global_batch(ranks):
    """The mean of the ranks' losses, and every rank's joint terms, are those of one process that sees
    both ranks' projections concatenated."""
    assert [rank["world_size"] for rank in ranks] == [WORLD_SIZE] * WORLD_SIZE, RELEASE
    assert sum(len(rank["z_a"]) for rank in ranks) == WORLD_SIZE * BATCH_SIZE
    args = benchmark.parse_args(ARGV)
    single_process = benchmark.music_module(args, *benchmark.build_backbone(args.backbone), 1, 0)
    assert_joint_over_the_global_batch(ranks, single_process.music_loss)


@pytest.mark.timeout(300)
def test_the_learning_rate_follows_the_global_batch(ranks):
    for rank in ranks:
        assert rank["lr"] == CIFAR10.learning_rate(BATCH_SIZE, world_size=WORLD_SIZE)
        assert rank["lr"] == pytest.approx(WORLD_SIZE * CIFAR10.learning_rate(BATCH_SIZE, world_size=1))


@pytest.mark.timeout(300)
def test_the_schedule_follows_the_global_batch(ranks):
    """Each process steps through its share of the batches: the schedule planned as many steps as the
    Trainer ran, and warms up for the --warmup-epochs of the processes' epochs."""
    for rank in ranks:
        assert rank["batches_per_epoch"] == IMAGES // BATCH_SIZE // WORLD_SIZE
        assert rank["steps"] == rank["total_steps"] == EPOCHS * rank["batches_per_epoch"]
        assert rank["warmup_steps"] == WARMUP_EPOCHS * rank["batches_per_epoch"]


TRAINED_STEPS = 3


def bn_free_module(exchange: str = "auto") -> spt.Module:
    """An ``spt.Module`` with ``music_forward``, BatchNorm-free (ranks that each normalize their own shard
    could not equal one process exactly: docs/implementation.md), SGD with momentum; its loss with
    ``exchange``."""
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 4, stride=4), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    )
    projector = MUSICProjectionHead(16, 32, 32, segment_dim=8, batch_norm=False)
    return spt.Module(
        backbone=backbone,
        projector=projector,
        forward=music_forward,
        music_loss=projector.loss(exchange=exchange),
        optim={"optimizer": {"type": "SGD", "lr": 0.5, "momentum": 0.9}},
    )


def train_steps(devices: int, root: str, exchange: str = "auto") -> dict:
    """TRAINED_STEPS steps under a Lightning Trainer on ``devices`` processes: on two, DDP with its own
    distributed sampler; on one, the same global batches. Every parameter after them."""
    spt.set(cache_dir=root)
    module = bn_free_module(exchange)
    trainer = pl.Trainer(**trainer_arguments(devices, TRAINED_STEPS, root))
    views = TwoViews()
    loader = step_loader(views, devices, BATCH_SIZE)
    trainer.fit(module, train_dataloaders=loader)
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def _train_on_rank(rank: int, root: str, exchange: str) -> dict:
    return train_steps(WORLD_SIZE, root, exchange)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("exchange", ["gather", "reduce"])
def test_a_two_process_trainer_trains_the_module_as_one_process(tmp_path, exchange):
    """``music_forward`` in an ``spt.Module`` under a two-process Trainer: after a few SGD steps every rank
    holds the parameters that one process reaches on the ranks' batches concatenated, whichever the
    ranks exchange."""
    try:
        ranks = run_on_two_processes(_train_on_rank, str(tmp_path / "ddp"), exchange)
    except Exception as error:
        pytest.fail(f"{RELEASE}: training the module on two processes failed: {error}")
    want = train_steps(1, str(tmp_path / "one"), exchange)
    assert want, "the module has parameters"
    assert_same_parameters(ranks, want, f"{RELEASE}, ")
