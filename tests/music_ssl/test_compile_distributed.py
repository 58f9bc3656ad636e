"""torch.compile(fullgraph=True) of head + loss under DistributedDataParallel, two gloo processes with
uneven shards: a fused implementation exchanges the ranks' rows inside its one operator, so the compiled
graph holds the exchange and training equals one process on the concatenated batch. The reference
gathers outside an operator, where the exchanged row counts are data that a graph cannot hold: under
fullgraph it says so, and without fullgraph it runs (the loss eagerly)."""

import os

import pytest
import torch
import torch.distributed as dist
from torch import nn

from music_ssl import MUSICLoss
from tests.music_ssl import implementations_under_test
from tests.process_group import free_port, join_process_group, leave_process_group, run_processes

pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(not dist.is_available(), reason="torch was built without torch.distributed"),
]

# torch 2.4's Dynamo names an exception raised in traced code without its message.
OLD_DYNAMO = tuple(int(part) for part in torch.__version__.split(".")[:2]) < (2, 5)
SIZES = (3, 7)  # per-rank batch sizes
STEPS = 3


class HeadAndLoss(nn.Module):
    """What a user compiles: the head and the loss of a training step (BatchNorm-free, so that two ranks
    equal one process exactly)."""

    def __init__(self, implementation: str, gather: bool | str = "auto") -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 32))
        self.loss_fn = MUSICLoss(segment_dim=8, implementation=implementation, gather_distributed=gather)

    def forward(self, x_a, x_b):
        return self.loss_fn(self.head(x_a), self.head(x_b))


def _batches():
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(2, sum(SIZES), 12, generator=generator) for _ in range(STEPS)]


def _train(model: nn.Module, parameters, rows: slice) -> list[float]:
    optimizer = torch.optim.SGD(parameters, lr=0.5)
    losses = []
    for x_a, x_b in _batches():
        optimizer.zero_grad()
        loss = model(x_a[rows], x_b[rows])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _worker(rank, port, out_dir, implementation, fullgraph):
    torch.set_num_threads(1)
    join_process_group(rank, len(SIZES), port)
    step = HeadAndLoss(implementation)
    model = nn.parallel.DistributedDataParallel(torch.compile(step, fullgraph=fullgraph, backend="aot_eager"))
    start = sum(SIZES[:rank])
    try:
        losses = _train(model, model.parameters(), slice(start, start + SIZES[rank]))
        result = {"losses": losses, "parameters": [p.detach() for p in step.head.parameters()]}
    except Exception as error:  # what a rank raised travels back to the test
        result = {"error": f"{type(error).__name__}: {error}"}
    torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    leave_process_group()


def _run(tmp_path, implementation, fullgraph):
    run_processes(_worker, args=(free_port(), str(tmp_path), implementation, fullgraph), nprocs=len(SIZES))
    return [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(len(SIZES))]


def _one_process(implementation):
    step = HeadAndLoss(implementation, gather=False)
    losses = _train(step, step.head.parameters(), slice(None))
    return losses, list(step.head.parameters())


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "implementation", implementations_under_test.params(fused_only=True, auto=True, interpreted=False)
)
def test_a_compiled_fullgraph_step_trains_as_one_process(tmp_path, implementation):
    ranks = _run(tmp_path, implementation, fullgraph=True)
    assert all("error" not in rank for rank in ranks), ranks
    want_losses, want_parameters = _one_process(implementation)
    # Every rank's loss is its share; their mean is the global batch's loss (docs/implementation.md).
    mean_losses = torch.tensor([rank["losses"] for rank in ranks]).mean(dim=0)
    torch.testing.assert_close(mean_losses, torch.tensor(want_losses), rtol=1e-5, atol=1e-6)
    for rank in ranks:
        for got, want in zip(rank["parameters"], want_parameters, strict=True):
            torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.timeout(600)
def test_the_reference_under_fullgraph_says_why_and_runs_without_it(tmp_path):
    (tmp_path / "fullgraph").mkdir()
    ranks = _run(tmp_path / "fullgraph", "reference", fullgraph=True)
    for rank in ranks:
        if OLD_DYNAMO and rank["error"].startswith("Unsupported: Observed exception"):
            continue  # torch < 2.5 reports the exception without its text
        assert "torch.compile cannot trace a shape that depends on it" in rank["error"]
        assert 'implementation="auto" or "chunked"' in rank["error"]
    (tmp_path / "graph_breaks").mkdir()
    ranks = _run(tmp_path / "graph_breaks", "reference", fullgraph=False)
    want_losses, want_parameters = _one_process("reference")
    for rank in ranks:
        for got, want in zip(rank["parameters"], want_parameters, strict=True):
            torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-6)
