"""Data parallelism launched as users launch it, with torchrun: FSDP2's ``fully_shard`` on two processes,
and DDP over two "nodes" on this machine (``--nnodes 2``, one process each), the multi-node case. After
a few SGD steps on uneven shards every rank holds the parameters of one process trained on the
concatenated batch, and the mean of the ranks' losses is that process's loss (each rank's is its share).
The model is BatchNorm-free, so the equality is exact (with BatchNorm each rank would normalize its own
shard; see docs/implementation.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from music_ssl import MUSICLoss
from tests.music_ssl import data_parallel_worker as worker
from tests.process_group import free_port

pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(not dist.is_available(), reason="torch was built without torch.distributed"),
]

SCRIPT = Path(worker.__file__).resolve()
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _launch(commands: list[list[str]]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [
        subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for c in commands
    ]
    outputs = [p.communicate(timeout=400)[0].decode(errors="replace") for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-4000:]


def _one_process() -> tuple[list[float], list[torch.Tensor]]:
    model = worker.head()
    losses = worker.train(
        model, MUSICLoss(segment_dim=worker.SEGMENT_DIM, gather_distributed=False), slice(None)
    )
    return losses, [p.detach() for p in model.parameters()]


def _assert_trained_as_one_process(out: Path) -> None:
    ranks = [torch.load(out / f"rank{rank}.pt") for rank in range(len(worker.SHARDS))]
    want_losses, want_parameters = _one_process()
    mean_losses = torch.tensor([rank["losses"] for rank in ranks]).mean(dim=0)
    torch.testing.assert_close(mean_losses, torch.tensor(want_losses), rtol=1e-5, atol=1e-6)
    for rank in ranks:
        for got, want in zip(rank["parameters"], want_parameters, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.timeout(600)
def test_fsdp2_fully_shard_trains_as_one_process(tmp_path):
    import torch.distributed.fsdp as fsdp

    if not hasattr(fsdp, "fully_shard"):  # torch 2.4's, under _composable, asks for CUDA streams
        pytest.skip("FSDP2 on CPU processes needs torch >= 2.6 (torch.distributed.fsdp.fully_shard)")
    standalone = [*TORCHRUN, "--standalone", "--nproc-per-node", "2"]
    _launch([[*standalone, str(SCRIPT), "--wrap", "fsdp2", "--out", str(tmp_path)]])
    _assert_trained_as_one_process(tmp_path)


@pytest.mark.timeout(600)
def test_two_nodes_train_as_one_process(tmp_path):
    port = str(free_port())
    nodes = [
        [
            *TORCHRUN,
            "--nnodes",
            "2",
            "--nproc-per-node",
            "1",
            "--node-rank",
            str(node),
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            port,
            str(SCRIPT),
            "--wrap",
            "ddp",
            "--out",
            str(tmp_path),
        ]
        for node in range(2)
    ]
    _launch(nodes)
    _assert_trained_as_one_process(tmp_path)
