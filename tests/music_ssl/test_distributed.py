"""gather_distributed under real DistributedDataParallel: two gloo processes on the CPU.

With DDP's gradient averaging, every parameter gradient must equal that of one process that sees the
concatenated batch, for equal and for unequal per-rank batch sizes, also with an empty rank.
"""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from music_ssl import MUSICLoss
from tests.process_group import free_port, join_process_group, leave_process_group

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch was built without torch.distributed")


def _model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 48))


def _data(batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    return torch.randn(batch_size, 12, generator=generator), torch.randn(batch_size, 12, generator=generator)


def _loss_function(kind: str, implementation: str):
    """The loss as each host builds it: the core with True, "auto" or its default, solo-learn's pure
    function."""
    if kind == "solo_learn":
        from music_ssl.integrations.solo_learn.losses import music_loss_func

        return lambda z_a, z_b, return_terms: music_loss_func(
            z_a, z_b, segment_dim=8, temperature=0.7, implementation=implementation, return_terms=return_terms
        )
    if kind == "core_default":
        return MUSICLoss(segment_dim=8, temperature=0.7, implementation=implementation)
    gather = {"core": True, "core_auto": "auto"}[kind]
    return MUSICLoss(segment_dim=8, temperature=0.7, gather_distributed=gather, implementation=implementation)


def _worker(rank, world_size, port, sizes, implementation, out_dir, kind="core"):
    torch.set_num_threads(1)
    join_process_group(rank, world_size, port)
    model = nn.parallel.DistributedDataParallel(_model())
    x_a, x_b = _data(sum(sizes))
    start = sum(sizes[:rank])
    rows = slice(start, start + sizes[rank])
    loss_fn = _loss_function(kind, implementation)
    out = loss_fn(model(x_a[rows]), model(x_b[rows]), return_terms=True)
    out.loss.backward()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    torch.save(
        {"grads": grads, "loss": out.loss.detach(), "diag": out.diag, "off": out.off},
        os.path.join(out_dir, f"rank{rank}.pt"),
    )
    leave_process_group()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("sizes", [(6, 6), (7, 3), (5, 0, 4)], ids=["equal", "unequal", "one-empty"])
@pytest.mark.parametrize("implementation", ["reference", "chunked"])
def test_ddp_gradients_equal_single_process_on_concatenated_batch(
    tmp_path, sizes, implementation, kind="core"
):
    """Also with a rank that holds no sample (the uneven last batch of drop_last=False): its loss is
    finite, and the mean loss over ranks is the loss of the concatenated batch."""
    world_size = len(sizes)
    mp.spawn(
        _worker,
        args=(world_size, free_port(), sizes, implementation, str(tmp_path), kind),
        nprocs=world_size,
        join=True,
    )

    model = _model()
    x_a, x_b = _data(sum(sizes))
    loss_fn = MUSICLoss(segment_dim=8, temperature=0.7, implementation="reference")
    expected = loss_fn(model(x_a), model(x_b), return_terms=True)
    expected.loss.backward()

    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(world_size)]
    losses = torch.stack([result["loss"] for result in results])
    assert torch.isfinite(losses).all()
    torch.testing.assert_close(losses.mean(), expected.loss.detach(), rtol=1e-5, atol=1e-6)
    for result in results:
        torch.testing.assert_close(result["diag"], expected.diag, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(result["off"], expected.off, rtol=1e-5, atol=1e-6)
        for got, param in zip(result["grads"], model.parameters(), strict=True):
            torch.testing.assert_close(got, param.grad, rtol=1e-4, atol=1e-6)


def _mismatched_worker(rank, world_size, port, per_rank, out_dir):
    torch.set_num_threads(1)
    join_process_group(rank, world_size, port)
    mine = per_rank[rank]
    z_a, z_b = (torch.randn(4, mine["dim"], dtype=mine["dtype"]) for _ in range(2))
    loss_fn = MUSICLoss(
        segment_dim=mine["segment_dim"],
        temperature=mine["temperature"],
        gather_distributed=True,
        implementation=mine["implementation"],
    )
    try:
        loss_fn(z_a, z_b)
        message = "no error"
    except ValueError as error:
        message = str(error)
    with open(os.path.join(out_dir, f"rank{rank}.txt"), "w") as f:
        f.write(message)
    leave_process_group()  # its barrier: the ranks are still in step, nothing was left in a collective


SAME = {"dim": 32, "segment_dim": 8, "dtype": torch.float32, "temperature": 1.0, "implementation": "chunked"}


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("rank1", "shown"),
    [
        ({"segment_dim": 16}, "rank 0: dim=32, segment_dim=8, dtype=torch.float32, temperature=1"),
        ({"dim": 64}, "rank 1: dim=64, segment_dim=8"),
        ({"dtype": torch.float64}, "rank 1: dim=32, segment_dim=8, dtype=torch.float64"),
        ({"temperature": 0.5}, "rank 1: dim=32, segment_dim=8, dtype=torch.float32, temperature=0.5"),
        ({"implementation": "reference", "segment_dim": 4}, "rank 1: dim=32, segment_dim=4"),
    ],
    ids=["segment_dim", "dim", "dtype", "temperature", "across_implementations"],
)
def test_ranks_that_disagree_get_the_same_clear_error(tmp_path, rank1, shown):
    """Different segment_dim (same D) would silently average gradients of different joints, a different D
    or dtype would abort inside gloo: every rank raises a ValueError that names each rank's values."""
    per_rank = [SAME, {**SAME, **rank1}]
    mp.spawn(_mismatched_worker, args=(2, free_port(), per_rank, str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        message = (tmp_path / f"rank{rank}.txt").read_text()
        assert message.startswith("gather_distributed=True estimates one joint over every rank's batch")
        assert shown in message, message


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["core_auto", "core_default", "solo_learn"])
def test_the_hosts_policy_gathers_whenever_several_processes_train(tmp_path, kind):
    """gather_distributed="auto" (the default, and what every adapter passes) estimates the joint over the
    global batch under DDP, as the authors train: the same gradients as one process on the concatenated
    batch."""
    test_ddp_gradients_equal_single_process_on_concatenated_batch(tmp_path, (7, 3), "chunked", kind)
